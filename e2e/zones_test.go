package e2e

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/e2e/cluster"
)

const zonesTopology = "testdata/topology-zones.yaml"

// zonesEnv is a cluster spanning is1a and is1b: the simulator serves both
// and the controller is configured with zones (load balancers off: the
// load-balancer half of multi-zone clusters is not built yet).
func zonesEnv(t *testing.T, nodes ...string) *env {
	return newEnv(t, envOptions{topology: zonesTopology, nodes: nodes, extraConfig: map[string]any{
		"zones":               []string{"is1a", "is1b"},
		"disableLoadBalancer": true,
	}})
}

// simServer is a server as the simulator's admin state shows it.
type simServer struct {
	ID   json.Number `json:"ID"`
	Name string      `json:"Name"`
	Zone struct {
		Name string `json:"Name"`
	} `json:"Zone"`
}

// simServers maps server names to the simulator's servers, read through
// the admin API (which a fault rule never touches).
func (e *env) simServers() map[string]simServer {
	e.t.Helper()
	raw, err := e.sim.RawState(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	var st struct {
		Servers []simServer `json:"servers"`
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		e.t.Fatal(err)
	}
	out := map[string]simServer{}
	for _, s := range st.Servers {
		out[s.Name] = s
	}
	return out
}

// checkNodeZone: the Node carries its server's zone and region labels and
// the providerID sakuracloud://<zone>/<ID>.
func (e *env) checkNodeZone(name string, srv simServer) {
	e.t.Helper()
	n, err := e.kube.CoreV1().Nodes().Get(e.ctx, name, metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	if want := fmt.Sprintf("sakuracloud://%s/%s", srv.Zone.Name, srv.ID); n.Spec.ProviderID != want {
		e.t.Errorf("%s: providerID %q, want %q", name, n.Spec.ProviderID, want)
	}
	for k, want := range map[string]string{corev1.LabelTopologyZone: srv.Zone.Name, corev1.LabelTopologyRegion: "is1"} {
		if got := n.Labels[k]; got != want {
			e.t.Errorf("%s: label %s = %q, want %q", name, k, got, want)
		}
	}
}

// TestNodesAcrossZones: Nodes of is1a and is1b are all initialised, each
// with its own server's zone, region and providerID.
func TestNodesAcrossZones(t *testing.T) {
	e := zonesEnv(t)
	servers := e.simServers()
	var names []string
	for _, s := range e.top.Servers {
		names = append(names, s.Name)
	}
	e.waitInitialized(names...)
	zones := map[string]int{}
	for _, name := range names {
		e.checkNodeZone(name, servers[name])
		zones[servers[name].Zone.Name]++
	}
	if zones["is1a"] != 2 || zones["is1b"] != 2 {
		t.Errorf("servers per zone %v, want two in each (topology)", zones)
	}
}

// TestZoneOutageKeepsNodes: is1b's API fails for as long as the test runs
// its checks. No Node is deleted, not even the one whose server really
// went away meanwhile (the controller cannot tell during the outage), and
// is1a is not held up: an is1a Node registered during the outage is
// initialised. Once is1b answers again, the Node of the deleted server
// goes and the others stay.
func TestZoneOutageKeepsNodes(t *testing.T) {
	e := zonesEnv(t, "zone-a-1", "zone-b-1", "zone-b-2")
	e.waitInitialized("zone-a-1", "zone-b-1", "zone-b-2")
	if err := e.sim.SetFaults(e.ctx, []cluster.FaultRule{{Op: "*", Zone: "is1b", Status: 503}}); err != nil {
		t.Fatal(err)
	}
	// zone-b-2's server is deleted during the outage: its Node goes
	// NotReady, so the lifecycle controller asks whether it still exists.
	if err := e.sim.DeleteServer(e.ctx, "zone-b-2"); err != nil {
		t.Fatal(err)
	}
	// A new is1a server and its Node, registered during the outage.
	if _, err := e.sim.AddServer(e.ctx, map[string]any{"name": "zone-a-3",
		"nics": []map[string]any{{"shared": true, "ipAddress": "198.51.100.13"}}}); err != nil {
		t.Fatal(err)
	}
	registered := time.Now()
	e.registerNode("zone-a-3")
	e.waitInitialized("zone-a-3")
	// Logged for the record (docs/nodes.md), never asserted.
	t.Logf("zone-a-3 initialised %s after it registered, during is1b's outage", time.Since(registered).Round(100*time.Millisecond))
	e.checkNodeZone("zone-a-3", e.simServers()["zone-a-3"])
	// Evidence, not a clock: the lifecycle controller has asked about
	// zone-b-2 several times and got an error each time, while is1b kept
	// answering 503.
	const asks = 3
	e.eventually(shortWait, "the lifecycle controller did not ask about zone-b-2 during the outage", func() (bool, error) {
		return strings.Count(e.ccm.Log(), `error checking if node zone-b-2 exists`) >= asks, nil
	})
	rules, err := e.sim.Faults(e.ctx)
	if err != nil || len(rules) != 1 || rules[0].Fired == 0 {
		t.Fatalf("the is1b fault did not fire: %+v %v", rules, err)
	}
	t.Logf("is1b answered 503 to %d requests during the outage", rules[0].Fired)
	for _, name := range []string{"zone-a-1", "zone-a-3", "zone-b-1", "zone-b-2"} {
		if _, err := e.kube.CoreV1().Nodes().Get(e.ctx, name, metav1.GetOptions{}); err != nil {
			t.Errorf("Node %s during is1b's outage: %v", name, err)
		}
	}
	// Control: once is1b answers, the Node of the deleted server goes.
	if err := e.sim.ClearFaults(e.ctx); err != nil {
		t.Fatal(err)
	}
	e.eventually(shortWait, "zone-b-2 not deleted after is1b recovered", func() (bool, error) {
		_, err := e.kube.CoreV1().Nodes().Get(e.ctx, "zone-b-2", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	for _, name := range []string{"zone-a-1", "zone-a-3", "zone-b-1"} {
		if _, err := e.kube.CoreV1().Nodes().Get(e.ctx, name, metav1.GetOptions{}); err != nil {
			t.Errorf("Node %s after the outage: %v", name, err)
		}
	}
}

// TestLoadBalancerAcrossABridge: the cluster spans is1a and is1b, and the
// is1a switch of its private network is bridged to an is1b switch. A
// Service's appliance, made in is1a, takes the is1b node on the bridged
// switch as a real server and leaves out the one on an unbridged switch
// (with an Event naming it), and takes no address that a server or an
// appliance of is1b on the bridged switch holds: the first three of its
// assign range are two is1b servers' and an is1b VPC router's, which also
// has VRID 1 (the simulator accepts an appliance on them, as SAKURA may).
func TestLoadBalancerAcrossABridge(t *testing.T) {
	e := newEnv(t, envOptions{topology: "testdata/topology-bridged.yaml",
		nodes:       []string{"zone-a-1", "zone-a-2", "zone-b-1", "zone-b-2"},
		extraConfig: map[string]any{"zones": []string{"is1a", "is1b"}}})
	assign := netip.MustParsePrefix("192.168.100.16/29")
	e.createAnnotatedService("across", map[string]string{
		annType: "switch", annIPRange: "192.168.100.0/24", annAssign: assign.String(),
	})
	ip := e.waitIngressIP("across")
	e.waitVIPs(ip, map[int][]string{80: {"192.168.100.11", "192.168.100.12", "192.168.100.21"}})
	e.waitEvent("across", "NodesNotOnSwitch", "zone-b-2")
	lb, _, err := e.sakura.lbWithVIP(e.ctx, ip)
	if err != nil || lb == nil {
		t.Fatalf("appliance for %s: %v", ip, err)
	}
	held := map[string]string{"192.168.100.17": "db-b-1", "192.168.100.18": "db-b-2", "192.168.100.19": "VPC router vpc-b (is1b)", "192.168.100.21": "zone-b-1"}
	if lb.VRID == 1 {
		t.Errorf("the load balancer took VRID 1, which is1b's VPC router vpc-b uses on the bridged segment")
	}
	for _, a := range append([]string{ip}, lb.IPAddresses...) {
		if who := held[a]; who != "" {
			t.Errorf("address %s went to the load balancer, but %s holds it on the bridged switch", a, who)
		}
		if !assign.Contains(netip.MustParseAddr(a)) {
			t.Errorf("address %s is outside the assign range %s", a, assign)
		}
	}

	// is1b's API fails: its nodes cannot be listed, so nothing is written
	// (they would all look gone), not even the is1a change that comes
	// meanwhile; once is1b answers, the change is applied and zone-b-1
	// stays.
	if err := e.sim.SetFaults(e.ctx, []cluster.FaultRule{{Op: "*", Zone: "is1b", Status: 503}}); err != nil {
		t.Fatal(err)
	}
	// Evidence that the controller's copy of is1b's servers has expired: a
	// refresh was refused (the node controllers look servers up every few
	// seconds). Before that, a sync uses the copy, rightly.
	e.eventually(longWait, "no is1b request met the outage", func() (bool, error) {
		rules, err := e.sim.Faults(e.ctx)
		return err == nil && len(rules) == 1 && rules[0].Fired > 0, err
	})
	const refused = "is bridged to zone is1b, whose servers could not be listed"
	before := strings.Count(e.ccm.Log(), refused)
	e.excludeNode("zone-a-2")
	e.eventually(longWait, "no sync met is1b's outage", func() (bool, error) {
		return strings.Count(e.ccm.Log(), refused) > before, nil
	})
	e.waitVIPs(ip, map[int][]string{80: {"192.168.100.11", "192.168.100.12", "192.168.100.21"}})
	if err := e.sim.SetFaults(e.ctx, nil); err != nil {
		t.Fatal(err)
	}
	e.waitVIPs(ip, map[int][]string{80: {"192.168.100.11", "192.168.100.21"}})
}
