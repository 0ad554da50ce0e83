package writer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/segmentio/ksuid"

	"coffer/pkg/eventstore"
	"coffer/pkg/readmodel"
	"coffer/pkg/wallet"
)

// dirtySet holds the wallets whose newest committed version Redis may lack.
type dirtySet struct {
	mu   sync.Mutex
	m    map[string]behind
	poke chan struct{}
}

// behind is how far Redis is behind on one wallet: it holds version have
// (as far as the writer knows) and the log holds want.
type behind struct{ have, want int64 }

func newDirtySet() *dirtySet {
	return &dirtySet{m: make(map[string]behind), poke: make(chan struct{}, 1)}
}

// add records that Redis may hold only version have of walletID while the
// log holds version want.
func (d *dirtySet) add(walletID string, have, want int64) {
	d.mu.Lock()
	b, ok := d.m[walletID]
	if !ok || have < b.have {
		b.have = have
	}
	b.want = max(b.want, want)
	d.m[walletID] = b
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

// snapshot returns the version the log holds of each dirty wallet.
func (d *dirtySet) snapshot() map[string]int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]int64, len(d.m))
	for k, v := range d.m {
		out[k] = v.want
	}
	return out
}

// done forgets walletID if Redis now has version or newer of it.
func (d *dirtySet) done(walletID string, version int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.m[walletID].want <= version {
		delete(d.m, walletID)
	}
}

// lagVersions is how many versions Redis lacks over all dirty wallets.
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
// compares every wallet's head with Redis and re-pushes from the log every
// wallet Redis is missing or has older; then it sets the marker again. It
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
				w.log.Warn("redis is behind the log", "wallets_behind", w.dirty.len(), "retry_in", wait.String(), "err", err)
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
		erased, err := w.proj.EnsureLayout(ctx)
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
			w.log.Warn("redis lost the read model (a restart without persistence, or FLUSHALL); re-projecting every wallet")
		}
	}
	if *complete && w.dirty.empty() {
		return nil
	}
	// A failed push may mean Redis restarted empty: compare everything, not
	// only the wallets whose push failed.
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
		w.log.Info("redis compared with the log", "wallets_behind", n)
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

// reconcile marks dirty every wallet whose version in Redis is older than the
// log's, and returns how many it marked.
func (w *Writer) reconcile(ctx context.Context) (int, error) {
	const chunk = 1000
	var heads []eventstore.Head
	behind := 0
	flush := func() error {
		ids := make([]string, len(heads))
		for i, h := range heads {
			ids[i] = h.WalletID
		}
		versions, err := w.proj.Versions(ctx, ids)
		if err != nil {
			return err
		}
		for i, h := range heads {
			if versions[i] < h.State.Version {
				w.dirty.add(h.WalletID, versions[i], h.State.Version)
				behind++
			}
		}
		heads = heads[:0]
		return nil
	}
	err := w.store.Heads(ctx, func(h eventstore.Head) error {
		heads = append(heads, h)
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

// catchUp pushes every dirty wallet's missing events from the log.
func (w *Writer) catchUp(ctx context.Context) error {
	for id, want := range w.dirty.snapshot() {
		if err := w.repush(ctx, id); err != nil {
			return err
		}
		w.dirty.done(id, want)
	}
	return nil
}

// repush brings one wallet in Redis up to the log.
func (w *Writer) repush(ctx context.Context, walletID string) error {
	versions, err := w.proj.Versions(ctx, []string{walletID})
	if err != nil {
		return err
	}
	return projectWallet(ctx, w.store, w.proj, walletID, versions[0], w.cfg.RedisTimeout)
}

// projectWallet pushes one wallet's events with version > after from the log
// to Redis, oldest first in chunks, so the state key moves forward only with
// its transactions in place.
func projectWallet(ctx context.Context, store *eventstore.Store, proj *readmodel.Projection, walletID string, after int64, timeout time.Duration) error {
	const chunk = 500
	for {
		envs, err := store.WalletEvents(ctx, walletID, after, chunk)
		if err != nil {
			return err
		}
		if len(envs) == 0 {
			return nil
		}
		c := readmodel.Change{Transactions: make([]wallet.Transaction, 0, len(envs))}
		for _, env := range envs {
			ev, err := wallet.DecodeEvent(wallet.EventType(env.Type), env.Schema, env.Version, env.Data)
			if err != nil {
				return fmt.Errorf("wallet %s: %w", walletID, err)
			}
			c.Transactions = append(c.Transactions, wallet.NewTransaction(env.ID, ev, env.Time))
			c.View = readmodel.View{WalletID: walletID, Balance: ev.BalanceAfter, Version: ev.Version, UpdatedAt: env.Time}
		}
		pctx, cancel := context.WithTimeout(ctx, timeout)
		gaps, err := proj.Push(pctx, []readmodel.Change{c})
		cancel()
		if err != nil {
			return err
		}
		if len(gaps) > 0 {
			return fmt.Errorf("wallet %s: Redis lost data during the push; starting over", walletID)
		}
		after = envs[len(envs)-1].Version
	}
}
