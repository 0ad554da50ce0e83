package engine

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// TestEngineImportsNoDomain holds the engine to its contract: of this
// module's packages it depends on the event envelope, the store, the read
// model, the bus and metrics, and on no domain (go list -deps says so).
func TestEngineImportsNoDomain(t *testing.T) {
	out, err := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	allowed := []string{"coffer/pkg/bus", "coffer/pkg/event", "coffer/pkg/eventstore", "coffer/pkg/readmodel", "coffer/pkg/metrics", "coffer/pkg/engine"}
	seen := 0
	for _, pkg := range strings.Fields(string(out)) {
		if !strings.HasPrefix(pkg, "coffer/") {
			continue
		}
		seen++
		if !slices.Contains(allowed, pkg) {
			t.Errorf("the engine depends on %s", pkg)
		}
	}
	if seen != len(allowed) {
		t.Errorf("go list -deps named %d of this module's packages, want the %d allowed:\n%s", seen, len(allowed), out)
	}
}
