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
