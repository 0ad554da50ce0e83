package engine

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"coffer/pkg/bus"
)

// Domain is what the engine needs of a domain: S is the state of one of its
// streams (the zero S is a stream nobody has used), C a decoded command, E
// an event. Every method is pure: no I/O, no clock, no randomness; the
// engine supplies ids and times.
type Domain[S, C, E any] interface {
	// Name names the domain's streams everywhere: SQLite rows, Redis keys
	// <name>.<id>, NATS subjects cmd.<name>.<id>.<action>. Lower-case
	// letters, digits and underscores, starting with a letter.
	Name() string
	// Actions lists the actions its commands may name, for the writer's
	// service description.
	Actions() []string
	// CheckID refuses an id that cannot name one of its streams.
	CheckID(id string) *bus.Error
	// DecodeCommand reads and validates the data of a command for action.
	DecodeCommand(action string, data []byte) (C, *bus.Error)
	// Fingerprint names the request c makes, so that a retry under the same
	// idempotency key is told from another request under it.
	Fingerprint(c C) string
	// Decide returns the events that record the outcome of c against s (a
	// refusal that is a business outcome is an event too), or a refusal
	// that records nothing (malformed or impossible input). at is when the
	// engine decides, the time its events will carry: the domain's clock.
	Decide(s S, c C, at time.Time) ([]E, *bus.Error)
	// Evolve returns s with e applied. Version of the result is one more
	// than Version of s.
	Evolve(s S, e E) S
	// Version is how many events s has seen.
	Version(s S) int64

	// EncodeEvent and DecodeEvent are the domain's versioned event codec:
	// type names spelled out, never taken from Go types. The version and
	// the time of an event travel in its envelope, and come back with it.
	EncodeEvent(e E) (Encoded, error)
	DecodeEvent(typ string, schema int, version int64, at time.Time, data []byte) (E, error)
	// EncodeState and DecodeState are how the state log and the stream
	// heads hold a state: DecodeState(Version(s), EncodeState(s)) is s.
	EncodeState(s S) []byte
	DecodeState(version int64, data []byte) (S, error)

	// View is the stream's state in Redis, the JSON at <name>.<id>: an
	// object with a top-level "version" (Version of s). at is when its
	// newest event happened.
	View(id string, s S, at time.Time) []byte
	// Indexed says whether Redis keeps an index of the domain's streams
	// (readmodel.IndexKey), for a client to list them.
	Indexed() bool
	// Lists names the sorted sets beside the state, {<name>.<id>}.<list>.
	Lists() []string
	// ListEntry says where e, recorded with eventID at at, is listed: the
	// index of its list in Lists and the member; ok is false for an event
	// no list shows.
	ListEntry(id string, e E, eventID string, at time.Time) (list int, member []byte, ok bool)
	// Hashes names the hashes beside the state, {<name>.<id>}.<hash>: a
	// field for each thing a stream keeps apart and is read by its own id
	// (a wallet's holds).
	Hashes() []string
	// HashFields says which fields of its hashes e sets, recorded at at:
	// each one's value once e is applied.
	HashFields(id string, e E, at time.Time) []HashField
	// Alarm is when a stream at s wants a command of its own (a wallet's
	// hold expires), and that command: the engine decides it at that time
	// or soon after, also once it restarts. ok is false for none.
	Alarm(s S) (at time.Time, c C, ok bool)
	// Refers is the id of an earlier event of the stream that c needs
	// (the transaction a reversal reverses), "" for none. The engine reads
	// it from the log before c is decided, and gives it with Attach.
	Refers(c C) string
	// Attach returns c with the event it refers to, e; found is false if
	// no event of the stream has that id.
	Attach(c C, e E, found bool) C

	// Answer is the answer to the command whose last event is e (recorded
	// with eventID at at), which left the stream at s: the first answer,
	// and again what an idempotent replay says.
	Answer(id string, e E, s S, eventID string, at time.Time) Answer
	// Check returns what is wrong with e following a stream at before and
	// leading to after, nil if nothing: the domain's own invariants, which
	// verify checks on every event of the log.
	Check(before S, e E, after S) error
}

// HashField is one field of one of a stream's hashes: Hash indexes Hashes.
type HashField struct {
	Hash  int
	Field string
	Value []byte
}

// Encoded is an event's stored form.
type Encoded struct {
	Type   string
	Schema int
	Data   []byte
}

// Answer is what a decided command is told.
type Answer struct {
	// Result is the JSON of a success.
	Result []byte
	// Refusal is set instead when the command was decided and refused
	// (insufficient funds): its events record the refusal.
	Refusal *bus.Error
}

// Domains is the set of domains an engine hosts, each added with Register.
type Domains struct {
	makers []func() host
	names  []string
}

// ErrDomainName is returned by Register for a name the engine cannot route.
var ErrDomainName = errors.New("invalid domain name")

var domainName = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// Register adds d to ds. A domain's name must be unique, and cannot be
// "part", the token of subjects mapped to a partition.
func Register[S, C, E any](ds *Domains, d Domain[S, C, E]) error {
	name := d.Name()
	if !domainName.MatchString(name) || name == "part" {
		return fmt.Errorf("%q: %w: want lower-case letters, digits and _, not \"part\"", name, ErrDomainName)
	}
	if slices.Contains(ds.names, name) {
		return fmt.Errorf("%q registered twice: %w", name, ErrDomainName)
	}
	ds.names = append(ds.names, name)
	ds.makers = append(ds.makers, func() host { return &hosted[S, C, E]{d: d, states: map[string]S{}} })
	return nil
}

// Names returns the names of the domains, in registration order.
func (ds *Domains) Names() []string { return slices.Clone(ds.names) }

// hosts returns a fresh host of each domain, with no stream loaded.
func (ds *Domains) hosts() map[string]host {
	out := make(map[string]host, len(ds.makers))
	for _, m := range ds.makers {
		h := m()
		out[h.name()] = h
	}
	return out
}
