package e2e

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// podNodes returns the sorted node names of the running, ready pods of app.
func (e *env) podNodes(app string) []string {
	e.t.Helper()
	l, err := e.kube.CoreV1().Pods(e.ns).List(e.ctx, metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, p := range l.Items {
		if p.DeletionTimestamp == nil && p.Spec.NodeName != "" && p.Status.Phase == corev1.PodRunning {
			out = append(out, p.Spec.NodeName)
		}
	}
	sort.Strings(out)
	return out
}

// waitPods waits until n pods of app run, and returns their nodes.
func (e *env) waitPods(app string, n int) []string {
	e.t.Helper()
	var nodes []string
	e.eventually(shortWait, fmt.Sprintf("%d pods of %s never ran", n, app), func() (bool, error) {
		nodes = e.podNodes(app)
		return len(nodes) == n, nil
	})
	return nodes
}

func (e *env) kubectl(args ...string) {
	e.t.Helper()
	out, err := cp.Kubectl(e.ctx, append([]string{"-n", e.ns}, args...)...).CombinedOutput()
	if err != nil {
		e.t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestExternalTrafficPolicyLocal: a Deployment behind a Local Service is
// scaled, pods are scheduled and become ready (emulated scheduler and
// kubelets, real EndpointSlice controller), and the appliance's real servers
// follow the nodes that run ready pods. A real server the appliance finds
// DOWN is reported on the Service, and so is its recovery.
func TestExternalTrafficPolicyLocal(t *testing.T) {
	e := newEnv(t, envOptions{extraConfig: map[string]any{"loadBalancer": map[string]any{
		"endpointHoldDownSec": 2, "endpointMinIntervalSec": 1, "healthPollIntervalSec": 2,
	}}})
	go cp.EmulatePods(e.ctx, e.ns, []string{"node-1", "node-2", "node-3"}, 300*time.Millisecond)

	e.kubectl("create", "deployment", "web", "--image=registry.invalid/web:1", "--replicas=1")
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: e.ns},
		Spec: corev1.ServiceSpec{
			Type:                  corev1.ServiceTypeLoadBalancer,
			ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal,
			Selector:              map[string]string{"app": "web"},
			Ports:                 []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(8080)}},
		},
	}
	if _, err := e.kube.CoreV1().Services(e.ns).Create(e.ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	first := e.waitPods("web", 1)
	ip := e.waitIngressIP("web")
	e.waitVIPs(ip, map[int][]string{80: e.nodeIPs(first...)})

	// Scale up: every node runs a pod, every node is a real server.
	e.kubectl("scale", "deployment", "web", "--replicas=3")
	e.waitPods("web", 3)
	e.waitVIPs(ip, map[int][]string{80: e.nodeIPs("node-1", "node-2", "node-3")})

	// Scale down: only the node that keeps its pod stays.
	e.kubectl("scale", "deployment", "web", "--replicas=1")
	left := e.waitPods("web", 1)
	e.waitVIPs(ip, map[int][]string{80: e.nodeIPs(left...)})

	// A pod failing readiness takes its node out (after the hold-down);
	// recovering puts it back.
	pods, err := e.kube.CoreV1().Pods(e.ns).List(e.ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil || len(pods.Items) == 0 {
		t.Fatalf("pods: %v", err)
	}
	var pod string
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			pod = p.Name
		}
	}
	if err := cp.SetPodReady(e.ctx, e.ns, pod, false); err != nil {
		t.Fatal(err)
	}
	e.waitVIPs(ip, map[int][]string{80: nil})
	e.waitEvent("web", "NoReadyEndpoints")
	if err := cp.SetPodReady(e.ctx, e.ns, pod, true); err != nil {
		t.Fatal(err)
	}
	e.waitVIPs(ip, map[int][]string{80: e.nodeIPs(left...)})

	// Health: the appliance's check fails for the real server, then passes.
	server := e.nodeIPs(left...)[0]
	if err := e.sim.SetRealServerHealth(e.ctx, server, false); err != nil {
		t.Fatal(err)
	}
	e.waitEvent("web", "RealServerDown", server, left[0], ip+":80")
	if err := e.sim.SetRealServerHealth(e.ctx, server, true); err != nil {
		t.Fatal(err)
	}
	e.waitEvent("web", "RealServerUp", server)
}
