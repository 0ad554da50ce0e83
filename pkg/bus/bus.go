// Package bus holds what the services agree on over NATS: subjects, the
// command and reply wire types, the stable error codes, the EVENTS stream, and
// the client wallet_server uses to send commands. It knows no domain: a
// command names its domain, stream and action in its subject,
// cmd.<domain>.<id>.<action>, and carries the domain's own data.
package bus

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Subjects and names on the bus.
const (
	// CommandSubjects is the subject filter the writer serves:
	// cmd.<domain>.<id>.<action>, for every domain.
	CommandSubjects = "cmd.*.*.*"
	// EventsStream is the JetStream stream holding every event of every domain.
	EventsStream = "EVENTS"
	// EventSubjects is the stream's subject filter: evt.<domain>.<id>.<type>.
	EventSubjects = "evt.>"
	// WriterService is the nats.go/micro service name of wallet_writer.
	WriterService = "wallet_writer"
	// ReplayedHeader marks a reply that repeats a stored outcome.
	ReplayedHeader = "Coffer-Replayed"
)

// ErrBadSubject is returned for a subject that is not a command subject.
var ErrBadSubject = errors.New("not a command subject")

// partToken is the second token of a command subject mapped to a partition,
// so no domain may be named so.
const partToken = "part"

// CommandSubject is the subject a command for stream id of domain travels on.
func CommandSubject(domain, id, action string) string {
	return "cmd." + domain + "." + id + "." + action
}

// ParseCommandSubject splits cmd.<domain>.<id>.<action>, or the same mapped
// to a partition, cmd.part.<p>.<domain>.<id>.<action>.
func ParseCommandSubject(subject string) (domain, id, action string, err error) {
	parts := strings.Split(subject, ".")
	if len(parts) == 6 && parts[0] == "cmd" && parts[1] == partToken {
		if _, err := strconv.Atoi(parts[2]); err != nil {
			return "", "", "", fmt.Errorf("%q: %w", subject, ErrBadSubject)
		}
		parts = append([]string{"cmd"}, parts[3:]...)
	}
	if len(parts) != 4 || parts[0] != "cmd" || parts[1] == "" || parts[1] == partToken || parts[2] == "" || parts[3] == "" {
		return "", "", "", fmt.Errorf("%q: %w", subject, ErrBadSubject)
	}
	return parts[1], parts[2], parts[3], nil
}

// EventSubject is the subject an event is published on.
func EventSubject(domain, streamID, typ string) string {
	return "evt." + domain + "." + streamID + "." + typ
}

// EventsStreamConfig is the one definition of the EVENTS stream; every service
// that needs it ensures it with this config (EnsureStream).
// replicas is how many JetStream servers keep a copy (1 on a single server,
// 3 on a three-node cluster).
func EventsStreamConfig(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Replicas:    max(1, replicas),
		Name:        EventsStream,
		Description: "every event of every Coffer domain",
		Subjects:    []string{EventSubjects},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		// The outbox republishes after a crash; a window this long lets
		// JetStream drop what it already holds, and history_writer's
		// INSERT OR IGNORE covers anything older.
		Duplicates: 10 * time.Minute,
	}
}

// Command is the body of a command request. The domain, the stream and the
// action are in the subject.
type Command struct {
	// CommandID is made by wallet_server for every request; a retry of the
	// same request carries the same id.
	CommandID string `json:"command_id"`
	// IdempotencyKey is the client's Idempotency-Key header, if it sent one.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	// Data is the command's own body, read by its domain.
	Data json.RawMessage `json:"data,omitempty"`
	// RequestID travels in the RequestIDHeader, not in the body.
	RequestID string `json:"-"`
}

// Reply is the body of every answer to a command: exactly one of Result and
// Error is set.
type Reply struct {
	Result json.RawMessage `json:"result,omitempty"`
	Error  *Error          `json:"error,omitempty"`
}

// ResultReply is the Reply carrying result, a compact JSON object, as
// json.Marshal would write it: built directly, since the writer answers
// every command with one and Marshal would validate and copy the result a
// second time.
func ResultReply(result []byte) []byte {
	out := make([]byte, 0, len(`{"result":}`)+len(result))
	out = append(out, `{"result":`...)
	out = append(out, result...)
	return append(out, '}')
}

// Error is a refused or failed command.
type Error struct {
	Code   Code   `json:"code"`
	Detail string `json:"detail"`
	// Fields, a JSON object, describe the stream for refusals that depend
	// on it (a wallet's balance and version); they become members of the
	// problem the API answers with.
	Fields json.RawMessage `json:"fields,omitempty"`
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Detail }

// Code is a stable, documented error code. Clients switch on it; it never
// changes meaning.
type Code string

// The error codes of the API. wallet_server maps each to an HTTP status in one table.
const (
	CodeInvalidAmount         Code = "invalid_amount"
	CodeInvalidWalletID       Code = "invalid_wallet_id"
	CodeInvalidBody           Code = "invalid_body"
	CodeBodyTooLarge          Code = "body_too_large"
	CodeInvalidIdempotencyKey Code = "invalid_idempotency_key"
	CodeInvalidQuery          Code = "invalid_query"
	CodeInsufficientFunds     Code = "insufficient_funds"
	CodeBalanceOverflow       Code = "balance_overflow"
	CodeIdempotencyKeyReused  Code = "idempotency_key_reused"
	CodeNotFound              Code = "not_found"
	CodeMethodNotAllowed      Code = "method_not_allowed"
	CodeWriterUnavailable     Code = "writer_unavailable"
	CodeWriterTimeout         Code = "writer_timeout"
	CodeOverloaded            Code = "overloaded"
	CodeStorageUnavailable    Code = "storage_unavailable"
	CodeReadModelUnavailable  Code = "read_model_unavailable"
	CodeInternal              Code = "internal"
	CodeUnknownCommand        Code = "unknown_command"

	// The wallet's lifecycle.
	CodeWalletNotFound        Code = "wallet_not_found"
	CodeWalletExists          Code = "wallet_exists"
	CodeWalletFrozen          Code = "wallet_frozen"
	CodeWalletNotFrozen       Code = "wallet_not_frozen"
	CodeWalletClosed          Code = "wallet_closed"
	CodeBalanceNotZero        Code = "balance_not_zero"
	CodeInvalidOwner          Code = "invalid_owner"
	CodeInvalidMetadata       Code = "invalid_metadata"
	CodeInvalidOverdraftLimit Code = "invalid_overdraft_limit"

	// Holds.
	CodeInvalidHoldID  Code = "invalid_hold_id"
	CodeInvalidExpiry  Code = "invalid_expires_in"
	CodeHoldNotFound   Code = "hold_not_found"
	CodeHoldExists     Code = "hold_exists"
	CodeHoldNotActive  Code = "hold_not_active"
	CodeHoldsActive    Code = "holds_active"
	CodeCaptureExceeds Code = "capture_exceeds_hold"
	CodeHoldOwned      Code = "hold_owned_by_transfer"

	// Transfers.
	CodeInvalidTransferID    Code = "invalid_transfer_id"
	CodeTransferNotFound     Code = "transfer_not_found"
	CodeTransferExists       Code = "transfer_exists"
	CodeSameWallet           Code = "same_wallet"
	CodeInvalidReference     Code = "invalid_reference"
	CodeAlreadyReversed      Code = "already_reversed"
	CodeTransferNotCompleted Code = "transfer_not_completed"

	// Reversals of a wallet's credits and debits.
	CodeInvalidTransactionID Code = "invalid_transaction_id"
	CodeTransactionNotFound  Code = "transaction_not_found"
	CodeNotReversible        Code = "transaction_not_reversible"

	// The warehouse: items and their reservations.
	CodeInvalidItemID       Code = "invalid_item_id"
	CodeItemNotFound        Code = "item_not_found"
	CodeItemExists          Code = "item_exists"
	CodeInvalidName         Code = "invalid_name"
	CodeInvalidPrice        Code = "invalid_price"
	CodeInvalidQuantity     Code = "invalid_quantity"
	CodeOutOfStock          Code = "out_of_stock"
	CodeReservationExists   Code = "reservation_exists"
	CodeReservationNotFound Code = "reservation_not_found"

	// Orders.
	CodeInvalidOrderID Code = "invalid_order_id"
	CodeOrderNotFound  Code = "order_not_found"
	CodeOrderExists    Code = "order_exists"
	CodeInvalidLines   Code = "invalid_lines"
)

// DecodeStrict reads data, a command's or a stored event's, into v exactly:
// one JSON value, no field v does not have, nothing after it. Domains read
// what they are sent and what they wrote with it, so that anything else
// is refused rather than half read.
func DecodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}
