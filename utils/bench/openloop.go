package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"
)

// An open-loop load generator: requests are due at a fixed rate whatever
// the server does, and each latency is measured from when its request was
// due, so a stall shows up in every request that waited behind it (no
// coordinated omission).
//
// It speaks HTTP/1.1 over plain keep-alive connections with requests built
// once, like wrk, because it shares the two cores with the system under
// test: Go's net/http client (a reader and a writer goroutine per
// connection, a channel hand-off and several allocations per request) took
// 0.4 of a core at 4,600 requests/s, CPU the services then did not have.

// openLoopResult is what one open-loop run saw.
type openLoopResult struct {
	lat                      []time.Duration   // sorted
	perSecond                [][]time.Duration // latencies by the second their request was due in, sorted
	ok, refused, other, errs int64
	elapsed                  time.Duration
}

// pct is the p-th quantile of the latencies (p = 1: the largest).
func (o openLoopResult) pct(p float64) time.Duration {
	return quantile(o.lat, p)
}

// quantile is the p-th quantile of sorted latencies (p = 1: the largest).
func quantile(lat []time.Duration, p float64) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	return lat[min(len(lat)-1, int(p*float64(len(lat))))]
}

// runOpenLoop sends rate requests per second for d over conns connections,
// request i going to paths[i % len(paths)] on base.
func runOpenLoop(base string, paths []string, body string, rate float64, d time.Duration, conns int) (openLoopResult, error) {
	// One P: the generator's goroutines mostly wait on their connections,
	// and with two Ps every response woke a second thread. At 4,000/s that
	// took the generator's CPU from 2.4-2.5 s to 1.8-2.1 s per 8 s run and
	// the p99 it measured from 32-36 ms to 27-30 ms (three runs each).
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	u, err := url.Parse(base)
	if err != nil {
		return openLoopResult{}, err
	}
	reqs := make([][]byte, len(paths))
	for i, p := range paths {
		reqs[i] = fmt.Appendf(nil, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
			p, u.Host, len(body), body)
	}
	type job struct {
		due time.Time
		req []byte
	}
	jobs := make(chan job, 100_000)
	start := time.Now()
	var mu sync.Mutex
	var res openLoopResult
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() {
			var c *clientConn
			var lat []time.Duration
			var due []time.Duration // when each request of lat was due, from start
			var ok, refused, other, errs int64
			for j := range jobs {
				if c == nil {
					var err error
					if c, err = dialConn(u.Host); err != nil {
						errs++
						lat, due = append(lat, time.Since(j.due)), append(due, j.due.Sub(start))
						continue
					}
				}
				status, err := c.do(j.req)
				lat, due = append(lat, time.Since(j.due)), append(due, j.due.Sub(start))
				switch {
				case err != nil:
					errs++
					c.Close()
					c = nil
				case status == 200:
					ok++
				case status == 409:
					refused++
				default:
					other++
				}
			}
			if c != nil {
				c.Close()
			}
			mu.Lock()
			res.lat = append(res.lat, lat...)
			for i, l := range lat {
				sec := int(due[i] / time.Second)
				for len(res.perSecond) <= sec {
					res.perSecond = append(res.perSecond, nil)
				}
				res.perSecond[sec] = append(res.perSecond[sec], l)
			}
			res.ok, res.refused, res.other, res.errs = res.ok+ok, res.refused+refused, res.other+other, res.errs+errs
			mu.Unlock()
		})
	}
	// Wake once a millisecond and hand out every request due by then: a
	// sleep per request would cost the machine thousands of wake-ups a
	// second, and latency counts from the due time either way.
	interval := time.Duration(float64(time.Second) / rate)
	n := int(rate * d.Seconds())
	for i := 0; i < n; {
		now := time.Now()
		for ; i < n; i++ {
			at := start.Add(time.Duration(i) * interval)
			if at.After(now) {
				break
			}
			jobs <- job{at, reqs[i%len(reqs)]}
		}
		time.Sleep(time.Millisecond)
	}
	close(jobs)
	wg.Wait()
	res.elapsed = time.Since(start)
	slices.Sort(res.lat)
	for _, s := range res.perSecond {
		slices.Sort(s)
	}
	return res, nil
}

// clientConn is one keep-alive HTTP/1.1 connection.
type clientConn struct {
	net.Conn
	r *bufio.Reader
}

func dialConn(host string) (*clientConn, error) {
	c, err := net.DialTimeout("tcp", host, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return &clientConn{Conn: c, r: bufio.NewReaderSize(c, 4096)}, nil
}

var errResponse = errors.New("malformed HTTP response")

// do writes one request and reads its response, returning the status. The
// body is read and dropped; responses must carry a Content-Length, as every
// Coffer response does.
func (c *clientConn) do(req []byte) (int, error) {
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return 0, err
	}
	if _, err := c.Write(req); err != nil {
		return 0, err
	}
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	// "HTTP/1.1 200 OK\r\n"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) {
		return 0, errResponse
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, errResponse
	}
	length := -1
	for {
		h, err := c.r.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		if len(h) <= 2 {
			break
		}
		if k, v, ok := bytes.Cut(h, []byte(":")); ok && bytes.EqualFold(k, []byte("Content-Length")) {
			if length, err = strconv.Atoi(string(bytes.TrimSpace(v))); err != nil {
				return 0, errResponse
			}
		}
	}
	if length < 0 {
		return 0, errResponse
	}
	if _, err := c.r.Discard(length); err != nil {
		return 0, err
	}
	return status, nil
}
