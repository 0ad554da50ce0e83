package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/segmentio/ksuid"

	"coffer/pkg/eventstore"
	"coffer/pkg/readmodel"
)

// dirtySet holds the streams whose newest committed version Redis may lack.
type dirtySet struct {
	mu   sync.Mutex
	m    map[streamKey]behind
	poke chan struct{}
}

// behind is how far Redis is behind on one stream: it holds version have
// (as far as the writer knows) and the log holds want.
type behind struct{ have, want int64 }

func newDirtySet() *dirtySet {
	return &dirtySet{m: make(map[streamKey]behind), poke: make(chan struct{}, 1)}
}

// add records that Redis may hold only version have of a stream while the
// log holds version want.
func (d *dirtySet) add(k streamKey, have, want int64) {
	d.mu.Lock()
	b, ok := d.m[k]
	if !ok || have < b.have {
		b.have = have
	}
	b.want = max(b.want, want)
	d.m[k] = b
	d.mu.Unlock()
	select {
	case d.poke <- struct{}{}:
	default:
	}
}

func (d *dirtySet) empty() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.m) == 0
}

// snapshot returns the version the log holds of each dirty stream.
func (d *dirtySet) snapshot() map[streamKey]int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[streamKey]int64, len(d.m))
	for k, v := range d.m {
		out[k] = v.want
	}
	return out
}

// done forgets a stream if Redis now has version or newer of it.
func (d *dirtySet) done(k streamKey, version int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.m[k].want <= version {
		delete(d.m, k)
	}
}

// lagVersions is how many versions Redis lacks over all dirty streams.
func (d *dirtySet) lagVersions() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	var n int64
	for _, b := range d.m {
		n += b.want - b.have
	}
	return n
}

func (d *dirtySet) len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.m)
}

// project keeps Redis equal to the log, and says so with the read model's
// completeness marker. At start, after any failed push, and whenever the
// marker has vanished (Redis restarted empty, or someone ran FLUSHALL), it
// compares every stream's head with Redis and re-pushes from the log every
// stream Redis is missing or has older; then it sets the marker again. It
// retries until ctx ends.
func (w *Writer) project(ctx context.Context) {
	complete := false
	backoff := newBackoff(250*time.Millisecond, 5*time.Second)
	for {
		err := w.projectOnce(ctx, &complete)
		wait, poke := time.Second, w.dirty.poke // a failed push pokes us sooner
		if err != nil {
			wait, poke = backoff.next(), nil
			if ctx.Err() == nil {
				w.log.Warn("redis is behind the log", "streams_behind", w.dirty.len(), "retry_in", wait.String(), "err", err)
			}
		} else {
			backoff.reset()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		case <-poke:
		}
	}
}

func (w *Writer) projectOnce(ctx context.Context, complete *bool) error {
	if !w.layoutChecked {
		erased, err := w.proj.EnsureLayout(ctx, w.names)
		if err != nil {
			return err
		}
		if erased {
			w.log.Warn("redis held the read model in an older key layout; erased it to project it again")
			*complete = false
		}
		w.layoutChecked = true
	}
	if *complete {
		ok, err := w.proj.IsComplete(ctx, w.part)
		if err != nil {
			return err
		}
		if !ok {
			*complete = false
			w.log.Warn("redis lost the read model (a restart without persistence, or FLUSHALL); re-projecting every stream")
		}
	}
	if *complete && w.dirty.empty() {
		return nil
	}
	// A failed push may mean Redis restarted empty: compare everything, not
	// only the streams whose push failed.
	token := ksuid.New().String()
	if !*complete {
		if err := w.proj.BeginRebuild(ctx, w.part, token); err != nil {
			return err
		}
	}
	n, err := w.reconcile(ctx)
	if err != nil {
		return err
	}
	if n > 0 {
		w.log.Info("redis compared with the log", "streams_behind", n)
	}
	if err := w.catchUp(ctx); err != nil {
		return err
	}
	w.redisDown.Store(false) // Redis answers again: the committer may push
	if *complete || !w.dirty.empty() {
		return nil
	}
	ok, err := w.proj.FinishRebuild(ctx, w.part, token)
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("redis was erased again while it was being rebuilt")
	}
	*complete = true
	w.log.Info("redis read model complete")
	return nil
}

// reconcile marks dirty every stream whose version in Redis is older than
// the log's, and returns how many it marked.
func (w *Writer) reconcile(ctx context.Context) (int, error) {
	const chunk = 1000
	var heads []readmodel.Stream
	var want []int64
	behind := 0
	flush := func() error {
		versions, err := w.proj.Versions(ctx, heads)
		if err != nil {
			return err
		}
		for i, h := range heads {
			if versions[i] < want[i] {
				w.dirty.add(streamKey{h.Domain, h.ID}, versions[i], want[i])
				behind++
			}
		}
		heads, want = heads[:0], want[:0]
		return nil
	}
	err := w.store.Heads(ctx, func(h eventstore.Head) error {
		heads = append(heads, readmodel.Stream{Domain: h.Domain, ID: h.StreamID})
		want = append(want, h.Version)
		if len(heads) == chunk {
			return flush()
		}
		return nil
	})
	if err == nil && len(heads) > 0 {
		err = flush()
	}
	return behind, err
}

// catchUp pushes every dirty stream's missing events from the log.
func (w *Writer) catchUp(ctx context.Context) error {
	for k, want := range w.dirty.snapshot() {
		if err := w.repush(ctx, k); err != nil {
			return err
		}
		w.dirty.done(k, want)
	}
	return nil
}

// repush brings one stream in Redis up to the log.
func (w *Writer) repush(ctx context.Context, k streamKey) error {
	versions, err := w.proj.Versions(ctx, []readmodel.Stream{{Domain: k.domain, ID: k.id}})
	if err != nil {
		return err
	}
	h, ok := w.hosts[k.domain]
	if !ok {
		return fmt.Errorf("no domain %q", k.domain)
	}
	return projectStream(ctx, w.store, w.proj, h, k.id, versions[0], w.cfg.RedisTimeout)
}

// projectStream pushes one stream's events with version > after from the
// log to Redis, oldest first in chunks, so the state key moves forward only
// with its list entries in place.
func projectStream(ctx context.Context, store *eventstore.Store, proj *readmodel.Projection, h host, id string, after int64, timeout time.Duration) error {
	const chunk = 500
	for {
		recs, err := store.StreamEvents(ctx, h.name(), id, after, chunk)
		if err != nil {
			return err
		}
		if len(recs) == 0 {
			return nil
		}
		c, err := h.fromLog(id, recs)
		if err != nil {
			return err
		}
		pctx, cancel := context.WithTimeout(ctx, timeout)
		gaps, err := proj.Push(pctx, []readmodel.Change{c})
		cancel()
		if err != nil {
			return err
		}
		if len(gaps) > 0 {
			return fmt.Errorf("%s %s: Redis lost data during the push; starting over", h.name(), id)
		}
		after = recs[len(recs)-1].Event.Version
	}
}
