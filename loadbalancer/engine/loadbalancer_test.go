package engine

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/fake"
	"github.com/sacloud/iaas-api-go/types"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/annotations"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/decide"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/desired"
	v1 "k8s.io/api/core/v1"
	cloudprovider "k8s.io/cloud-provider"
)

func TestCreateThenStatus(t *testing.T) {
	e := newEnv(t, 28)
	nodes := e.addNodes(3, 0)
	svc := service("web", 80)

	_, err := e.lb.EnsureLoadBalancer(e.ctx, "test", svc, nodes)
	if !isRetry(err) {
		t.Fatalf("first ensure must return a RetryError while booting, got %v", err)
	}
	if n, by := writes(e.client, nil); n != 1 || by["LoadBalancer.Create"] != 1 {
		t.Fatalf("want exactly one Create, got %v", by)
	}
	if ev := findEvent(e.events(), "Normal", ReasonCreated); ev == "" {
		t.Fatalf("no %s event", ReasonCreated)
	}
	st := e.ensureUp(svc, nodes)
	lbs := e.lbs()
	if len(lbs) != 1 {
		t.Fatalf("want 1 appliance, got %d", len(lbs))
	}
	lb := lbs[0]
	vip := lb.VirtualIPAddresses[0].VirtualIPAddress
	if len(st.Ingress) != 1 || st.Ingress[0].IP != vip || st.Ingress[0].IPMode == nil || *st.Ingress[0].IPMode != v1.LoadBalancerIPModeVIP {
		t.Fatalf("status %+v, vip %s", st, vip)
	}
	// VIP and appliance address come from the block, past the nodes' addresses.
	if vip != e.ip(3) || len(lb.IPAddresses) != 1 || lb.IPAddresses[0] != e.ip(4) {
		t.Fatalf("vip %s appliance %v; want %s and %s", vip, lb.IPAddresses, e.ip(3), e.ip(4))
	}
	if lb.Name != desired.Name("test", svc) || !hasAll(lb.Tags, desired.ClusterTag("test"), desired.ServiceTag("uid-web")) {
		t.Fatalf("name/tags %s %v", lb.Name, lb.Tags)
	}
	if lb.NetworkMaskLen != 28 || lb.DefaultRoute != e.sw.Subnets[0].DefaultRoute || lb.SwitchID != e.sw.ID || lb.PlanID != desired.PlanIDStandard {
		t.Fatalf("network %d %s switch %s plan %s", lb.NetworkMaskLen, lb.DefaultRoute, lb.SwitchID, lb.PlanID)
	}
	v := lb.VirtualIPAddresses[0]
	if v.Port.Int() != 80 || len(v.Servers) != 3 {
		t.Fatalf("vip entry %+v", v)
	}
	for i, s := range v.Servers {
		if s.IPAddress != e.ip(i) || s.Port.Int() != 80 || s.Enabled != types.StringTrue || s.HealthCheck.Protocol != "ping" {
			t.Fatalf("real server %d: %+v %+v", i, s, s.HealthCheck)
		}
	}
	// GetLoadBalancer agrees.
	gst, exists, err := e.lb.GetLoadBalancer(e.ctx, "test", svc)
	if err != nil || !exists || gst.Ingress[0].IP != vip {
		t.Fatalf("GetLoadBalancer %v %v %v", gst, exists, err)
	}
}

func hasAll(tags types.Tags, want ...string) bool {
	set := map[string]bool{}
	for _, t := range tags {
		set[t] = true
	}
	for _, w := range want {
		if !set[w] {
			return false
		}
	}
	return true
}

func TestNoOpResyncMakesNoWrites(t *testing.T) {
	e := newEnv(t, 28)
	nodes := e.addNodes(2, 0)
	svc := service("web", 80, 443)
	svc.Annotations[annotations.HealthCheckProtocol] = "http"
	svc.Annotations[annotations.HealthCheckRetry] = "3"
	e.ensureUp(svc, nodes)
	snap := e.client.Stats().Snapshot()
	for i := 0; i < 3; i++ {
		if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", svc, nodes); err != nil {
			t.Fatal(err)
		}
		if err := e.lb.UpdateLoadBalancer(e.ctx, "test", svc, nodes); err != nil {
			t.Fatal(err)
		}
	}
	if n, by := writes(e.client, snap); n != 0 {
		t.Fatalf("steady state made writes: %v", by)
	}
}

func TestAdoptAfterCrash(t *testing.T) {
	e := newEnv(t, 28)
	nodes := e.addNodes(2, 0)
	svc := service("web", 80)
	if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", svc, nodes); !isRetry(err) {
		t.Fatalf("want retry, got %v", err)
	}
	// The controller dies before writing status; a new one starts.
	e.rebuild()
	e.ensureUp(svc, nodes)
	if got := len(e.lbs()); got != 1 {
		t.Fatalf("a restart created a second appliance: %d", got)
	}
	if _, by := writes(e.client, nil); by["LoadBalancer.Create"] != 1 {
		t.Fatalf("creates: %v", by)
	}
}

func TestUpdatePortsNodesHealthCheck(t *testing.T) {
	e := newEnv(t, 27)
	nodes := e.addNodes(3, 0)
	svc := service("web", 80)
	e.ensureUp(svc, nodes)

	// Node change: one node leaves, another is excluded, a new one joins.
	more := e.addNodes(1, 3)
	excluded := nodes[1].DeepCopy()
	excluded.Labels = map[string]string{desired.ExcludeLabel: ""}
	snap := e.client.Stats().Snapshot()
	newNodes := []*v1.Node{nodes[0], excluded, more[0]}
	if err := e.lb.UpdateLoadBalancer(e.ctx, "test", svc, newNodes); err != nil {
		t.Fatal(err)
	}
	if n, by := writes(e.client, snap); n > 2 || by["LoadBalancer.UpdateSettings"] != 1 || by["LoadBalancer.Config"] != 1 {
		t.Fatalf("node change writes: %v", by)
	}
	got := realServers(e.lbs()[0], 80)
	if strings.Join(got, ",") != e.ip(0)+","+e.ip(3) {
		t.Fatalf("real servers %v", got)
	}

	// Ports: add 8080, keep 80.
	svc.Spec.Ports = append(svc.Spec.Ports, v1.ServicePort{Name: "alt", Port: 8080, Protocol: v1.ProtocolTCP})
	snap = e.client.Stats().Snapshot()
	e.ensureUp(svc, newNodes)
	if n, _ := writes(e.client, snap); n != 2 {
		t.Fatalf("port change: %d writes", n)
	}
	lb := e.lbs()[0]
	if len(lb.VirtualIPAddresses) != 2 || len(realServers(lb, 8080)) != 2 {
		t.Fatalf("ports not applied: %+v", lb.VirtualIPAddresses)
	}

	// Health check: http with path and status, interval, retry, timeout.
	svc.Annotations[annotations.HealthCheckProtocol] = "http"
	svc.Annotations[annotations.HealthCheckPath] = "/healthz"
	svc.Annotations[annotations.HealthCheckStatus] = "204"
	svc.Annotations[annotations.HealthzInterval] = "20"
	svc.Annotations[annotations.HealthCheckRetry] = "2"
	svc.Annotations[annotations.HealthCheckTimeout] = "5"
	svc.Annotations[annotations.SorryServer] = e.ip(9)
	e.ensureUp(svc, newNodes)
	lb = e.lbs()[0]
	v := lb.VirtualIPAddresses[0]
	hc := v.Servers[0].HealthCheck
	if v.DelayLoop.Int() != 20 || v.SorryServer != e.ip(9) || hc.Protocol != "http" || hc.Path != "/healthz" || hc.ResponseCode.Int() != 204 || hc.Retry.Int() != 2 || hc.ConnectTimeout.Int() != 5 {
		t.Fatalf("health check not applied: %+v %+v", v, hc)
	}
	// And it is stable afterwards.
	snap = e.client.Stats().Snapshot()
	e.ensureUp(svc, newNodes)
	if n, by := writes(e.client, snap); n != 0 {
		t.Fatalf("resync after health check change wrote %v", by)
	}
}

func realServers(lb *iaas.LoadBalancer, port int) []string {
	var out []string
	for _, v := range lb.VirtualIPAddresses {
		if v.Port.Int() == port {
			for _, s := range v.Servers {
				out = append(out, s.IPAddress)
			}
		}
	}
	return out
}

func TestDeleteIsStepwiseIdempotentAndOwnedOnly(t *testing.T) {
	e := newEnv(t, 28)
	nodes := e.addNodes(1, 0)
	svc := service("web", 80)
	e.ensureUp(svc, nodes)
	foreign := e.putForeignLB(e.ip(8), 7, types.Tags{"someone-else"})
	otherCluster := e.putForeignLB(e.ip(9), 8, types.Tags{desired.ClusterTag("other"), desired.ServiceTag("uid-web")})

	snap := e.client.Stats().Snapshot()
	// A shutdown that ends within DeleteConfirmWaits is finished in the
	// same call: no error, so no Warning from the service controller.
	if err := e.lb.EnsureLoadBalancerDeleted(e.ctx, "test", svc); err != nil {
		t.Fatalf("first delete call should shut down, wait and delete, got %v", err)
	}
	if _, by := writes(e.client, snap); by["LoadBalancer.Shutdown"] != 1 || by["LoadBalancer.Delete"] != 1 {
		t.Fatalf("delete writes %v", by)
	}
	left := e.lbs()
	if len(left) != 2 {
		t.Fatalf("want only the two foreign appliances left, got %d", len(left))
	}
	for _, lb := range left {
		if lb.ID != foreign.ID && lb.ID != otherCluster.ID {
			t.Fatalf("unexpected appliance %s left", lb.ID)
		}
		if !lb.InstanceStatus.IsUp() {
			t.Fatalf("foreign appliance %s was touched", lb.ID)
		}
	}
	// Idempotent: already gone is fine and costs no writes.
	snap = e.client.Stats().Snapshot()
	if err := e.lb.EnsureLoadBalancerDeleted(e.ctx, "test", svc); err != nil {
		t.Fatal(err)
	}
	if _, exists, _ := e.lb.GetLoadBalancer(e.ctx, "test", svc); exists {
		t.Fatal("GetLoadBalancer still sees it")
	}
	if n, _ := writes(e.client, snap); n != 0 {
		t.Fatalf("second delete wrote")
	}
	if e.lb.mem.pendingReservations() != 0 {
		t.Fatalf("reservation not released")
	}
}

// putForeignLB puts a running appliance we do not own on the block.
func (e *env) putForeignLB(vip string, vrid int, tags types.Tags) *iaas.LoadBalancer {
	lb := &iaas.LoadBalancer{
		ID: e.id(), Name: "foreign", Class: "loadbalancer", Tags: tags, SwitchID: e.sw.ID, VRID: vrid,
		Availability: types.Availabilities.Available, InstanceStatus: types.ServerInstanceStatuses.Up,
		IPAddresses:        []string{nextIP(vip)},
		VirtualIPAddresses: iaas.LoadBalancerVirtualIPAddresses{{VirtualIPAddress: vip, Port: 80}},
	}
	fake.DataStore.Put(fake.ResourceLoadBalancer, zone, lb.ID, lb)
	return lb
}

func nextIP(s string) string { return netip.MustParseAddr(s).Next().String() }

func TestConflictsWithForeignResources(t *testing.T) {
	e := newEnv(t, 27)              // 27 usable
	nodes := e.addNodes(1, 0)       // ip(0)
	e.putForeignLB(e.ip(1), 1, nil) // ip(1), ip(2), VRID 1
	vr := &iaas.VPCRouter{ID: e.id(), Name: "vr", Class: "vpcrouter",
		Interfaces: []*iaas.VPCRouterInterface{{Index: 0, SwitchID: 0}, {Index: 1, SwitchID: e.sw.ID}},
		Settings: &iaas.VPCRouterSetting{VRID: 2, Interfaces: []*iaas.VPCRouterInterfaceSetting{
			{Index: 1, IPAddress: []string{e.ip(3), e.ip(4)}, VirtualIPAddress: e.ip(5), IPAliases: []string{e.ip(6)}},
		}}}
	fake.DataStore.Put(fake.ResourceVPCRouter, zone, vr.ID, vr)
	db := &iaas.Database{ID: e.id(), Name: "db", Class: "database", SwitchID: e.sw.ID, IPAddresses: []string{e.ip(7)}}
	fake.DataStore.Put(fake.ResourceDatabase, zone, db.ID, db)
	nfs := &iaas.NFS{ID: e.id(), Name: "nfs", Class: "nfs", SwitchID: e.sw.ID, IPAddresses: []string{e.ip(8)}}
	fake.DataStore.Put(fake.ResourceNFS, zone, nfs.ID, nfs)
	mgw := &iaas.MobileGateway{ID: e.id(), Name: "mgw", Class: "mobilegateway",
		Interfaces:        []*iaas.MobileGatewayInterface{{Index: 0}, {Index: 1, SwitchID: e.sw.ID}},
		InterfaceSettings: []*iaas.MobileGatewayInterfaceSetting{{Index: 1, IPAddress: []string{e.ip(9)}}}}
	fake.DataStore.Put(fake.ResourceMobileGateway, zone, mgw.ID, mgw)
	sw, _ := fake.NewSwitchOp().Read(e.ctx, zone, e.sw.ID)
	sw.Subnets = append(sw.Subnets, &iaas.SwitchSubnet{ID: e.id(), NextHop: e.ip(10), NetworkAddress: "198.51.100.0", NetworkMaskLen: 28})
	fake.DataStore.Put(fake.ResourceSwitch, zone, sw.ID, sw)
	e.cfg.ReservedIPRanges = []string{e.ip(11) + "-" + e.ip(12), e.ip(13) + "/32"}
	e.rebuild()

	svc := service("web", 80)
	svc.Annotations[annotations.HA] = "true"
	e.ensureUp(svc, nodes)
	var mine *iaas.LoadBalancer
	for _, lb := range e.lbs() {
		if lb.Name != "foreign" {
			mine = lb
		}
	}
	if mine.VirtualIPAddresses[0].VirtualIPAddress != e.ip(14) || strings.Join(mine.IPAddresses, ",") != e.ip(15)+","+e.ip(16) {
		t.Fatalf("allocated %s %v; want %s and %s,%s", mine.VirtualIPAddresses[0].VirtualIPAddress, mine.IPAddresses, e.ip(14), e.ip(15), e.ip(16))
	}
	if mine.VRID != 3 {
		t.Fatalf("VRID %d collides (1 and 2 are taken)", mine.VRID)
	}

	// A pinned address held by a foreign resource is refused with an Event.
	pinned := service("pinned", 80)
	pinned.Spec.LoadBalancerIP = e.ip(5)
	_, err := e.lb.EnsureLoadBalancer(e.ctx, "test", pinned, nodes)
	if err == nil || isRetry(err) {
		t.Fatalf("pinned conflict accepted: %v", err)
	}
	if ev := findEvent(e.events(), "Warning", ReasonLoadBalancerIPInvalid, e.ip(5), "VPC router"); ev == "" {
		t.Fatalf("no event naming the conflict")
	}
	// Outside the block.
	pinned.Spec.LoadBalancerIP = "192.0.2.1"
	if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", pinned, nodes); err == nil || !strings.Contains(err.Error(), "not a usable address") {
		t.Fatalf("outside address accepted: %v", err)
	}
	// A free pinned address is used.
	pinned.Spec.LoadBalancerIP = e.ip(20)
	st := e.ensureUp(pinned, nodes)
	if st.Ingress[0].IP != e.ip(20) {
		t.Fatalf("pinned address not used: %v", st.Ingress)
	}
}

func TestConcurrentAllocationGivesDistinctAddresses(t *testing.T) {
	e := newEnv(t, 26) // 59 usable: 20 VIPs + 20 appliance addresses + nodes fit
	nodes := e.addNodes(2, 0)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, err := e.lb.EnsureLoadBalancer(e.ctx, "test", service(fmt.Sprintf("svc-%02d", i), 80), nodes)
			if !isRetry(err) {
				errs <- err
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("ensure: %v", err)
	}
	seen := map[string]string{}
	vrids := map[int]bool{}
	lbs := e.lbs()
	if len(lbs) != 20 {
		t.Fatalf("want 20 appliances, got %d", len(lbs))
	}
	for _, lb := range lbs {
		addrs := append([]string{lb.VirtualIPAddresses[0].VirtualIPAddress}, lb.IPAddresses...)
		for _, a := range addrs {
			if other, dup := seen[a]; dup {
				t.Fatalf("address %s given to %s and %s", a, other, lb.Name)
			}
			seen[a] = lb.Name
		}
		if vrids[lb.VRID] {
			t.Fatalf("VRID %d reused", lb.VRID)
		}
		vrids[lb.VRID] = true
	}
}

func TestExhaustedBlockEvent(t *testing.T) {
	e := newEnv(t, 28) // 11 usable
	nodes := e.addNodes(1, 0)
	for i := 0; i < 5; i++ { // 5 x (VIP + appliance) = 10
		if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", service(fmt.Sprintf("s%d", i), 80), nodes); !isRetry(err) {
			t.Fatalf("service %d: %v", i, err)
		}
	}
	snap := e.client.Stats().Snapshot()
	_, err := e.lb.EnsureLoadBalancer(e.ctx, "test", service("s5", 80), nodes)
	if err == nil || isRetry(err) {
		t.Fatalf("exhausted block accepted: %v", err)
	}
	ev := findEvent(e.events(), "Warning", ReasonAddressBlockExhausted, e.sw.Subnets[0].NetworkAddress+"/28", "11 usable", "11 in use")
	if ev == "" {
		t.Fatalf("exhaustion event lacks block/size/usage: %v", err)
	}
	if n, _ := writes(e.client, snap); n != 0 {
		t.Fatalf("exhausted create wrote")
	}
}

func TestUDPRefusedUntilFixed(t *testing.T) {
	e := newEnv(t, 28)
	nodes := e.addNodes(1, 0)
	svc := service("dns", 53)
	svc.Spec.Ports = append(svc.Spec.Ports, v1.ServicePort{Name: "dns-udp", Port: 53, Protocol: v1.ProtocolUDP})
	_, err := e.lb.EnsureLoadBalancer(e.ctx, "test", svc, nodes)
	if err == nil || isRetry(err) {
		t.Fatalf("UDP accepted: %v", err)
	}
	if ev := findEvent(e.events(), "Warning", ReasonUnsupportedProtocol, `"dns-udp" 53/UDP`, "TCP only"); ev == "" {
		t.Fatalf("event does not name the port / TCP only")
	}
	if n, _ := writes(e.client, nil); n != 0 || len(e.lbs()) != 0 {
		t.Fatalf("something was created")
	}
	svc.Spec.Ports = svc.Spec.Ports[:1]
	e.ensureUp(svc, nodes)
	if got := e.lbs(); len(got) != 1 {
		for _, lb := range got {
			t.Logf("lb %s %s %v", lb.ID, lb.Name, lb.Tags)
		}
		t.Fatalf("fixed Service did not provision: %d", len(got))
	}
}

func TestLimits(t *testing.T) {
	e := newEnv(t, 25) // 123 usable
	var ports []int32
	for p := int32(1); p <= 21; p++ {
		ports = append(ports, 8000+p)
	}
	nodes := e.addNodes(45, 0)
	_, err := e.lb.EnsureLoadBalancer(e.ctx, "test", service("wide", ports...), nodes)
	if err == nil || findEvent(e.events(), "Warning", ReasonTooManyPorts, "21 ports", "at most 20") == "" {
		t.Fatalf("21 ports: %v", err)
	}
	if len(e.lbs()) != 0 {
		t.Fatal("created despite too many ports")
	}
	e.ensureUp(service("many-nodes", 80), nodes)
	if got := realServers(e.lbs()[0], 80); len(got) != 40 || got[0] != e.ip(0) || got[39] != e.ip(39) {
		t.Fatalf("want the first 40 nodes by name, got %d: %v", len(got), got)
	}
	if findEvent(e.events(), "Warning", ReasonTooManyNodes, "45 eligible", "node-040") == "" {
		t.Fatal("no TooManyNodes event naming the left-out nodes")
	}
}

func TestInvalidAnnotationsKeepLastGoodAppliance(t *testing.T) {
	bad := map[string]string{
		annotations.Type: "public", annotations.Plan: "gold", annotations.HA: "yes", annotations.LoadBalancerIP: "x",
		annotations.HealthCheckProtocol: "udp", annotations.HealthCheckPath: "noslash", annotations.HealthCheckStatus: "99",
		annotations.HealthzInterval: "1", annotations.HealthCheckRetry: "9", annotations.HealthCheckTimeout: "31",
		annotations.SorryServer: "nope",
	}
	e := newEnv(t, 28)
	nodes := e.addNodes(1, 0)
	svc := service("web", 80)
	e.ensureUp(svc, nodes)
	e.events()
	for name, value := range bad {
		t.Run(name, func(t *testing.T) {
			s := svc.DeepCopy()
			s.Annotations[name] = value
			snap := e.client.Stats().Snapshot()
			_, err := e.lb.EnsureLoadBalancer(e.ctx, "test", s, nodes)
			if err == nil {
				t.Fatal("accepted")
			}
			if ev := findEvent(e.events(), "Warning", ReasonInvalidAnnotation, name, "allowed:"); ev == "" {
				t.Fatalf("no event naming %s", name)
			}
			if n, _ := writes(e.client, snap); n != 0 {
				t.Fatal("an invalid annotation changed the appliance")
			}
		})
	}
	// A new Service with a bad annotation creates nothing.
	s := service("new", 80)
	s.Annotations[annotations.HealthCheckRetry] = "0"
	if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", s, nodes); err == nil || len(e.lbs()) != 1 {
		t.Fatalf("bad new Service: %v, %d appliances", err, len(e.lbs()))
	}
}

func TestImmutableChangesAreReported(t *testing.T) {
	e := newEnv(t, 28)
	nodes := e.addNodes(1, 0)
	svc := service("web", 80)
	e.ensureUp(svc, nodes)
	svc.Annotations[annotations.Plan] = "highspec"
	svc.Annotations[annotations.HA] = "true"
	snap := e.client.Stats().Snapshot()
	if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", svc, nodes); err != nil {
		t.Fatal(err)
	}
	ev := findEvent(e.events(), "Warning", ReasonChangeNeedsNewAppliance, "plan is standard, wanted highspec", "ha is false, wanted true")
	if ev == "" {
		t.Fatal("plan/HA change not reported")
	}
	if n, _ := writes(e.client, snap); n != 0 {
		t.Fatal("immutable change caused writes")
	}
	// The standing drift is not reported again on every reconcile.
	for range 3 {
		if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", svc, nodes); err != nil {
			t.Fatal(err)
		}
	}
	if n := countEvents(e.events(), ReasonChangeNeedsNewAppliance); n != 0 {
		t.Fatalf("the same drift was reported %d more times", n)
	}
}

// countEvents counts the Events (drained from the recorder) with reason.
func countEvents(evs []string, reason string) int {
	n := 0
	for _, ev := range evs {
		if strings.Contains(ev, " "+reason+" ") {
			n++
		}
	}
	return n
}

func TestLoadBalancerClassIsLeftAlone(t *testing.T) {
	e := newEnv(t, 28)
	nodes := e.addNodes(1, 0)
	svc := service("other", 80)
	class := "example.com/other"
	svc.Spec.LoadBalancerClass = &class
	if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", svc, nodes); err != cloudprovider.ImplementedElsewhere {
		t.Fatalf("loadBalancerClass: %v", err)
	}
	if err := e.lb.EnsureLoadBalancerDeleted(e.ctx, "test", svc); err != cloudprovider.ImplementedElsewhere {
		t.Fatalf("loadBalancerClass delete: %v", err)
	}
	if calls(e.client, nil) != 0 {
		t.Fatal("a Service of another class caused API calls")
	}
}

// The configured class is served like a Service without a class; once
// the configuration stops serving it, a Service that carries the class
// finalizer still gets its appliance deleted, one without it is left alone.
func TestOwnLoadBalancerClassIsServed(t *testing.T) {
	e := newEnv(t, 28)
	e.cfg.Class = "k8s.usacloud.jp/dsr"
	e.rebuild()
	nodes := e.addNodes(1, 0)
	svc := service("mine", 80)
	svc.Spec.LoadBalancerClass = &e.cfg.Class
	svc.Finalizers = []string{desired.ClassFinalizer}
	st := e.ensureUp(svc, nodes)
	if len(st.Ingress) != 1 || len(e.lbs()) != 1 {
		t.Fatalf("status %v, %d appliances; want one address and one appliance", st, len(e.lbs()))
	}
	e.cfg.Class = ""
	e.rebuild()
	if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", svc, nodes); err != cloudprovider.ImplementedElsewhere {
		t.Fatalf("a class no longer served: %v, want ImplementedElsewhere", err)
	}
	withoutFinalizer := svc.DeepCopy()
	withoutFinalizer.Finalizers = nil
	if err := e.lb.EnsureLoadBalancerDeleted(e.ctx, "test", withoutFinalizer); err != cloudprovider.ImplementedElsewhere || len(e.lbs()) != 1 {
		t.Fatalf("delete without the class finalizer: %v, %d appliances; want it left alone", err, len(e.lbs()))
	}
	e.deleteAll(svc)
	if n := len(e.lbs()); n != 0 {
		t.Fatalf("%d appliances left after deleting a Service with the class finalizer", n)
	}
}

func TestBlockChoice(t *testing.T) {
	e := newEnv(t, 28)
	_, sw2 := e.addBlock(28, "second")
	n1 := node(e.addServer("a", e.sw, e.ip(0)))
	s2 := e.addServer("b", sw2, "")
	// b's NIC sits on the second block.
	s2.Interfaces[1].UserIPAddress = nextIP(nextIP(nextIP(nextIP(sw2.Subnets[0].NetworkAddress))))
	fake.DataStore.Put(fake.ResourceServer, zone, s2.ID, s2)
	n2 := node(s2)

	_, err := e.lb.EnsureLoadBalancer(e.ctx, "test", service("web", 80), []*v1.Node{n1, n2})
	if err == nil || findEvent(e.events(), "Warning", ReasonAmbiguousAddressBlock, annotations.SwitchSelector) == "" {
		t.Fatalf("ambiguous block: %v", err)
	}
	// A selector annotation chooses; the node on the other block gets an Event.
	svc := service("web", 80)
	svc.Annotations[annotations.RouterSelector] = "second"
	e.ensureUp(svc, []*v1.Node{n1, n2})
	if lb := e.lbs()[0]; lb.SwitchID != sw2.ID {
		t.Fatalf("selector ignored: switch %s", lb.SwitchID)
	}
	if findEvent(e.events(), "Warning", ReasonNodesNotOnSwitch, "a") == "" {
		t.Fatal("node not on the switch was not reported")
	}
	// No block at all.
	lonely := &v1.Node{}
	lonely.Name = "nowhere"
	if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", service("x", 80), []*v1.Node{lonely}); err == nil || findEvent(e.events(), "Warning", ReasonNoAddressBlock) == "" {
		t.Fatalf("no block: %v", err)
	}
	// Config pins the switch.
	e.cfg.SwitchID = e.sw.ID.String()
	e.rebuild()
	e.ensureUp(service("pinned-switch", 80), []*v1.Node{n1, n2})
	found := false
	for _, lb := range e.lbs() {
		found = found || (lb.SwitchID == e.sw.ID)
	}
	if !found {
		t.Fatal("config switchID ignored")
	}
}

func TestPinnedVIPChangeOnExistingAppliance(t *testing.T) {
	e := newEnv(t, 28)
	nodes := e.addNodes(1, 0)
	svc := service("web", 80)
	e.ensureUp(svc, nodes)
	foreign := e.putForeignLB(e.ip(6), 9, nil)

	// Moving to an address a foreign appliance holds is refused, nothing written.
	svc.Spec.LoadBalancerIP = foreign.VirtualIPAddresses[0].VirtualIPAddress
	snap := e.client.Stats().Snapshot()
	if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", svc, nodes); err == nil {
		t.Fatal("conflicting VIP accepted")
	}
	if findEvent(e.events(), "Warning", ReasonLoadBalancerIPInvalid, "foreign") == "" {
		t.Fatal("no event naming the holder")
	}
	if n, _ := writes(e.client, snap); n != 0 {
		t.Fatal("refused change wrote")
	}
	// Moving to a free address updates the VIP in place (2 writes).
	svc.Spec.LoadBalancerIP = e.ip(9)
	snap = e.client.Stats().Snapshot()
	st := e.ensureUp(svc, nodes)
	if st.Ingress[0].IP != e.ip(9) {
		t.Fatalf("status %v", st.Ingress)
	}
	if n, _ := writes(e.client, snap); n != 2 {
		t.Fatalf("VIP move: %d writes", n)
	}
	// Nil server lister typed as a pointer falls back to the client.
	var typedNil *fakeServersPtr
	l := New(Deps{Client: e.client, Servers: typedNil, ClusterID: "test"})
	if _, err := l.EnsureLoadBalancer(e.ctx, "test", svc, nodes); err != nil {
		t.Fatalf("typed-nil lister: %v", err)
	}
}

type fakeServersPtr struct{}

func (*fakeServersPtr) List(ctx context.Context) ([]*iaas.Server, error) { panic("must not be called") }

// Right after a create the API may not list (or even read) the new
// appliance; the controller must wait for it, not create a second one.
func TestJustCreatedApplianceInvisible(t *testing.T) {
	e := newEnv(t, 28)
	nodes := e.addNodes(1, 0)
	svc := service("web", 80)
	if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", svc, nodes); !isRetry(err) {
		t.Fatal(err)
	}
	e.settle()
	hidden := e.lbs()[0]
	fake.DataStore.Delete(fake.ResourceLoadBalancer, zone, hidden.ID)
	if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", svc, nodes); !isRetry(err) {
		t.Fatalf("want a retry while the new appliance is invisible, got %v", err)
	}
	if _, by := writes(e.client, nil); by["LoadBalancer.Create"] != 1 {
		t.Fatalf("created again while invisible: %v", by)
	}
	// Readable by ID but not yet listed: it is adopted, still no second create.
	fake.DataStore.Put(fake.ResourceLoadBalancer, zone, hidden.ID, hidden)
	for i := 0; i < 3; i++ {
		loc, err := e.lb.inFlight(e.ctx, e.lb.exec, "uid-web", 0, desired.ClusterTag(e.lb.exec.ClusterID), desired.ServiceTag("uid-web"))
		if err != nil || loc.found != decide.FoundUnlisted || loc.lbs[0].ID != hidden.ID {
			t.Fatalf("read by its ID: %+v, %v; want it found unlisted", loc, err)
		}
	}
	if _, ok := e.lb.mem.reservation("uid-web"); !ok {
		t.Fatal("reservation dropped before the appliance was listed")
	}
	e.ensureUp(svc, nodes)
	if len(e.lbs()) != 1 {
		t.Fatal("duplicate appliance")
	}
}

func TestInvalidConfigIsReported(t *testing.T) {
	e := newEnv(t, 28)
	nodes := e.addNodes(1, 0)
	e.cfg.ReservedIPRanges = []string{"not-an-address"}
	e.rebuild()
	if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", service("web", 80), nodes); err == nil {
		t.Fatal("accepted")
	}
	if findEvent(e.events(), "Warning", ReasonConfigError, "not-an-address") == "" {
		t.Fatal("no config event")
	}
	e.cfg.ReservedIPRanges = nil
	e.cfg.Plan = "gold"
	e.rebuild()
	if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", service("web", 80), nodes); err == nil || findEvent(e.events(), ReasonConfigError, "plan") == "" {
		t.Fatalf("bad plan: %v", err)
	}
	if len(e.lbs()) != 0 {
		t.Fatal("created with a bad config")
	}
}

func TestSelectorResyncIsCheap(t *testing.T) {
	e := newEnv(t, 28)
	nodes := e.addNodes(1, 0)
	svc := service("web", 80)
	svc.Annotations[annotations.RouterSelector] = "k8s-block"
	e.ensureUp(svc, nodes)
	snap := e.client.Stats().Snapshot()
	if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", svc, nodes); err != nil {
		t.Fatal(err)
	}
	if n := calls(e.client, snap); n != 1 {
		t.Fatalf("resync with a selector made %d calls, want 1 (the appliance lookup)", n)
	}
}

func TestExternalTrafficPolicyLocalWarns(t *testing.T) {
	e := newEnv(t, 28)
	nodes := e.addNodes(1, 0)
	svc := service("web", 80)
	svc.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
	e.ensureUp(svc, nodes)
	if findEvent(e.events(), "Warning", ReasonTrafficPolicyLocal, "externalTrafficPolicy: Cluster") == "" {
		t.Fatal("no warning about externalTrafficPolicy: Local")
	}
}

// A standing condition is reported once, not on every sync, and again as
// soon as it changes.
func TestStandingWarningsAreNotRepeatedEverySync(t *testing.T) {
	e := newEnv(t, 28)
	_, sw2 := e.addBlock(28, "second")
	n1 := node(e.addServer("a", e.sw, e.ip(0)))
	n2 := node(e.addServer("b", sw2, ""))
	svc := service("web", 80)
	e.ensureUp(svc, []*v1.Node{n1, n2})
	count := func(evs []string, node string) int {
		n := 0
		for _, ev := range evs {
			if strings.Contains(ev, ReasonNodesNotOnSwitch) && strings.Contains(ev, "nodes "+node+" ") {
				n++
			}
		}
		return n
	}
	if got := count(e.events(), "b"); got != 1 {
		t.Fatalf("first sync: %d NodesNotOnSwitch events about b, want 1", got)
	}
	for range 3 {
		if err := e.lb.UpdateLoadBalancer(e.ctx, "test", svc, []*v1.Node{n1, n2}); err != nil {
			t.Fatal(err)
		}
	}
	if got := count(e.events(), "b"); got != 0 {
		t.Fatalf("unchanged condition reported again %d times", got)
	}
	n3 := node(e.addServer("c", sw2, ""))
	if err := e.lb.UpdateLoadBalancer(e.ctx, "test", svc, []*v1.Node{n1, n2, n3}); err != nil {
		t.Fatal(err)
	}
	if got := count(e.events(), "b, c"); got != 1 {
		t.Fatalf("changed condition: %d events naming b, c, want 1", got)
	}
}

// On a router+switch, an address a Node reports (configured inside its OS,
// unknown to SAKURA's NIC record) is in use: it is never handed out.
func TestNodeReportedAddressesAreInUseOnARouterSwitch(t *testing.T) {
	e := newEnv(t, 28)
	nodes := e.addNodes(1, 0)
	probe := service("probe", 80)
	st := e.ensureUp(probe, nodes)
	first := st.Ingress[0].IP
	e.deleteAll(probe)
	nodes[0].Status.Addresses = []v1.NodeAddress{{Type: v1.NodeExternalIP, Address: first}}
	svc := service("web", 80)
	st = e.ensureUp(svc, nodes)
	if st.Ingress[0].IP == first {
		t.Fatalf("VIP %s is the address node %s reports", first, nodes[0].Name)
	}
	for _, lb := range e.lbs() {
		if slices.Contains(lb.IPAddresses, first) {
			t.Fatalf("appliance address %s is the address node %s reports", first, nodes[0].Name)
		}
	}
}
