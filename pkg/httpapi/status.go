package httpapi

import (
	"cmp"
	"context"
	"net/http"
	"slices"
	"time"

	"coffer/pkg/bus"
)

// statusResponse is GET /status: readiness as /readyz checks it, what each
// writer says of how far behind it is, and this server's event streams.
type statusResponse struct {
	Status    string             `json:"status"`
	Checks    map[string]string  `json:"checks"`
	Writers   []bus.WriterHealth `json:"writers"`
	Streams   int64              `json:"streams"`
	Timestamp time.Time          `json:"timestamp"`
}

// status is GET /status, the console's view of the system's health.
func (s *server) status(w http.ResponseWriter, r *http.Request) {
	if _, perr := queryParams(r); perr != nil {
		writeProblem(w, r, perr)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), time.Second)
	defer cancel()
	resp := statusResponse{Status: "ready", Checks: map[string]string{}, Streams: s.streams.Load(), Timestamp: s.now().UTC()}
	for name, probe := range map[string]func(context.Context) error{"redis": s.reads.Ping, "writer": s.cmds.PingWriter} {
		if err := probe(ctx); err != nil {
			resp.Checks[name], resp.Status = err.Error(), "unavailable"
		} else {
			resp.Checks[name] = "ok"
		}
	}
	writers, err := s.cmds.WriterHealth(ctx, 250*time.Millisecond)
	if err != nil {
		resp.Checks["writer_stats"] = err.Error()
	}
	slices.SortFunc(writers, func(a, b bus.WriterHealth) int { return cmp.Compare(a.Partition, b.Partition) })
	resp.Writers = append([]bus.WriterHealth{}, writers...)
	writeJSON(w, http.StatusOK, resp)
}
