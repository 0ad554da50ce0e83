package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"time"

	"coffer/pkg/bus"
	"coffer/pkg/event"
	"coffer/pkg/item"
	"coffer/pkg/order"
	"coffer/pkg/transfer"
	"coffer/pkg/wallet"
)

// Server-Sent Events: every stream follows the JetStream stream EVENTS
// from a position (bus.Client.Follow), catching up, then live. Each event
// is
//
//	id: <position>
//	event: <type>
//	data: <the event's envelope, one line of JSON>
//
// and a comment line (": heartbeat") goes out every StreamHeartbeat while
// nothing else does, so that idle streams stay open through proxies. A
// client that reconnects with the last id it saw (the Last-Event-ID header,
// which browsers' EventSource sends by itself, or the query parameter)
// gets every event after it exactly once, in order.

// streamDomains are the domains whose events GET /events may filter on.
var streamDomains = []string{wallet.Name, transfer.Name, item.Name, order.Name}

// eventToken is what a domain or an event type looks like in a subject.
var eventToken = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

// walletEvents is GET /wallet/{id}/events: the wallet's events in version
// order; id is the version; ?from_version=N or Last-Event-ID: N resumes
// after version N.
func (s *server) walletEvents(w http.ResponseWriter, r *http.Request) {
	id, perr := walletID(r)
	if perr != nil {
		writeProblem(w, r, perr)
		return
	}
	s.streamOf(w, r, wallet.Name, id, nil)
}

// transferEvents is GET /transfers/{id}/events: as a wallet's, until the
// transfer completes or fails.
func (s *server) transferEvents(w http.ResponseWriter, r *http.Request) {
	id, perr := transferIDOf(r)
	if perr != nil {
		writeProblem(w, r, perr)
		return
	}
	s.streamOf(w, r, transfer.Name, id, []string{string(transfer.Completed), string(transfer.Failed)})
}

// orderEvents is GET /orders/{id}/events: as a wallet's, until the order
// completes or fails.
func (s *server) orderEvents(w http.ResponseWriter, r *http.Request) {
	id, perr := orderIDOf(r)
	if perr != nil {
		writeProblem(w, r, perr)
		return
	}
	s.streamOf(w, r, order.Name, id, []string{string(order.Completed), string(order.Failed)})
}

// streamOf streams the events of stream id of domain after the version the
// client names, ending after an event of a type in last (none: never).
func (s *server) streamOf(w http.ResponseWriter, r *http.Request, domain, id string, last []string) {
	q, perr := queryParams(r, "from_version")
	if perr != nil {
		writeProblem(w, r, perr)
		return
	}
	after, perr := resumeAt(r, q.Get("from_version"), "from_version")
	if perr != nil {
		writeProblem(w, r, perr)
		return
	}
	// A stream's events are in EVENTS in version order (the outbox
	// publishes in log order); one published twice is skipped by its
	// version, so each goes out once.
	sent := int64(after)
	s.stream(w, r, []string{bus.EventSubject(domain, id, "*")}, 0, func(d bus.Delivered, e event.Envelope) (string, bool, bool) {
		if e.Version <= sent {
			return "", false, false
		}
		sent = e.Version
		return strconv.FormatInt(e.Version, 10), true, slices.Contains(last, e.Type)
	})
}

// allEvents is GET /events: every domain's events in the order EVENTS
// holds them (?domain= and ?type= narrow it); id is the event's sequence
// in EVENTS; ?from_seq=N or Last-Event-ID: N resumes after it, and
// ?from_seq=now starts with the events published from now on (a live view
// of a long history).
func (s *server) allEvents(w http.ResponseWriter, r *http.Request) {
	q, perr := queryParams(r, "domain", "type", "from_seq")
	if perr != nil {
		writeProblem(w, r, perr)
		return
	}
	domain, typ := q.Get("domain"), q.Get("type")
	switch {
	case domain != "" && !slices.Contains(streamDomains, domain):
		perr = problem(bus.CodeInvalidQuery, fmt.Sprintf("domain must be one of %v, not %q", streamDomains, truncate(domain)))
	case typ != "" && !eventToken.MatchString(typ):
		perr = problem(bus.CodeInvalidQuery, fmt.Sprintf("type %q is not an event type (lower-case letters, digits and _)", truncate(typ)))
	}
	var after uint64
	if perr == nil && q.Get("from_seq") == "now" && r.Header.Get("Last-Event-ID") == "" {
		after = bus.FollowNew
	} else if perr == nil {
		after, perr = resumeAt(r, q.Get("from_seq"), "from_seq")
	}
	if perr != nil {
		writeProblem(w, r, perr)
		return
	}
	subject := bus.EventSubject(orAny(domain), "*", orAny(typ))
	s.stream(w, r, []string{subject}, after, func(d bus.Delivered, _ event.Envelope) (string, bool, bool) {
		return strconv.FormatUint(d.Seq, 10), true, false
	})
}

func orAny(token string) string {
	if token == "" {
		return "*"
	}
	return token
}

// resumeAt is where a stream resumes: after the Last-Event-ID header if
// given (a client reconnecting: EventSource keeps the URL it was opened
// with, the query included), else after the query parameter name, else 0
// (from the start).
func resumeAt(r *http.Request, param, name string) (uint64, *bus.Error) {
	v, from := r.Header.Get("Last-Event-ID"), "Last-Event-ID"
	if v == "" {
		v, from = param, name
	}
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 63)
	if err != nil {
		return 0, problem(bus.CodeInvalidQuery, fmt.Sprintf("%s must be a whole number, the id of the last event seen, not %q", from, truncate(v)))
	}
	return n, nil
}

// stream writes the events of subjects after stream sequence after as
// Server-Sent Events until the client leaves, the event stream ends, or
// pick says an event was the last; pick returns each event's SSE id, and
// whether to send it.
func (s *server) stream(w http.ResponseWriter, r *http.Request, subjects []string, after uint64, pick func(bus.Delivered, event.Envelope) (id string, send, last bool)) {
	if n := s.streams.Add(1); n > int64(s.limits.MaxStreams) {
		s.streams.Add(-1)
		w.Header().Set("Retry-After", "5")
		writeProblem(w, r, problem(bus.CodeOverloaded, fmt.Sprintf("this server already serves %d event streams; retry shortly or on another", s.limits.MaxStreams)))
		return
	}
	defer s.streams.Add(-1)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	events, err := s.cmds.Follow(ctx, subjects, after)
	if err != nil {
		s.log.Warn("cannot follow the event stream", "subjects", subjects, "err", err)
		writeProblem(w, r, problem(bus.CodeWriterUnavailable, "the event stream (NATS JetStream) cannot be followed; retry shortly"))
		return
	}
	// A stream outlives the server's write timeout, which is for answers.
	rc := http.NewResponseController(w)
	rc.SetWriteDeadline(time.Time{}) //nolint:errcheck // a writer that cannot unset it keeps the server's deadline
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: pass it on as it comes
	w.WriteHeader(http.StatusOK)
	// The retry hint, and a first write so that the client knows the
	// stream is open before any event.
	fmt.Fprintf(w, "retry: 1000\n: following %v\n\n", subjects)
	if rc.Flush() != nil {
		return
	}
	beat := time.NewTicker(s.limits.StreamHeartbeat)
	defer beat.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-beat.C:
			fmt.Fprint(w, ": heartbeat\n\n")
		case d, ok := <-events:
			if !ok {
				return // the client reconnects and resumes
			}
			var e event.Envelope
			if json.Unmarshal(d.Data, &e) != nil {
				continue
			}
			id, send, last := pick(d, e)
			if !send {
				continue
			}
			// The envelope is compact JSON: one data line.
			fmt.Fprintf(w, "id: %s\nevent: %s\ndata: %s\n\n", id, e.Type, compact(d.Data))
			if last {
				rc.Flush() //nolint:errcheck // the stream ends either way
				return
			}
		}
		if rc.Flush() != nil {
			return
		}
	}
}

// compact returns data, which has been read as JSON, on one line. The
// writers publish compact JSON, so this is nearly always data as it is.
func compact(data []byte) []byte {
	if !bytes.ContainsAny(data, "\r\n") {
		return data
	}
	var out bytes.Buffer
	if json.Compact(&out, data) != nil {
		return []byte("{}")
	}
	return out.Bytes()
}
