package decide

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/types"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/desired"
)

const (
	earlierName = "a5d3c1f7e2b7a4c1e9a510c1f9b7e2d4" // DefaultLoadBalancerName of uid 5d3c1f7e-2b7a-4c1e-9a51-0c1f9b7e2d44
	svcName     = "a-very-long-service-name"         // shortened to 18 in the earlier tag
)

func earlierLB(id types.ID, tags ...string) *iaas.LoadBalancer {
	return &iaas.LoadBalancer{ID: id, Name: earlierName, SwitchID: 7, Availability: types.Availabilities.Available,
		Tags: append([]string{"@k8s"}, tags...), SettingsHash: "h1",
		VirtualIPAddresses: iaas.LoadBalancerVirtualIPAddresses{{VirtualIPAddress: "203.0.113.9", Port: 80}}}
}

func TestEarlierServiceTag(t *testing.T) {
	if got := EarlierServiceTag(svcName); got != "@k8s.Service=a-very-long-servic" {
		t.Errorf("EarlierServiceTag = %q", got)
	}
	if got := EarlierServiceTag("web"); got != "@k8s.Service=web" {
		t.Errorf("EarlierServiceTag = %q", got)
	}
}

func TestAdoptEarlier(t *testing.T) {
	svcTag := EarlierServiceTag(svcName)
	target := AdoptTarget{ClusterID: "prod", UID: "u1", Switches: []types.ID{7}, Ports: 1}
	facts := func(cluster string, lbs ...*iaas.LoadBalancer) EarlierFacts {
		return EarlierFacts{Enabled: true, Name: earlierName, ServiceName: svcName, ClusterID: cluster, LoadBalancers: lbs}
	}
	renamed := earlierLB(3, svcTag)
	renamed.Name = "other"
	failed := earlierLB(4, svcTag)
	failed.Availability = types.Availabilities.Failed
	cases := []struct {
		name    string
		f       EarlierFacts
		t       AdoptTarget
		want    AdoptKind
		ids     []string
		whyHas  string
		tagsHas []string
	}{
		{"no listing: none", facts("prod"), target, AdoptNone, nil, "", nil},
		{"switched off: none", EarlierFacts{Name: earlierName, ServiceName: svcName, LoadBalancers: []*iaas.LoadBalancer{earlierLB(1, svcTag)}}, target, AdoptNone, nil, "", nil},
		{"other name or failed: none", facts("prod", renamed, failed), target, AdoptNone, nil, "", nil},
		{"service tag of another Service: none", facts("prod", earlierLB(1, "@k8s.Service=other")), target, AdoptNone, nil, "", nil},
		{"one, no cluster tag: adopt", facts("prod", earlierLB(1, svcTag)), target, AdoptIt, []string{"1"}, "",
			[]string{"@k8s", svcTag, desired.ClusterTag("prod"), desired.ServiceTag("u1")}},
		{"one, same cluster ID: adopt", facts("prod", earlierLB(1, "@k8s.ClusterID=prod", svcTag)), target, AdoptIt, []string{"1"}, "",
			[]string{"@k8s.ClusterID=prod", desired.ClusterTag("prod")}},
		{"one, other cluster ID: refused", facts("prod", earlierLB(1, "@k8s.ClusterID=stage", svcTag)), target, AdoptRefused, []string{"1"}, "@k8s.ClusterID=stage", nil},
		{"two: refused naming both", facts("prod", earlierLB(1, svcTag), earlierLB(2, svcTag)), target, AdoptRefused, []string{"1", "2"}, "2 load balancers", nil},
		{"another switch: refused", facts("prod", earlierLB(1, svcTag)), AdoptTarget{ClusterID: "prod", UID: "u1", Switches: []types.ID{8}}, AdoptRefused, []string{"1"}, "switch 7", nil},
		{"one of several configured blocks: adopted", facts("prod", earlierLB(1, svcTag)), AdoptTarget{ClusterID: "prod", UID: "u1", Switches: []types.ID{8, 7}, Ports: 1}, AdoptIt, []string{"1"}, "", nil},
		{"none of several configured blocks: refused", facts("prod", earlierLB(1, svcTag)), AdoptTarget{ClusterID: "prod", UID: "u1", Switches: []types.ID{8, 9}}, AdoptRefused, []string{"1"}, "one of the switches 8, 9", nil},
		{"no switch for the Service: refused", facts("prod", earlierLB(1, svcTag)), AdoptTarget{ClusterID: "prod", UID: "u1", SwitchErr: "no router+switch found"}, AdoptRefused, []string{"1"}, "no router+switch", nil},
		{"already another cluster's: refused", facts("prod", earlierLB(1, svcTag, desired.ClusterTag("other"), desired.ServiceTag("u9"))), target, AdoptRefused, []string{"1"}, "another cluster", nil},
		{"VIP shown by another Service: refused", facts("prod", earlierLB(1, svcTag)), AdoptTarget{ClusterID: "prod", UID: "u1", Switches: []types.ID{7}, ShownBy: map[string]string{"203.0.113.9": "shop/web"}}, AdoptRefused, []string{"1"}, "shop/web", nil},
		{"too many ports: refused", facts("prod", earlierLB(1, svcTag)), AdoptTarget{ClusterID: "prod", UID: "u1", Switches: []types.ID{7}, Ports: 21}, AdoptRefused, []string{"1"}, "21 ports", nil},
		{"no room for two tags: refused", facts("prod", earlierLB(1, svcTag, "t1", "t2", "t3", "t4", "t5", "t6", "t7")), target, AdoptRefused, []string{"1"}, "tags", nil},
	}
	for _, c := range cases {
		got := AdoptEarlier(c.f, c.t)
		if got.Kind != c.want || !slices.Equal(got.IDs, c.ids) || !strings.Contains(got.Why, c.whyHas) {
			t.Errorf("%s: got %+v, want kind %d ids %v why ~%q", c.name, got, c.want, c.ids, c.whyHas)
		}
		for _, tag := range c.tagsHas {
			if !slices.Contains(got.Tags, tag) {
				t.Errorf("%s: tags %v lack %s", c.name, got.Tags, tag)
			}
		}
	}
}

func TestAdoptByID(t *testing.T) {
	target := AdoptTarget{ClusterID: "prod", UID: "u1", Switches: []types.ID{7}, Ports: 2}
	plain := func(tags ...string) *iaas.LoadBalancer {
		lb := earlierLB(5, tags...)
		lb.Tags = tags
		return lb
	}
	failed := plain()
	failed.Availability = types.Availabilities.Failed
	cases := []struct {
		name   string
		lb     *iaas.LoadBalancer
		want   AdoptKind
		whyHas string
	}{
		{"absent", nil, AdoptRefused, "no load balancer"},
		{"absent, adopted before (deleted outside): none, created again", nil, AdoptNone, ""},
		{"failed", failed, AdoptRefused, "failed"},
		{"untagged (made by hand, or preserved): adopt", plain("web"), AdoptIt, ""},
		{"another Service of this cluster: refused", plain(desired.ClusterTag("prod"), desired.ServiceTag("u2")), AdoptRefused, "another Service"},
		{"another cluster: refused", plain(desired.ClusterTag("stage"), desired.ServiceTag("u2")), AdoptRefused, "another cluster"},
		{"shared: refused", plain(desired.SharingTag("team")), AdoptRefused, "shared by key team"},
		{"cluster tag alone (being deleted): refused", plain(desired.ClusterTag("prod")), AdoptRefused, "without a Service"},
		{"another switch", plain(), AdoptRefused, "switch 7"},
	}
	for _, c := range cases {
		tt := target
		if c.name == "another switch" {
			tt.Switches = []types.ID{9}
		}
		if strings.HasPrefix(c.name, "absent, adopted before") {
			tt.RecordedID = "5"
		}
		got := AdoptByID("5", c.lb, tt)
		if got.Kind != c.want || !strings.Contains(got.Why, c.whyHas) {
			t.Errorf("%s: got %+v, want kind %d why ~%q", c.name, got, c.want, c.whyHas)
		}
		if got.Kind == AdoptIt && (!slices.Contains(got.Tags, "web") || !desired.HasTags(got.Tags, desired.ClusterTag("prod"), desired.ServiceTag("u1"))) {
			t.Errorf("%s: tags %v", c.name, got.Tags)
		}
	}
}

func TestStillAdoptable(t *testing.T) {
	base := earlierLB(1, "@k8s.Service=web")
	same := *base
	same.Tags = []string{"@k8s.Service=web", "@k8s"} // order does not matter
	retagged := *base
	retagged.Tags = append(slices.Clone(base.Tags), desired.ClusterTag("other"))
	edited := *base
	edited.SettingsHash = "h2"
	for _, c := range []struct {
		name  string
		fresh *iaas.LoadBalancer
		want  bool
	}{{"unchanged", &same, true}, {"tagged by someone meanwhile", &retagged, false}, {"settings edited meanwhile", &edited, false}} {
		if got := StillAdoptable(base, c.fresh); got != c.want {
			t.Errorf("%s: %v", c.name, got)
		}
	}
}

func TestLeaveOrPreserve(t *testing.T) {
	ref := desired.ServiceRef{Namespace: "ns", Name: "web", UID: "u1"}
	own := &iaas.LoadBalancer{Tags: []string{"@k8s", desired.ClusterTag("prod"), desired.ServiceTag("u1")}}
	shared := &iaas.LoadBalancer{Tags: []string{desired.ClusterTag("prod"), desired.SharingTag("k"), desired.ServiceTag("u1"), desired.ServiceTag("u2")}}
	lastShared := &iaas.LoadBalancer{Tags: []string{desired.ClusterTag("prod"), desired.SharingTag("k"), desired.ServiceTag("u1")}}
	cases := []struct {
		name     string
		lb       *iaas.LoadBalancer
		preserve bool
		want     LeaveKind
		tags     []string
	}{
		{"own, not preserved: delete", own, false, LeaveDelete, nil},
		{"own, preserved: untag, earlier tags kept", own, true, LeavePreserve, []string{"@k8s"}},
		{"shared, others stay: leave as usual", shared, true, LeaveMember, nil},
		{"shared, last member preserved: untag all", lastShared, true, LeavePreserve, []string{}},
		{"not a member: nothing", &iaas.LoadBalancer{Tags: []string{desired.ClusterTag("prod"), desired.ServiceTag("u2")}}, true, LeaveNothing, nil},
	}
	for _, c := range cases {
		got := LeaveOrPreserve(c.lb, "u1", ref, c.preserve)
		if got.Kind != c.want || (c.want == LeavePreserve && !slices.Equal(got.Tags, c.tags)) {
			t.Errorf("%s: got %+v", c.name, got)
		}
	}
}

func TestAdoptELBByID(t *testing.T) {
	target := ELBAdoptTarget{ClusterID: "c1", UID: "u1", Region: "is1", ShownBy: map[string]string{"198.18.0.9": "ns/other"}}
	free := &iaas.ProxyLB{ID: 5, Region: "is1", VirtualIPAddress: "198.18.0.2", Tags: types.Tags{"web"}, Availability: types.Availabilities.Available}
	with := func(mut func(*iaas.ProxyLB)) *iaas.ProxyLB { c := *free; mut(&c); return &c }
	for _, c := range []struct {
		name string
		elb  *iaas.ProxyLB
		t    ELBAdoptTarget
		kind AdoptKind
		why  string
	}{
		{"free, same region", free, target, AdoptIt, ""},
		{"missing", nil, target, AdoptRefused, "no enhanced load balancer"},
		{"missing, but the Service had one", nil, ELBAdoptTarget{RecordedID: "5"}, AdoptNone, ""},
		{"failed", with(func(e *iaas.ProxyLB) { e.Availability = types.Availabilities.Failed }), target, AdoptRefused, "failed"},
		{"another cluster's", with(func(e *iaas.ProxyLB) { e.Tags = types.Tags{desired.ClusterTag("c2"), desired.ServiceTag("x")} }), target, AdoptRefused, "another cluster"},
		{"another Service's", with(func(e *iaas.ProxyLB) { e.Tags = types.Tags{desired.ClusterTag("c1"), desired.ServiceTag("x")} }), target, AdoptRefused, "another Service"},
		{"another region", with(func(e *iaas.ProxyLB) { e.Region = "tk1" }), target, AdoptRefused, "region tk1"},
		{"VIP shown elsewhere", with(func(e *iaas.ProxyLB) { e.VirtualIPAddress = "198.18.0.9" }), target, AdoptRefused, "ns/other"},
		{"no room for the tags", with(func(e *iaas.ProxyLB) {
			e.Tags = nil
			for i := 0; i < desired.MaxTags-1; i++ {
				e.Tags = append(e.Tags, fmt.Sprintf("t%d", i))
			}
		}), target, AdoptRefused, "tags"},
	} {
		a := AdoptELBByID("5", c.elb, c.t)
		if a.Kind != c.kind || !strings.Contains(a.Why, c.why) {
			t.Errorf("%s: %+v, want kind %v saying %q", c.name, a, c.kind, c.why)
		}
		if a.Kind == AdoptIt && !SameTags(a.Tags, []string{"web", desired.ClusterTag("c1"), desired.ServiceTag("u1")}) {
			t.Errorf("%s: tags %v", c.name, a.Tags)
		}
	}
	fresh := *free
	if !StillAdoptableELB(free, &fresh) {
		t.Error("an unchanged ELB is adoptable")
	}
	fresh.Tags = types.Tags{desired.ClusterTag("c2")}
	if StillAdoptableELB(free, &fresh) {
		t.Error("an ELB tagged since the decision is not")
	}
}
