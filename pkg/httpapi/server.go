// Package httpapi is wallet_server's HTTP API. Reads come only from the Redis
// read model; writes go only to wallet_writer over NATS, with a deadline.
// Every error is an RFC 9457 problem+json body with a stable code.
package httpapi

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/big"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/ksuid"

	"coffer/pkg/bus"
	"coffer/pkg/health"
	"coffer/pkg/item"
	"coffer/pkg/metrics"
	"coffer/pkg/readmodel"
	"coffer/pkg/wallet"
)

// MaxBodyBytes is the largest request body accepted.
const MaxBodyBytes = 64 << 10

// Pagination of GET /wallet/{id}/transactions.
const (
	DefaultLimit = 50
	MaxLimit     = 1000
)

// Reader is what the API needs from the read model.
type Reader interface {
	// State is a stream's stored state, nil for one nobody has used.
	State(ctx context.Context, domain, id string) ([]byte, error)
	// List is a page of the named lists of a stream, newest first.
	List(ctx context.Context, domain, id string, lists []string, before int64, limit int) (readmodel.Page, error)
	// Field is one field of one of a stream's hashes, nil if none.
	Field(ctx context.Context, domain, id, hash, field string) ([]byte, error)
	// Index is a page of the index of a domain's streams, in id order
	// after the id after.
	Index(ctx context.Context, domain, after string, limit int) (readmodel.IndexPage, error)
	Ping(ctx context.Context) error
}

// Sender is what the API needs from the command bus.
type Sender interface {
	Send(ctx context.Context, domain, id, action string, cmd bus.Command) (bus.Reply, bool, error)
	PingWriter(ctx context.Context) error
	// Watch signals each new event of a stream until stop (a transfer's
	// steps, while its request waits for the outcome).
	Watch(domain, id string) (events <-chan struct{}, stop func(), err error)
	// Follow delivers the events of EVENTS on subjects after a stream
	// sequence, catching up, then live, until ctx ends (the event
	// streams).
	Follow(ctx context.Context, subjects []string, after uint64) (<-chan bus.Delivered, error)
	// WriterHealth is each writer's own account of how far behind it is,
	// as the writers answer within wait.
	WriterHealth(ctx context.Context, wait time.Duration) ([]bus.WriterHealth, error)
}

type server struct {
	log      *slog.Logger
	reads    Reader
	cmds     Sender
	now      func() time.Time
	limits   Limits
	requests *prometheus.HistogramVec
	streams  atomic.Int64 // event streams open
}

// NewServer returns the API with all its routes, /metrics serving reg
// (nil: a registry of its own), within limits (zero: DefaultLimits).
func NewServer(log *slog.Logger, reads Reader, cmds Sender, now func() time.Time, reg *prometheus.Registry, limits Limits) http.Handler {
	if reg == nil {
		reg = metrics.NewRegistry()
	}
	if limits == (Limits{}) {
		limits = DefaultLimits
	}
	s := &server{log: log, reads: reads, cmds: cmds, now: now, limits: limits,
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: metrics.Namespace,
			Name:      "http_request_duration_seconds",
			Help:      "HTTP requests by route template (unmatched: no route), method and status; _count is the number of requests.",
			Buckets:   metrics.LatencyBuckets,
		}, []string{"route", "method", "status"}),
	}
	reg.MustRegister(s.requests)
	return s.observe(s.recoverPanics(s.router(reg)))
}

// OpenAPI is the description of this API, served at /openapi.yaml; a test
// holds every route, status and body field the handlers produce to it.
//
//go:embed openapi.yaml
var OpenAPI []byte

// router maps every route of the API to its handler.
func (s *server) router(reg *prometheus.Registry) *mux.Router {
	// No path cleaning: mux would answer /wallet//balance or a path with
	// "." or ".." segments with an empty 301 to the cleaned path, which
	// turns a redirected POST into a GET. Such a path is no route: 404.
	r := mux.NewRouter().SkipClean(true)
	// route registers h on path and names the route in the request's
	// metrics by its template.
	route := func(path string, h http.Handler, methods ...string) {
		r.Handle(path, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if info, ok := w.(*reqInfo); ok {
				info.route = path
			}
			h.ServeHTTP(w, req)
		})).Methods(methods...)
	}
	// mux tries the routes in this order, each a regular expression: the
	// hottest come first (every route ahead of the balance read cost it
	// about 5% of its throughput).
	route("/wallet/{id}/balance", http.HandlerFunc(s.balance), http.MethodGet, http.MethodHead)
	route("/wallet/{id}/credit", s.command(wallet.Credit), http.MethodPost)
	route("/wallet/{id}/debit", s.command(wallet.Debit), http.MethodPost)
	route("/wallet/{id}/transactions", http.HandlerFunc(s.transactions), http.MethodGet, http.MethodHead)
	route("/wallet", http.HandlerFunc(s.openWallet), http.MethodPost)
	route("/wallet/{id}", http.HandlerFunc(s.getWallet), http.MethodGet, http.MethodHead)
	route("/wallet/{id}", s.command(wallet.Update), http.MethodPatch)
	route("/wallet/{id}/freeze", s.command(wallet.Freeze), http.MethodPost)
	route("/wallet/{id}/unfreeze", s.command(wallet.Unfreeze), http.MethodPost)
	route("/wallet/{id}/close", s.command(wallet.Close), http.MethodPost)
	route("/wallet/{id}/transactions/{tx_id}/reverse", http.HandlerFunc(s.reverseTransaction), http.MethodPost)
	route("/wallet/{id}/holds", http.HandlerFunc(s.placeHold), http.MethodPost)
	route("/wallet/{id}/holds/{hold_id}", http.HandlerFunc(s.getHold), http.MethodGet, http.MethodHead)
	route("/wallet/{id}/holds/{hold_id}/capture", s.endHold(wallet.CaptureHold), http.MethodPost)
	route("/wallet/{id}/holds/{hold_id}/void", s.endHold(wallet.VoidHold), http.MethodPost)
	route("/transfers", http.HandlerFunc(s.createTransfer), http.MethodPost)
	route("/transfers/{id}", http.HandlerFunc(s.getTransfer), http.MethodGet, http.MethodHead)
	route("/transfers/{id}/reverse", http.HandlerFunc(s.reverseTransfer), http.MethodPost)
	route("/items", http.HandlerFunc(s.addItem), http.MethodPost)
	route("/items", http.HandlerFunc(s.listItems), http.MethodGet, http.MethodHead)
	route("/items/{id}", http.HandlerFunc(s.getItem), http.MethodGet, http.MethodHead)
	route("/items/{id}", s.itemCommand(item.Update), http.MethodPatch)
	route("/items/{id}/restock", s.itemCommand(item.Restock), http.MethodPost)
	route("/orders", http.HandlerFunc(s.placeOrder), http.MethodPost)
	route("/orders/{id}", http.HandlerFunc(s.getOrder), http.MethodGet, http.MethodHead)
	route("/api", http.HandlerFunc(s.api), http.MethodPost)
	route("/events", http.HandlerFunc(s.allEvents), http.MethodGet)
	route("/wallet/{id}/events", http.HandlerFunc(s.walletEvents), http.MethodGet)
	route("/transfers/{id}/events", http.HandlerFunc(s.transferEvents), http.MethodGet)
	route("/orders/{id}/events", http.HandlerFunc(s.orderEvents), http.MethodGet)
	route("/status", http.HandlerFunc(s.status), http.MethodGet, http.MethodHead)
	route("/", http.HandlerFunc(s.console), http.MethodGet, http.MethodHead)
	route("/console/", http.HandlerFunc(s.console), http.MethodGet, http.MethodHead)
	route("/console/{file}", http.HandlerFunc(s.console), http.MethodGet, http.MethodHead)
	route("/healthz", http.HandlerFunc(health.Healthz), http.MethodGet, http.MethodHead)
	// Ready when Redis answers and a wallet writer answers over NATS (which
	// also proves NATS is up).
	route("/readyz", health.Readyz(
		health.Check{Name: "redis", Probe: s.reads.Ping},
		health.Check{Name: "writer", Probe: s.cmds.PingWriter},
	), http.MethodGet, http.MethodHead)
	route("/metrics", metrics.Handler(reg), http.MethodGet, http.MethodHead)
	route("/openapi.yaml", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		w.Write(OpenAPI) //nolint:errcheck // the client left
	}), http.MethodGet, http.MethodHead)
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		writeProblem(w, req, problem(bus.CodeNotFound, fmt.Sprintf("no route for %s %s", req.Method, req.URL.Path)))
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		allowed := allowedMethods(r, req)
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		writeProblem(w, req, problem(bus.CodeMethodNotAllowed,
			fmt.Sprintf("%s does not accept %s; use %s", req.URL.Path, req.Method, strings.Join(allowed, " or "))))
	})
	return r
}

func allowedMethods(r *mux.Router, req *http.Request) []string {
	var out []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPatch} {
		probe := req.Clone(req.Context())
		probe.Method = m
		var match mux.RouteMatch
		if r.Match(probe, &match) && match.MatchErr == nil {
			out = append(out, m)
		}
	}
	return out
}

type ctxKey struct{}

// RequestIDHeader is the header carrying a request's id.
const RequestIDHeader = "X-Request-Id"

// reqInfo is what observe learns about one request: its id, the route that
// matched and the status written. It wraps the ResponseWriter so that one
// allocation serves all three.
type reqInfo struct {
	http.ResponseWriter
	id     string
	route  string
	status int
}

func (ri *reqInfo) WriteHeader(code int) {
	if ri.status == 0 {
		ri.status = code
	}
	ri.ResponseWriter.WriteHeader(code)
}

func (ri *reqInfo) Write(b []byte) (int, error) {
	if ri.status == 0 {
		ri.status = http.StatusOK
	}
	return ri.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (ri *reqInfo) Unwrap() http.ResponseWriter { return ri.ResponseWriter }

// observe gives every request an id (the client's X-Request-Id if it is
// sane, else a new one), answers with it, and when the request is done
// records it in the request histogram and, at debug level, in the log.
func (s *server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get(RequestIDHeader)
		if id == "" || len(id) > 128 || !printable(id) {
			id = ksuid.New().String()
		}
		w.Header().Set(RequestIDHeader, id)
		info := &reqInfo{ResponseWriter: w, id: id}
		next.ServeHTTP(info, r.WithContext(context.WithValue(r.Context(), ctxKey{}, info)))
		route, status := info.route, info.status
		if route == "" {
			route = "unmatched"
		}
		if status == 0 {
			status = http.StatusOK
		}
		elapsed := time.Since(start)
		s.requests.WithLabelValues(route, methodLabel(r.Method), strconv.Itoa(status)).Observe(elapsed.Seconds())
		if s.log.Enabled(r.Context(), slog.LevelDebug) {
			s.log.Debug("request", "request_id", id, "method", r.Method, "path", r.URL.Path, "route", route,
				"status", status, "duration_ms", float64(elapsed.Microseconds())/1000)
		}
	})
}

// methodLabel keeps the method label to the methods HTTP defines, so that a
// client cannot make up new time series.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "other"
}

func requestID(ctx context.Context) string {
	if info, ok := ctx.Value(ctxKey{}).(*reqInfo); ok {
		return info.id
	}
	return ""
}

func (s *server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("handler panicked", "path", r.URL.Path, "request_id", requestID(r.Context()), "panic", fmt.Sprint(v))
				writeProblem(w, r, problem(bus.CodeInternal, "an internal error occurred; it has been logged"))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encoding failed", http.StatusInternalServerError)
		return
	}
	writeRawJSON(w, status, body)
}

func writeRawJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(body, '\n')) //nolint:errcheck // the client left
}

// walletID returns the {id} of the route if it is a KSUID.
func walletID(r *http.Request) (string, *bus.Error) {
	id := mux.Vars(r)["id"]
	if _, err := ksuid.Parse(id); err != nil {
		return "", problem(bus.CodeInvalidWalletID, fmt.Sprintf("wallet id %q is not a KSUID (27 base62 characters, e.g. from POST /wallet)", id))
	}
	return id, nil
}

type balanceResponse struct {
	WalletID  string     `json:"wallet_id"`
	Balance   int64      `json:"balance"`
	Available int64      `json:"available"`
	Held      int64      `json:"held"`
	Version   int64      `json:"version"`
	Timestamp time.Time  `json:"timestamp"`
	UpdatedAt *time.Time `json:"updated_at"`
}

// readWallet reads the stored state of the route's wallet (nil for one
// nobody has used); ok is false once it has answered with a problem.
func (s *server) readWallet(w http.ResponseWriter, r *http.Request) (id string, state []byte, ok bool) {
	id, perr := walletID(r)
	if perr == nil {
		_, perr = queryParams(r)
	}
	if perr != nil {
		writeProblem(w, r, perr)
		return "", nil, false
	}
	state, err := s.reads.State(r.Context(), wallet.Name, id)
	if err != nil {
		s.readFailed(w, r, err)
		return "", nil, false
	}
	return id, state, true
}

func (s *server) balance(w http.ResponseWriter, r *http.Request) {
	id, state, ok := s.readWallet(w, r)
	if !ok {
		return
	}
	v := wallet.View{WalletID: id}
	if state != nil {
		var err error
		if v, err = wallet.DecodeBalance(state); err != nil {
			s.readFailed(w, r, fmt.Errorf("stored state of wallet %s %q: %w", id, state, err))
			return
		}
	}
	resp := balanceResponse{WalletID: id, Balance: v.Balance, Available: v.Balance - v.Held, Held: v.Held, Version: v.Version, Timestamp: s.now().UTC()}
	if !v.UpdatedAt.IsZero() {
		resp.UpdatedAt = &v.UpdatedAt
	}
	writeRawJSON(w, http.StatusOK, resp.appendJSON(make([]byte, 0, 160)))
}

// appendJSON appends exactly what encoding/json makes of r (a test holds
// the two equal); this is the hottest response of the API, and reflection
// was a tenth of its cost. The wallet id is a KSUID, so it needs no escaping.
func (r balanceResponse) appendJSON(b []byte) []byte {
	b = append(b, `{"wallet_id":"`...)
	b = append(b, r.WalletID...)
	b = append(b, `","balance":`...)
	b = strconv.AppendInt(b, r.Balance, 10)
	b = append(b, `,"available":`...)
	b = strconv.AppendInt(b, r.Available, 10)
	b = append(b, `,"held":`...)
	b = strconv.AppendInt(b, r.Held, 10)
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, r.Version, 10)
	b = append(b, `,"timestamp":"`...)
	b = r.Timestamp.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","updated_at":`...)
	if r.UpdatedAt == nil {
		return append(b, `null}`...)
	}
	b = append(b, '"')
	b = r.UpdatedAt.AppendFormat(b, time.RFC3339Nano)
	return append(b, `"}`...)
}

type transactionsResponse struct {
	WalletID     string               `json:"wallet_id"`
	Timestamp    time.Time            `json:"timestamp"`
	Transactions []wallet.Transaction `json:"transactions"`
	Next         *string              `json:"next"`
}

func (s *server) transactions(w http.ResponseWriter, r *http.Request) {
	id, perr := walletID(r)
	var q url.Values
	if perr == nil {
		q, perr = queryParams(r, "limit", "cursor", "include")
	}
	if perr != nil {
		writeProblem(w, r, perr)
		return
	}
	limit, perr := pageLimit(q)
	if perr != nil {
		writeProblem(w, r, perr)
		return
	}
	var before int64
	if v := q.Get("cursor"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			writeProblem(w, r, problem(bus.CodeInvalidQuery, fmt.Sprintf("cursor %q is not one this API returned in \"next\"", v)))
			return
		}
		before = n
	}
	lists := []string{wallet.ListTransactions}
	if v := q.Get("include"); v != "" {
		if v != "rejected" {
			writeProblem(w, r, problem(bus.CodeInvalidQuery, fmt.Sprintf("include may only be \"rejected\", not %q", v)))
			return
		}
		lists = append(lists, wallet.ListRejected)
	}
	page, err := s.reads.List(r.Context(), wallet.Name, id, lists, before, limit)
	if err != nil {
		s.readFailed(w, r, err)
		return
	}
	resp := transactionsResponse{WalletID: id, Timestamp: s.now().UTC(), Transactions: make([]wallet.Transaction, len(page.Members))}
	for i, m := range page.Members {
		if err := json.Unmarshal(m, &resp.Transactions[i]); err != nil {
			s.readFailed(w, r, fmt.Errorf("stored transaction of wallet %s %q: %w", id, m, err))
			return
		}
	}
	if page.More && len(resp.Transactions) > 0 {
		next := strconv.FormatInt(resp.Transactions[len(resp.Transactions)-1].Version, 10)
		resp.Next = &next
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *server) readFailed(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		return
	}
	if errors.Is(err, readmodel.ErrIncomplete) {
		writeProblem(w, r, problem(bus.CodeReadModelUnavailable, "the read model is being rebuilt from the event log; retry shortly"))
		return
	}
	s.log.Warn("read model unavailable", "path", r.URL.Path, "request_id", requestID(r.Context()), "err", err)
	writeProblem(w, r, problem(bus.CodeReadModelUnavailable, "the read model (Redis) cannot be reached; retry shortly"))
}

// pageLimit is a page's ?limit=: 1 to MaxLimit, DefaultLimit if absent.
func pageLimit(q url.Values) (int, *bus.Error) {
	v := q.Get("limit")
	if v == "" {
		return DefaultLimit, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > MaxLimit {
		return 0, problem(bus.CodeInvalidQuery, fmt.Sprintf("limit must be a whole number from 1 to %d, not %q", MaxLimit, v))
	}
	return n, nil
}

// ReplayedHeader marks a response that repeats the stored outcome of an
// earlier request with the same Idempotency-Key.
const ReplayedHeader = "Idempotent-Replayed"

// command is the handler of a command on one wallet: credit and debit
// ({"amount": N}), PATCH /wallet/{id} ({"owner", "metadata",
// "overdraft_limit"}, each optional, metadata merged), freeze, unfreeze
// and close (no body, or {}).
func (s *server) command(a wallet.Action) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, key, perr := commandTarget(r)
		var data []byte
		if perr == nil {
			data, perr = readCommandData(w, r, a)
		}
		if perr != nil {
			writeProblem(w, r, perr)
			return
		}
		s.send(w, r, id, a, key, data, http.StatusOK)
	}
}

// openWallet opens a wallet: POST /wallet, with an optional body
// {"owner", "metadata", "overdraft_limit"}.
func (s *server) openWallet(w http.ResponseWriter, r *http.Request) {
	_, perr := queryParams(r)
	var key string
	if perr == nil {
		key, perr = idempotencyKey(r)
	}
	var data []byte
	if perr == nil {
		data, perr = readCommandData(w, r, wallet.Open)
	}
	if perr != nil {
		writeProblem(w, r, perr)
		return
	}
	s.open(w, r, key, data)
}

// open sends an open with data under a fresh wallet id, or under a key's:
// a retry under the same key must reach the same wallet, so the id is the
// key's, made the same way each time.
func (s *server) open(w http.ResponseWriter, r *http.Request, key string, data []byte) {
	id := idFor(key, "coffer wallet id")
	w.Header().Set("Location", "/wallet/"+id)
	s.send(w, r, id, wallet.Open, key, data, http.StatusCreated)
}

// getWallet is GET /wallet/{id}: the wallet, from Redis.
func (s *server) getWallet(w http.ResponseWriter, r *http.Request) {
	id, state, ok := s.readWallet(w, r)
	if !ok {
		return
	}
	if state == nil {
		writeProblem(w, r, problem(bus.CodeWalletNotFound, fmt.Sprintf("no wallet %s: open one with POST /wallet, or credit it", id)))
		return
	}
	v, err := wallet.DecodeView(state)
	if err != nil {
		s.readFailed(w, r, fmt.Errorf("stored state of wallet %s %q: %w", id, state, err))
		return
	}
	writeJSON(w, http.StatusOK, v.Wallet())
}

// commandTarget reads what every command route takes: the wallet id, no
// query parameters, and an optional Idempotency-Key.
func commandTarget(r *http.Request) (id, key string, perr *bus.Error) {
	if id, perr = walletID(r); perr != nil {
		return "", "", perr
	}
	if _, perr = queryParams(r); perr != nil {
		return "", "", perr
	}
	key, perr = idempotencyKey(r)
	return id, key, perr
}

// send hands a wallet command to the writer and answers with its outcome,
// status on success.
func (s *server) send(w http.ResponseWriter, r *http.Request, id string, a wallet.Action, key string, data []byte, status int) {
	s.sendTo(w, r, wallet.Name, id, string(a), key, data, status)
}

// sendTo sends action with data to stream id of domain under key, and
// answers with its result (at status) or its problem.
func (s *server) sendTo(w http.ResponseWriter, r *http.Request, domain, id, action, key string, data []byte, status int) {
	if res, _, ok := s.ask(w, r, domain, id, action, key, data); ok {
		writeRawJSON(w, status, res)
	}
}

// ask sends action with data to stream id of domain under key and returns
// the result, and whether it was a replay (then marked so in the answer's
// headers); ok is false once it has answered with the command's problem,
// or the bus's.
func (s *server) ask(w http.ResponseWriter, r *http.Request, domain, id, action, key string, data []byte) (result []byte, replayed, ok bool) {
	cmd := bus.Command{CommandID: ksuid.New().String(), IdempotencyKey: key, Data: data, RequestID: requestID(r.Context())}
	reply, replayed, err := s.cmds.Send(r.Context(), domain, id, action, cmd)
	if err != nil {
		s.sendFailed(w, r, err)
		return nil, false, false
	}
	if replayed {
		w.Header().Set(ReplayedHeader, "true")
	}
	if reply.Error != nil {
		writeProblem(w, r, reply.Error)
		return nil, replayed, false
	}
	return reply.Result, replayed, true
}

// commandRequest reads what every command route that creates or changes
// something takes: no query parameter, an optional Idempotency-Key, and
// the body.
func commandRequest(w http.ResponseWriter, r *http.Request) (key string, body []byte, perr *bus.Error) {
	if _, perr = queryParams(r); perr != nil {
		return "", nil, perr
	}
	if key, perr = idempotencyKey(r); perr != nil {
		return "", nil, perr
	}
	body, perr = readBody(w, r)
	return key, body, perr
}

// sendFailed answers for a command that was not decided: the bus's
// problem (no writer, a timeout), or an internal error, logged.
func (s *server) sendFailed(w http.ResponseWriter, r *http.Request, err error) {
	var be *bus.Error
	if !errors.As(err, &be) {
		if r.Context().Err() != nil {
			return // the client left
		}
		s.log.Error("command failed", "path", r.URL.Path, "request_id", requestID(r.Context()), "err", err)
		be = problem(bus.CodeInternal, "the command could not be completed; retry with the same Idempotency-Key to learn its outcome")
	}
	writeProblem(w, r, be)
}

// queryParams returns the request's query parameters when each is one the
// route takes and none is given twice, so that a typo such as ?limt=10 is
// refused instead of read as no limit at all, as a body with an unknown
// field is.
func queryParams(r *http.Request, takes ...string) (url.Values, *bus.Error) {
	if r.URL.RawQuery == "" {
		return nil, nil
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, problem(bus.CodeInvalidQuery, fmt.Sprintf("the query string %q cannot be read: %v", r.URL.RawQuery, err))
	}
	for _, name := range slices.Sorted(maps.Keys(q)) {
		switch {
		case len(takes) == 0:
			return nil, problem(bus.CodeInvalidQuery, fmt.Sprintf("%s takes no query parameters, not %q", r.URL.Path, name))
		case !slices.Contains(takes, name):
			return nil, problem(bus.CodeInvalidQuery, fmt.Sprintf("%s takes the query parameters %s, not %q", r.URL.Path, strings.Join(takes, ", "), name))
		case len(q[name]) > 1:
			return nil, problem(bus.CodeInvalidQuery, fmt.Sprintf("query parameter %q is given %d times; give it once", name, len(q[name])))
		}
	}
	return q, nil
}

// idempotencyKey returns the Idempotency-Key header: absent, or 1 to 255
// printable ASCII characters.
func idempotencyKey(r *http.Request) (string, *bus.Error) {
	vals := r.Header.Values("Idempotency-Key")
	if len(vals) == 0 {
		return "", nil
	}
	k := vals[0]
	if len(vals) > 1 || k == "" || len(k) > 255 || !printable(k) {
		return "", problem(bus.CodeInvalidIdempotencyKey, "Idempotency-Key must be one header of 1 to 255 printable ASCII characters")
	}
	return k, nil
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

const amountHelp = `expected a JSON body like {"amount": 500}: a whole number of minor units (cents) from 1 to 10^15`

// amountOf reads a body {"amount": N} whatever the Content-Type (curl -d
// sends a form type), rejecting anything else in it.
func amountOf(body []byte) (int64, *bus.Error) {
	if amount, ok := plainAmount(body); ok {
		return amount, nil
	}
	return strictAmount(body)
}

// strictAmount is the long way for any body: exactly one JSON object with
// the one member "amount", a whole number from 1 to 10^15 however written.
func strictAmount(body []byte) (int64, *bus.Error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return 0, problem(bus.CodeInvalidBody, "the request body is empty; "+amountHelp)
	}
	raw, perr := amountField(body)
	if perr != nil {
		return 0, perr
	}
	amount, err := parseAmount(raw)
	if err != nil {
		return 0, problem(bus.CodeInvalidAmount, err.Error()+"; "+amountHelp)
	}
	return amount, nil
}

// plainAmount reads the body nearly every command carries, {"amount": N}
// with N a whole number in range written plainly, without the token walk
// and the exact arithmetic of strictAmount (about two microseconds and 30 allocations
// a command). ok is false for anything else, which then goes the long way:
// the answer for any body is the same either way (TestPlainAmount,
// FuzzCommandBody).
func plainAmount(b []byte) (amount int64, ok bool) {
	b = skipJSONSpace(b)
	if b, ok = bytes.CutPrefix(b, []byte("{")); !ok {
		return 0, false
	}
	if b, ok = bytes.CutPrefix(skipJSONSpace(b), []byte(`"amount"`)); !ok {
		return 0, false
	}
	if b, ok = bytes.CutPrefix(skipJSONSpace(b), []byte(":")); !ok {
		return 0, false
	}
	b = skipJSONSpace(b)
	n := 0
	for n < len(b) && b[n] >= '0' && b[n] <= '9' {
		n++
	}
	// 1 to 16 digits, no leading zero: at most 10^15 once parsed.
	if n == 0 || n > 16 || b[0] == '0' {
		return 0, false
	}
	amount, err := strconv.ParseInt(string(b[:n]), 10, 64)
	if err != nil || amount > wallet.MaxAmount {
		return 0, false
	}
	if b, ok = bytes.CutPrefix(skipJSONSpace(b[n:]), []byte("}")); !ok || len(skipJSONSpace(b)) != 0 {
		return 0, false
	}
	return amount, true
}

// skipJSONSpace drops the whitespace JSON allows between tokens.
func skipJSONSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\n' || b[0] == '\r') {
		b = b[1:]
	}
	return b
}

// amountField returns the raw value of the one field of a body that must be
// exactly one JSON object with the one member "amount". It walks the tokens
// itself because encoding/json would take "AMOUNT" for "amount" and let a
// repeated member silently win.
func amountField(body []byte) (json.RawMessage, *bus.Error) {
	invalid := func(what string) *bus.Error {
		return problem(bus.CodeInvalidBody, "the request body "+what+"; "+amountHelp)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		if err == nil {
			return nil, invalid("must be a JSON object")
		}
		return nil, invalid("is not valid JSON")
	}
	var raw json.RawMessage
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, invalid("is not valid JSON")
		}
		name, _ := tok.(string)
		if name != "amount" {
			return nil, invalid(fmt.Sprintf("has an unknown field %q", truncate(name)))
		}
		if raw != nil {
			return nil, invalid("has \"amount\" twice")
		}
		if err := dec.Decode(&raw); err != nil {
			return nil, invalid("is not valid JSON")
		}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, invalid("is not valid JSON")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, invalid("has data after the JSON object")
	}
	return raw, nil
}

var maxAmount = new(big.Rat).SetInt64(wallet.MaxAmount)

// parseAmount accepts a JSON number whose exact value is a whole number from
// 1 to wallet.MaxAmount: 5, 5.0 and 5e2 are fine; 2.5, "5" and 1e16 are not.
func parseAmount(raw json.RawMessage) (int64, error) { return parseWhole(raw, "amount", false) }

// parseWhole is parseAmount for a field called name, which may be 0 if
// zero is true.
func parseWhole(raw json.RawMessage, name string, zero bool) (int64, error) {
	s := string(bytes.TrimSpace(raw))
	switch {
	case s == "" || s == "null":
		return 0, errors.New(name + " is missing")
	case s[0] == '"':
		return 0, fmt.Errorf("%s must be a JSON number, not the string %s", name, truncate(s))
	case s[0] != '-' && (s[0] < '0' || s[0] > '9'):
		return 0, fmt.Errorf("%s must be a JSON number, not %s", name, truncate(s))
	}
	mantissa, exp := s, 0
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		e, err := strconv.Atoi(s[i+1:])
		// Bound the exponent before doing exact arithmetic with it.
		if err != nil || e > 30 || e < -30 {
			return 0, fmt.Errorf("%s %s is out of range", name, truncate(s))
		}
		mantissa, exp = s[:i], e
	}
	v, ok := new(big.Rat).SetString(mantissa)
	if !ok {
		return 0, fmt.Errorf("%s %s is not a number", name, truncate(s))
	}
	scale := new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(abs(exp))), nil))
	if exp >= 0 {
		v.Mul(v, scale)
	} else {
		v.Quo(v, scale)
	}
	switch {
	case v.Sign() < 0 && zero:
		return 0, fmt.Errorf("%s must not be negative, not %s", name, truncate(s))
	case v.Sign() < 0 || (v.Sign() == 0 && !zero):
		return 0, fmt.Errorf("%s must be positive, not %s", name, truncate(s))
	case !v.IsInt():
		return 0, fmt.Errorf("%s must be a whole number of minor units, not %s", name, truncate(s))
	case v.Cmp(maxAmount) > 0:
		return 0, fmt.Errorf("%s %s is larger than 10^15", name, truncate(s))
	}
	return v.Num().Int64(), nil
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
