// Package bus holds what the services agree on over NATS: subjects, the
// command and reply wire types, the stable error codes, the EVENTS stream, and
// the client wallet_server uses to send commands.
package bus

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"coffer/pkg/wallet"
)

// Subjects and names on the bus.
const (
	// CommandSubjects is the subject filter the writer serves: cmd.wallet.<id>.<action>.
	CommandSubjects = "cmd.wallet.*.*"
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
var ErrBadSubject = errors.New("not a wallet command subject")

// CommandSubject is the subject a command for walletID travels on.
func CommandSubject(walletID string, a wallet.Action) string {
	return "cmd.wallet." + walletID + "." + string(a)
}

// ParseCommandSubject splits cmd.wallet.<id>.<action>, or the same mapped
// to a partition, cmd.part.<p>.<id>.<action>.
func ParseCommandSubject(subject string) (walletID string, a wallet.Action, err error) {
	parts := strings.Split(subject, ".")
	if len(parts) == 5 && parts[0] == "cmd" && parts[1] == "part" {
		if _, err := strconv.Atoi(parts[2]); err != nil {
			return "", "", fmt.Errorf("%q: %w", subject, ErrBadSubject)
		}
		parts = []string{"cmd", "wallet", parts[3], parts[4]}
	}
	if len(parts) != 4 || parts[0] != "cmd" || parts[1] != "wallet" || parts[2] == "" {
		return "", "", fmt.Errorf("%q: %w", subject, ErrBadSubject)
	}
	a, err = wallet.ParseAction(parts[3])
	if err != nil {
		return "", "", fmt.Errorf("%q: %w", subject, err)
	}
	return parts[2], a, nil
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

// Command is the body of a command request. The wallet and the action are in
// the subject.
type Command struct {
	// CommandID is made by wallet_server for every request; a retry of the
	// same request carries the same id.
	CommandID string `json:"command_id"`
	// IdempotencyKey is the client's Idempotency-Key header, if it sent one.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	Amount         int64  `json:"amount"`
	// RequestID travels in the RequestIDHeader, not in the body.
	RequestID string `json:"-"`
}

// Result is a successful outcome: the wallet after the command and the
// transaction it recorded. Its JSON is the HTTP response body.
type Result struct {
	WalletID    string             `json:"wallet_id"`
	Balance     int64              `json:"balance"`
	Version     int64              `json:"version"`
	Timestamp   time.Time          `json:"timestamp"`
	Transaction wallet.Transaction `json:"transaction"`
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
	// Balance and Version describe the wallet for refusals that depend on it.
	Balance *int64 `json:"balance,omitempty"`
	Version *int64 `json:"version,omitempty"`
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
)
