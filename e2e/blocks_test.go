package e2e

import (
	"encoding/json"
	"net/netip"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// simSwitchID is the ID the simulator gave the switch named name.
func (e *env) simSwitchID(name string) string {
	e.t.Helper()
	raw, err := e.sim.RawState(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	var st struct {
		Switches []struct {
			ID   json.Number `json:"ID"`
			Name string      `json:"Name"`
		} `json:"switches"`
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		e.t.Fatal(err)
	}
	for _, s := range st.Switches {
		if s.Name == name {
			return s.ID.String()
		}
	}
	e.t.Fatalf("the simulator has no switch %s", name)
	return ""
}

// TestFullFirstBlockSpillsToTheNext: with loadBalancer.blocks listing two
// router+switch blocks, the first Service takes the last room of the first
// block; the second gets its address from the next block, with an
// AddressBlockSpilled Warning naming both; the first Service is told
// nothing of the kind, and keeps its block.
func TestFullFirstBlockSpillsToTheNext(t *testing.T) {
	e := newEnv(t, envOptions{topology: "testdata/topology-blocks.yaml", noCCM: true})
	first, next := e.simSwitchID("block-a-switch"), e.simSwitchID("block-b-switch")
	e.ccm = e.startCCM("ccm-"+e.name, map[string]any{"loadBalancer": map[string]any{
		"blocks":           []string{first, next},
		"reservedIPRanges": []string{"203.0.113.22-203.0.113.28"},
	}})
	blockA, blockB := netip.MustParsePrefix("203.0.113.16/28"), netip.MustParsePrefix("203.0.113.32/28")

	e.createLBService("fills-a")
	ipA := e.waitIngressIP("fills-a")
	if !blockA.Contains(netip.MustParseAddr(ipA)) {
		t.Fatalf("fills-a got %s, want an address of the first block %s", ipA, blockA)
	}
	e.createLBService("spills")
	ipB := e.waitIngressIP("spills")
	if !blockB.Contains(netip.MustParseAddr(ipB)) {
		t.Fatalf("spills got %s, want an address of the next block %s", ipB, blockB)
	}
	e.waitEvent("spills", "AddressBlockSpilled", first, "has no free address", next)
	e.waitVIPs(ipB, map[int][]string{80: {"203.0.113.36", "203.0.113.37"}})
	l, err := e.kube.CoreV1().Events(e.ns).List(e.ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=fills-a,reason=AddressBlockSpilled"})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Items) > 0 {
		t.Errorf("fills-a, made in the first block, was told it spilled: %s", l.Items[0].Message)
	}
	if got := e.waitIngressIP("fills-a"); got != ipA {
		t.Errorf("fills-a moved from %s to %s", ipA, got)
	}
}

const annZone = "k8s.usacloud.jp/load-balancer-zone"

// TestLoadBalancerInAnotherZone: with a block in each zone (is1a's by
// bare ID, is1b's as is1b/ID), a Service naming is1b by annotation gets its
// appliance in is1b on is1b's block, served by is1b's nodes; one without
// the annotation stays in is1a. The is1b appliance follows a node change,
// is made again (in is1b) when deleted out of band, reports a zone change
// as drift without moving, and goes with its Service. A zone the cluster
// does not have is refused with the zones it has.
func TestLoadBalancerInAnotherZone(t *testing.T) {
	e := newEnv(t, envOptions{topology: "testdata/topology-zoned-blocks.yaml", noCCM: true,
		nodes: []string{"node-a-1", "node-a-2", "node-b-1", "node-b-2"}})
	blockA, blockB := e.simSwitchID("block-a-switch"), e.simSwitchID("block-b-switch")
	e.ccm = e.startCCM("ccm-"+e.name, map[string]any{
		"zones":        []string{"is1a", "is1b"},
		"loadBalancer": map[string]any{"zones": []string{"is1b"}, "blocks": []string{blockA, "is1b/" + blockB}},
	})
	netA, netB := netip.MustParsePrefix("203.0.113.16/28"), netip.MustParsePrefix("203.0.113.32/28")
	e.sakura.alsoZone(e.ctx, "is1b")

	e.createAnnotatedService("in-b", map[string]string{annZone: "is1b"})
	e.createLBService("in-a")
	ipB, ipA := e.waitIngressIP("in-b"), e.waitIngressIP("in-a")
	if !netB.Contains(netip.MustParseAddr(ipB)) {
		t.Fatalf("in-b got %s, want an address of is1b's block %s", ipB, netB)
	}
	if !netA.Contains(netip.MustParseAddr(ipA)) {
		t.Fatalf("in-a got %s, want an address of is1a's block %s", ipA, netA)
	}
	e.waitVIPs(ipB, map[int][]string{80: {"203.0.113.36", "203.0.113.37"}})
	e.waitVIPs(ipA, map[int][]string{80: {"203.0.113.20", "203.0.113.21"}})
	e.waitEvent("in-b", "NodesInOtherZone", "node-a-1", "node-a-2")
	idB := e.lbFor(ipB)
	if z := e.sakura.zoneOf(e.ctx, idB); z != "is1b" {
		t.Fatalf("in-b's appliance %s answers in zone %q, want is1b", idB, z)
	}
	if z := e.sakura.zoneOf(e.ctx, e.lbFor(ipA)); z != "is1a" {
		t.Fatalf("in-a's appliance answers in zone %q, want is1a", z)
	}

	// A node change reaches the is1b appliance.
	e.excludeNode("node-b-2")
	e.waitVIPs(ipB, map[int][]string{80: {"203.0.113.36"}})

	// Deleted out of band: made again in is1b, on the address the Service
	// shows (after the create record's grace, two minutes from the create).
	e.deleteOutOfBand(idB)
	e.eventually(longWait, "in-b's appliance was not made again", func() (bool, error) {
		lb, _, err := e.sakura.lbWithVIP(e.ctx, ipB)
		return err == nil && lb != nil && lb.ID != idB, err
	})
	idB2 := e.lbFor(ipB)
	if z := e.sakura.zoneOf(e.ctx, idB2); z != "is1b" {
		t.Fatalf("in-b's new appliance %s answers in zone %q, want is1b", idB2, z)
	}
	e.waitVIPs(ipB, map[int][]string{80: {"203.0.113.36"}})

	// The zone is fixed at creation: a change is reported, nothing moves.
	e.annotate("in-b", annZone, "is1a")
	e.waitEvent("in-b", "ChangeNeedsNewLoadBalancer", "zone is is1b, wanted is1a")
	if n := e.ownCount(); n != 2 {
		t.Errorf("%d appliances after the zone change, want 2", n)
	}
	if got := e.waitIngressIP("in-b"); got != ipB {
		t.Errorf("in-b's EXTERNAL-IP changed from %s to %s", ipB, got)
	}

	// A zone the cluster does not have.
	e.createAnnotatedService("nowhere", map[string]string{annZone: "tk1a"})
	e.waitEvent("nowhere", "InvalidAnnotation", annZone, "is1a, is1b")

	e.deleteService("in-b")
	e.eventually(longWait, "in-b's appliance outlived its Service", func() (bool, error) {
		return e.sakura.zoneOf(e.ctx, idB2) == "", nil
	})
	if n := e.ownCount(); n != 1 {
		t.Errorf("%d appliances after in-b went, want 1 (in-a's)", n)
	}
}
