package e2e

import (
	"context"
	"strings"
	"testing"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/types"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Names as documented in docs/migration.md and docs/annotations.md (written
// out: the e2e module tests the documented contract).
const (
	adoptIDAnnotation  = "k8s.usacloud.jp/load-balancer-adopt-id"
	preserveAnnotation = "k8s.usacloud.jp/load-balancer-preserve"
	ownTagPrefix       = "k8s.usacloud.jp/"
)

// earlierName is the name the earlier controller gave a Service's
// appliance: "a" and the UID without dashes, at most 32 characters
// (cloudprovider.DefaultLoadBalancerName).
func earlierName(uid string) string {
	n := "a" + strings.ReplaceAll(uid, "-", "")
	if len(n) > 32 {
		n = n[:32]
	}
	return n
}

// makeEarlier creates, through the simulator's API, an appliance the way
// the earlier controller made one for svc: its name, tags @k8s,
// @k8s.ClusterID and @k8s.Service (the name cut to 18), one VIP entry.
func (e *env) makeEarlier(svc *corev1.Service, ip, vip string, vrid int) *iaas.LoadBalancer {
	e.t.Helper()
	var block *iaas.LoadBalancer
	all, err := e.sakura.allLBs(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, lb := range all {
		if e.sakura.foreign[lb.ID] {
			block = lb // the topology's appliance sits on the router+switch
		}
	}
	svcName := svc.Name
	if len(svcName) > 18 {
		svcName = svcName[:18]
	}
	lb, err := e.sakura.lbs.Create(e.ctx, zone, &iaas.LoadBalancerCreateRequest{
		SwitchID: block.SwitchID, PlanID: types.LoadBalancerPlans.Standard, VRID: vrid,
		IPAddresses: []string{ip}, NetworkMaskLen: block.NetworkMaskLen, DefaultRoute: block.DefaultRoute,
		Name: earlierName(string(svc.UID)),
		Tags: types.Tags{"@k8s", "@k8s.ClusterID=" + e.clusterID, "@k8s.Service=" + svcName},
		VirtualIPAddresses: iaas.LoadBalancerVirtualIPAddresses{{VirtualIPAddress: vip, Port: 80, DelayLoop: 10,
			Servers: iaas.LoadBalancerServers{{IPAddress: e.top.ipOn("node-1", routerSwitch), Port: 80, Enabled: true,
				HealthCheck: &iaas.LoadBalancerServerHealthCheck{Protocol: types.LoadBalancerHealthCheckProtocols.Ping}}}}},
	})
	if err != nil {
		e.t.Fatalf("creating the earlier controller's appliance: %v", err)
	}
	e.eventually(longWait, "the earlier appliance never came up", func() (bool, error) {
		cur, err := e.sakura.lbs.Read(e.ctx, zone, lb.ID)
		return err == nil && cur.InstanceStatus.IsUp() && cur.Availability.IsAvailable(), nil
	})
	return lb
}

// clusterIPService makes a Service that is not (yet) of type LoadBalancer:
// its UID is known before the controller looks at it.
func (e *env) clusterIPService(name string, ann map[string]string) *corev1.Service {
	e.t.Helper()
	svc, err := e.kube.CoreV1().Services(e.ns).Create(e.ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.ns, Annotations: ann},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": name},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(8080)}}},
	}, metav1.CreateOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return svc
}

func (e *env) makeLoadBalancer(name string) {
	e.t.Helper()
	s, err := e.kube.CoreV1().Services(e.ns).Get(e.ctx, name, metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	s.Spec.Type = corev1.ServiceTypeLoadBalancer
	if _, err := e.kube.CoreV1().Services(e.ns).Update(e.ctx, s, metav1.UpdateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

func ownTags(lb *iaas.LoadBalancer) []string {
	var out []string
	for _, t := range lb.Tags {
		if strings.HasPrefix(t, ownTagPrefix) {
			out = append(out, t)
		}
	}
	return out
}

func (e *env) readLB(id types.ID) *iaas.LoadBalancer {
	e.t.Helper()
	lb, err := e.sakura.lbs.Read(context.Background(), zone, id)
	if err != nil {
		e.t.Fatalf("reading load balancer %s: %v", id, err)
	}
	return lb
}

// TestAdoptEarlier: a Service whose appliance the earlier controller made
// gets that appliance, with its VIP, and no new one; a Service with two
// candidates gets a Warning and nothing is written.
func TestAdoptEarlier(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.waitInitialized("node-1", "node-2", "node-3")
	web := e.clusterIPService("web", nil)
	twin := e.clusterIPService("twin", nil)
	old := e.makeEarlier(web, "203.0.113.20", "203.0.113.21", 10)
	twinA := e.makeEarlier(twin, "203.0.113.22", "203.0.113.23", 11)
	twinB := e.makeEarlier(twin, "203.0.113.24", "203.0.113.25", 12)
	twinAHash, twinBHash := e.readLB(twinA.ID).SettingsHash, e.readLB(twinB.ID).SettingsHash

	e.makeLoadBalancer("web")
	e.makeLoadBalancer("twin")
	if ip := e.waitIngressIP("web"); ip != "203.0.113.21" {
		t.Fatalf("web got %s, want the earlier VIP 203.0.113.21", ip)
	}
	e.eventually(shortWait, "no AdoptionRefused Warning naming both candidates", func() (bool, error) {
		ev := e.eventsFor("Service", "twin")
		return strings.Contains(ev, "Warning AdoptionRefused") && strings.Contains(ev, twinA.ID.String()) && strings.Contains(ev, twinB.ID.String()), nil
	})
	if ev := e.eventsFor("Service", "web"); !strings.Contains(ev, "Normal LoadBalancerAdopted") || !strings.Contains(ev, old.ID.String()) {
		t.Errorf("no LoadBalancerAdopted event naming %s:%s", old.ID, ev)
	}
	got := e.readLB(old.ID)
	want := []string{"k8s.usacloud.jp/cluster=" + e.clusterID, "k8s.usacloud.jp/service-uid=" + string(web.UID)}
	if !sameStrings(ownTags(got), want) || !hasTag(got, "@k8s") || !hasTag(got, "@k8s.Service=web") {
		t.Errorf("adopted appliance tags %v: want the earlier tags kept and %v added", got.Tags, want)
	}
	e.eventually(shortWait, "entries not brought in line (3 real servers)", func() (bool, error) {
		_, vips, err := e.sakura.lbWithVIP(e.ctx, "203.0.113.21")
		return err == nil && len(vips) == 1 && len(vips[0].Servers) == 3, err
	})
	own, err := e.sakura.ownLBs(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(own) != 3 {
		t.Errorf("%d appliances besides the topology's, want the 3 made here (no new one)", len(own))
	}
	for _, c := range []struct {
		lb   *iaas.LoadBalancer
		hash string
	}{{twinA, twinAHash}, {twinB, twinBHash}} {
		cur := e.readLB(c.lb.ID)
		if len(ownTags(cur)) != 0 || cur.SettingsHash != c.hash {
			t.Errorf("ambiguous candidate %s was written: tags %v", c.lb.ID, cur.Tags)
		}
	}
	if s, err := e.kube.CoreV1().Services(e.ns).Get(e.ctx, "twin", metav1.GetOptions{}); err != nil || len(s.Status.LoadBalancer.Ingress) != 0 {
		t.Errorf("twin shows an address: %v", err)
	}
}

// TestPreserveAndAdoptByID: a preserved Service's deletion leaves its
// appliance up and untagged, the sweep leaves it, another Service's attempt
// to adopt an owned appliance is refused, and adopting it by ID gives the
// same address back.
func TestPreserveAndAdoptByID(t *testing.T) {
	e := newEnv(t, envOptions{extraConfig: map[string]any{
		"loadBalancer": map[string]any{"sweepIntervalSec": 3, "sweepMode": "delete"},
	}})
	e.waitInitialized("node-1", "node-2", "node-3")
	e.clusterIPService("keep", map[string]string{preserveAnnotation: "true"})
	e.makeLoadBalancer("keep")
	vip := e.waitIngressIP("keep")
	lb, _, err := e.sakura.lbWithVIP(e.ctx, vip)
	if err != nil || lb == nil {
		t.Fatalf("no appliance for %s: %v", vip, err)
	}

	// Owned by keep: adopting it by ID is refused, nothing written.
	before := e.readLB(lb.ID)
	e.clusterIPService("thief", map[string]string{adoptIDAnnotation: lb.ID.String()})
	e.makeLoadBalancer("thief")
	e.eventually(shortWait, "no AdoptionRefused for another Service's appliance", func() (bool, error) {
		ev := e.eventsFor("Service", "thief")
		return strings.Contains(ev, "Warning AdoptionRefused") && strings.Contains(ev, "another Service"), nil
	})
	if cur := e.readLB(lb.ID); !sameStrings(cur.Tags, before.Tags) || cur.SettingsHash != before.SettingsHash {
		t.Errorf("refused adoption wrote: tags %v", cur.Tags)
	}
	e.deleteService("thief")

	e.deleteService("keep")
	kept := e.readLB(lb.ID)
	if !kept.InstanceStatus.IsUp() || len(ownTags(kept)) != 0 || len(kept.VirtualIPAddresses) != 1 || kept.VirtualIPAddresses[0].VirtualIPAddress != vip {
		t.Fatalf("preserved appliance: up %v, tags %v, entries %d", kept.InstanceStatus.IsUp(), kept.Tags, len(kept.VirtualIPAddresses))
	}
	if ev := e.eventsFor("Service", "keep"); !strings.Contains(ev, "Normal LoadBalancerPreserved") || !strings.Contains(ev, lb.ID.String()) {
		t.Errorf("no LoadBalancerPreserved event naming %s:%s", lb.ID, ev)
	}
	// Two sweeps after the deletion (the sweep needs two sightings).
	log := e.ccm.Log()
	e.eventually(shortWait, "the sweep did not run twice", func() (bool, error) {
		return strings.Count(e.ccm.Log(), "Load balancer sweep done") >= strings.Count(log, "Load balancer sweep done")+2, nil
	})
	if cur := e.readLB(lb.ID); !cur.InstanceStatus.IsUp() {
		t.Fatalf("the sweep touched the preserved appliance")
	}

	e.clusterIPService("again", map[string]string{adoptIDAnnotation: lb.ID.String()})
	e.makeLoadBalancer("again")
	if ip := e.waitIngressIP("again"); ip != vip {
		t.Fatalf("re-adopted on %s, want %s", ip, vip)
	}
	own, err := e.sakura.ownLBs(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(own) != 1 || own[0].ID != lb.ID {
		t.Errorf("want only the preserved appliance, have %d", len(own))
	}
	t.Logf("preserved and re-adopted %s on %s", lb.ID, vip)
}
