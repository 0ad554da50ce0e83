package engine

import (
	"container/heap"
	"context"
	"sync"
	"time"

	"coffer/pkg/bus"
	"coffer/pkg/eventstore"
)

// alarms are the times at which streams want commands of their own (a
// wallet's hold expires; Domain.Alarm). The committer schedules a stream's
// alarm after every batch that touched it, and every stream's when the
// writer starts; the alarm loop queues the stream's command when it is due,
// and the committer decides it like any other. A stream is scheduled once,
// at its earliest time: an alarm that is no longer wanted (the hold was
// captured first) comes due, decides nothing, and schedules what the
// stream wants then.
type alarms struct {
	mu   sync.Mutex
	q    alarmHeap
	at   map[streamKey]time.Time // the time each stream is scheduled at
	wake chan struct{}           // an alarm earlier than all others was scheduled
}

func newAlarms() *alarms {
	return &alarms{at: map[streamKey]time.Time{}, wake: make(chan struct{}, 1)}
}

// schedule makes sure k's alarm comes due by at.
func (a *alarms) schedule(k streamKey, at time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if cur, ok := a.at[k]; ok && !at.Before(cur) {
		return
	}
	a.at[k] = at
	heap.Push(&a.q, alarm{at: at, k: k})
	if a.q[0].k == k && a.q[0].at.Equal(at) {
		select {
		case a.wake <- struct{}{}:
		default:
		}
	}
}

// due takes every alarm due at now.
func (a *alarms) due(now time.Time) []streamKey {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []streamKey
	for len(a.q) > 0 && !a.q[0].at.After(now) {
		x := heap.Pop(&a.q).(alarm)
		if cur, ok := a.at[x.k]; ok && cur.Equal(x.at) {
			delete(a.at, x.k)
			out = append(out, x.k)
		}
	}
	return out
}

// next is the earliest scheduled alarm.
func (a *alarms) next() (time.Time, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.q) == 0 {
		return time.Time{}, false
	}
	return a.q[0].at, true
}

// len is how many streams have an alarm.
func (a *alarms) len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.at)
}

type alarm struct {
	at time.Time
	k  streamKey
}

type alarmHeap []alarm

func (h alarmHeap) Len() int           { return len(h) }
func (h alarmHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h alarmHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *alarmHeap) Push(x any)        { *h = append(*h, x.(alarm)) }
func (h *alarmHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// alarmLoop queues each stream's command when its alarm is due, until ctx
// ends. The clock is the writer's; the wait is real time.
func (w *Writer) alarmLoop(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		wait := time.Hour
		if at, ok := w.alarms.next(); ok {
			wait = max(0, at.Sub(w.now()))
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-w.alarms.wake:
			continue
		case <-timer.C:
		}
		for _, k := range w.alarms.due(w.now()) {
			w.queueAlarm(k)
		}
	}
}

// queueAlarm queues the command of k's alarm, as handle queues a command
// from the bus but with nobody to answer. A full queue puts it off a
// little.
func (w *Writer) queueAlarm(k streamKey) {
	h := w.hosts[k.domain]
	p := newPending(h, k.id, actionAlarm, bus.Command{CommandID: newEventID()}, &alarmCommand{h: h, id: k.id}, "", time.Now())
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return // the next start schedules it again from the log
	}
	select {
	case w.queue <- p:
	default:
		w.alarms.schedule(k, w.now().Add(100*time.Millisecond))
	}
}

// actionAlarm is what an alarm's command is counted as in the metrics.
const actionAlarm = "alarm"

// alarmCommand is a stream's own command: whatever its domain wants when
// the committer gets to it, or nothing if the alarm is no longer due.
type alarmCommand struct {
	h  host
	id string
}

func (c *alarmCommand) fingerprint() string { return actionAlarm }

// An alarm's command refers to no earlier event.
func (c *alarmCommand) refers() string                         { return "" }
func (c *alarmCommand) attach(eventstore.Recorded, bool) error { return nil }

func (c *alarmCommand) decide(m stamp) (decision, *bus.Error) {
	cmd, ok := c.h.woken(c.id, m.at)
	if !ok {
		return decision{}, nil
	}
	return cmd.decide(m)
}

// scheduleAlarms schedules the alarm of every stream the batch touched or
// tried to.
func (w *Writer) scheduleAlarms(batch []*pending) {
	for _, p := range batch {
		if at, ok := p.host.alarm(p.id); ok {
			w.alarms.schedule(streamKey{p.host.name(), p.id}, at)
		}
	}
}
