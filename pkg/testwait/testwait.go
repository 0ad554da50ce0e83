// Package testwait holds the waiting the end-to-end and fault tests share:
// polling a condition until a deadline (never a fixed sleep), and finding
// free loopback ports. Import it only from _test.go files and the bench
// harness (utils/bench).
package testwait

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
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

// FreePorts is PickPorts for a test: it fails tb if the ports cannot be had.
func FreePorts(tb testing.TB, names ...string) map[string]int {
	tb.Helper()
	ports, err := PickPorts(names...)
	if err != nil {
		tb.Fatal(err)
	}
	return ports
}

// PickPorts returns a distinct loopback TCP port for each name, each free a
// moment ago, for a process that will bind it.
//
// They come from outside the kernel's ephemeral range
// (/proc/sys/net/ipv4/ip_local_port_range): a port from there, once closed
// and before the process binds it, can become the local end of any outgoing
// connection on the machine or the port of anyone's listen on ":0", and the
// test packages run side by side making thousands of connections. Each port
// is held open until all are chosen, so one call never repeats a port (one
// at a time, the kernel once gave Redis the port of the NATS server).
func PickPorts(names ...string) (map[string]int, error) {
	lo, hi := portRange()
	picked, err := pickPortsIn(len(names), lo, hi)
	if err != nil {
		return nil, err
	}
	ports := make(map[string]int, len(names))
	for i, name := range names {
		ports[name] = picked[i]
	}
	return ports, nil
}

// pickPortsIn picks n distinct free ports from lo to hi.
func pickPortsIn(n, lo, hi int) ([]int, error) {
	var ports []int
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	for tries := 0; len(ports) < n; tries++ {
		if tries == 1000 {
			return nil, fmt.Errorf("no %d free loopback ports in %d-%d after %d tries", n, lo, hi, tries)
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", lo+rand.IntN(hi-lo+1)))
		if err != nil {
			continue // taken: try another
		}
		held = append(held, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// portRange is a range of ports the kernel never hands out by itself: below
// the ephemeral range if there is room there, else above it.
func portRange() (lo, hi int) {
	eLo, eHi, err := ephemeralRange()
	switch {
	case err != nil:
		return 20000, 29999 // below Linux's default 32768-60999
	case eLo >= 12000:
		return eLo / 2, eLo - 1
	default:
		return eHi + 1, 65535
	}
}

func ephemeralRange() (lo, hi int, err error) {
	data, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0, err
	}
	if _, err := fmt.Sscan(string(data), &lo, &hi); err != nil {
		return 0, 0, err
	}
	if lo < 1 || hi > 65535 || lo > hi || (lo < 12000 && hi > 60000) {
		return 0, 0, errors.New("no room outside the ephemeral port range")
	}
	return lo, hi, nil
}
