package torture

// The invariants of Services of type enhanced (an Enhanced Load Balancer,
// ELB, "proxylb" in the API; docs/load-balancers.md, "Enhanced Load
// Balancers"), checked with the others after the settle phase
// (check_test.go numbers them; the ELB ones share the numbers):
//
//  1. every live LoadBalancer Service of type enhanced has exactly one ELB
//     with its tags (cluster=<id>, service-uid=<uid>) and no appliance; the
//     ELB is on the plan the elb-plan annotation asks for (100 unset), binds
//     the Service's ports, and its servers are, for each port, the eligible
//     nodes' global addresses (their servers' shared-segment NIC, of any
//     zone: an ELB is global) on that port's NodePort, enabled; the
//     Service's status shows the ELB's VIP, with the ELB's FQDN as hostname
//     (none when it has none) and ipMode Proxy; its elb-id annotation names
//     the ELB (reported as inv6 when the Service's ELB was damaged out of
//     band during the seed);
//  2. no ELB of the cluster carries the service-uid of a Service that is
//     gone or not of type LoadBalancer (a leak);
//  3. ELBs that are not this cluster's (another cluster's with the trap
//     UID, one with this cluster's tag but no service-uid) are never
//     written or deleted: byte for byte what they were at the start, and no
//     write request reached them (world.noteRequest);
//  7. each ELB of the cluster carries exactly one service-uid tag (never
//     two Services' on one ELB), and no tag twice;
//  8. no ELB of the cluster is without a service-uid tag.

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/naked"
	"github.com/sacloud/iaas-api-go/types"
	v1 "k8s.io/api/core/v1"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/e2e/sakurasim"
)

// defaultELBShare is the default of -torture.elb.
const defaultELBShare = 0.25

// isELBService: the Service asks for an Enhanced Load Balancer (the
// harness's cloud-config keeps the default type internet and sets no ELB
// class, so only the annotation makes one).
func isELBService(s *v1.Service) bool {
	return strings.EqualFold(s.Annotations[annType], typeEnhanced)
}

func (w *world) checkELBs(services []*v1.Service, nodes []*v1.Node, st *sakurasim.State,
	ours map[types.ID]*naked.LoadBalancer, ourIDs []types.ID, damaged map[string][]string) []violation {
	var out []violation
	add := func(kind, format string, args ...any) {
		out = append(out, violation{kind: kind, msg: fmt.Sprintf(format, args...)})
	}
	adds := func(s *v1.Service, kind, format string, args ...any) {
		if len(damaged[string(s.UID)]) > 0 && strings.HasPrefix(kind, "inv1") {
			kind = "inv6" + strings.TrimPrefix(kind, "inv1")
		}
		out = append(out, violation{kind: kind, msg: fmt.Sprintf(format, args...) + damageNote(damaged[string(s.UID)]), svc: key(s)})
	}

	// Invariant 3: the foreign ELBs as they were.
	seen := map[types.ID]bool{}
	for _, p := range st.ProxyLBs {
		want, foreign := w.foreignELBs[p.ID]
		if !foreign {
			continue
		}
		seen[p.ID] = true
		if data, _ := json.Marshal(p); string(data) != want {
			add("inv3/foreign-elb-changed", "ELB %s (%s), not this cluster's, changed:\n      was %s\n      now %s", p.ID, p.Name, want, data)
		}
	}
	for id := range w.foreignELBs {
		if !seen[id] {
			add("inv3/foreign-elb-deleted", "ELB %s, not this cluster's, was deleted", id)
		}
	}

	// The cluster's ELBs, by the tag.
	var elbs []*naked.ProxyLB
	for _, p := range st.ProxyLBs {
		if _, foreign := w.foreignELBs[p.ID]; !foreign && hasTag(p.Tags, tagCluster+clusterID) {
			elbs = append(elbs, p)
		}
	}
	sort.Slice(elbs, func(i, j int) bool { return elbs[i].ID < elbs[j].ID })

	// The nodes an ELB must reach: those the service controller passes
	// (not being deleted, not excluded), at their server's global address.
	serverOf := serverMatcher(st.Servers)
	var globals []string
	for _, n := range filterNodes(nodes, stableNodeSetPredicates...) {
		if s := serverOf(n); s != nil {
			if ip := sharedIP(s.Interfaces); ip != "" {
				globals = append(globals, ip)
			}
		}
	}
	sort.Strings(globals)

	live := map[string]*v1.Service{} // UID -> live type enhanced LoadBalancer Service
	for _, s := range services {
		if s.DeletionTimestamp != nil || !wantsLoadBalancer(s) || !isELBService(s) {
			continue // the deletion and cleanup checks of check() cover these
		}
		uid := string(s.UID)
		live[uid] = s
		if owned := ownedBy(ours, ourIDs, uid); len(owned) > 0 {
			adds(s, "inv1/elb-has-appliance", "Service %s is of type enhanced but appliances %v carry its service-uid tag", key(s), owned)
		}
		var mine []*naked.ProxyLB
		for _, p := range elbs {
			if hasTag(p.Tags, tagService+uid) {
				mine = append(mine, p)
			}
		}
		if len(mine) != 1 {
			var ids []types.ID
			for _, p := range mine {
				ids = append(ids, p.ID)
			}
			adds(s, "inv1/elb-count", "Service %s (uid …%s) of type enhanced has %d ELBs %v, want exactly one", key(s), short(uid), len(mine), ids)
			if len(mine) == 0 {
				continue
			}
		}
		p := mine[0]
		for _, e := range w.elbProblems(s, p, globals) {
			adds(s, "inv1/elb", "Service %s on ELB %s: %s", key(s), p.ID, e)
		}
	}

	// Invariants 2, 7 and 8 from the ELBs' side.
	for _, p := range elbs {
		uids := memberUIDs(p.Tags)
		switch {
		case len(uids) == 0:
			add("inv8/elb-leak", "ELB %s (%s, tags %v) is the cluster's but carries no service-uid tag: nothing will ever delete it", p.ID, p.Name, p.Tags)
		case len(uids) > 1:
			add("inv7/elb-shared", "ELB %s carries the service-uid tags of %d Services (%s): an ELB serves one Service", p.ID, len(uids), shortUIDs(uids))
		}
		for _, u := range uids {
			if live[u] == nil {
				add("inv2/leftover-elb", "ELB %s (%s) carries service-uid …%s of no LoadBalancer Service of type enhanced%s", p.ID, p.Name, short(u), gone(services, u))
			}
		}
		count := map[string]int{}
		for _, t := range p.Tags {
			count[t]++
		}
		for t, n := range count {
			if n > 1 {
				add("inv7/elb-duplicate-tag", "ELB %s carries tag %s %d times (tags %v)", p.ID, t, n, p.Tags)
			}
		}
	}
	return out
}

// elbProblems compares the Service's ELB with what the Service asks for.
func (w *world) elbProblems(s *v1.Service, p *naked.ProxyLB, globals []string) []string {
	var out []string
	want := defaultELBPlan
	if v := s.Annotations[annELBPlan]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			// The actors leave no invalid annotation at the end (fixups).
			return []string{fmt.Sprintf("the harness left an invalid %s %q", annELBPlan, v)}
		}
		want = n
	}
	if p.Plan.Int() != want {
		out = append(out, fmt.Sprintf("plan %d cps, want %d (%s %q)", p.Plan.Int(), want, annELBPlan, s.Annotations[annELBPlan]))
	}
	var set naked.ProxyLBSetting
	if p.Settings != nil && p.Settings.ProxyLB != nil {
		set = *p.Settings.ProxyLB
	}
	var wantPorts, ports []int
	var wantServers, servers []string
	for _, sp := range s.Spec.Ports {
		wantPorts = append(wantPorts, int(sp.Port))
		for _, ip := range globals {
			wantServers = append(wantServers, fmt.Sprintf("%s:%d", ip, sp.NodePort))
		}
	}
	for _, bp := range set.BindPorts {
		if bp != nil {
			ports = append(ports, bp.Port)
		}
	}
	for _, sv := range set.Servers {
		servers = append(servers, fmt.Sprintf("%s:%d", sv.IPAddress, sv.Port))
		if !sv.Enabled {
			out = append(out, fmt.Sprintf("server %s:%d is not enabled", sv.IPAddress, sv.Port))
		}
	}
	sort.Ints(wantPorts)
	sort.Ints(ports)
	sort.Strings(wantServers)
	sort.Strings(servers)
	if !reflect.DeepEqual(ports, wantPorts) {
		out = append(out, fmt.Sprintf("bind ports %v, want the Service's ports %v", ports, wantPorts))
	}
	if !reflect.DeepEqual(servers, wantServers) && !(len(servers) == 0 && len(wantServers) == 0) {
		out = append(out, fmt.Sprintf("servers %v, want the nodes' global addresses on the NodePorts %v", servers, wantServers))
	}
	var vip, fqdn string
	if p.Status != nil {
		vip, fqdn = p.Status.VirtualIPAddress, p.Status.FQDN
	}
	in := s.Status.LoadBalancer.Ingress
	switch {
	case len(in) != 1:
		out = append(out, fmt.Sprintf("status shows %d ingress entries %v, want one: the ELB's VIP %s", len(in), ingressText(in), vip))
	case in[0].IP != vip:
		out = append(out, fmt.Sprintf("status shows %s, want the ELB's VIP %s", ingressText(in), vip))
	case in[0].Hostname != fqdn:
		out = append(out, fmt.Sprintf("status hostname %q, want the ELB's FQDN %q", in[0].Hostname, fqdn))
	case in[0].IPMode == nil || *in[0].IPMode != v1.LoadBalancerIPModeProxy:
		out = append(out, fmt.Sprintf("status %s has ipMode %s, want Proxy (the ELB terminates connections)", ingressText(in), ipModeText(in[0].IPMode)))
	}
	if id := s.Annotations[annELBID]; id != p.ID.String() {
		out = append(out, fmt.Sprintf("%s is %q, want the ELB's ID %s", annELBID, id, p.ID))
	}
	return out
}

func ingressText(in []v1.LoadBalancerIngress) string {
	parts := make([]string, len(in))
	for i, x := range in {
		parts[i] = strings.TrimSuffix(x.IP+"/"+x.Hostname, "/")
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func ipModeText(m *v1.LoadBalancerIPMode) string {
	if m == nil {
		return "unset"
	}
	return string(*m)
}

// describeELBs lists the cluster's ELBs for the trace of a failing run.
func (w *world) describeELBs() string {
	var b strings.Builder
	for _, p := range w.sim.Snapshot().ProxyLBs {
		if _, foreign := w.foreignELBs[p.ID]; foreign {
			continue
		}
		var tags, servers []string
		for _, t := range p.Tags {
			t = strings.TrimPrefix(t, "k8s.usacloud.jp/")
			if u, ok := strings.CutPrefix(t, "service-uid="); ok {
				t = "uid=…" + short(u)
			}
			tags = append(tags, t)
		}
		var ports []int
		var vip, fqdn string
		if p.Settings != nil && p.Settings.ProxyLB != nil {
			for _, bp := range p.Settings.ProxyLB.BindPorts {
				if bp != nil {
					ports = append(ports, bp.Port)
				}
			}
			for _, sv := range p.Settings.ProxyLB.Servers {
				servers = append(servers, fmt.Sprintf("%s:%d", sv.IPAddress, sv.Port))
			}
		}
		if p.Status != nil {
			vip, fqdn = p.Status.VirtualIPAddress, p.Status.FQDN
		}
		fmt.Fprintf(&b, "      ELB %s %s plan=%d vip=%s fqdn=%s tags=%v ports=%v servers=%v\n", p.ID, p.Name, p.Plan.Int(), vip, fqdn, tags, ports, servers)
	}
	return b.String()
}

// TestCheckerCatchesELBDamage makes sure the ELB invariants are not
// vacuous: one type enhanced Service is brought up and settled, the
// controller is stopped, and then each kind of damage must be reported.
func TestCheckerCatchesELBDamage(t *testing.T) {
	o := currentOptions()
	o.settle = 10 * time.Second
	o.elb = max(o.elb, 0.25) // the foreign ELBs are made only with ELBs driven
	w, err := newWorld(0, o)
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	if err := w.startCCM(); err != nil {
		t.Fatal(err)
	}
	m := &svcModel{ns: "default", name: "shop", uid: serviceUID(0, 9, 1), isLB: true, ports: []int32{80, 443}, elb: true, elbPlan: "500"}
	s := &v1.Service{}
	m.applyTo(s)
	if err := w.createService(s); err != nil {
		t.Fatal(err)
	}
	if v := w.settle(); len(v) > 0 {
		t.Fatalf("a single ELB Service does not settle: %v\n%s", v, w.tr.String(true))
	}
	w.stopCCM() // nothing repairs what follows

	// Each damage stays, so each expectation names what only it causes.
	expect := func(what, kind, says string) {
		t.Helper()
		for _, v := range w.check() {
			if strings.HasPrefix(v.kind, kind) && strings.Contains(v.msg, says) {
				return
			}
		}
		t.Errorf("%s: no %s violation saying %q reported; got %v", what, kind, says, w.check())
	}
	if v := w.check(); len(v) > 0 {
		t.Fatalf("violations before any damage: %v", v)
	}
	found, err := w.oobELB.Find(bg, &iaas.FindCondition{})
	if err != nil {
		t.Fatal(err)
	}
	var ours, foreign *iaas.ProxyLB
	for _, p := range found.ProxyLBs {
		if _, f := w.foreignELBs[p.ID]; f {
			foreign = p
		} else {
			ours = p
		}
	}
	if ours == nil || foreign == nil || len(found.ProxyLBs) != 3 {
		t.Fatalf("want the Service's ELB and the two foreign ones, got %d ELBs", len(found.ProxyLBs))
	}
	if ours.Plan != types.ProxyLBPlans.CPS500 || len(ours.Servers) != 2*9 {
		t.Fatalf("the Service's ELB: plan %d, %d servers; want 500 and 18 (9 nodes with a global address, 2 ports)", ours.Plan, len(ours.Servers))
	}

	// A server taken out.
	if _, err := w.oobELB.UpdateSettings(bg, ours.ID, &iaas.ProxyLBUpdateSettingsRequest{HealthCheck: ours.HealthCheck,
		BindPorts: ours.BindPorts, Servers: ours.Servers[1:], SettingsHash: ours.SettingsHash}); err != nil {
		t.Fatal(err)
	}
	expect("server removed", "inv1/elb", "servers [")
	// The status without ipMode Proxy.
	cur, err := w.getService("default", "shop")
	if err != nil {
		t.Fatal(err)
	}
	st := cur.Status.LoadBalancer.DeepCopy()
	st.Ingress[0].IPMode = nil
	if err := w.updateServiceStatus("default", "shop", st); err != nil {
		t.Fatal(err)
	}
	expect("ipMode unset", "inv1/elb", "ipMode unset")
	// The plan changed (the ELB answers under a new ID).
	changed, err := w.oobELB.ChangePlan(bg, ours.ID, &iaas.ProxyLBChangePlanRequest{
		ServiceClass: types.ProxyLBServiceClass(types.ProxyLBPlans.CPS1000, types.ProxyLBRegions.IS1)})
	if err != nil {
		t.Fatal(err)
	}
	expect("plan changed", "inv1/elb", "plan 1000 cps, want 500")
	expect("ID changed", "inv1/elb", annELBID)
	ours = changed
	// A foreign ELB written.
	if _, err := w.oobELB.UpdateSettings(bg, foreign.ID, &iaas.ProxyLBUpdateSettingsRequest{HealthCheck: foreign.HealthCheck,
		BindPorts: foreign.BindPorts, Servers: nil, SettingsHash: foreign.SettingsHash}); err != nil {
		t.Fatal(err)
	}
	expect("foreign ELB changed", "inv3/foreign-elb-changed", foreign.ID.String())
	// An ELB of the cluster without a service-uid, and one with two.
	for _, tags := range []types.Tags{{tagCluster + clusterID}, {tagCluster + clusterID, tagService + m.uid, tagService + serviceUID(0, 9, 2)}} {
		if _, err := w.oobELB.Create(bg, &iaas.ProxyLBCreateRequest{Plan: types.ProxyLBPlans.CPS100, Region: types.ProxyLBRegions.IS1,
			Name: "leak", Tags: tags, HealthCheck: &iaas.ProxyLBHealthCheck{Protocol: types.ProxyLBProtocols.TCP, DelayLoop: 10},
			BindPorts: []*iaas.ProxyLBBindPort{{ProxyMode: types.ProxyLBProxyModes.TCP, Port: 80}}}); err != nil {
			t.Fatal(err)
		}
	}
	expect("ELB without a service-uid", "inv8/elb-leak", "no service-uid")
	expect("ELB of two Services", "inv7/elb-shared", "2 Services")
	expect("ELB of a Service that never was", "inv2/leftover-elb", short(serviceUID(0, 9, 2)))
	expect("two ELBs for the Service", "inv1/elb-count", "has 2 ELBs")
	// The Service's ELB deleted.
	if err := w.oobELB.Delete(bg, ours.ID); err != nil {
		t.Fatal(err)
	}
	// The Service gone while an ELB carries its tag.
	if err := w.updateService("default", "shop", m.uid, func(s *v1.Service) { s.Finalizers = nil }); err != nil {
		t.Fatal(err)
	}
	if err := w.deleteService("default", "shop", m.uid); err != nil {
		t.Fatal(err)
	}
	expect("Service deleted, ELB left", "inv2/leftover-elb", short(m.uid))
}
