package readmodel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"

	"coffer/pkg/wallet"
)

// Stored is everything Redis holds for one wallet, read without the
// completeness check, for the recovery tools.
type Stored struct {
	View         View
	Found        bool   // the state key exists
	Corrupt      string // why the state key could not be read, if it could not
	Transactions []wallet.Transaction
	Rejected     []wallet.Transaction
}

// Inspect returns what Redis holds for walletID, oldest transactions first.
func (p *Projection) Inspect(ctx context.Context, walletID string) (Stored, error) {
	pipe := p.rdb.Pipeline()
	state := pipe.Get(ctx, StateKey(walletID))
	tx := pipe.ZRangeByScore(ctx, TransactionsKey(walletID), &redis.ZRangeBy{Min: "-inf", Max: "+inf"})
	rej := pipe.ZRangeByScore(ctx, RejectedKey(walletID), &redis.ZRangeBy{Min: "-inf", Max: "+inf"})
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return Stored{}, fmt.Errorf("inspect wallet %s: %w", walletID, err)
	}
	var s Stored
	if b, err := state.Bytes(); err == nil {
		s.Found = true
		if err := json.Unmarshal(b, &s.View); err != nil {
			s.Corrupt = fmt.Sprintf("state %q is not JSON: %v", b, err)
		}
	}
	var err error
	if s.Transactions, err = decode(tx.Val()); err != nil {
		s.Corrupt = err.Error()
	}
	if s.Rejected, err = decode(rej.Val()); err != nil {
		s.Corrupt = err.Error()
	}
	return s, nil
}

// WalletIDs calls fn with the id of every wallet Redis holds a key for.
func (p *Projection) WalletIDs(ctx context.Context, fn func(id string) error) error {
	seen := map[string]bool{}
	iter := p.rdb.Scan(ctx, 0, "wallet.*", 1000).Iterator()
	for iter.Next(ctx) {
		id := strings.TrimPrefix(iter.Val(), "wallet.")
		id, _, _ = strings.Cut(id, ".")
		if seen[id] {
			continue
		}
		seen[id] = true
		if err := fn(id); err != nil {
			return err
		}
	}
	return iter.Err()
}

// Erase deletes the whole read model, the completeness marker first so that
// reads refuse to answer from then on.
func (p *Projection) Erase(ctx context.Context) (int, error) {
	if err := p.rdb.Del(ctx, CompleteKey).Err(); err != nil {
		return 0, fmt.Errorf("erase: %w", err)
	}
	rebuilding, err := p.rdb.Keys(ctx, RebuildingKey+".*").Result()
	if err == nil && len(rebuilding) > 0 {
		err = p.rdb.Del(ctx, rebuilding...).Err()
	}
	if err != nil {
		return 0, fmt.Errorf("erase: %w", err)
	}
	n := 0
	iter := p.rdb.Scan(ctx, 0, "wallet.*", 1000).Iterator()
	var batch []string
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := p.rdb.Unlink(ctx, batch...).Err(); err != nil {
			return fmt.Errorf("erase: %w", err)
		}
		n += len(batch)
		batch = batch[:0]
		return nil
	}
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 1000 {
			if err := flush(); err != nil {
				return n, err
			}
		}
	}
	if err := iter.Err(); err != nil {
		return n, fmt.Errorf("erase: %w", err)
	}
	return n, flush()
}
