package e2e

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/e2e/cluster"
)

// Issue #18's defects that need a restart of the controller process: what
// must survive it lives in the cloud or on the Service.

// TestRestartWhileNewApplianceUnlisted (defect 5): the controller is
// restarted right after its LoadBalancer.Create, while the API neither lists
// nor reads the new appliance. The restarted process must wait for that
// appliance (the create is recorded on the Service) instead of creating a
// second one with the same addresses.
func TestRestartWhileNewApplianceUnlisted(t *testing.T) {
	const window = 30 * time.Second // longer than the 8 s lease a restart waits out
	e := newRepairEnv(t, nil)
	e.createUnlisted("app", window)
	if err := e.ccm.Restart(); err != nil {
		t.Fatal(err)
	}
	ip := e.waitIngressIP("app")
	e.waitVIPs(ip, map[int][]string{80: e.nodeIPs("node-1", "node-2", "node-3")})
	if n := e.requestCount("LoadBalancer.Create"); n != 1 {
		t.Errorf("%d creates sent across the restart, want 1", n)
	}
	if left := e.clusterLBs(); len(left) != 1 {
		t.Errorf("appliances %v after the restart, want exactly one", left)
	}
}

// TestRestartBetweenSaveAndConfig (defect 9): a health-check change is
// saved, its Config fails, and the controller is restarted before it tries
// again. The health poll cannot see a health check in Status; the change
// must still be applied by the restarted controller.
func TestRestartBetweenSaveAndConfig(t *testing.T) {
	e := newRepairEnv(t, nil)
	ip, id, all := e.createApplied("app")

	if err := e.sim.SetFaults(e.ctx, []cluster.FaultRule{{Op: "LoadBalancer.Config", Status: 500, Times: 1}}); err != nil {
		t.Fatal(err)
	}
	patch := []byte(`{"metadata":{"annotations":{"k8s.usacloud.jp/load-balancer-healthcheck-protocol":"tcp"}}}`)
	if _, err := e.kube.CoreV1().Services(e.ns).Patch(e.ctx, "app", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	e.eventually(longWait, "the Config never failed (the injected fault did not fire)", func() (bool, error) {
		rules, err := e.sim.Faults(e.ctx)
		return err == nil && len(rules) == 1 && rules[0].Fired > 0, err
	})
	e.ccm.Kill() // before the service controller's retry
	if c, err := e.sim.LoadBalancer(e.ctx, id.String()); err != nil || !c.Pending {
		t.Fatalf("precondition: the change should be saved and not applied (pending %v, err %v)", c != nil && c.Pending, err)
	}
	if err := e.ccm.Restart(); err != nil {
		t.Fatal(err)
	}
	c := e.waitApplied(id.String(), ip, map[int][]string{80: all})
	if c.AppliedHash != c.SavedHash {
		t.Errorf("applied %s, saved %s: the restarted controller never applied the saved change", c.AppliedHash, c.SavedHash)
	}
}

// TestJoinsWithinOneListing (defect 1): two Services join a running shared
// appliance at once, so the second allocation reuses the zone listing the
// first made before its VIP was written. With the simulator accepting
// duplicate VIPs (as SAKURA may), only the controller keeps them apart.
func TestJoinsWithinOneListing(t *testing.T) {
	e := newEnv(t, envOptions{})
	if accept, _, err := e.sim.Conflicts(e.ctx); err != nil || !accept {
		t.Fatalf("precondition: the simulator must accept conflicting writes (accept %v, err %v)", accept, err)
	}
	port := func(p int32) corev1.ServicePort {
		return corev1.ServicePort{Name: "tcp", Port: p, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(8080)}
	}
	e.createShared("a", "team", nil, port(80))
	ips := map[string]string{"a": e.waitIngressIP("a")}
	e.createShared("b", "team", nil, port(81))
	e.createShared("c", "team", nil, port(82))
	for _, name := range []string{"b", "c"} {
		ip := e.waitIngressIP(name)
		for other, o := range ips {
			if o == ip {
				t.Fatalf("Services %s and %s both show %s", other, name, ip)
			}
		}
		ips[name] = ip
	}
	if _, accepted, err := e.sim.Conflicts(e.ctx); err != nil || len(accepted) > 0 {
		t.Fatalf("the controller wrote addresses already in use: %+v (err %v)", accepted, err)
	}
	if n := e.ownCount(); n != 1 {
		t.Errorf("%d appliances, want the one shared appliance", n)
	}
}
