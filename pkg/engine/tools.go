package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/segmentio/ksuid"

	"coffer/pkg/bus"
	"coffer/pkg/eventstore"
	"coffer/pkg/readmodel"
)

// ErrMismatch is returned by Verify when it found any problem.
var ErrMismatch = errors.New("the log, the state log and Redis disagree")

// ErrWriterRunning is returned by Rebuild while a writer holds the log.
var ErrWriterRunning = errors.New("a wallet_writer is running on this log; stop it first (a running writer heals Redis by itself)")

// Verify recomputes every stream of the domains from its events and
// compares the result with the state log, the stream heads and Redis; each
// domain checks its own invariants on every event. It prints one line per
// problem and a summary to out, and returns ErrMismatch if it found any.
// It only reads, so it may run beside a live writer; a stream that moves
// while it is being compared is read again before it counts as a problem.
// A stream whose alarm (Domain.Alarm) is more than AlarmGrace past due at
// now is a problem too: a hold left active past its expiry.
func Verify(ctx context.Context, domains *Domains, part readmodel.Part, store *eventstore.Store, proj *readmodel.Projection, out io.Writer, now time.Time) error {
	v := verifier{store: store, proj: proj, out: out, hosts: domains.hosts(), inLog: map[streamKey]bool{}, streams: map[string]int{}, now: now}
	if err := store.Heads(ctx, func(h eventstore.Head) error {
		v.inLog[streamKey{h.Domain, h.StreamID}] = true
		v.streams[h.Domain]++
		return v.stream(ctx, h)
	}); err != nil {
		return err
	}
	for _, name := range domains.Names() {
		if err := proj.StreamIDs(ctx, name, func(id string) error {
			if bus.PartitionOf(id, part.Of) != part.Index {
				return nil // another partition's stream
			}
			if !v.inLog[streamKey{name, id}] {
				v.problem(name, id, "Redis holds keys for a stream that has no events in the log")
			}
			return nil
		}); err != nil {
			return err
		}
	}
	if ok, err := proj.IsComplete(ctx, part); err != nil {
		return err
	} else if !ok {
		v.problem("", "-", "the read model is not marked complete (a writer is rebuilding it, or none has run)")
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
		v.problem("", "-", fmt.Sprintf("outbox watermark %d is past the last event %d", wm, last))
	}
	var counts []string
	for _, name := range domains.Names() {
		counts = append(counts, fmt.Sprintf("%d %ss", v.streams[name], name))
	}
	fmt.Fprintf(out, "verified %s, %d events (outbox at %d of %d): %d problems\n", strings.Join(counts, ", "), v.events, wm, last, v.problems)
	if v.problems > 0 {
		return fmt.Errorf("%d problems: %w", v.problems, ErrMismatch)
	}
	return nil
}

type verifier struct {
	store    *eventstore.Store
	proj     *readmodel.Projection
	out      io.Writer
	hosts    map[string]host
	inLog    map[streamKey]bool
	streams  map[string]int // by domain
	events   int
	problems int
	now      time.Time
}

// AlarmGrace is how late a stream's alarm may be before Verify counts it
// as a problem: a live writer acts on one within a second or two.
const AlarmGrace = 10 * time.Second

func (v *verifier) problem(domain, id, what string) {
	v.problems++
	if domain == "" {
		fmt.Fprintf(v.out, "MISMATCH %s: %s\n", id, what)
		return
	}
	fmt.Fprintf(v.out, "MISMATCH %s %s: %s\n", domain, id, what)
}

// stream checks one stream: its events against each other and its
// domain's invariants, against the state log and the head, and the result
// against Redis.
func (v *verifier) stream(ctx context.Context, head eventstore.Head) error {
	d, id := head.Domain, head.StreamID
	h, ok := v.hosts[d]
	if !ok {
		v.problem(d, id, "the log holds a stream of a domain this build does not host")
		return nil
	}
	var recs []eventstore.Recorded
	for after := int64(0); ; {
		page, err := v.store.StreamEvents(ctx, d, id, after, 1000)
		if err != nil {
			return err
		}
		if len(page) == 0 {
			break
		}
		recs = append(recs, page...)
		after = page[len(page)-1].Event.Version
	}
	a := h.audit(id, recs)
	v.events += a.events
	for _, p := range a.problems {
		v.problem(d, id, p)
	}
	if len(a.problems) > 0 {
		return nil
	}
	if head.Version != a.version || !bytes.Equal(head.State, a.state) {
		v.problem(d, id, fmt.Sprintf("head says %s at v%d, the events give %s at v%d", head.State, head.Version, a.state, a.version))
	}
	if !a.alarm.IsZero() && a.alarm.Before(v.now.Add(-AlarmGrace)) {
		v.problem(d, id, fmt.Sprintf("wanted a command of its own at %s (a hold past its expiry?), and none was decided", a.alarm.Format(time.RFC3339Nano)))
	}
	return v.redis(ctx, h, id, a)
}

// redis compares one stream in Redis with what the log says, reading Redis
// again if it is behind (a live writer may be between commit and push).
func (v *verifier) redis(ctx context.Context, h host, id string, a audit) error {
	d := h.name()
	var got readmodel.Stored
	for attempt := 0; ; attempt++ {
		var err error
		if got, err = v.proj.Inspect(ctx, d, id, h.lists(), h.hashes()); err != nil {
			return err
		}
		if got.State != nil {
			if version, err := readmodel.StateVersion(got.State); attempt == 2 || (err == nil && version >= a.version) {
				break
			}
		} else if attempt == 2 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got.State == nil {
		v.problem(d, id, fmt.Sprintf("Redis has no state; the log has %s at v%d", a.view, a.version))
		return nil
	}
	if !bytes.Equal(got.State, a.view) {
		v.problem(d, id, fmt.Sprintf("Redis has %s; the log has %s", got.State, a.view))
	}
	for i, list := range h.lists() {
		want, have := a.lists[i], got.Lists[i]
		if len(want) != len(have) {
			v.problem(d, id, fmt.Sprintf("Redis has %d %s entries; the log has %d", len(have), list, len(want)))
			continue
		}
		for j := range want {
			if !bytes.Equal(want[j], have[j]) || a.versions[i][j] != got.Versions[i][j] {
				v.problem(d, id, fmt.Sprintf("Redis %s entry at v%d is %s; the log has %s at v%d", list, got.Versions[i][j], have[j], want[j], a.versions[i][j]))
				break
			}
		}
	}
	for i, hash := range h.hashes() {
		want, have := a.hashes[i], got.Hashes[i]
		for field, value := range want {
			if have[field] != value {
				v.problem(d, id, fmt.Sprintf("Redis %s %q is %q; the log has %s", hash, field, have[field], value))
			}
		}
		for field, value := range have {
			if _, ok := want[field]; !ok {
				v.problem(d, id, fmt.Sprintf("Redis %s has %q (%s), which no event set", hash, field, value))
			}
		}
	}
	return nil
}

// PartitionLog is one partition's event log, for the tools.
type PartitionLog struct {
	Part  readmodel.Part
	Path  string
	Store *eventstore.Store
}

// Rebuild recreates the Redis read model from the logs: it erases it (reads
// answer 503 from that moment), projects every stream of each log, and
// marks each partition complete. It refuses to run beside a live writer of
// these partitions, which would be projecting at the same time. Writers of
// other partitions see the marker go and re-project theirs by themselves.
func Rebuild(ctx context.Context, domains *Domains, logs []PartitionLog, proj *readmodel.Projection, out io.Writer) error {
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
	erased, err := proj.Erase(ctx, domains.Names())
	if err != nil {
		return err
	}
	if err := begin(); err != nil { // Erase removed the markers too
		return err
	}
	hosts := domains.hosts()
	streams := map[string]int{}
	for _, l := range logs {
		if err := l.Store.Heads(ctx, func(head eventstore.Head) error {
			h, ok := hosts[head.Domain]
			if !ok {
				return fmt.Errorf("%s holds streams of domain %q, which this build does not host", l.Path, head.Domain)
			}
			streams[head.Domain]++
			return projectStream(ctx, l.Store, proj, h, head.StreamID, 0, 30*time.Second)
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
	var counts []string
	for _, name := range domains.Names() {
		counts = append(counts, fmt.Sprintf("%d %ss", streams[name], name))
	}
	fmt.Fprintf(out, "rebuilt the read model: erased %d keys, projected %s of %d partition(s)\n", erased, strings.Join(counts, ", "), len(logs))
	return nil
}
