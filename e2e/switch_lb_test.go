package e2e

import (
	"net/netip"
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// privateSwitch is the topology's plain switch (no router; its network
// 192.168.100.0/24 is known only to the topology, as on SAKURA).
const privateSwitch = "k8s-private"

const (
	annType      = "k8s.usacloud.jp/load-balancer-type"
	annIPRange   = "k8s.usacloud.jp/load-balancer-ip-range"
	annAssign    = "k8s.usacloud.jp/load-balancer-assign-ip-range"
	annGateway   = "k8s.usacloud.jp/load-balancer-assign-default-gateway"
	privateRange = "192.168.100.0/24"
)

func (e *env) privateIPs(servers ...string) []string {
	var ips []string
	for _, s := range servers {
		ips = append(ips, e.top.ipOn(s, privateSwitch))
	}
	sort.Strings(ips)
	return ips
}

func (e *env) createAnnotatedService(name string, ann map[string]string) {
	e.t.Helper()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.ns, Annotations: ann},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeLoadBalancer,
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(8080)}},
		},
	}
	if _, err := e.kube.CoreV1().Services(e.ns).Create(e.ctx, svc, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

// waitEvent waits for an Event on the Service with reason whose message
// contains the given strings (reasons say Warning or Normal by themselves).
// annotate sets one annotation of Service name.
func (e *env) annotate(name, key, value string) {
	e.t.Helper()
	svc, err := e.kube.CoreV1().Services(e.ns).Get(e.ctx, name, metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	if svc.Annotations == nil {
		svc.Annotations = map[string]string{}
	}
	svc.Annotations[key] = value
	if _, err := e.kube.CoreV1().Services(e.ns).Update(e.ctx, svc, metav1.UpdateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) waitEvent(name, reason string, substr ...string) {
	e.t.Helper()
	e.eventually(longWait, "no "+reason+" event on "+name+" with "+strings.Join(substr, ", "), func() (bool, error) {
		l, err := e.kube.CoreV1().Events(e.ns).List(e.ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
		if err != nil {
			return false, err
		}
	next:
		for _, ev := range l.Items {
			if ev.Reason != reason {
				continue
			}
			for _, s := range substr {
				if !strings.Contains(ev.Message, s) {
					continue next
				}
			}
			return true, nil
		}
		return false, nil
	})
}

// TestSwitchPrivateLoadBalancer: load-balancer-type switch puts the
// appliance on the nodes' plain switch with a private VIP from the assign
// range; the real servers are the nodes' private addresses. Invalid
// annotations and a change of type are reported and change nothing.
func TestSwitchPrivateLoadBalancer(t *testing.T) {
	e := newEnv(t, envOptions{})
	assign := netip.MustParsePrefix("192.168.100.200/29")
	e.createAnnotatedService("private", map[string]string{
		annType: "switch", annIPRange: privateRange, annAssign: assign.String(), annGateway: "192.168.100.1",
	})
	ip := e.waitIngressIP("private")
	if a, err := netip.ParseAddr(ip); err != nil || !assign.Contains(a) {
		t.Fatalf("EXTERNAL-IP %q is not in the assign range %s", ip, assign)
	}
	e.waitVIPs(ip, map[int][]string{80: e.privateIPs("node-1", "node-2", "node-3")})
	lb, _, err := e.sakura.lbWithVIP(e.ctx, ip)
	if err != nil || lb == nil {
		t.Fatalf("appliance for %s: %v", ip, err)
	}
	if lb.NetworkMaskLen != 24 || lb.DefaultRoute != "192.168.100.1" || len(lb.IPAddresses) != 1 {
		t.Fatalf("appliance network: mask %d, route %q, addresses %v", lb.NetworkMaskLen, lb.DefaultRoute, lb.IPAddresses)
	}
	if a := netip.MustParseAddr(lb.IPAddresses[0]); !assign.Contains(a) || a.String() == ip {
		t.Fatalf("appliance address %s not a separate address of %s", a, assign)
	}

	// Invalid: assign range outside ip-range. A Warning names the
	// annotation; nothing is created.
	e.createAnnotatedService("broken", map[string]string{
		annType: "switch", annIPRange: privateRange, annAssign: "10.0.0.0/29",
	})
	e.waitEvent("broken", "InvalidAnnotation", annAssign, "not inside ip-range")
	if n := e.ownCount(); n != 1 {
		t.Fatalf("%d appliances, want 1 (nothing for the invalid Service)", n)
	}

	// switch -> internet needs a new appliance: reported, the VIP stays.
	e.annotate("private", annType, "internet")
	e.waitEvent("private", "ChangeNeedsNewLoadBalancer", "type is switch, wanted internet")
	if got := e.waitIngressIP("private"); got != ip {
		t.Errorf("EXTERNAL-IP changed from %s to %s", ip, got)
	}
	if n := e.ownCount(); n != 1 {
		t.Errorf("%d appliances after the type change, want 1", n)
	}
}

// TestSwitchTypeFromCloudConfig: with loadBalancer.type switch and its
// network in the cloud-config, a plain `kubectl expose` gets a private VIP.
func TestSwitchTypeFromCloudConfig(t *testing.T) {
	e := newEnv(t, envOptions{nodes: []string{"node-1", "node-2"}, extraConfig: map[string]any{
		"loadBalancer": map[string]any{"type": "switch", "ipRange": privateRange, "assignIPRange": "192.168.100.64/28"},
	}})
	for _, args := range [][]string{
		{"create", "deployment", "web", "--image=registry.invalid/web:1"},
		{"expose", "deployment", "web", "--type=LoadBalancer", "--port=80"},
	} {
		if out, err := cp.Kubectl(e.ctx, append([]string{"-n", e.ns}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	ip := e.waitIngressIP("web")
	if ip != "192.168.100.64" {
		t.Fatalf("EXTERNAL-IP %s, want the lowest address of the configured assign range, 192.168.100.64", ip)
	}
	e.waitVIPs(ip, map[int][]string{80: e.privateIPs("node-1", "node-2")})
	lb, _, err := e.sakura.lbWithVIP(e.ctx, ip)
	if err != nil || lb == nil || lb.DefaultRoute != "" || lb.NetworkMaskLen != 24 {
		t.Fatalf("appliance %+v: %v", lb, err)
	}
}
