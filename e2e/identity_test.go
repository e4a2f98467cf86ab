package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/types"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/e2e/cluster"
)

// The ConfigMap that records a derived cluster ID (docs/configuration.md,
// Cluster identity), in the Lease's namespace.
const (
	identityConfigMap = "sakura-cloud-controller-manager-cluster-id"
	identityNamespace = "kube-system"
)

// TestClusterIDDerivedAndRecorded: with no clusterID and --cluster-name at
// its upstream default "kubernetes", the controller (as the chart's
// ServiceAccount, so with the chart's RBAC) derives the cluster ID from the
// kube-system namespace's UID, records it, tags appliances with it, and
// reads it back after a restart.
func TestClusterIDDerivedAndRecorded(t *testing.T) {
	cms := cp.Client.CoreV1().ConfigMaps(identityNamespace)
	clear := func() {
		if err := cms.Delete(t.Context(), identityConfigMap, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
	}
	clear()
	t.Cleanup(func() { _ = cms.Delete(t.Context(), identityConfigMap, metav1.DeleteOptions{}) })

	e := newEnv(t, envOptions{noCCM: true})
	ks, err := e.kube.CoreV1().Namespaces().Get(e.ctx, "kube-system", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	uid := string(ks.UID)
	m, err := cp.StartCCM(e.ctx, cluster.CCMOptions{Simulator: e.sim, Zone: zone, Name: "ccm-" + e.name,
		LeaseName: e.lease, DeriveClusterID: true, Extra: map[string]any{"serverCacheTTLSec": 5}})
	if err != nil {
		t.Fatal(err)
	}
	e.ccms, e.ccm, e.clusterID = append(e.ccms, m), m, uid

	e.eventually(shortWait, "the derived cluster ID was not recorded", func() (bool, error) {
		cm, err := cms.Get(e.ctx, identityConfigMap, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if got := cm.Data["clusterID"]; got != uid {
			t.Fatalf("recorded cluster ID %q, want the kube-system UID %s", got, uid)
		}
		return true, nil
	})
	e.waitInitialized("node-1")
	e.createLBService("web")
	e.waitIngressIP("web")
	own, err := e.sakura.allLBs(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	var tagged []types.ID
	for _, lb := range own {
		if hasTag(lb, clusterTagKey+uid) {
			tagged = append(tagged, lb.ID)
		}
		if hasTag(lb, clusterTagKey+"kubernetes") {
			t.Errorf("appliance %s carries the shared default tag", lb.ID)
		}
	}
	if len(tagged) != 1 {
		t.Fatalf("appliances tagged %s%s: %v, want one", clusterTagKey, uid, tagged)
	}
	if log := m.Log(); !strings.Contains(log, `"Cluster ID in force" clusterID="`+uid+`" source="derived"`) ||
		strings.Contains(log, "held to report-only") {
		t.Errorf("log does not show the derived ID in force (or holds the sweep):\n%s", m.Tail(40))
	}

	// After a restart the record is read back: same ID, same appliance.
	if err := m.Restart(); err != nil {
		t.Fatal(err)
	}
	e.eventually(shortWait, "no cluster ID after the restart", func() (bool, error) {
		return strings.Contains(m.Log(), `"Cluster ID in force" clusterID="`+uid+`" source="recorded"`), nil
	})
	e.waitIngressIP("web")
	if n := e.ownCount(); n != 1 {
		t.Errorf("%d appliances of this cluster after the restart, want the same one", n)
	}
}

// TestSweepRefusesUnderSharedDefault: two clusters that kept the earlier
// default clusterName "kubernetes" share one SAKURA project. This cluster's
// sweep, set to delete, finds the other cluster's appliance (same cluster tag,
// a Service UID this cluster does not have): it must only report it, never
// shut it down or delete it.
func TestSweepRefusesUnderSharedDefault(t *testing.T) {
	e := newEnv(t, envOptions{noCCM: true})
	e.clusterID = "kubernetes"
	e.ccm = e.startCCM("ccm-"+e.name, map[string]any{
		"loadBalancer": map[string]any{"sweepIntervalSec": 3, "sweepMode": "delete"},
	})
	e.waitInitialized("node-1", "node-2", "node-3")
	e.createLBService("mine")
	e.waitIngressIP("mine")
	own, err := e.sakura.ownLBs(e.ctx)
	if err != nil || len(own) == 0 {
		t.Fatalf("no own appliance: %v", err)
	}
	mine := own[0]
	const otherUID = "0b9d6a3e-2f4c-4e8a-9c1d-other0cluster"
	other, err := e.sakura.lbs.Create(e.ctx, zone, &iaas.LoadBalancerCreateRequest{
		SwitchID: mine.SwitchID, PlanID: types.LoadBalancerPlans.Standard, VRID: 200,
		IPAddresses: []string{"203.0.113.29"}, NetworkMaskLen: mine.NetworkMaskLen, DefaultRoute: mine.DefaultRoute,
		Name: "other-cluster-lb", Tags: types.Tags{clusterTagKey + "kubernetes", serviceTagKey + otherUID},
		VirtualIPAddresses: iaas.LoadBalancerVirtualIPAddresses{{VirtualIPAddress: "203.0.113.30", Port: 80, DelayLoop: 10}},
	})
	if err != nil {
		t.Fatalf("creating the other cluster's appliance in the simulator: %v", err)
	}
	if !strings.Contains(e.ccm.Log(), "Load balancer sweep held to report-only") {
		t.Errorf("no log line says the sweep is held to report-only")
	}
	// Two sightings and the grace period: where delete mode would act, the
	// sweep reports.
	e.eventually(longWait+sweepGrace, "the sweep never reported the other cluster's appliance", func() (bool, error) {
		for _, line := range strings.Split(e.ccm.Log(), "\n") {
			if strings.Contains(line, "Orphaned load balancer left in place") && strings.Contains(line, otherUID) {
				return true, nil
			}
		}
		return false, nil
	})
	// A few more sweeps: still nothing done to it.
	done := strings.Count(e.ccm.Log(), "Load balancer sweep done")
	e.eventually(shortWait, "no further sweeps", func() (bool, error) {
		return strings.Count(e.ccm.Log(), "Load balancer sweep done") >= done+3, nil
	})
	lb, err := e.sakura.lbs.Read(e.ctx, zone, other.ID)
	if err != nil {
		t.Fatalf("the other cluster's appliance %s is gone: %v", other.ID, err)
	}
	if lb.InstanceStatus.IsDown() {
		t.Errorf("the other cluster's appliance is %s, want it left running", lb.InstanceStatus)
	}
	for _, bad := range []string{"Sweep deleted an orphaned load balancer", "Sweep is shutting down"} {
		for _, line := range strings.Split(e.ccm.Log(), "\n") {
			if strings.Contains(line, bad) && strings.Contains(line, otherUID) {
				t.Errorf("the sweep acted on the other cluster's appliance: %s", line)
			}
		}
	}
}

// TestTwoClustersOneProject: two clusters installed with defaults (no
// clusterID, --cluster-name kubernetes) share one SAKURA project (one
// simulator). Each derives its own ID from its own kube-system namespace,
// tags its appliances with it, and its sweep, set to delete, only ever sees
// its own appliances: neither can sweep the other's.
func TestTwoClustersOneProject(t *testing.T) {
	cms := cp.Client.CoreV1().ConfigMaps(identityNamespace)
	_ = cms.Delete(t.Context(), identityConfigMap, metav1.DeleteOptions{})
	t.Cleanup(func() { _ = cms.Delete(context.Background(), identityConfigMap, metav1.DeleteOptions{}) })
	sweep := map[string]any{"serverCacheTTLSec": 5, "loadBalancer": map[string]any{"sweepIntervalSec": 2, "sweepMode": "delete"}}

	// Cluster A: the shared control plane.
	e := newEnv(t, envOptions{noCCM: true})
	a, err := cp.StartCCM(e.ctx, cluster.CCMOptions{Simulator: e.sim, Zone: zone, Name: "ccm-a-" + e.name,
		LeaseName: e.lease, DeriveClusterID: true, Extra: sweep})
	if err != nil {
		t.Fatal(err)
	}
	e.ccms, e.ccm = append(e.ccms, a), a

	// Cluster B: a control plane of its own, the same project.
	ctx, cancel := context.WithTimeout(e.ctx, 5*time.Minute)
	defer cancel()
	cpB, err := cluster.Start(ctx, cluster.Options{})
	if err != nil {
		t.Fatalf("second control plane: %v", err)
	}
	t.Cleanup(cpB.Stop)
	b, err := cpB.StartCCM(ctx, cluster.CCMOptions{Simulator: e.sim, Zone: zone, Name: "ccm-b",
		LeaseName: "ccm-b", DeriveClusterID: true, Extra: sweep})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Kill() })
	for _, n := range []string{"node-1", "node-2", "node-3"} {
		if _, err := cpB.RegisterNode(ctx, cluster.NodeSpec{Name: n}); err != nil {
			t.Fatal(err)
		}
	}
	idOf := func(c *cluster.Cluster) string {
		ks, err := c.Client.CoreV1().Namespaces().Get(ctx, "kube-system", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return string(ks.UID)
	}
	idA, idB := idOf(cp), idOf(cpB)
	if idA == idB {
		t.Fatalf("precondition: the two control planes share kube-system UID %s", idA)
	}

	e.createLBService("a")
	ipA := e.waitIngressIP("a")
	svcB := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "b", Namespace: "default"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": "b"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(8080)}}}}
	if _, err := cpB.Client.CoreV1().Services("default").Create(ctx, svcB, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var ipB string
	e.eventually(longWait, "cluster B's Service never got an address", func() (bool, error) {
		s, err := cpB.Client.CoreV1().Services("default").Get(ctx, "b", metav1.GetOptions{})
		if err == nil && len(s.Status.LoadBalancer.Ingress) > 0 {
			ipB = s.Status.LoadBalancer.Ingress[0].IP
		}
		return ipB != "", err
	})
	if ipA == ipB {
		t.Fatalf("both clusters' Services show %s", ipA)
	}

	// Each appliance carries its own cluster's derived ID.
	lbs, err := e.sakura.allLBs(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	byCluster := map[string]int{}
	for _, lb := range lbs {
		for _, id := range []string{idA, idB} {
			if hasTag(lb, clusterTagKey+id) {
				byCluster[id]++
			}
		}
		if hasTag(lb, clusterTagKey+"kubernetes") {
			t.Errorf("appliance %s carries the shared default tag", lb.ID)
		}
	}
	if byCluster[idA] != 1 || byCluster[idB] != 1 {
		t.Fatalf("appliances per cluster ID %v, want one each (A %s, B %s)", byCluster, idA, idB)
	}

	// Each sweep, trusted and set to delete, manages its own appliance only.
	for _, m := range []*cluster.CCM{a, b} {
		e.eventually(shortWait, m.Name+" never swept", func() (bool, error) {
			return strings.Count(m.Log(), `"Load balancer sweep done" managed=1`) >= 3, nil
		})
		if strings.Contains(m.Log(), "held to report-only") || strings.Contains(m.Log(), "Sweep deleted") || strings.Contains(m.Log(), "Sweep is shutting down") {
			t.Errorf("%s: the sweep held back or acted:\n%s", m.Name, m.Tail(30))
		}
	}
	if lbs2, err := e.sakura.allLBs(e.ctx); err != nil || len(lbs2) != len(lbs) {
		t.Fatalf("appliances after the sweeps: %d (err %v), want %d", len(lbs2), err, len(lbs))
	}
}
