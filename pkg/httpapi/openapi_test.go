package httpapi

import (
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/mux"
	"gopkg.in/yaml.v3"

	"coffer/pkg/bus"
	"coffer/pkg/metrics"
)

// spec is the parts of openapi.yaml these tests read.
type spec struct {
	OpenAPI string                                 `yaml:"openapi"`
	Paths   map[string]map[string]yaml.Node        `yaml:"paths"`
	Comps   struct{ Schemas map[string]yaml.Node } `yaml:"components"`
}

func loadSpec(t *testing.T) spec {
	t.Helper()
	var s spec
	if err := yaml.Unmarshal(OpenAPI, &s); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	if s.OpenAPI != "3.1.0" {
		t.Fatalf("openapi: %q, want 3.1.0", s.OpenAPI)
	}
	return s
}

// operations are the spec's "METHOD path" pairs with their response statuses.
func (s spec) operations(t *testing.T) map[string][]int {
	t.Helper()
	ops := map[string][]int{}
	for path, item := range s.Paths {
		for method, node := range item {
			if method == "parameters" {
				continue
			}
			var op struct{ Responses map[string]yaml.Node }
			if err := node.Decode(&op); err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
			key := strings.ToUpper(method) + " " + path
			for status := range op.Responses {
				n, err := strconv.Atoi(status)
				if err != nil {
					t.Fatalf("%s: response %q is not a status", key, status)
				}
				ops[key] = append(ops[key], n)
			}
		}
	}
	return ops
}

// TestOpenAPIListsEveryRoute holds the spec's paths and methods equal to the
// router's, both ways.
func TestOpenAPIListsEveryRoute(t *testing.T) {
	ops := loadSpec(t).operations(t)
	s := &server{log: slog.New(slog.NewTextHandler(io.Discard, nil)), reads: noReads{}, cmds: &sent{}, now: time.Now, limits: DefaultLimits}
	var routed []string
	err := s.router(metrics.NewRegistry()).Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		path, err := route.GetPathTemplate()
		if err != nil {
			return err
		}
		methods, err := route.GetMethods()
		if err != nil {
			return err
		}
		for _, m := range methods {
			routed = append(routed, m+" "+path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routed {
		if _, ok := ops[r]; !ok {
			t.Errorf("the router serves %s; openapi.yaml does not describe it", r)
		}
	}
	for op := range ops {
		if !slices.Contains(routed, op) {
			t.Errorf("openapi.yaml describes %s; the router does not serve it", op)
		}
	}
}

// TestOpenAPIListsEveryErrorCode holds the spec's problem codes equal to the
// API's, and every code's status among the responses of some operation.
func TestOpenAPIListsEveryErrorCode(t *testing.T) {
	sp := loadSpec(t)
	var problem struct {
		Properties struct {
			Code struct{ Enum []string }
		}
	}
	node := sp.Comps.Schemas["Problem"]
	if err := node.Decode(&problem); err != nil {
		t.Fatal(err)
	}
	documented := problem.Properties.Code.Enum
	statuses := map[int]bool{http.StatusNotFound: true} // any unknown path: not in the paths
	for _, st := range sp.operations(t) {
		for _, n := range st {
			statuses[n] = true
		}
	}
	for code, info := range problemInfo {
		if !slices.Contains(documented, string(code)) {
			t.Errorf("code %s is not in the Problem schema's enum", code)
		}
		if !statuses[info.status] {
			t.Errorf("code %s answers %d, which no operation lists", code, info.status)
		}
	}
	for _, c := range documented {
		if _, ok := problemInfo[bus.Code(c)]; !ok {
			t.Errorf("the spec documents code %s, which the API never sends", c)
		}
	}
}
