package transfer

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"coffer/pkg/event"
	"coffer/pkg/eventstore"
	"coffer/pkg/wallet"
)

// Grace is how long a transfer may stay pending before Verify counts it as
// stuck: a live process manager takes each step in milliseconds, and
// retries one that cannot be taken within seconds.
const Grace = 30 * time.Second

// legs is what the wallets' logs hold of one transfer.
type legs struct {
	in, out       []int64  // amounts of transfer_in and transfer_out
	inTo, outFrom []string // the wallets they are on
	holdActive    bool
	holdAt        string // the wallet its active hold is on
}

// Verify checks transfers across the logs of every partition: each
// completed transfer has exactly one transfer_in, on the wallet it went
// to, and one transfer_out, on the wallet it left, both of its amount; a
// failed one has neither, and no hold left; none is pending past Grace at
// now; no leg names a transfer the logs do not hold. Then money: the sum
// of the balances is what external credits and debits made it, plus the
// money in flight (transfers credited and not yet captured). It prints
// each problem and a summary to out and returns the number of problems.
//
// It reads the transfers first and the wallets after, so that a live
// system's every leg a transfer records is read too; legs taken and not
// yet recorded count as in flight.
func Verify(ctx context.Context, logs []*eventstore.Store, now time.Time, out io.Writer) (int, error) {
	transfers := map[string]State{}
	if err := eventstore.EachEvent(ctx, logs, Name, func(env event.Envelope) error {
		e, err := Domain{}.DecodeEvent(env.Type, env.Schema, env.Version, env.Time, env.Data)
		if err != nil {
			return fmt.Errorf("transfer %s v%d: %w", env.StreamID, env.Version, err)
		}
		transfers[env.StreamID] = Evolve(transfers[env.StreamID], e)
		return nil
	}); err != nil {
		return 0, err
	}
	found := map[string]*legs{}
	leg := func(id string) *legs {
		if found[id] == nil {
			found[id] = &legs{}
		}
		return found[id]
	}
	wallets := map[string]wallet.State{}
	var credits, debits int64
	if err := eventstore.EachEvent(ctx, logs, wallet.Name, func(env event.Envelope) error {
		e, err := wallet.Domain{}.DecodeEvent(env.Type, env.Schema, env.Version, env.Time, env.Data)
		if err != nil {
			return fmt.Errorf("wallet %s v%d: %w", env.StreamID, env.Version, err)
		}
		wallets[env.StreamID] = wallet.Evolve(wallets[env.StreamID], e)
		switch e.Type {
		case wallet.Credited:
			credits += e.Amount
		case wallet.Debited:
			debits += e.Amount
		case wallet.HoldCaptured:
			debits += e.Captured
		case wallet.Reversal: // of a credit, money out; of a debit, in
			if e.ReversedType == wallet.Credited {
				debits += e.Amount
			} else {
				credits += e.Amount
			}
		case wallet.TransferredIn:
			l := leg(e.TransferID)
			l.in, l.inTo = append(l.in, e.Amount), append(l.inTo, env.StreamID)
		case wallet.TransferredOut:
			l := leg(e.TransferID)
			l.out, l.outFrom = append(l.out, e.Amount), append(l.outFrom, env.StreamID)
		}
		return nil
	}); err != nil {
		return 0, err
	}
	for id, s := range wallets {
		for holdID := range s.Holds() {
			if wallet.IsTransferHold(holdID) {
				l := leg(holdID[len("transfer:"):])
				l.holdActive, l.holdAt = true, id
			}
		}
	}

	problems := 0
	problem := func(id, format string, args ...any) {
		problems++
		fmt.Fprintf(out, "MISMATCH transfer %s: %s\n", id, fmt.Sprintf(format, args...))
	}
	count := map[Status]int{}
	var inFlight, balances, moved int64
	for _, id := range sortedKeys(transfers) {
		s := transfers[id]
		count[s.Status()]++
		l := found[id]
		if l == nil {
			l = &legs{}
		}
		switch s.Status() {
		case StatusCompleted:
			if len(l.in) != 1 || len(l.out) != 1 || l.in[0] != s.Amount || l.out[0] != s.Amount || l.inTo[0] != s.To || l.outFrom[0] != s.From {
				problem(id, "completed, %d from %s to %s, with transfer_in %v on %v and transfer_out %v on %v; want one of each",
					s.Amount, s.From, s.To, l.in, l.inTo, l.out, l.outFrom)
			}
		case StatusFailed:
			if len(l.in) != 0 || len(l.out) != 0 {
				problem(id, "failed (%s) with transfer_in %v and transfer_out %v; want none", s.Code(), l.in, l.out)
			}
		default:
			if at := time.Unix(0, s.Last().At); now.Sub(at) > Grace {
				problem(id, "pending at %s since %s, more than %s", s.Last().Step, at.Format(time.RFC3339Nano), Grace)
			}
			if len(l.in) > 1 || len(l.out) > 1 || (len(l.out) == 1 && len(l.in) == 0) {
				problem(id, "pending with transfer_in %v and transfer_out %v", l.in, l.out)
			}
			if len(l.in) == 1 && len(l.out) == 0 {
				inFlight += l.in[0]
			}
		}
		if l.holdActive && s.Terminal() {
			problem(id, "%s, and its hold on %s is still active", s.Status(), l.holdAt)
		}
		checkReversals(id, s, transfers, now, problem)
	}
	for id, l := range found {
		if _, ok := transfers[id]; !ok {
			problem(id, "wallets hold its legs (transfer_in %v, transfer_out %v, hold active %v) but no log holds the transfer", l.in, l.out, l.holdActive)
		}
		for _, n := range l.in {
			moved += n
		}
		for _, n := range l.out {
			moved -= n
		}
	}
	for _, s := range wallets {
		balances += s.Balance
	}
	if moved != inFlight {
		problems++
		fmt.Fprintf(out, "MISMATCH money: transfers moved %d into wallets they did not take it from, but %d is in flight\n", moved, inFlight)
	}
	if balances != credits-debits+inFlight {
		problems++
		fmt.Fprintf(out, "MISMATCH money: the balances sum to %d; external credits %d − debits %d + in flight %d = %d\n",
			balances, credits, debits, inFlight, credits-debits+inFlight)
	}
	fmt.Fprintf(out, "%d transfers: %d completed, %d failed, %d in flight; balances %d = credits %d − debits %d + in flight %d: %d problems\n",
		len(transfers), count[StatusCompleted], count[StatusFailed], count[StatusPending], balances, credits, debits, inFlight, problems)
	return problems, nil
}

// checkReversals holds a transfer's reversals to their links: each one it
// asked for exists and reverses it (the other way, the same amount), each
// end it recorded is the reversal's own, and a reversal that ended has its
// end recorded on the original within Grace.
func checkReversals(id string, s State, transfers map[string]State, now time.Time, problem func(id, format string, args ...any)) {
	for _, st := range s.Steps {
		if st.ReversalID == "" {
			continue
		}
		r, ok := transfers[st.ReversalID]
		switch {
		case !ok:
			if st.Step != ReversalRequested || now.Sub(time.Unix(0, st.At)) > Grace {
				problem(id, "%s names reversal %s, which no log holds", st.Step, st.ReversalID)
			}
		case r.ReversalOf != id || r.From != s.To || r.To != s.From || r.Amount != s.Amount:
			problem(id, "reversal %s is of %d from %s to %s, reversing %q", st.ReversalID, r.Amount, r.From, r.To, r.ReversalOf)
		case st.Step == Reversed && r.Status() != StatusCompleted, st.Step == ReversalFailed && r.Status() != StatusFailed:
			problem(id, "records %s of reversal %s, which is %s", st.Step, st.ReversalID, r.Status())
		}
	}
	if s.ReversalOf == "" || !s.Terminal() {
		return
	}
	orig, ok := transfers[s.ReversalOf]
	if !ok {
		problem(id, "reverses %s, which no log holds", s.ReversalOf)
		return
	}
	for _, st := range orig.Steps {
		if st.ReversalID == id && st.Step != ReversalRequested {
			return // its end is recorded
		}
	}
	if at := time.Unix(0, s.Last().At); now.Sub(at) > Grace {
		problem(id, "a reversal of %s that ended %s at %s, and the original does not say so", s.ReversalOf, s.Status(), at.Format(time.RFC3339Nano))
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
