package sweep

import (
	"reflect"
	"testing"
	"time"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/types"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/desired"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func lb(id types.ID, created time.Time, tags ...string) *iaas.LoadBalancer {
	return &iaas.LoadBalancer{ID: id, Name: "lb", Tags: tags, CreatedAt: created}
}

func ids(os []Orphan) []types.ID {
	var out []types.ID
	for _, o := range os {
		out = append(out, o.LB.ID)
	}
	return out
}

func TestDecide(t *testing.T) {
	cl, other := desired.ClusterTag("c1"), desired.ClusterTag("c2")
	svc := func(u string) string { return desired.ServiceTag(u) }
	old := t0.Add(-time.Hour)
	young := t0.Add(-30 * time.Second)
	grace := 2 * time.Minute
	cases := []struct {
		name      string
		cluster   string
		lbs       []*iaas.LoadBalancer
		claimed   []string
		seen      map[types.ID]time.Time
		managed   int
		remove    []types.ID
		wait      []types.ID
		untagged  int
		seenAfter map[types.ID]time.Time
	}{
		{name: "claimed appliance is kept",
			cluster: "c1", lbs: []*iaas.LoadBalancer{lb(1, old, cl, svc("u1"))}, claimed: []string{"u1"},
			managed: 1, seenAfter: map[types.ID]time.Time{}},
		{name: "first sighting of an orphan only waits",
			cluster: "c1", lbs: []*iaas.LoadBalancer{lb(1, old, cl, svc("gone"))},
			managed: 1, wait: []types.ID{1}, seenAfter: map[types.ID]time.Time{1: t0}},
		{name: "second consecutive sighting removes, keeping the first-seen time",
			cluster: "c1", lbs: []*iaas.LoadBalancer{lb(1, old, cl, svc("gone"))},
			seen:    map[types.ID]time.Time{1: t0.Add(-5 * time.Minute)},
			managed: 1, remove: []types.ID{1}, seenAfter: map[types.ID]time.Time{1: t0.Add(-5 * time.Minute)}},
		{name: "an orphan younger than the grace period waits even when seen before",
			cluster: "c1", lbs: []*iaas.LoadBalancer{lb(1, young, cl, svc("gone"))},
			seen:    map[types.ID]time.Time{1: t0.Add(-10 * time.Second)},
			managed: 1, wait: []types.ID{1}, seenAfter: map[types.ID]time.Time{1: t0.Add(-10 * time.Second)}},
		{name: "unknown creation time relies on the two sightings",
			cluster: "c1", lbs: []*iaas.LoadBalancer{lb(1, time.Time{}, cl, svc("gone"))},
			seen:    map[types.ID]time.Time{1: t0.Add(-time.Minute)},
			managed: 1, remove: []types.ID{1}, seenAfter: map[types.ID]time.Time{1: t0.Add(-time.Minute)}},
		{name: "another cluster's appliances are never considered",
			cluster: "c1", lbs: []*iaas.LoadBalancer{lb(1, old, other, svc("gone")), lb(2, old, desired.ClusterTag("c1-other"), svc("gone"))},
			seen:    map[types.ID]time.Time{1: old, 2: old},
			managed: 0, seenAfter: map[types.ID]time.Time{}},
		{name: "appliances without a service-uid tag are never touched",
			cluster: "c1", lbs: []*iaas.LoadBalancer{lb(1, old, cl), lb(2, old, cl, desired.ServiceTagKey)},
			seen:    map[types.ID]time.Time{1: old, 2: old},
			managed: 2, untagged: 2, seenAfter: map[types.ID]time.Time{}},
		{name: "untagged appliances without any tag are ignored",
			cluster: "c1", lbs: []*iaas.LoadBalancer{lb(1, old), lb(2, old, "@k8s")},
			managed: 0, seenAfter: map[types.ID]time.Time{}},
		{name: "one claimed service tag keeps a shared appliance",
			cluster: "c1", lbs: []*iaas.LoadBalancer{lb(1, old, cl, svc("gone"), svc("u2"))}, claimed: []string{"u2"},
			seen:    map[types.ID]time.Time{1: old},
			managed: 1, seenAfter: map[types.ID]time.Time{}},
		{name: "an orphan that is claimed again leaves the seen state",
			cluster: "c1", lbs: []*iaas.LoadBalancer{lb(1, old, cl, svc("u1")), lb(2, old, cl, svc("gone"))}, claimed: []string{"u1"},
			seen:    map[types.ID]time.Time{1: old, 3: old},
			managed: 2, wait: []types.ID{2}, seenAfter: map[types.ID]time.Time{2: t0}},
		{name: "no cluster ID means nothing is ours",
			cluster: "", lbs: []*iaas.LoadBalancer{lb(1, old, desired.ClusterTag(""), svc("gone"))},
			seen:    map[types.ID]time.Time{1: old},
			managed: 0, seenAfter: map[types.ID]time.Time{}},
		{name: "mixed: sorted by ID",
			cluster: "c1", lbs: []*iaas.LoadBalancer{lb(9, old, cl, svc("a")), lb(3, old, cl, svc("b")), lb(5, old, cl, svc("c")), nil},
			seen:    map[types.ID]time.Time{9: old, 3: old},
			managed: 3, remove: []types.ID{3, 9}, wait: []types.ID{5}, seenAfter: map[types.ID]time.Time{9: old, 3: old, 5: t0}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			claimed := map[string]bool{}
			for _, u := range c.claimed {
				claimed[u] = true
			}
			got := Decide(Input{ClusterID: c.cluster, Appliances: c.lbs, Claimed: claimed, Seen: c.seen, Now: t0, Grace: grace})
			if got.Managed != c.managed {
				t.Errorf("managed = %d, want %d", got.Managed, c.managed)
			}
			if !reflect.DeepEqual(ids(got.Remove), c.remove) {
				t.Errorf("remove = %v, want %v", ids(got.Remove), c.remove)
			}
			if !reflect.DeepEqual(ids(got.Wait), c.wait) {
				t.Errorf("wait = %v, want %v", ids(got.Wait), c.wait)
			}
			if len(got.Untagged) != c.untagged {
				t.Errorf("untagged = %d, want %d", len(got.Untagged), c.untagged)
			}
			if !reflect.DeepEqual(got.Seen, c.seenAfter) {
				t.Errorf("seen = %v, want %v", got.Seen, c.seenAfter)
			}
			for _, o := range got.Remove {
				if !o.FirstSeen.Equal(c.seen[o.LB.ID]) {
					t.Errorf("%s first seen %v, want %v", o.LB.ID, o.FirstSeen, c.seen[o.LB.ID])
				}
			}
		})
	}
}

func TestClaims(t *testing.T) {
	svc := func(typ v1.ServiceType, finalizers ...string) *v1.Service {
		return &v1.Service{ObjectMeta: metav1.ObjectMeta{Finalizers: finalizers}, Spec: v1.ServiceSpec{Type: typ}}
	}
	cases := []struct {
		name string
		svc  *v1.Service
		want bool
	}{
		{"LoadBalancer", svc(v1.ServiceTypeLoadBalancer), true},
		{"LoadBalancer with finalizer", svc(v1.ServiceTypeLoadBalancer, CleanupFinalizer), true},
		{"changed to ClusterIP, cleanup pending", svc(v1.ServiceTypeClusterIP, CleanupFinalizer), true},
		{"changed to NodePort, finalizer removed", svc(v1.ServiceTypeNodePort), false},
		{"ClusterIP with another finalizer", svc(v1.ServiceTypeClusterIP, "example.com/keep"), false},
	}
	for _, c := range cases {
		if got := Claims(c.svc); got != c.want {
			t.Errorf("%s: Claims = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestParseMode(t *testing.T) {
	for in, want := range map[string]Mode{"": ModeDelete, "delete": ModeDelete, " Report ": ModeReport} {
		if got, err := ParseMode(in); err != nil || got != want {
			t.Errorf("ParseMode(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseMode("purge"); err == nil {
		t.Error("ParseMode(purge) accepted")
	}
}
