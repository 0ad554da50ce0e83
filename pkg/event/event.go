// Package event defines the envelope every Coffer event travels in: in the
// writer's SQLite log, on the JetStream stream EVENTS, and in the history log.
// The envelope knows nothing about any domain; Data is the domain's own
// encoding of the event, read back by the domain's codec.
package event

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Envelope is one event with everything needed to place it: which stream of
// which domain it belongs to, its position there, when it happened and which
// command caused it.
type Envelope struct {
	// ID is the event's globally unique id (a KSUID). It is the JetStream
	// Nats-Msg-Id, so a republished event is dropped as a duplicate.
	ID string `json:"id"`
	// Seq is the event's position in the log of the writer that recorded it.
	Seq int64 `json:"seq"`
	// Domain names the kind of stream, e.g. "wallet".
	Domain string `json:"domain"`
	// StreamID identifies the stream within the domain, e.g. a wallet id.
	StreamID string `json:"stream_id"`
	// Version is the stream's version once this event is applied (1, 2, ...).
	Version int64 `json:"version"`
	// Type is the domain's explicit event name, e.g. "credited".
	Type string `json:"type"`
	// Schema is the version of Data's layout for this Type.
	Schema int `json:"schema"`
	// Data is the domain's encoding of the event.
	Data json.RawMessage `json:"data"`
	// Time is when the writer decided the event.
	Time time.Time `json:"time"`
	// CommandID identifies the command that produced the event.
	CommandID string `json:"command_id"`
	// RequestID is the id of the HTTP request that carried the command, if any.
	RequestID string `json:"request_id,omitempty"`
}

// ErrInvalid is returned by Validate for an envelope missing a required field.
var ErrInvalid = errors.New("invalid event envelope")

// Validate reports whether e has every field a reader relies on.
func (e Envelope) Validate() error {
	switch {
	case e.ID == "":
		return fmt.Errorf("missing id: %w", ErrInvalid)
	case e.Domain == "" || e.StreamID == "":
		return fmt.Errorf("event %s: missing domain or stream id: %w", e.ID, ErrInvalid)
	case e.Type == "" || e.Schema <= 0:
		return fmt.Errorf("event %s: missing type or schema: %w", e.ID, ErrInvalid)
	case e.Version <= 0:
		return fmt.Errorf("event %s: version %d: %w", e.ID, e.Version, ErrInvalid)
	case len(e.Data) == 0 || !json.Valid(e.Data):
		return fmt.Errorf("event %s: data is not JSON: %w", e.ID, ErrInvalid)
	case e.Time.IsZero():
		return fmt.Errorf("event %s: missing time: %w", e.ID, ErrInvalid)
	}
	return nil
}
