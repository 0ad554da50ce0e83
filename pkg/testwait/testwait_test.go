package testwait

import (
	"fmt"
	"math/rand/v2"
	"net"
	"testing"
)

// TestPickPorts: distinct ports, outside the kernel's ephemeral range where
// it can be read, and free for the caller to bind.
func TestPickPorts(t *testing.T) {
	var names []string
	for i := range 40 {
		names = append(names, fmt.Sprint("p", i))
	}
	named, err := PickPorts(names...)
	if err != nil {
		t.Fatal(err)
	}
	var ports []int
	for _, p := range named {
		ports = append(ports, p)
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

// A port someone holds is never picked: ten ports, seven of them held
// (inside the ephemeral range, where PickPorts itself never looks, so that
// holding them cannot disturb another package's picks).
func TestPickPortsSkipsTaken(t *testing.T) {
	eLo, eHi, err := ephemeralRange()
	if err != nil {
		eLo, eHi = 40000, 50000
	}
	lo := eLo + rand.IntN(eHi-eLo-10)
	held := map[int]bool{}
	for p := lo; p < lo+10 && len(held) < 7; p++ {
		if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p)); err == nil {
			defer l.Close()
			held[p] = true
		}
	}
	if len(held) < 7 {
		t.Fatalf("could hold only %d of the ports %d-%d", len(held), lo, lo+9)
	}
	for range 20 {
		ports, err := pickPortsIn(1, lo, lo+9)
		if err != nil {
			t.Fatal(err)
		}
		if held[ports[0]] {
			t.Fatalf("picked port %d, which is held", ports[0])
		}
	}
}
