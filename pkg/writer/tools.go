package writer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/segmentio/ksuid"

	"coffer/pkg/bus"
	"coffer/pkg/eventstore"
	"coffer/pkg/readmodel"
	"coffer/pkg/wallet"
)

// ErrMismatch is returned by Verify when it found any problem.
var ErrMismatch = errors.New("the log, the state log and Redis disagree")

// ErrWriterRunning is returned by Rebuild while a writer holds the log.
var ErrWriterRunning = errors.New("a wallet_writer is running on this log; stop it first (a running writer heals Redis by itself)")

// Verify recomputes every wallet from its events and compares the result
// with the state log, the wallet heads and Redis. It prints one line per
// problem and a summary to out, and returns ErrMismatch if it found any.
// It only reads, so it may run beside a live writer; a wallet that moves
// while it is being compared is read again before it counts as a problem.
func Verify(ctx context.Context, part readmodel.Part, store *eventstore.Store, proj *readmodel.Projection, out io.Writer) error {
	v := verifier{store: store, proj: proj, out: out, inLog: map[string]bool{}}
	if err := store.Heads(ctx, func(h eventstore.Head) error {
		v.inLog[h.WalletID] = true
		v.wallets++
		return v.wallet(ctx, h)
	}); err != nil {
		return err
	}
	if err := proj.WalletIDs(ctx, func(id string) error {
		if bus.PartitionOf(id, part.Of) != part.Index {
			return nil // another partition's wallet
		}
		if !v.inLog[id] {
			v.problem(id, "Redis holds keys for a wallet that has no events in the log")
		}
		return nil
	}); err != nil {
		return err
	}
	if ok, err := proj.IsComplete(ctx, part); err != nil {
		return err
	} else if !ok {
		v.problem("-", "the read model is not marked complete (a writer is rebuilding it, or none has run)")
	}
	wm, err := store.OutboxWatermark(ctx)
	if err != nil {
		return err
	}
	last, err := store.LastSeq(ctx)
	if err != nil {
		return err
	}
	if wm > last {
		v.problem("-", fmt.Sprintf("outbox watermark %d is past the last event %d", wm, last))
	}
	fmt.Fprintf(out, "verified %d wallets, %d events (outbox at %d of %d): %d problems\n", v.wallets, v.events, wm, last, v.problems)
	if v.problems > 0 {
		return fmt.Errorf("%d problems: %w", v.problems, ErrMismatch)
	}
	return nil
}

type verifier struct {
	store    *eventstore.Store
	proj     *readmodel.Projection
	out      io.Writer
	inLog    map[string]bool
	wallets  int
	events   int
	problems int
}

func (v *verifier) problem(walletID, what string) {
	v.problems++
	fmt.Fprintf(v.out, "MISMATCH wallet %s: %s\n", walletID, what)
}

// wallet checks one wallet: events against each other, against the state
// log and the head, and the result against Redis.
func (v *verifier) wallet(ctx context.Context, h eventstore.Head) error {
	id := h.WalletID
	var st wallet.State
	var applied, rejected []wallet.Transaction
	states, err := v.store.StateLog(ctx, id, 0, 1<<30)
	if err != nil {
		return err
	}
	for after := int64(0); ; {
		envs, err := v.store.WalletEvents(ctx, id, after, 1000)
		if err != nil {
			return err
		}
		if len(envs) == 0 {
			break
		}
		for _, env := range envs {
			v.events++
			ev, err := wallet.DecodeEvent(wallet.EventType(env.Type), env.Schema, env.Version, env.Data)
			if err != nil {
				v.problem(id, fmt.Sprintf("event %s (v%d) cannot be read: %v", env.ID, env.Version, err))
				return nil
			}
			if ev.Version != st.Version+1 {
				v.problem(id, fmt.Sprintf("event %s has version %d after version %d", env.ID, ev.Version, st.Version))
				return nil
			}
			if ev.Type == wallet.DebitRejected && ev.Amount <= st.Balance {
				v.problem(id, fmt.Sprintf("v%d rejects a debit of %d that a balance of %d covers", ev.Version, ev.Amount, st.Balance))
			}
			st = wallet.Evolve(st, ev)
			if ev.BalanceAfter != st.Balance {
				v.problem(id, fmt.Sprintf("v%d says balance %d, its events sum to %d", ev.Version, ev.BalanceAfter, st.Balance))
			}
			if i := int(st.Version) - 1; i >= len(states) || states[i] != st {
				logged := "nothing"
				if i < len(states) {
					logged = fmt.Sprintf("balance %d at v%d", states[i].Balance, states[i].Version)
				}
				v.problem(id, fmt.Sprintf("state log has %s where the events give balance %d at v%d", logged, st.Balance, st.Version))
			}
			t := wallet.NewTransaction(env.ID, ev, env.Time)
			if ev.Applied() {
				applied = append(applied, t)
			} else {
				rejected = append(rejected, t)
			}
			after = env.Version
		}
	}
	if len(states) != int(st.Version) {
		v.problem(id, fmt.Sprintf("state log has %d rows for %d events", len(states), st.Version))
	}
	if h.State != st {
		v.problem(id, fmt.Sprintf("head says balance %d at v%d, the events give %d at v%d", h.State.Balance, h.State.Version, st.Balance, st.Version))
	}
	return v.redis(ctx, id, st, applied, rejected)
}

// redis compares one wallet in Redis with what the log says, reading Redis
// again if it is behind (a live writer may be between commit and push).
func (v *verifier) redis(ctx context.Context, id string, st wallet.State, applied, rejected []wallet.Transaction) error {
	var got readmodel.Stored
	for attempt := 0; ; attempt++ {
		var err error
		if got, err = v.proj.Inspect(ctx, id); err != nil {
			return err
		}
		if attempt == 2 || (got.Found && got.View.Version >= st.Version) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	switch {
	case got.Corrupt != "":
		v.problem(id, "Redis: "+got.Corrupt)
		return nil
	case !got.Found:
		v.problem(id, fmt.Sprintf("Redis has no state; the log has balance %d at v%d", st.Balance, st.Version))
		return nil
	case got.View.Version != st.Version || got.View.Balance != st.Balance:
		v.problem(id, fmt.Sprintf("Redis has balance %d at v%d; the log has %d at v%d", got.View.Balance, got.View.Version, st.Balance, st.Version))
	}
	compare := func(kind string, want, have []wallet.Transaction) {
		if len(want) != len(have) {
			v.problem(id, fmt.Sprintf("Redis has %d %s transactions; the log has %d", len(have), kind, len(want)))
			return
		}
		for i := range want {
			if !want[i].Timestamp.Equal(have[i].Timestamp) || want[i].ID != have[i].ID || want[i].Amount != have[i].Amount ||
				want[i].BalanceAfter != have[i].BalanceAfter || want[i].Version != have[i].Version || want[i].Type != have[i].Type {
				v.problem(id, fmt.Sprintf("Redis %s transaction at v%d is %+v; the log has %+v", kind, want[i].Version, have[i], want[i]))
				return
			}
		}
	}
	compare("applied", applied, got.Transactions)
	compare("rejected", rejected, got.Rejected)
	return nil
}

// PartitionLog is one partition's event log, for the tools.
type PartitionLog struct {
	Part  readmodel.Part
	Path  string
	Store *eventstore.Store
}

// Rebuild recreates the Redis read model from the logs: it erases it (reads
// answer 503 from that moment), projects every wallet of each log, and
// marks each partition complete. It refuses to run beside a live writer of
// these partitions, which would be projecting at the same time. Writers of
// other partitions see the marker go and re-project theirs by themselves.
func Rebuild(ctx context.Context, logs []PartitionLog, proj *readmodel.Projection, out io.Writer) error {
	for _, l := range logs {
		lock, err := eventstore.Lock(l.Path)
		if errors.Is(err, eventstore.ErrLocked) {
			return ErrWriterRunning
		}
		if err != nil {
			return err
		}
		defer lock.Close()
	}
	token := ksuid.New().String()
	begin := func() error {
		for _, l := range logs {
			if err := proj.BeginRebuild(ctx, l.Part, token); err != nil {
				return err
			}
		}
		return nil
	}
	if err := begin(); err != nil {
		return err
	}
	erased, err := proj.Erase(ctx)
	if err != nil {
		return err
	}
	if err := begin(); err != nil { // Erase removed the markers too
		return err
	}
	wallets := 0
	for _, l := range logs {
		if err := l.Store.Heads(ctx, func(h eventstore.Head) error {
			wallets++
			return projectWallet(ctx, l.Store, proj, h.WalletID, 0, 30*time.Second)
		}); err != nil {
			return err
		}
	}
	for _, l := range logs {
		ok, err := proj.FinishRebuild(ctx, l.Part, token)
		if err != nil {
			return err
		}
		if !ok {
			return errors.New("Redis was erased while it was being rebuilt; run rebuild again")
		}
	}
	fmt.Fprintf(out, "rebuilt the read model: erased %d keys, projected %d wallets of %d partition(s)\n", erased, wallets, len(logs))
	return nil
}
