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

// FreePorts returns a distinct loopback TCP port for each name, each free a
// moment ago. It holds each port open until all are chosen: choosing them one
// at a time can hand out the same port twice (the kernel may reuse one just
// closed), which once gave Redis the port of the NATS server.
func FreePorts(tb testing.TB, names ...string) map[string]int {
	tb.Helper()
	ports := make(map[string]int, len(names))
	for _, name := range names {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		defer l.Close()
		ports[name] = l.Addr().(*net.TCPAddr).Port
	}
	return ports
}
