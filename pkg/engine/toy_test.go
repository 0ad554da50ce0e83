package engine

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"coffer/pkg/bus"
)

// tally is a toy domain written for the engine's tests: a counter that
// adds numbers up to a limit. Adding past the limit is refused as a
// business outcome (an event, like a debit refused for funds); adding
// nothing is refused as bad input (no event); adding 7 is recorded as two
// events, 3 then 4, so that a command of several events is exercised.
// A full tally (at the limit) refuses any addition as a conflict, with no
// event, as a wallet refuses a hold whose id is taken. "due" schedules a reset at a time (an alarm): the engine then decides
// the tally's own command, which records "reset" and sets the count to 0.
// Each addition and reset sets a field of the hash "marks". "undo" takes
// back an earlier addition, named by its event id (Refers): the engine
// reads it from the log and gives it to the command (Attach). Registered
// under two names, it is two domains.
type tally struct{ name string }

const tallyLimit = 100

const codeTallyFull bus.Code = "tally_full"

type tallyState struct{ N, V, Due int64 }

type tallyCmd struct {
	Add   int64
	Due   int64  // Unix nanoseconds
	Reset bool   // the alarm's command
	Undo  string // the event id of an addition to take back
	// What the engine found under Undo: Found says whether the stream
	// has such an event, Of what it was.
	Found bool        `json:"-"`
	Of    *tallyEvent `json:"-"`
}

type tallyEvent struct {
	Type string // "added", "refused", "scheduled" or "reset"
	Add  int64
	N    int64 // the total after it
	Due  int64
}

var errTally = errors.New("not a tally record")

func (d tally) Name() string      { return d.name }
func (d tally) Actions() []string { return []string{"add", "due", "undo"} }

func (d tally) CheckID(id string) *bus.Error {
	if id == "" || len(id) > 32 {
		return &bus.Error{Code: bus.CodeNotFound, Detail: "bad id"}
	}
	return nil
}

func (d tally) DecodeCommand(action string, data []byte) (tallyCmd, *bus.Error) {
	var c tallyCmd
	if action != "add" && action != "due" && action != "undo" {
		return c, &bus.Error{Code: bus.CodeNotFound, Detail: "unknown action " + action}
	}
	if err := json.Unmarshal(data, &c); err != nil || c.Reset || (action == "due") != (c.Due != 0) || (action == "undo") != (c.Undo != "") {
		return c, &bus.Error{Code: bus.CodeInvalidBody, Detail: fmt.Sprintf("%s: %v", data, err)}
	}
	return c, nil
}

func (d tally) Fingerprint(c tallyCmd) string {
	if c.Undo != "" {
		return "undo:" + c.Undo
	}
	if c.Due != 0 {
		return "due:" + strconv.FormatInt(c.Due, 10)
	}
	return "add:" + strconv.FormatInt(c.Add, 10)
}

func (d tally) Decide(s tallyState, c tallyCmd, _ time.Time) ([]tallyEvent, *bus.Error) {
	switch {
	case c.Undo != "" && (!c.Found || c.Of.Type != "added"):
		return nil, &bus.Error{Code: bus.CodeNotFound, Detail: "no addition " + c.Undo + " in this tally"}
	case c.Undo != "":
		return []tallyEvent{{Type: "added", Add: -c.Of.Add, N: s.N - c.Of.Add}}, nil
	case c.Reset:
		return []tallyEvent{{Type: "reset"}}, nil
	case c.Due != 0:
		return []tallyEvent{{Type: "scheduled", N: s.N, Due: c.Due}}, nil
	case c.Add <= 0:
		return nil, &bus.Error{Code: bus.CodeInvalidAmount, Detail: "add at least 1"}
	case s.N == tallyLimit:
		return nil, &bus.Error{Code: codeTallyFull, Detail: "the tally is full"}
	case s.N+c.Add > tallyLimit:
		return []tallyEvent{{Type: "refused", Add: c.Add, N: s.N}}, nil
	case c.Add == 7:
		return []tallyEvent{{Type: "added", Add: 3, N: s.N + 3}, {Type: "added", Add: 4, N: s.N + 7}}, nil
	}
	return []tallyEvent{{Type: "added", Add: c.Add, N: s.N + c.Add}}, nil
}

func (d tally) Evolve(s tallyState, e tallyEvent) tallyState {
	switch e.Type {
	case "added":
		s.N += e.Add
	case "scheduled":
		s.Due = e.Due
	case "reset":
		s.N, s.Due = 0, 0
	}
	s.V++
	return s
}

func (d tally) Version(s tallyState) int64 { return s.V }

func (d tally) EncodeEvent(e tallyEvent) (Encoded, error) {
	data, err := json.Marshal(map[string]int64{"add": e.Add, "n": e.N, "due": e.Due})
	return Encoded{Type: e.Type, Schema: 1, Data: data}, err
}

func (d tally) DecodeEvent(typ string, schema int, _ int64, _ time.Time, data []byte) (tallyEvent, error) {
	var m map[string]int64
	if (typ != "added" && typ != "refused" && typ != "scheduled" && typ != "reset") || schema != 1 || json.Unmarshal(data, &m) != nil {
		return tallyEvent{}, errTally
	}
	return tallyEvent{Type: typ, Add: m["add"], N: m["n"], Due: m["due"]}, nil
}

func (d tally) EncodeState(s tallyState) []byte {
	if s.Due != 0 {
		return fmt.Appendf(nil, `{"n":%d,"due":%d}`, s.N, s.Due)
	}
	return fmt.Appendf(nil, `{"n":%d}`, s.N)
}

func (d tally) DecodeState(version int64, data []byte) (tallyState, error) {
	var m map[string]int64
	if err := json.Unmarshal(data, &m); err != nil || !bytes.HasPrefix(data, []byte(`{"n":`)) {
		return tallyState{}, errTally
	}
	return tallyState{N: m["n"], V: version, Due: m["due"]}, nil
}

func (d tally) View(id string, s tallyState, at time.Time) []byte {
	b, _ := json.Marshal(struct {
		ID      string    `json:"id"`
		N       int64     `json:"n"`
		Version int64     `json:"version"`
		At      time.Time `json:"at"`
	}{id, s.N, s.V, at})
	return b
}

func (d tally) Indexed() bool { return d.name == "beta" }

func (d tally) Lists() []string { return []string{"log", "refused"} }

func (d tally) ListEntry(_ string, e tallyEvent, eventID string, _ time.Time) (int, []byte, bool) {
	b, _ := json.Marshal(map[string]any{"event": eventID, "add": e.Add, "n": e.N})
	switch e.Type {
	case "added":
		return 0, b, true
	case "refused":
		return 1, b, true
	}
	return 0, nil, false
}

func (d tally) Hashes() []string { return []string{"marks"} }

func (d tally) HashFields(_ string, e tallyEvent, _ time.Time) []HashField {
	switch e.Type {
	case "added":
		return []HashField{{Hash: 0, Field: "last", Value: fmt.Appendf(nil, `{"add":%d,"n":%d}`, e.Add, e.N)}}
	case "reset":
		return []HashField{{Hash: 0, Field: "reset", Value: []byte(`{"n":0}`)}}
	}
	return nil
}

func (d tally) Alarm(s tallyState) (time.Time, tallyCmd, bool) {
	if s.Due == 0 {
		return time.Time{}, tallyCmd{}, false
	}
	return time.Unix(0, s.Due), tallyCmd{Reset: true}, true
}

func (d tally) Refers(c tallyCmd) string { return c.Undo }

func (d tally) Attach(c tallyCmd, e tallyEvent, found bool) tallyCmd {
	c.Found, c.Of = found, &e
	return c
}

func (d tally) Answer(id string, e tallyEvent, s tallyState, eventID string, _ time.Time) Answer {
	if e.Type == "refused" {
		return Answer{Refusal: &bus.Error{Code: bus.CodeInsufficientFunds, Detail: fmt.Sprintf("%d + %d is over %d", s.N, e.Add, tallyLimit),
			Fields: fmt.Appendf(nil, `{"n":%d}`, s.N)}}
	}
	b, _ := json.Marshal(map[string]any{"id": id, "n": s.N, "version": s.V, "event": eventID})
	return Answer{Result: b}
}

func (d tally) Check(before tallyState, e tallyEvent, after tallyState) error {
	switch {
	case e.N != after.N:
		return fmt.Errorf("says %d, the events sum to %d", e.N, after.N)
	case e.Type == "refused" && before.N+e.Add <= tallyLimit:
		return fmt.Errorf("refuses %d that fits", e.Add)
	case after.N > tallyLimit:
		return fmt.Errorf("total %d over the limit", after.N)
	}
	return nil
}
