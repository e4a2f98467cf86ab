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

// routerBlock is the router+switch block of the topology.
var routerBlock = netip.MustParsePrefix("203.0.113.0/27")

// waitVIPs waits until the appliance serving ip has exactly the wanted
// port → real servers mapping, and returns it.
func (e *env) waitVIPs(ip string, want map[int][]string) {
	e.t.Helper()
	var last []vipView
	err := pollUntil(e.ctx, longWait, e.failOnCrash(func() (bool, error) {
		lb, vips, err := e.sakura.lbWithVIP(e.ctx, ip)
		if err != nil || lb == nil {
			return false, err
		}
		last = vips
		if len(vips) != len(want) {
			return false, nil
		}
		for _, v := range vips {
			if v.VIP != ip || !sameStrings(v.Servers, want[v.Port]) {
				return false, nil
			}
		}
		return true, nil
	}))
	if err != nil {
		e.t.Fatalf("appliance for %s: got VIPs %+v, want port→servers %v: %v", ip, last, want, err)
	}
}

func (e *env) ownCount() int {
	e.t.Helper()
	own, err := e.sakura.ownLBs(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return len(own)
}

func checkInBlock(t *testing.T, ip string) {
	t.Helper()
	a, err := netip.ParseAddr(ip)
	if err != nil || !routerBlock.Contains(a) {
		t.Fatalf("EXTERNAL-IP %q is not in the router block %s", ip, routerBlock)
	}
}

// TestLoadBalancerKubectlExpose is the README's demo as a test: `kubectl
// expose --type=LoadBalancer` gets an address from the router block, and the
// simulated appliance serves it on the Service's port with every node as a
// real server.
func TestLoadBalancerKubectlExpose(t *testing.T) {
	e := newEnv(t, envOptions{})
	kubectl := func(args ...string) {
		t.Helper()
		out, err := cp.Kubectl(e.ctx, append([]string{"-n", e.ns}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	kubectl("create", "deployment", "web", "--image=registry.invalid/web:1")
	kubectl("expose", "deployment", "web", "--type=LoadBalancer", "--port=80")
	ip := e.waitIngressIP("web")
	checkInBlock(t, ip)
	e.waitVIPs(ip, map[int][]string{80: e.nodeIPs("node-1", "node-2", "node-3")})
	if n := e.ownCount(); n != 1 {
		t.Errorf("%d appliances made, want 1", n)
	}
	out, err := cp.Kubectl(e.ctx, "-n", e.ns, "get", "svc", "web").CombinedOutput()
	if err != nil || !strings.Contains(string(out), ip) {
		t.Errorf("kubectl get svc does not show %s: %v\n%s", ip, err, out)
	}
}

// TestLoadBalancerPortChange: changing the Service port moves the VIP's port
// and keeps the address.
func TestLoadBalancerPortChange(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createLBService("app")
	ip := e.waitIngressIP("app")
	all := e.nodeIPs("node-1", "node-2", "node-3")
	e.waitVIPs(ip, map[int][]string{80: all})

	svc, err := e.kube.CoreV1().Services(e.ns).Get(e.ctx, "app", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svc.Spec.Ports[0].Port = 8080
	svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{Name: "https", Port: 443, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(8443)})
	if _, err := e.kube.CoreV1().Services(e.ns).Update(e.ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitVIPs(ip, map[int][]string{8080: all, 443: all})
	if got := e.waitIngressIP("app"); got != ip {
		t.Errorf("EXTERNAL-IP changed from %s to %s on a port change", ip, got)
	}
	if n := e.ownCount(); n != 1 {
		t.Errorf("%d appliances, want 1", n)
	}
}

// TestLoadBalancerNodesFollow: real servers follow Nodes joining and leaving.
func TestLoadBalancerNodesFollow(t *testing.T) {
	e := newEnv(t, envOptions{nodes: []string{"node-1", "node-2"}})
	e.createLBService("app")
	ip := e.waitIngressIP("app")
	e.waitVIPs(ip, map[int][]string{80: e.nodeIPs("node-1", "node-2")})

	e.registerNode("node-3")
	e.waitVIPs(ip, map[int][]string{80: e.nodeIPs("node-1", "node-2", "node-3")})

	if err := cp.DeleteNode(e.ctx, "node-1"); err != nil {
		t.Fatal(err)
	}
	e.waitVIPs(ip, map[int][]string{80: e.nodeIPs("node-2", "node-3")})

	// A brand-new server joins the cluster.
	spec := map[string]any{"name": "node-4", "cpu": 2, "memoryGB": 4, "nics": []map[string]any{
		{"switch": routerSwitch, "userIPAddress": "203.0.113.20"},
	}}
	if _, err := e.sim.AddServer(e.ctx, spec); err != nil {
		t.Fatal(err)
	}
	e.registerNode("node-4")
	want := append(e.nodeIPs("node-2", "node-3"), "203.0.113.20")
	e.waitVIPs(ip, map[int][]string{80: sortedCopy(want)})
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}

// TestLoadBalancerDeleteAndReuse: deleting the Service deletes the appliance
// (and only it), and its address is handed out again afterwards.
func TestLoadBalancerDeleteAndReuse(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createLBService("first")
	ip := e.waitIngressIP("first")
	e.waitVIPs(ip, map[int][]string{80: e.nodeIPs("node-1", "node-2", "node-3")})

	e.deleteService("first")
	e.eventually(longWait, "appliance not deleted with its Service", func() (bool, error) {
		own, err := e.sakura.ownLBs(e.ctx)
		return err == nil && len(own) == 0, err
	})
	all, err := e.sakura.allLBs(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != len(e.sakura.foreign) {
		t.Errorf("foreign load balancers touched: %d left of %d", len(all), len(e.sakura.foreign))
	}

	// Addresses are handed out lowest first, so the freed one comes back.
	e.createLBService("second")
	if got := e.waitIngressIP("second"); got != ip {
		t.Errorf("second Service got %s, want the freed %s", got, ip)
	}
}

// TestLoadBalancerUDPRefused: SAKURA's load balancer is TCP only; a UDP port
// gets a Warning Event naming it and nothing is created.
func TestLoadBalancerUDPRefused(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createLBService("dns", corev1.ServicePort{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromInt32(53)})
	var msg string
	e.eventually(longWait, "no Warning Event about the UDP port", func() (bool, error) {
		l, err := e.kube.CoreV1().Events(e.ns).List(e.ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=dns"})
		if err != nil {
			return false, err
		}
		for _, ev := range l.Items {
			if ev.Type == corev1.EventTypeWarning && strings.Contains(ev.Message, "UDP") && strings.Contains(ev.Message, "53") {
				msg = ev.Reason + ": " + ev.Message
				return true, nil
			}
		}
		return false, nil
	})
	t.Logf("event: %s", msg)
	// A TCP Service made afterwards works, so the controller has had every
	// chance to act on the UDP one too: still nothing for it.
	e.createLBService("web")
	ip := e.waitIngressIP("web")
	if n := e.ownCount(); n != 1 {
		t.Errorf("%d appliances, want 1 (the TCP Service's only)", n)
	}
	svc, err := e.kube.CoreV1().Services(e.ns).Get(e.ctx, "dns", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(svc.Status.LoadBalancer.Ingress) != 0 {
		t.Errorf("UDP Service got an address: %v", svc.Status.LoadBalancer.Ingress)
	}
	if _, vips, err := e.sakura.lbWithVIP(e.ctx, ip); err != nil || len(vips) != 1 || vips[0].Port != 80 {
		t.Errorf("the TCP Service's appliance should serve port 80 only: %+v, %v", vips, err)
	}
}
