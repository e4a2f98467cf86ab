package e2e

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/e2e/cluster"
)

// TestCCMKilledMidCreate: the controller dies while its LoadBalancer.Create
// is in flight (the simulator carries the request out and then holds the
// answer for a few seconds, so the appliance appears although the controller
// never sees the answer); the restarted controller adopts that appliance
// instead of making a second one.
func TestCCMKilledMidCreate(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.waitInitialized("node-1", "node-2", "node-3")
	if err := e.sim.SetFaults(e.ctx, []cluster.FaultRule{{Op: "LoadBalancer.Create", Latency: "4s", After: true, Times: 1}}); err != nil {
		t.Fatal(err)
	}
	e.createLBService("app")
	e.eventually(longWait, "the controller never sent LoadBalancer.Create", func() (bool, error) {
		rules, err := e.sim.Faults(e.ctx)
		return err == nil && len(rules) == 1 && rules[0].Fired > 0, err
	})
	e.ccm.Kill()
	e.eventually(shortWait, "the held create was not carried out", func() (bool, error) {
		own, err := e.sakura.ownLBs(e.ctx)
		return err == nil && len(own) == 1, err
	})
	if err := e.ccm.Restart(); err != nil {
		t.Fatal(err)
	}
	ip := e.waitIngressIP("app")
	e.waitVIPs(ip, map[int][]string{80: e.nodeIPs("node-1", "node-2", "node-3")})
	if n := e.ownCount(); n != 1 {
		t.Errorf("%d appliances after a crash mid-create, want exactly 1", n)
	}
}

// TestLeaderElectionTakeover: two replicas share a Lease; only the leader
// acts; when it is killed the other one takes over and serves new Services.
func TestLeaderElectionTakeover(t *testing.T) {
	e := newEnv(t, envOptions{})
	first := e.ccm
	holder := func() string {
		l, err := e.kube.CoordinationV1().Leases("kube-system").Get(e.ctx, e.lease, metav1.GetOptions{})
		if err != nil || l.Spec.HolderIdentity == nil {
			return ""
		}
		return *l.Spec.HolderIdentity
	}
	var leader string
	e.eventually(shortWait, "first replica never took the lease", func() (bool, error) {
		leader = holder()
		return leader != "", nil
	})
	second := e.startCCM(e.ccm.Name+"-b", nil)

	e.createLBService("before")
	ip1 := e.waitIngressIP("before")
	if strings.Contains(strings.ToLower(second.Log()), "successfully acquired lease") {
		t.Fatalf("second replica acquired the lease while the first was alive")
	}

	first.Kill()
	e.eventually(longWait, "second replica did not take over the lease", func() (bool, error) {
		h := holder()
		return h != "" && h != leader, nil
	})
	e.createLBService("after")
	ip2 := e.waitIngressIP("after")
	if ip1 == ip2 {
		t.Errorf("two Services share %s", ip1)
	}
	if !strings.Contains(strings.ToLower(second.Log()), "successfully acquired lease") {
		t.Errorf("second replica's log does not show it leading")
	}
	if n := e.ownCount(); n != 2 {
		t.Errorf("%d appliances, want 2", n)
	}
}

// TestAPIFaultsConverge: with 30% of API answers 429 or 503, Services still
// converge, with exactly one appliance each and none leaked after deletion.
func TestAPIFaultsConverge(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.waitInitialized("node-1", "node-2", "node-3")
	// Only the first matching rule is rolled: load balancer operations fail
	// with 503, everything else with 429, each 30% of the time.
	faults := []cluster.FaultRule{
		{Op: "LoadBalancer.*", Rate: 0.3, Status: 503},
		{Op: "*", Rate: 0.3, Status: 429},
	}
	if err := e.sim.SetFaults(e.ctx, faults); err != nil {
		t.Fatal(err)
	}
	names := []string{"a", "b", "c"}
	for _, n := range names {
		e.createLBService(n)
	}
	ips := map[string]string{}
	for _, n := range names {
		ips[n] = e.waitIngressIP(n)
	}
	e.deleteService("c")
	if err := e.sim.ClearFaults(e.ctx); err != nil {
		t.Fatal(err)
	}
	all := e.nodeIPs("node-1", "node-2", "node-3")
	seen := map[string]bool{}
	for _, n := range []string{"a", "b"} {
		if seen[ips[n]] {
			t.Errorf("address %s given twice", ips[n])
		}
		seen[ips[n]] = true
		e.waitVIPs(ips[n], map[int][]string{80: all})
	}
	e.eventually(longWait, "appliance of the deleted Service leaked", func() (bool, error) {
		own, err := e.sakura.ownLBs(e.ctx)
		return err == nil && len(own) == 2, err
	})
	reqs, err := e.sim.Requests(e.ctx)
	if err == nil {
		t.Logf("API requests under faults: %v", reqs)
	}
}
