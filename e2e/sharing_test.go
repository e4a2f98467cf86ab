package e2e

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

const sharingKeyAnnotation = "k8s.usacloud.jp/load-balancer-sharing-key"

func tcpPort(name string, port int32) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Port: port, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(port)}
}

// createShared creates a LoadBalancer Service with a sharing key and extra annotations.
func (e *env) createShared(name, key string, extra map[string]string, ports ...corev1.ServicePort) {
	e.t.Helper()
	ann := map[string]string{sharingKeyAnnotation: key}
	for k, v := range extra {
		ann[k] = v
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.ns, Annotations: ann},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": name}, Ports: ports},
	}
	if _, err := e.kube.CoreV1().Services(e.ns).Create(e.ctx, svc, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

// TestSharedLoadBalancer: Services with one sharing key get one appliance,
// each with its own VIP; a Service whose plan disagrees is refused with an
// Event and changes nothing; the appliance stays until its last Service goes.
func TestSharedLoadBalancer(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createShared("api", "team-a", nil, tcpPort("http", 80))
	e.createShared("admin", "team-a", nil, tcpPort("http", 80), tcpPort("https", 443))
	apiIP := e.waitIngressIP("api")
	adminIP := e.waitIngressIP("admin")
	checkInBlock(t, apiIP)
	checkInBlock(t, adminIP)
	if apiIP == adminIP {
		t.Fatalf("both Services got %s; each needs its own VIP", apiIP)
	}
	all := e.nodeIPs("node-1", "node-2", "node-3")
	e.waitVIPs(apiIP, map[int][]string{80: all})
	e.waitVIPs(adminIP, map[int][]string{80: all, 443: all})
	own, err := e.sakura.ownLBs(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(own) != 1 {
		t.Fatalf("%d appliances for two Services of one key, want 1", len(own))
	}
	shared := own[0]
	tags := strings.Join(shared.Tags, " ")
	if !strings.Contains(tags, "k8s.usacloud.jp/sharing-key=team-a") || strings.Count(tags, "k8s.usacloud.jp/service-uid=") != 2 {
		t.Fatalf("shared appliance tags %v", shared.Tags)
	}
	// Saved: one appliance address instead of two.
	if len(shared.IPAddresses) != 1 {
		t.Fatalf("appliance addresses %v", shared.IPAddresses)
	}

	// A conflicting Service (plan) is refused; the appliance is untouched.
	e.createShared("batch", "team-a", map[string]string{"k8s.usacloud.jp/load-balancer-plan": "highspec"}, tcpPort("http", 8080))
	e.waitEvent("batch", "SharingConflict", "plan is standard, wanted highspec", sharingKeyAnnotation)
	after, _, err := e.sakura.lbWithVIP(e.ctx, apiIP)
	if err != nil || after == nil {
		t.Fatalf("shared appliance gone: %v", err)
	}
	if len(after.VirtualIPAddresses) != 3 || strings.Join(after.Tags, " ") != tags {
		t.Fatalf("a refused Service changed the appliance: %d entries, tags %v", len(after.VirtualIPAddresses), after.Tags)
	}
	if s, err := e.kube.CoreV1().Services(e.ns).Get(e.ctx, "batch", metav1.GetOptions{}); err != nil || len(s.Status.LoadBalancer.Ingress) != 0 {
		t.Fatalf("refused Service got an address: %v %v", s.Status.LoadBalancer.Ingress, err)
	}
	if n := e.ownCount(); n != 1 {
		t.Fatalf("%d appliances after the conflict, want 1", n)
	}
	e.deleteService("batch")

	// The first Service leaves; the other keeps the appliance and its VIP.
	e.deleteService("api")
	e.waitEvent("api", "LeftSharedLoadBalancer", "team-a")
	e.waitVIPs(adminIP, map[int][]string{80: all, 443: all})
	e.eventually(shortWait, "api's VIP still on the shared appliance", func() (bool, error) {
		lb, _, err := e.sakura.lbWithVIP(e.ctx, apiIP)
		return lb == nil, err
	})
	if n := e.ownCount(); n != 1 {
		t.Fatalf("%d appliances after one member left, want 1", n)
	}
	// The last one takes the appliance with it.
	e.deleteService("admin")
	e.eventually(longWait, "shared appliance not deleted with its last Service", func() (bool, error) {
		return e.ownCount() == 0, nil
	})
}
