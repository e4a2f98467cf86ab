package endpoints

import (
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
)

func ep(node string, ready *bool) discoveryv1.Endpoint {
	e := discoveryv1.Endpoint{Addresses: []string{"10.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: ready}}
	if node != "" {
		e.NodeName = &node
	}
	return e
}

func TestReadyNodes(t *testing.T) {
	yes, no := true, false
	slices := []*discoveryv1.EndpointSlice{
		{Endpoints: []discoveryv1.Endpoint{ep("a", &yes), ep("b", &no), ep("c", nil)}},
		nil,
		{Endpoints: []discoveryv1.Endpoint{ep("b", &no), ep("", &yes), ep("d", &yes)}},
	}
	got := Names(ReadyNodes(slices))
	// b has only unready endpoints; an endpoint without a node is ignored;
	// no Ready condition means ready.
	if got != "a,c,d" {
		t.Fatalf("ready nodes %q, want a,c,d", got)
	}
}

func TestDamperHoldsLostNodesForHoldDown(t *testing.T) {
	d := &Damper{HoldDown: 10 * time.Second}
	t0 := time.Unix(1000, 0)
	set := func(names ...string) map[string]bool {
		m := map[string]bool{}
		for _, n := range names {
			m[n] = true
		}
		return m
	}
	steps := []struct {
		at      time.Duration
		ready   map[string]bool
		active  string
		recheck time.Duration
	}{
		{0, set("a", "b"), "a,b", 0},
		{2 * time.Second, set("a"), "a,b", 8 * time.Second}, // b blips: held
		{4 * time.Second, set("a", "b"), "a,b", 0},          // b back: no change ever seen
		{5 * time.Second, set("a"), "a,b", 9 * time.Second}, // b gone again
		{14 * time.Second, set("a"), "a", 0},                // hold-down over: b dropped
		{15 * time.Second, set("a", "c"), "a,c", 0},         // a gain is immediate
		{30 * time.Second, set(), "", 0},                    // a and c last ready at 15s: both expired
	}
	for i, s := range steps {
		active, recheck := d.Active("ns/web", s.ready, t0.Add(s.at))
		if Names(active) != s.active || recheck != s.recheck {
			t.Fatalf("step %d at %v: active %q recheck %v, want %q %v", i, s.at, Names(active), recheck, s.active, s.recheck)
		}
	}
	// Services are independent, and Forget drops a Service's memory.
	if a, _ := d.Active("ns/other", set("x"), t0); Names(a) != "x" {
		t.Fatalf("other service %q", Names(a))
	}
	d.Forget("ns/other")
	if a, _ := d.Active("ns/other", set(), t0.Add(time.Second)); len(a) != 0 {
		t.Fatalf("forgotten service still holds %q", Names(a))
	}
}
