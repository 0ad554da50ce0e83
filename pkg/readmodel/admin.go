package readmodel

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Stored is everything Redis holds for one stream, read without the
// completeness check, for the recovery tools.
type Stored struct {
	State []byte // nil if the state key does not exist
	// Lists holds the members of each list asked for, oldest first, and
	// Versions their scores.
	Lists    [][][]byte
	Versions [][]int64
	// Hashes holds the fields of each hash asked for.
	Hashes []map[string]string
}

// Inspect returns what Redis holds for a stream, its named lists and its
// named hashes.
func (p *Projection) Inspect(ctx context.Context, domain, id string, lists, hashes []string) (Stored, error) {
	pipe := p.rdb.Pipeline()
	state := pipe.Get(ctx, StateKey(domain, id))
	got := make([]*redis.ZSliceCmd, len(lists))
	for i, l := range lists {
		got[i] = pipe.ZRangeByScoreWithScores(ctx, ListKey(domain, id, l), &redis.ZRangeBy{Min: "-inf", Max: "+inf"})
	}
	fields := make([]*redis.MapStringStringCmd, len(hashes))
	for i, h := range hashes {
		fields[i] = pipe.HGetAll(ctx, ListKey(domain, id, h))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return Stored{}, fmt.Errorf("inspect %s %s: %w", domain, id, err)
	}
	var s Stored
	if b, err := state.Bytes(); err == nil {
		s.State = b
	}
	s.Lists, s.Versions = make([][][]byte, len(lists)), make([][]int64, len(lists))
	for i, g := range got {
		for _, z := range g.Val() {
			m, _ := z.Member.(string)
			s.Lists[i] = append(s.Lists[i], []byte(m))
			s.Versions[i] = append(s.Versions[i], int64(z.Score))
		}
	}
	s.Hashes = make([]map[string]string, len(hashes))
	for i, f := range fields {
		s.Hashes[i] = f.Val()
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

// StreamIDs calls fn once with the id of every stream of domain Redis
// holds a key for: <domain>.<id>, or {<domain>.<id>}.<list>.
func (p *Projection) StreamIDs(ctx context.Context, domain string, fn func(id string) error) error {
	seen := map[string]bool{}
	each := func(key string) error {
		id := strings.TrimPrefix(strings.TrimPrefix(key, "{"), domain+".")
		id, _, _ = strings.Cut(id, "}")
		id, _, _ = strings.Cut(id, ".")
		if seen[id] {
			return nil
		}
		seen[id] = true
		return fn(id)
	}
	if err := p.scan(ctx, domain+".*", each); err != nil {
		return err
	}
	return p.scan(ctx, "{"+domain+".*", each)
}

// Erase deletes the whole read model of the domains, the completeness marker
// first so that reads refuse to answer from then on. It returns how many
// keys it deleted.
func (p *Projection) Erase(ctx context.Context, domains []string) (int, error) {
	if err := p.rdb.Del(ctx, CompleteKey).Err(); err != nil {
		return 0, fmt.Errorf("erase: %w", err)
	}
	var keys []string
	patterns := []string{RebuildingKey + ".*"}
	for _, d := range domains {
		patterns = append(patterns, d+".*", "{"+d+".*", IndexKey(d))
	}
	for _, pattern := range patterns {
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
// layout: if Redis holds streams of the domains in another one, it erases
// the read model (the writers then project it again) and reports that it
// did.
func (p *Projection) EnsureLayout(ctx context.Context, domains []string) (erased bool, err error) {
	have, err := p.rdb.Get(ctx, LayoutKey).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return false, fmt.Errorf("read model layout: %w", err)
	}
	if have == Layout {
		return false, nil
	}
	any := false
	for _, d := range domains {
		if err := p.scan(ctx, d+".*", func(string) error { any = true; return errStop }); err != nil && !errors.Is(err, errStop) {
			return false, fmt.Errorf("read model layout: %w", err)
		}
	}
	if any {
		if _, err := p.Erase(ctx, domains); err != nil {
			return false, err
		}
	}
	return any, p.rdb.Set(ctx, LayoutKey, Layout, 0).Err()
}

var errStop = errors.New("stop")
