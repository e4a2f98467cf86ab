package e2e

import (
	"slices"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// The class, finalizers and reasons as docs/load-balancers.md documents
// them (written out: the e2e module tests the documented contract).
const (
	defaultClass     = "k8s.usacloud.jp/dsr"
	classFinalizer   = "k8s.usacloud.jp/load-balancer-cleanup"
	upstreamFinalize = "service.kubernetes.io/load-balancer-cleanup"
	reasonBooting    = "LoadBalancerBooting"
)

func (e *env) createClassService(name, class string) *corev1.Service {
	e.t.Helper()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.ns},
		Spec: corev1.ServiceSpec{
			Type:              corev1.ServiceTypeLoadBalancer,
			LoadBalancerClass: ptr.To(class),
			Selector:          map[string]string{"app": name},
			Ports:             []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(8080)}},
		},
	}
	created, err := e.kube.CoreV1().Services(e.ns).Create(e.ctx, svc, metav1.CreateOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return created
}

// conditionTrail records every reason the Service's serving condition
// shows, in order, from a watch started before the Service exists: a poll
// could miss a short boot.
type conditionTrail struct {
	mu      sync.Mutex
	reasons []string
}

func (e *env) watchCondition(name string) *conditionTrail {
	e.t.Helper()
	w, err := e.kube.CoreV1().Services(e.ns).Watch(e.ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String()})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(w.Stop)
	tr := &conditionTrail{}
	go func() {
		for ev := range w.ResultChan() {
			svc, ok := ev.Object.(*corev1.Service)
			if !ok {
				continue
			}
			for _, c := range svc.Status.Conditions {
				if c.Type != conditionServing {
					continue
				}
				tr.mu.Lock()
				if n := len(tr.reasons); n == 0 || tr.reasons[n-1] != c.Reason {
					tr.reasons = append(tr.reasons, c.Reason)
				}
				tr.mu.Unlock()
			}
		}
	}()
	return tr
}

func (tr *conditionTrail) seen() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return slices.Clone(tr.reasons)
}

// warnings are the Service's Warning Events, whoever recorded them.
func (e *env) warnings(name string) []string {
	e.t.Helper()
	l, err := e.kube.CoreV1().Events(e.ns).List(e.ctx, metav1.ListOptions{
		FieldSelector: "involvedObject.kind=Service,involvedObject.name=" + name,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, ev := range l.Items {
		if ev.Type == corev1.EventTypeWarning {
			out = append(out, ev.Reason+": "+ev.Message)
		}
	}
	return out
}

func (e *env) service(name string) *corev1.Service {
	e.t.Helper()
	svc, err := e.kube.CoreV1().Services(e.ns).Get(e.ctx, name, metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return svc
}

// A Service of this controller's class gets an appliance from the own loop
// (beside the upstream service controller, which skips it) with the
// class's finalizer; a Service of another class is never touched; the API
// server refuses a class switch on a live Service (the field is
// immutable); the documented way out (type ClusterIP, class cleared)
// deletes the appliance; deleting either Service leaves nothing.
func TestLoadBalancerClass(t *testing.T) {
	e := newEnv(t, envOptions{})
	trail := e.watchCondition("ours")
	e.createClassService("ours", defaultClass)
	e.createClassService("theirs", "example.com/other")
	ip := e.waitIngressIP("ours")
	e.waitVIPs(ip, map[int][]string{80: e.nodeIPs("node-1", "node-2", "node-3")})
	ours := e.service("ours")
	if !slices.Contains(ours.Finalizers, classFinalizer) || slices.Contains(ours.Finalizers, upstreamFinalize) {
		t.Errorf("finalizers %v: want the class's (%s) and not the upstream one", ours.Finalizers, classFinalizer)
	}
	e.eventually(longWait, "the serving condition", func() (bool, error) {
		s := trail.seen()
		return len(s) > 0 && s[len(s)-1] == reasonServing, nil
	})
	if w := e.warnings("ours"); len(w) > 0 {
		t.Errorf("a normal create on the own loop recorded Warnings: %v", w)
	}
	if s := trail.seen(); s[0] != reasonBooting {
		t.Errorf("condition reasons %v: want booting before serving", s)
	}

	theirs := e.service("theirs")
	if len(theirs.Finalizers) > 0 || len(theirs.Status.LoadBalancer.Ingress) > 0 || len(theirs.Status.Conditions) > 0 {
		t.Errorf("another class's Service was touched: finalizers %v, status %+v", theirs.Finalizers, theirs.Status)
	}
	if ev := e.eventsFor("Service", "theirs"); ev != "" {
		t.Errorf("Events on another class's Service:%s", ev)
	}
	if n := e.ownCount(); n != 1 {
		t.Fatalf("%d appliances, want 1 (ours only)", n)
	}

	ours.Spec.LoadBalancerClass = ptr.To("example.com/other")
	_, err := e.kube.CoreV1().Services(e.ns).Update(e.ctx, ours, metav1.UpdateOptions{})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "loadBalancerClass") {
		t.Fatalf("a class switch on a live Service: %v, want the API server's refusal (the field is immutable)", err)
	}

	// The documented way out: type ClusterIP with the class cleared in one
	// update; the appliance goes and the class finalizer comes off.
	ours = e.service("ours")
	ours.Spec.Type, ours.Spec.LoadBalancerClass = corev1.ServiceTypeClusterIP, nil
	ours.Spec.Ports[0].NodePort = 0
	if _, err := e.kube.CoreV1().Services(e.ns).Update(e.ctx, ours, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.eventually(longWait, "the appliance deleted and the finalizer taken off after the type change", func() (bool, error) {
		s := e.service("ours")
		return e.ownCount() == 0 && !slices.Contains(s.Finalizers, classFinalizer) && len(s.Status.LoadBalancer.Ingress) == 0, nil
	})

	e.deleteService("theirs")
	e.deleteService("ours")
}

// With loadBalancer.serviceController: own, a Service without a class is
// served by the own loop and the upstream service controller stands down:
// a first create shows the condition booting, then serving, and no
// Warning; the finalizer is the upstream one (so switching loops needs no
// migration); deleting cleans up.
func TestOwnServiceLoopServesServicesWithoutClass(t *testing.T) {
	e := newEnv(t, envOptions{extraConfig: map[string]any{"loadBalancer": map[string]any{"serviceController": "own"}}})
	trail := e.watchCondition("web")
	e.createLBService("web")
	ip := e.waitIngressIP("web")
	e.waitVIPs(ip, map[int][]string{80: e.nodeIPs("node-1", "node-2", "node-3")})
	e.eventually(longWait, "the serving condition", func() (bool, error) {
		s := trail.seen()
		return len(s) > 0 && s[len(s)-1] == reasonServing, nil
	})
	if s := trail.seen(); s[0] != reasonBooting {
		t.Errorf("condition reasons %v: want booting before serving", s)
	}
	if w := e.warnings("web"); len(w) > 0 {
		t.Errorf("a normal create on the own loop recorded Warnings: %v", w)
	}
	if ev := e.eventsFor("Service", "web"); strings.Contains(ev, "EnsuringLoadBalancer") {
		t.Errorf("the upstream service controller acted although it should stand down:%s", ev)
	}
	if !strings.Contains(e.ccm.Log(), "upstream service controller stands down") {
		t.Error("the log does not say the upstream service controller stood down")
	}
	if f := e.service("web").Finalizers; !slices.Contains(f, upstreamFinalize) {
		t.Errorf("finalizers %v, want %s", f, upstreamFinalize)
	}

	// A node leaving the pool (the upstream label) leaves the appliance.
	e.excludeNode("node-3")
	e.waitVIPs(ip, map[int][]string{80: e.nodeIPs("node-1", "node-2")})

	e.deleteService("web")
	e.eventually(longWait, "the appliance deleted with its Service", func() (bool, error) { return e.ownCount() == 0, nil })
}
