package e2e

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// The condition type and reasons as docs/load-balancers.md documents them
// (written out: the e2e module tests the documented contract).
const (
	conditionServing = "k8s.usacloud.jp/LoadBalancerServing"
	reasonServing    = "LoadBalancerServing"
)

// waitCondition waits until the Service's serving condition has status and
// reason and its message contains contains.
func (e *env) waitCondition(name string, status metav1.ConditionStatus, reason, contains string) {
	e.t.Helper()
	e.eventually(longWait, name+": condition "+string(status)+"/"+reason, func() (bool, error) {
		cur, err := e.kube.CoreV1().Services(e.ns).Get(e.ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range cur.Status.Conditions {
			if c.Type == conditionServing {
				return c.Status == status && c.Reason == reason && strings.Contains(c.Message, contains), nil
			}
		}
		return false, nil
	})
}

// A Service's condition through the real binary and a real API server
// (server-side apply of the status with the controller's own field
// manager): serving with its address; an invalid annotation turns it to
// not serving, naming the annotation; fixed, serving again. The upstream
// service controller's status writes keep the condition.
func TestServiceConditionFollowsTheLoadBalancer(t *testing.T) {
	e := newEnv(t, envOptions{})
	svc := e.createLBService("web")
	ip := e.waitIngressIP("web")
	condition := func(status metav1.ConditionStatus, reason, contains string) {
		t.Helper()
		e.waitCondition(svc.Name, status, reason, contains)
	}
	condition(metav1.ConditionTrue, reasonServing, ip)

	patch := `{"metadata":{"annotations":{"k8s.usacloud.jp/load-balancer-ha":"yes"}}}`
	if _, err := e.kube.CoreV1().Services(e.ns).Patch(e.ctx, svc.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	condition(metav1.ConditionFalse, "InvalidAnnotation", "k8s.usacloud.jp/load-balancer-ha")

	patch = `{"metadata":{"annotations":{"k8s.usacloud.jp/load-balancer-ha":null}}}`
	if _, err := e.kube.CoreV1().Services(e.ns).Patch(e.ctx, svc.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	condition(metav1.ConditionTrue, reasonServing, ip)
	if got := e.serviceIP("web"); got != ip {
		t.Errorf("the address moved: %s, want %s", got, ip)
	}
}

// A mixed TCP/UDP Service: without the opt-in no appliance and a condition
// that says why; with it, an address for the TCP port and the UDP port
// listed with its error.
func TestMixedProtocolService(t *testing.T) {
	e := newEnv(t, envOptions{})
	svc := e.createLBService("game",
		corev1.ServicePort{Name: "query", Port: 27015, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(27015)},
		corev1.ServicePort{Name: "game", Port: 27015, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromInt32(27015)})
	e.waitCondition(svc.Name, metav1.ConditionFalse, "UnsupportedProtocol", "27015/UDP")
	if n := e.ownCount(); n != 0 {
		t.Fatalf("%d appliances for a refused Service", n)
	}
	patch := `{"metadata":{"annotations":{"k8s.usacloud.jp/load-balancer-mixed-protocol":"serve-tcp"}}}`
	if _, err := e.kube.CoreV1().Services(e.ns).Patch(e.ctx, svc.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	ip := e.waitIngressIP("game")
	e.eventually(longWait, "the UDP port's error in the status", func() (bool, error) {
		cur, err := e.kube.CoreV1().Services(e.ns).Get(e.ctx, svc.Name, metav1.GetOptions{})
		if err != nil || len(cur.Status.LoadBalancer.Ingress) == 0 {
			return false, err
		}
		for _, p := range cur.Status.LoadBalancer.Ingress[0].Ports {
			if p.Protocol == corev1.ProtocolUDP {
				return p.Error != nil && *p.Error == "k8s.usacloud.jp/UnsupportedProtocol", nil
			}
		}
		return false, nil
	})
	e.waitVIPs(ip, map[int][]string{27015: e.nodeIPs("node-1", "node-2", "node-3")})
}

// IP families: an IPv6-only Service gets no appliance and a condition
// saying why (the SAKURA load balancer has IPv4 addresses only); a
// dual-stack one is served on IPv4 and its condition says so.
func TestIPFamilies(t *testing.T) {
	e := newEnv(t, envOptions{})
	port := []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(8080)}}
	single := corev1.IPFamilyPolicySingleStack
	v6 := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "v6", Namespace: e.ns},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": "v6"}, Ports: port,
			IPFamilyPolicy: &single, IPFamilies: []corev1.IPFamily{corev1.IPv6Protocol}},
	}
	if _, err := e.kube.CoreV1().Services(e.ns).Create(e.ctx, v6, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dual := corev1.IPFamilyPolicyRequireDualStack
	ds := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "dual", Namespace: e.ns},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": "dual"}, Ports: port,
			IPFamilyPolicy: &dual, IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}},
	}
	if _, err := e.kube.CoreV1().Services(e.ns).Create(e.ctx, ds, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ip := e.waitIngressIP("dual")
	e.waitCondition("dual", metav1.ConditionTrue, reasonServing, "IPv4 only")
	e.waitCondition("v6", metav1.ConditionFalse, "UnsupportedIPFamily", "IPv6")
	if n := e.ownCount(); n != 1 {
		t.Fatalf("%d appliances, want 1 (the dual-stack Service's on %s)", n, ip)
	}
	if st := e.service("v6").Status.LoadBalancer.Ingress; len(st) != 0 {
		t.Errorf("the IPv6-only Service shows an address: %v", st)
	}
}
