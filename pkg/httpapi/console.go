package httpapi

import (
	"embed"
	"net/http"
	"path"

	"github.com/gorilla/mux"

	"coffer/pkg/bus"
)

// consoleFiles are the console's page, style and script, built into the
// binary: nothing is fetched from anywhere else, for users behind
// firewalls too.
//
//go:embed console/index.html console/console.css console/console.js
var consoleFiles embed.FS

var consoleTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
}

// console is GET / and GET /console/: the console's page; GET
// /console/{file}: its style and script.
func (s *server) console(w http.ResponseWriter, r *http.Request) {
	name := mux.Vars(r)["file"]
	if name == "" {
		name = "index.html"
	}
	body, err := consoleFiles.ReadFile("console/" + name)
	if err != nil {
		writeProblem(w, r, problem(bus.CodeNotFound, "the console has no file "+truncate(name)))
		return
	}
	h := w.Header()
	h.Set("Content-Type", consoleTypes[path.Ext(name)])
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	// The page loads nothing but its own files, and talks only to this API.
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(body) //nolint:errcheck // the client left
	}
}
