package engine

import (
	"bytes"
	"fmt"
	"time"

	"coffer/pkg/bus"
	"coffer/pkg/event"
	"coffer/pkg/eventstore"
	"coffer/pkg/readmodel"
)

// host is one domain inside one writer: the domain, and the latest state
// of each of its streams, which only the committer touches. It is the
// domain with its types put away, so that the committer, the projector and
// verify handle every domain alike.
type host interface {
	name() string
	actions() []string
	lists() []string
	hashes() []string
	indexed() bool
	checkID(id string) *bus.Error
	// decode reads a command for stream id.
	decode(id, action string, data []byte) (command, *bus.Error)
	// load makes a logged head the stream's latest state.
	load(id string, version int64, state []byte) error
	// keep returns what puts the stream back as it is now.
	keep(id string) (restore func())
	// view is the stream's latest state as Redis shows it.
	view(id string, at time.Time) (version int64, view []byte)
	// replay answers again the command whose last event is rec.
	replay(id string, rec eventstore.Recorded) (Answer, error)
	// fromLog is the Redis change that brings the stream to the last of
	// recs, its events in version order from recs[0].
	fromLog(id string, recs []eventstore.Recorded) (readmodel.Change, error)
	// audit folds every event of a stream, recs, and says what is wrong.
	audit(id string, recs []eventstore.Recorded) audit
	// alarm is when the stream wants a command of its own; ok is false
	// for none.
	alarm(id string) (at time.Time, ok bool)
	// alarms calls fn with the alarm of every stream that has one.
	alarms(fn func(id string, at time.Time))
	// woken is the command that answers the stream's alarm, if it is due
	// at now; ok is false if it is not (anymore).
	woken(id string, now time.Time) (c command, ok bool)
}

// command is a decoded command for one stream, waiting for the committer.
type command interface {
	fingerprint() string
	// refers is the id of the earlier event of its stream the command
	// needs (Domain.Refers), "" for none.
	refers() string
	// attach gives the command that event as the log holds it; found is
	// false if the stream has none with that id.
	attach(rec eventstore.Recorded, found bool) error
	// decide decides the command against its stream's latest state and,
	// unless it is refused, applies its events to that state.
	decide(m stamp) (decision, *bus.Error)
}

// stamp is what the engine gives the events of one command.
type stamp struct {
	at                   time.Time
	commandID, requestID string
	newID                func() string // event ids
}

// decision is a decided command: its events with the states they lead to,
// their list entries and hash fields in Redis, and its answer.
type decision struct {
	records []eventstore.Record
	entries []readmodel.Entry
	fields  []readmodel.Field
	answer  Answer
}

// audit is what verify learns from folding a stream's events.
type audit struct {
	problems []string
	events   int
	version  int64
	state    []byte // the state the events give, encoded
	view     []byte // and as Redis should hold it
	lists    [][][]byte
	versions [][]int64
	hashes   []map[string]string
	alarm    time.Time // when the stream wants its next command; zero for never
}

type hosted[S, C, E any] struct {
	d      Domain[S, C, E]
	states map[string]S
}

func (h *hosted[S, C, E]) name() string                 { return h.d.Name() }
func (h *hosted[S, C, E]) actions() []string            { return h.d.Actions() }
func (h *hosted[S, C, E]) lists() []string              { return h.d.Lists() }
func (h *hosted[S, C, E]) hashes() []string             { return h.d.Hashes() }
func (h *hosted[S, C, E]) indexed() bool                { return h.d.Indexed() }
func (h *hosted[S, C, E]) checkID(id string) *bus.Error { return h.d.CheckID(id) }

func (h *hosted[S, C, E]) decode(id, action string, data []byte) (command, *bus.Error) {
	c, err := h.d.DecodeCommand(action, data)
	if err != nil {
		return nil, err
	}
	return &hostedCommand[S, C, E]{h: h, id: id, c: c, fp: h.d.Fingerprint(c)}, nil
}

func (h *hosted[S, C, E]) load(id string, version int64, state []byte) error {
	s, err := h.d.DecodeState(version, state)
	if err != nil {
		return fmt.Errorf("%s %s: state at v%d: %w", h.d.Name(), id, version, err)
	}
	h.states[id] = s
	return nil
}

func (h *hosted[S, C, E]) keep(id string) func() {
	s, ok := h.states[id]
	return func() {
		if ok {
			h.states[id] = s
		} else {
			delete(h.states, id)
		}
	}
}

func (h *hosted[S, C, E]) view(id string, at time.Time) (int64, []byte) {
	s := h.states[id]
	return h.d.Version(s), h.d.View(id, s, at)
}

func (h *hosted[S, C, E]) replay(id string, rec eventstore.Recorded) (Answer, error) {
	e, s, err := h.read(rec)
	if err != nil {
		return Answer{}, err
	}
	return h.d.Answer(id, e, s, rec.Event.ID, rec.Event.Time), nil
}

// read decodes a logged event and the state after it.
func (h *hosted[S, C, E]) read(rec eventstore.Recorded) (E, S, error) {
	var s S
	env := rec.Event
	e, err := h.d.DecodeEvent(env.Type, env.Schema, env.Version, env.Time, env.Data)
	if err != nil {
		return e, s, fmt.Errorf("event %s (v%d): %w", env.ID, env.Version, err)
	}
	if s, err = h.d.DecodeState(env.Version, rec.State); err != nil {
		return e, s, fmt.Errorf("state after event %s (v%d): %w", env.ID, env.Version, err)
	}
	return e, s, nil
}

func (h *hosted[S, C, E]) fromLog(id string, recs []eventstore.Recorded) (readmodel.Change, error) {
	c := readmodel.Change{Domain: h.d.Name(), ID: id, Lists: h.d.Lists(), Hashes: h.d.Hashes(), Indexed: h.d.Indexed(), From: recs[0].Event.Version}
	for _, rec := range recs[:len(recs)-1] {
		env := rec.Event
		e, err := h.d.DecodeEvent(env.Type, env.Schema, env.Version, env.Time, env.Data)
		if err != nil {
			return c, fmt.Errorf("%s %s: event %s (v%d): %w", h.d.Name(), id, env.ID, env.Version, err)
		}
		if entry, ok := h.entry(id, e, env); ok {
			c.Entries = append(c.Entries, entry)
		}
		c.Fields = h.fields(c.Fields, id, e, env)
	}
	// Only the last state is shown: only it is decoded.
	end := recs[len(recs)-1]
	e, s, err := h.read(end)
	if err != nil {
		return c, fmt.Errorf("%s %s: %w", h.d.Name(), id, err)
	}
	if entry, ok := h.entry(id, e, end.Event); ok {
		c.Entries = append(c.Entries, entry)
	}
	c.Fields = h.fields(c.Fields, id, e, end.Event)
	c.Version, c.State = end.Event.Version, h.d.View(id, s, end.Event.Time)
	return c, nil
}

// fields appends to out the hash fields e, recorded as env, sets.
func (h *hosted[S, C, E]) fields(out []readmodel.Field, id string, e E, env event.Envelope) []readmodel.Field {
	for _, f := range h.d.HashFields(id, e, env.Time) {
		out = append(out, readmodel.Field{Hash: f.Hash, Version: env.Version, Name: f.Field, Value: f.Value})
	}
	return out
}

func (h *hosted[S, C, E]) alarm(id string) (time.Time, bool) {
	at, _, ok := h.d.Alarm(h.states[id])
	return at, ok
}

func (h *hosted[S, C, E]) alarms(fn func(id string, at time.Time)) {
	for id, s := range h.states {
		if at, _, ok := h.d.Alarm(s); ok {
			fn(id, at)
		}
	}
}

func (h *hosted[S, C, E]) woken(id string, now time.Time) (command, bool) {
	at, c, ok := h.d.Alarm(h.states[id])
	if !ok || at.After(now) {
		return nil, false
	}
	return &hostedCommand[S, C, E]{h: h, id: id, c: c, fp: "alarm"}, true
}

// entry is where Redis lists e, recorded as env, if its domain lists it.
func (h *hosted[S, C, E]) entry(id string, e E, env event.Envelope) (readmodel.Entry, bool) {
	list, member, ok := h.d.ListEntry(id, e, env.ID, env.Time)
	return readmodel.Entry{List: list, Version: env.Version, Member: member}, ok
}

func (h *hosted[S, C, E]) audit(id string, recs []eventstore.Recorded) audit {
	var a audit
	var s S
	a.lists, a.versions = make([][][]byte, len(h.d.Lists())), make([][]int64, len(h.d.Lists()))
	a.hashes = make([]map[string]string, len(h.d.Hashes()))
	for i := range a.hashes {
		a.hashes[i] = map[string]string{}
	}
	var at time.Time
	for _, rec := range recs {
		a.events++
		env := rec.Event
		e, err := h.d.DecodeEvent(env.Type, env.Schema, env.Version, env.Time, env.Data)
		if err != nil {
			a.problems = append(a.problems, fmt.Sprintf("event %s (v%d) cannot be read: %v", env.ID, env.Version, err))
			return a
		}
		before := s
		s = h.d.Evolve(s, e)
		if v := h.d.Version(s); v != h.d.Version(before)+1 || v != env.Version {
			a.problems = append(a.problems, fmt.Sprintf("event %s has version %d after version %d", env.ID, env.Version, h.d.Version(before)))
			return a
		}
		if err := h.d.Check(before, e, s); err != nil {
			a.problems = append(a.problems, fmt.Sprintf("v%d: %v", env.Version, err))
		}
		if want := h.d.EncodeState(s); !bytes.Equal(want, rec.State) {
			a.problems = append(a.problems, fmt.Sprintf("state log has %s at v%d where the events give %s", rec.State, env.Version, want))
		}
		if list, member, ok := h.d.ListEntry(id, e, env.ID, env.Time); ok {
			a.lists[list] = append(a.lists[list], member)
			a.versions[list] = append(a.versions[list], env.Version)
		}
		for _, f := range h.d.HashFields(id, e, env.Time) {
			a.hashes[f.Hash][f.Field] = string(f.Value)
		}
		at = env.Time
	}
	a.version, a.state, a.view = h.d.Version(s), h.d.EncodeState(s), h.d.View(id, s, at)
	if due, _, ok := h.d.Alarm(s); ok {
		a.alarm = due
	}
	return a
}

type hostedCommand[S, C, E any] struct {
	h  *hosted[S, C, E]
	id string
	c  C
	fp string
}

func (c *hostedCommand[S, C, E]) fingerprint() string { return c.fp }

func (c *hostedCommand[S, C, E]) refers() string { return c.h.d.Refers(c.c) }

func (c *hostedCommand[S, C, E]) attach(rec eventstore.Recorded, found bool) error {
	var e E
	if found {
		env := rec.Event
		var err error
		if e, err = c.h.d.DecodeEvent(env.Type, env.Schema, env.Version, env.Time, env.Data); err != nil {
			return fmt.Errorf("%s %s: event %s (v%d): %w", c.h.d.Name(), c.id, env.ID, env.Version, err)
		}
	}
	c.c = c.h.d.Attach(c.c, e, found)
	return nil
}

func (c *hostedCommand[S, C, E]) decide(m stamp) (decision, *bus.Error) {
	d := c.h.d
	s := c.h.states[c.id]
	evs, refusal := d.Decide(s, c.c, m.at)
	if refusal != nil {
		return decision{}, refusal
	}
	if len(evs) == 0 {
		return decision{}, &bus.Error{Code: bus.CodeInternal, Detail: "the command was decided without an event"}
	}
	out := decision{records: make([]eventstore.Record, 0, len(evs))}
	next := s
	var lastID string
	for _, e := range evs {
		before := next
		next = d.Evolve(next, e)
		v := d.Version(next)
		enc, err := d.EncodeEvent(e)
		if err != nil || v != d.Version(before)+1 {
			return decision{}, &bus.Error{Code: bus.CodeInternal, Detail: fmt.Sprintf("the %s writer cannot record this event", d.Name())}
		}
		lastID = m.newID()
		out.records = append(out.records, eventstore.Record{
			Event: event.Envelope{ID: lastID, Domain: d.Name(), StreamID: c.id, Version: v, Type: enc.Type, Schema: enc.Schema,
				Data: enc.Data, Time: m.at, CommandID: m.commandID, RequestID: m.requestID},
			State: d.EncodeState(next),
		})
		if entry, ok := c.h.entry(c.id, e, out.records[len(out.records)-1].Event); ok {
			out.entries = append(out.entries, entry)
		}
		out.fields = c.h.fields(out.fields, c.id, e, out.records[len(out.records)-1].Event)
	}
	c.h.states[c.id] = next
	out.answer = d.Answer(c.id, evs[len(evs)-1], next, lastID, m.at)
	return out, nil
}
