package testwait

import (
	"fmt"
	"net"
	"testing"
)

// TestPickPorts: distinct ports, outside the kernel's ephemeral range where
// it can be read, and free for the caller to bind.
func TestPickPorts(t *testing.T) {
	ports, err := PickPorts(40)
	if err != nil {
		t.Fatal(err)
	}
	eLo, eHi, rangeErr := ephemeralRange()
	seen := map[int]bool{}
	for _, p := range ports {
		if seen[p] {
			t.Fatalf("port %d picked twice: %v", p, ports)
		}
		seen[p] = true
		if rangeErr == nil && p >= eLo && p <= eHi {
			t.Errorf("port %d is in the ephemeral range %d-%d", p, eLo, eHi)
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			t.Errorf("port %d cannot be bound: %v", p, err)
			continue
		}
		l.Close()
	}
	if len(ports) != 40 {
		t.Fatalf("%d ports, want 40", len(ports))
	}
}

// A port someone holds is never picked.
func TestPickPortsSkipsTaken(t *testing.T) {
	lo, hi := portRange()
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	taken := map[int]bool{}
	for p := lo; p <= min(hi, lo+199); p++ {
		if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p)); err == nil {
			held = append(held, l)
			taken[p] = true
		}
	}
	for range 20 {
		ports, err := PickPorts(10)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ports {
			if taken[p] {
				t.Fatalf("picked port %d, which is held", p)
			}
		}
	}
}
