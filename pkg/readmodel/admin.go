package readmodel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

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

// scan calls fn with every key matching pattern, on every primary of a
// Redis Cluster.
func (p *Projection) scan(ctx context.Context, pattern string, fn func(key string) error) error {
	if cc, ok := p.rdb.(*redis.ClusterClient); ok {
		var mu sync.Mutex
		return cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
			for iter.Next(ctx) {
				mu.Lock()
				err := fn(iter.Val())
				mu.Unlock()
				if err != nil {
					return err
				}
			}
			return iter.Err()
		})
	}
	iter := p.rdb.Scan(ctx, 0, pattern, 1000).Iterator()
	for iter.Next(ctx) {
		if err := fn(iter.Val()); err != nil {
			return err
		}
	}
	return iter.Err()
}

// WalletIDs calls fn once with the id of every wallet Redis holds a key
// for: wallet.<id>, or {wallet.<id>}.tx / .rejected.
func (p *Projection) WalletIDs(ctx context.Context, fn func(id string) error) error {
	seen := map[string]bool{}
	each := func(key string) error {
		id := strings.TrimPrefix(strings.TrimPrefix(key, "{"), "wallet.")
		id, _, _ = strings.Cut(id, "}")
		id, _, _ = strings.Cut(id, ".")
		if seen[id] {
			return nil
		}
		seen[id] = true
		return fn(id)
	}
	if err := p.scan(ctx, "wallet.*", each); err != nil {
		return err
	}
	return p.scan(ctx, "{wallet.*", each)
}

// Erase deletes the whole read model, the completeness marker first so that
// reads refuse to answer from then on. It returns how many wallet keys it
// deleted.
func (p *Projection) Erase(ctx context.Context) (int, error) {
	if err := p.rdb.Del(ctx, CompleteKey).Err(); err != nil {
		return 0, fmt.Errorf("erase: %w", err)
	}
	var keys []string
	for _, pattern := range []string{RebuildingKey + ".*", "wallet.*", "{wallet.*"} {
		if err := p.scan(ctx, pattern, func(k string) error { keys = append(keys, k); return nil }); err != nil {
			return 0, fmt.Errorf("erase: %w", err)
		}
	}
	for start := 0; start < len(keys); start += 1000 {
		pipe := p.rdb.Pipeline() // one key per command: no command spans two cluster slots
		for _, k := range keys[start:min(len(keys), start+1000)] {
			pipe.Unlink(ctx, k)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return start, fmt.Errorf("erase: %w", err)
		}
	}
	return len(keys), nil
}

// EnsureLayout makes sure the read model is written in this build's key
// layout: if Redis holds wallets in another one, it erases the read model
// (the writers then project it again) and reports that it did.
func (p *Projection) EnsureLayout(ctx context.Context) (erased bool, err error) {
	have, err := p.rdb.Get(ctx, LayoutKey).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return false, fmt.Errorf("read model layout: %w", err)
	}
	if have == Layout {
		return false, nil
	}
	any := false
	if err := p.scan(ctx, "wallet.*", func(string) error { any = true; return errStop }); err != nil && !errors.Is(err, errStop) {
		return false, fmt.Errorf("read model layout: %w", err)
	}
	if any {
		if _, err := p.Erase(ctx); err != nil {
			return false, err
		}
	}
	return any, p.rdb.Set(ctx, LayoutKey, Layout, 0).Err()
}

var errStop = errors.New("stop")
