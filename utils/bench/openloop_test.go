package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestOpenLoop runs the generator against a real HTTP server: every
// request due is sent and counted once, by its status, a connection the
// server drops counts as an error (and the generator connects again), and
// latency is at least what the server took.
func TestOpenLoop(t *testing.T) {
	var served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		if r.Header.Get("Content-Type") != "application/json" || r.ContentLength != int64(len(`{"amount": 1}`)) {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		time.Sleep(2 * time.Millisecond)
		switch r.URL.Path {
		case "/ok":
			fmt.Fprint(w, `{"balance": 1}`)
		case "/refused":
			body := strings.Repeat("x", 9000) // more than one read
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			w.WriteHeader(http.StatusConflict)
			fmt.Fprint(w, body)
		case "/drop":
			c, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				c.Close()
			}
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	t.Cleanup(srv.Close)

	paths := []string{"/ok", "/refused", "/ok", "/drop", "/missing"}
	const rate, d = 500.0, time.Second
	// Connections enough to keep up under -race on a busy machine: the
	// check here is the counting, not the server's speed.
	o, err := runOpenLoop(srv.URL, paths, `{"amount": 1}`, rate, d, 16)
	if err != nil {
		t.Fatal(err)
	}
	n := int64(rate * d.Seconds())
	if got := int64(len(o.lat)); got != n || o.ok+o.refused+o.other+o.errs != n {
		t.Fatalf("%d latencies, %d+%d+%d+%d outcomes; want %d requests", got, o.ok, o.refused, o.other, o.errs, n)
	}
	if o.ok != 2*n/5 || o.refused != n/5 || o.errs != n/5 || o.other != n/5 {
		t.Errorf("ok %d, refused %d, errors %d, other %d; want %d, %d, %d, %d", o.ok, o.refused, o.errs, o.other, 2*n/5, n/5, n/5, n/5)
	}
	if served.Load() != n {
		t.Errorf("the server saw %d requests, want %d", served.Load(), n)
	}
	if min := o.lat[0]; min < 2*time.Millisecond {
		t.Errorf("fastest request %v, but the server takes 2ms", min)
	}
	var perSecond int
	for _, s := range o.perSecond {
		perSecond += len(s)
	}
	if perSecond != int(n) || len(o.perSecond) != 1 {
		t.Errorf("per second: %d seconds holding %d requests, want 1 holding %d", len(o.perSecond), perSecond, n)
	}
	if o.elapsed < d-10*time.Millisecond || o.elapsed > d+10*time.Second {
		t.Errorf("ran %v for %v of requests", o.elapsed, d)
	}
}

// TestOpenLoopNoServer counts every request as an error when nothing
// listens, and stops.
func TestOpenLoopNoServer(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	o, err := runOpenLoop(url, []string{"/"}, `{}`, 200, 500*time.Millisecond, 2)
	if err != nil {
		t.Fatal(err)
	}
	if o.errs != 100 || o.ok+o.refused+o.other != 0 || len(o.lat) != 100 {
		t.Fatalf("errors %d, others %d, latencies %d; want 100 errors", o.errs, o.ok+o.refused+o.other, len(o.lat))
	}
}
