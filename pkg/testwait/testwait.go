// Package testwait holds the waiting the end-to-end and fault tests share:
// polling a condition until a deadline (never a fixed sleep), and finding a
// free loopback port. Import it only from _test.go files.
package testwait

import (
	"net"
	"testing"
	"time"
)

// Until polls cond every 20ms until it holds, and fails tb if it does not
// within the given time.
func Until(tb testing.TB, within time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
