package engine

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/sakuraapi"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/annotations"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// elbStep is what one lifecycle step of an ELB Service cost: all calls,
// the writes among them, and every call by operation and result.
type elbStep struct {
	name   string
	calls  int
	writes int
	byOp   map[string]int // "ProxyLB.Find/ok" → n, writes included
	wrote  map[string]int // writes by operation
}

func (s elbStep) String() string {
	keys := slices.Sorted(maps.Keys(s.byOp))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, s.byOp[k])
	}
	return fmt.Sprintf("%s: %d calls, %d writes [%s]", s.name, s.calls, s.writes, strings.Join(parts, " "))
}

// elbCallsSince is every call since snap, keyed by operation and result.
func elbCallsSince(c *sakuraapi.Client, snap map[sakuraapi.CallKey]int) map[string]int {
	by := map[string]int{}
	for k, v := range c.Stats().Snapshot() {
		if d := v - snap[k]; d > 0 {
			by[k.Op+"/"+k.Result] += d
		}
	}
	return by
}

// elbLifecycle drives one ELB Service (2 ports, elb-plan 100) over 3
// nodes through create, a no-op resync, a 4th node, a plan change to 500
// and the delete, and returns what each step cost. Every step must
// succeed at once: an ELB has no boot to wait for.
func elbLifecycle(e *env) []elbStep {
	e.t.Helper()
	nodes := []*v1.Node{elbNode("a", "198.51.100.11"), elbNode("b", "198.51.100.12"), elbNode("c", "198.51.100.13")}
	svc := elbService("web", 80, 443)
	svc.Annotations[annotations.ELBPlan] = "100"
	for i := range svc.Spec.Ports {
		// An ELB sends either port to any server: one target for both.
		svc.Spec.Ports[i].TargetPort = intstr.FromInt32(8080)
	}

	var steps []elbStep
	measure := func(name string, do func() error) {
		e.t.Helper()
		snap := e.client.Stats().Snapshot()
		if err := do(); err != nil {
			e.t.Fatalf("%s: %v", name, err)
		}
		w, wrote := writes(e.client, snap)
		steps = append(steps, elbStep{name: name, calls: calls(e.client, snap), writes: w, byOp: elbCallsSince(e.client, snap), wrote: wrote})
	}
	measure("create", func() error {
		_, err := e.lb.EnsureLoadBalancer(e.ctx, "test", svc, nodes)
		return err
	})
	measure("noop", func() error { return e.lb.UpdateLoadBalancer(e.ctx, "test", svc, nodes) })
	nodes = append(nodes, elbNode("d", "198.51.100.14"))
	measure("nodechange", func() error { return e.lb.UpdateLoadBalancer(e.ctx, "test", svc, nodes) })
	svc.Annotations[annotations.ELBPlan] = "500"
	measure("planchange", func() error {
		_, err := e.lb.EnsureLoadBalancer(e.ctx, "test", svc, nodes)
		return err
	})
	measure("delete", func() error { return e.lb.EnsureLoadBalancerDeleted(e.ctx, "test", svc) })
	if left, _ := e.lb.elbs("test").Find(e.ctx, elbTags("test", string(svc.UID))...); len(left) != 0 {
		e.t.Fatalf("ELBs left after the delete: %d", len(left))
	}
	return steps
}

// BenchmarkELBAPICalls reports API calls (and writes) per lifecycle step
// of an Enhanced Load Balancer Service (2 ports, 3 nodes) over
// iaas-api-go's fake, counted by the shared client: "create" is the
// EnsureLoadBalancer that creates; "noop" a resync with nothing changed;
// "nodechange" a 4th node added; "planchange" elb-plan 100 → 500;
// "delete" EnsureLoadBalancerDeleted. The fake gives the ELB no VIP,
// which changes no count.
func BenchmarkELBAPICalls(b *testing.B) {
	var names []string
	sumCalls, sumWrites := map[string]float64{}, map[string]float64{}
	for i := 0; i < b.N; i++ {
		e := newEnv(b, 28)
		for _, s := range elbLifecycle(e) {
			if i == 0 {
				names = append(names, s.name)
			}
			sumCalls[s.name] += float64(s.calls)
			sumWrites[s.name] += float64(s.writes)
		}
	}
	n := float64(b.N)
	for _, name := range names {
		b.ReportMetric(sumCalls[name]/n, "elb_"+name+"_calls")
		b.ReportMetric(sumWrites[name]/n, "elb_"+name+"_writes")
	}
}

// TestELBAPICallBudget holds the ELB lifecycle to its write counts (one
// write per change, none on a resync) and a no-op resync to a single
// listing by tags. Counts, not timings.
func TestELBAPICallBudget(t *testing.T) {
	e := newEnv(t, 28)
	steps := elbLifecycle(e)
	for _, s := range steps {
		t.Log(s)
	}
	want := map[string]struct {
		writes int
		op     string // the one write, if any
	}{
		"create":     {1, "ProxyLB.Create"},
		"noop":       {0, ""},
		"nodechange": {1, "ProxyLB.UpdateSettings"},
		"planchange": {1, "ProxyLB.ChangePlan"},
		"delete":     {1, "ProxyLB.Delete"},
	}
	for _, s := range steps {
		w := want[s.name]
		if s.writes != w.writes || (w.op != "" && s.wrote[w.op] != 1) {
			t.Errorf("%s: writes %v, want %d (%s); %v", s.name, s.wrote, w.writes, w.op, s)
		}
		if s.name == "noop" && s.calls > 2 {
			t.Errorf("a no-op resync made %d calls, want at most 2 (one listing by tags); %v", s.calls, s)
		}
	}
}
