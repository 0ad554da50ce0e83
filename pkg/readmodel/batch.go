package readmodel

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// balanceReq is one State read waiting for the next pipeline.
type balanceReq struct {
	key string
	out chan balanceAns
}

type balanceAns struct {
	vals []any
	err  error
}

// EnablePipelining makes State calls that arrive together share one Redis
// round trip: loops goroutines each take whatever reads are waiting (up to
// 256) and send them as one pipeline. Under load this turns two system calls
// per read into two per batch; an idle reader pays one channel hop. The loops
// end with ctx.
func (p *Projection) EnablePipelining(ctx context.Context, loops int) {
	p.reads = make(chan balanceReq, 4096)
	for range loops {
		go p.pipelineLoop(ctx)
	}
}

func (p *Projection) pipelineLoop(ctx context.Context) {
	batch := make([]balanceReq, 0, 256)
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-p.reads:
			batch = append(batch[:0], r)
		}
	fill:
		for len(batch) < cap(batch) {
			select {
			case r := <-p.reads:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		keys := make([]string, len(batch))
		for i, r := range batch {
			keys[i] = r.key
		}
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		vals, err := p.fetch(pctx, keys)
		cancel()
		for i, r := range batch {
			if err != nil {
				r.out <- balanceAns{err: err}
				continue
			}
			r.out <- balanceAns{vals: vals[i]}
		}
	}
}

// fetch reads each state key and the completeness marker in one
// pipeline: [state, marker] per key, nil for a missing key. It is an MGET
// of both per key, or on a Redis Cluster, where the two live in different
// slots, a GET of each.
func (p *Projection) fetch(ctx context.Context, keys []string) ([][]any, error) {
	pipe := p.rdb.Pipeline()
	out := make([][]any, len(keys))
	if !p.cluster {
		cmds := make([]*redis.SliceCmd, len(keys))
		for i, k := range keys {
			cmds[i] = pipe.MGet(ctx, k, CompleteKey)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, err
		}
		for i, c := range cmds {
			out[i] = c.Val()
		}
		return out, nil
	}
	marker := pipe.Get(ctx, CompleteKey)
	states := make([]*redis.StringCmd, len(keys))
	for i, k := range keys {
		states[i] = pipe.Get(ctx, k)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	for i := range states {
		out[i] = []any{orNil(states[i]), orNil(marker)}
	}
	return out, nil
}

// mget reads a state key and the completeness marker, through the shared
// pipeline when it is enabled.
func (p *Projection) mget(ctx context.Context, key string) ([]any, error) {
	if p.reads == nil {
		vals, err := p.fetch(ctx, []string{key})
		if err != nil {
			return nil, err
		}
		return vals[0], nil
	}
	r := balanceReq{key: key, out: make(chan balanceAns, 1)}
	select {
	case p.reads <- r:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case a := <-r.out:
		return a.vals, a.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// orNil is a GET's value as MGET gives it: the string, or nil if the key
// does not exist.
func orNil(c *redis.StringCmd) any {
	if c.Err() != nil {
		return nil
	}
	return c.Val()
}
