package readmodel

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// balanceReq is one Balance waiting for the next pipeline.
type balanceReq struct {
	walletID string
	out      chan balanceAns
}

type balanceAns struct {
	vals []any
	err  error
}

// EnablePipelining makes Balance calls that arrive together share one Redis
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
	cmds := make([]*redis.SliceCmd, 0, 256)
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
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if p.cluster {
			// A wallet's state and the marker live in different slots.
			pipe := p.rdb.Pipeline()
			marker := pipe.Get(pctx, CompleteKey)
			states := make([]*redis.StringCmd, len(batch))
			for i, r := range batch {
				states[i] = pipe.Get(pctx, StateKey(r.walletID))
			}
			_, err := pipe.Exec(pctx)
			cancel()
			for i, r := range batch {
				if err != nil && !errors.Is(err, redis.Nil) {
					r.out <- balanceAns{err: err}
					continue
				}
				r.out <- balanceAns{vals: []any{orNil(states[i]), orNil(marker)}}
			}
			continue
		}
		pipe := p.rdb.Pipeline()
		cmds = cmds[:0]
		for _, r := range batch {
			cmds = append(cmds, pipe.MGet(pctx, StateKey(r.walletID), CompleteKey))
		}
		_, err := pipe.Exec(pctx)
		cancel()
		for i, r := range batch {
			if err != nil {
				r.out <- balanceAns{err: err}
				continue
			}
			r.out <- balanceAns{vals: cmds[i].Val()}
		}
	}
}

// mget reads a wallet's state and the completeness marker, through the
// shared pipeline when it is enabled.
func (p *Projection) mget(ctx context.Context, walletID string) ([]any, error) {
	if p.reads == nil {
		if p.cluster {
			pipe := p.rdb.Pipeline()
			state, marker := pipe.Get(ctx, StateKey(walletID)), pipe.Get(ctx, CompleteKey)
			if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
				return nil, err
			}
			return []any{orNil(state), orNil(marker)}, nil
		}
		return p.rdb.MGet(ctx, StateKey(walletID), CompleteKey).Result()
	}
	r := balanceReq{walletID: walletID, out: make(chan balanceAns, 1)}
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
