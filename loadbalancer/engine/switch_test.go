package engine

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/fake"
	"github.com/sacloud/iaas-api-go/types"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/annotations"
	v1 "k8s.io/api/core/v1"
)

// addPlainSwitch makes a switch without a router (no subnet in the API).
func (e *env) addPlainSwitch(name string, tags ...string) *iaas.Switch {
	e.t.Helper()
	sw, err := fake.NewSwitchOp().Create(e.ctx, zone, &iaas.SwitchCreateRequest{Name: name, Tags: tags})
	if err != nil {
		e.t.Fatalf("create switch: %v", err)
	}
	if len(sw.Subnets) != 0 {
		e.t.Fatalf("fake plain switch has subnets")
	}
	return sw
}

func withInternalIP(n *v1.Node, ip string) *v1.Node {
	n.Status.Addresses = append(n.Status.Addresses, v1.NodeAddress{Type: v1.NodeInternalIP, Address: ip})
	return n
}

func privateService(name string) *v1.Service {
	s := service(name, 80)
	s.Annotations[annotations.Type] = "switch"
	s.Annotations[annotations.IPRange] = "192.168.0.0/24"
	s.Annotations[annotations.AssignIPRange] = "192.168.0.240/28"
	s.Annotations[annotations.AssignDefaultGateway] = "192.168.0.241"
	return s
}

func TestSwitchTypePrivateVIP(t *testing.T) {
	e := newEnv(t, 28)
	priv := e.addPlainSwitch("private")
	// Nodes: one whose address SAKURA knows, one whose address only the
	// Node's InternalIP tells (usual on a plain switch), both also on the
	// router+switch. A non-node server already holds .240.
	n1 := node(e.addServer("node-1", priv, "192.168.0.11"))
	s2 := e.addServer("node-2", priv, "")
	n2 := withInternalIP(node(s2), "192.168.0.242")
	e.addServer("db", priv, "192.168.0.240")
	nodes := []*v1.Node{n1, n2}

	svc := privateService("web")
	st := e.ensureUp(svc, nodes)
	if len(st.Ingress) != 1 || st.Ingress[0].IP != "192.168.0.243" {
		t.Fatalf("status %+v, want the private VIP 192.168.0.243 (.240 server, .241 gateway, .242 node-2 are taken)", st)
	}
	lbs := e.lbs()
	if len(lbs) != 1 {
		t.Fatalf("%d appliances", len(lbs))
	}
	lb := lbs[0]
	if lb.SwitchID != priv.ID || lb.NetworkMaskLen != 24 || lb.DefaultRoute != "192.168.0.241" || strings.Join(lb.IPAddresses, ",") != "192.168.0.244" {
		t.Fatalf("appliance switch %s mask %d route %q ips %v", lb.SwitchID, lb.NetworkMaskLen, lb.DefaultRoute, lb.IPAddresses)
	}
	if got := strings.Join(realServers(lb, 80), ","); got != "192.168.0.11,192.168.0.242" {
		t.Fatalf("real servers %s", got)
	}

	// Steady state: no writes.
	snap := e.client.Stats().Snapshot()
	for i := 0; i < 2; i++ {
		if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", svc, nodes); err != nil {
			t.Fatal(err)
		}
	}
	if n, by := writes(e.client, snap); n != 0 {
		t.Fatalf("resync wrote: %v", by)
	}

	// internet <-> switch cannot change in place: reported, nothing written.
	e.events()
	svc.Annotations[annotations.Type] = "internet"
	if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", svc, nodes); err != nil {
		t.Fatal(err)
	}
	if findEvent(e.events(), "Warning", ReasonChangeNeedsNewAppliance, "type is switch, wanted internet") == "" {
		t.Fatal("type change not reported")
	}
	svc.Annotations[annotations.Type] = "switch"
	svc.Annotations[annotations.AssignDefaultGateway] = "192.168.0.254"
	if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", svc, nodes); err != nil {
		t.Fatal(err)
	}
	if findEvent(e.events(), "Warning", ReasonChangeNeedsNewAppliance, "assign-default-gateway is 192.168.0.241, wanted 192.168.0.254") == "" {
		t.Fatal("gateway change not reported")
	}
	if n, by := writes(e.client, snap); n != 0 {
		t.Fatalf("immutable changes wrote: %v", by)
	}
	e.deleteAll(svc)
	if len(e.lbs()) != 0 {
		t.Fatal("not deleted")
	}
}

// An internet appliance asked to become switch: reported as needing a new one.
func TestInternetToSwitchIsReported(t *testing.T) {
	e := newEnv(t, 28)
	priv := e.addPlainSwitch("private")
	nodes := e.addNodes(1, 0)
	svc := service("web", 80)
	e.ensureUp(svc, nodes)
	e.events()
	p := privateService("web")
	p.UID = svc.UID
	snap := e.client.Stats().Snapshot()
	if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", p, nodes); err != nil {
		t.Fatal(err)
	}
	// The nodes are not on the private switch: no switch drift to report,
	// but the type change is.
	if len(e.lbs()) != 1 || e.lbs()[0].SwitchID == priv.ID {
		t.Fatal("a second appliance was made")
	}
	if findEvent(e.events(), "Warning", ReasonChangeNeedsNewAppliance, "type is internet, wanted switch") == "" {
		t.Fatal("type change not reported")
	}
	if n, _ := writes(e.client, snap); n != 0 {
		t.Fatal("wrote")
	}
}

func TestSwitchTypeRefusals(t *testing.T) {
	e := newEnv(t, 28)
	priv := e.addPlainSwitch("private", "lb")
	other := e.addPlainSwitch("other", "lb")
	n1 := node(e.addServer("node-1", priv, "192.168.0.11"))
	n2 := node(e.addServer("node-2", other, "192.168.0.12"))
	nodes := []*v1.Node{n1, n2}
	check := func(svc *v1.Service, reason string, substr ...string) {
		t.Helper()
		_, err := e.lb.EnsureLoadBalancer(e.ctx, "test", svc, nodes)
		if err == nil || isRetry(err) {
			t.Fatalf("%s: err %v", reason, err)
		}
		evs := e.events()
		if findEvent(evs, append([]string{"Warning", reason}, substr...)...) == "" {
			t.Fatalf("no %s event with %v in %v", reason, substr, evs)
		}
		if len(e.lbs()) != 0 {
			t.Fatalf("%s: an appliance was created", reason)
		}
	}
	// Invalid annotations name themselves; nothing is called or created.
	bad := privateService("bad")
	delete(bad.Annotations, annotations.IPRange)
	bad.Annotations[annotations.AssignDefaultGateway] = "192.168.7.1"
	snap := e.client.Stats().Snapshot()
	check(bad, ReasonInvalidAnnotation, annotations.IPRange, "required")
	if calls(e.client, snap) != 0 {
		t.Fatal("invalid annotations caused API calls")
	}
	bad = privateService("bad2")
	bad.Annotations[annotations.AssignIPRange] = "192.168.1.0/28"
	bad.Annotations[annotations.AssignDefaultGateway] = "192.168.1.1"
	check(bad, ReasonInvalidAnnotation, annotations.AssignIPRange, annotations.AssignDefaultGateway, "not inside ip-range 192.168.0.0/24")

	// Two plain switches with nodes in range: ambiguous until a selector chooses.
	check(privateService("amb"), ReasonAmbiguousAddressBlock, "private", "other", annotations.SwitchSelector)
	// A router+switch is never a type switch block.
	routed, _ := fake.NewSwitchOp().Read(e.ctx, zone, e.sw.ID)
	routed.Tags = types.Tags{"routed"}
	fake.DataStore.Put(fake.ResourceSwitch, zone, routed.ID, routed)
	sel := privateService("routed")
	sel.Annotations[annotations.SwitchSelector] = "routed"
	check(sel, ReasonNoAddressBlock, "needs a switch without a router")
	sel = privateService("both")
	sel.Annotations[annotations.SwitchSelector] = "lb"
	check(sel, ReasonAmbiguousAddressBlock, "2 plain switches")

	// Exhausted assign range: /30 = .252-.255, broadcast out, gateway out → 2 free, HA needs 3.
	ex := privateService("full")
	ex.Annotations[annotations.AssignIPRange] = "192.168.0.252/30"
	ex.Annotations[annotations.AssignDefaultGateway] = "192.168.0.253"
	ex.Annotations[annotations.HA] = "true"
	ex.Annotations[annotations.SwitchSelector] = "private-only"
	e.addPlainSwitch("private-only-sw", "private-only")
	// that switch has no nodes, but addresses are still searched on it.
	check(ex, ReasonAddressBlockExhausted, "192.168.0.252/30", "assign-ip-range")
}

// Cluster-wide defaults: loadBalancer.type switch with its network in the
// cloud-config; the config's switchID then names the plain switch, and an
// internet Service still finds the router+switch by itself.
func TestSwitchTypeFromConfig(t *testing.T) {
	e := newEnv(t, 28)
	priv := e.addPlainSwitch("private")
	s := e.addServer("node-1", priv, "10.1.0.5")
	// node-1 is on both the router+switch and the plain switch.
	s.Interfaces = append(s.Interfaces, &iaas.InterfaceView{ID: e.id(), SwitchID: e.sw.ID, SwitchScope: types.Scopes.User, UserIPAddress: e.ip(0)})
	fake.DataStore.Put(fake.ResourceServer, zone, s.ID, s)
	nodes := []*v1.Node{node(s)}
	e.cfg.Type = "switch"
	e.cfg.IPRange = "10.1.0.0/16"
	e.cfg.AssignIPRange = "10.1.200.0/29"
	e.cfg.SwitchID = priv.ID.String()
	e.rebuild()

	st := e.ensureUp(service("private", 80), nodes)
	if ip := netip.MustParseAddr(st.Ingress[0].IP); !netip.MustParsePrefix("10.1.200.0/29").Contains(ip) {
		t.Fatalf("VIP %s not from the configured assign range", ip)
	}
	pub := service("public", 80)
	pub.Annotations[annotations.Type] = "internet"
	st = e.ensureUp(pub, nodes)
	if ip := netip.MustParseAddr(st.Ingress[0].IP); strings.HasPrefix(ip.String(), "10.") {
		t.Fatalf("internet Service got private %s", ip)
	}
	for _, lb := range e.lbs() {
		if lb.DefaultRoute == "invalid IP" {
			t.Fatal("invalid default route sent")
		}
	}
}
