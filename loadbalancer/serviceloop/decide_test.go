package serviceloop

import (
	"slices"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	servicehelpers "k8s.io/cloud-provider/service/helpers"
	"k8s.io/utils/ptr"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/desired"
)

const (
	ours    = "k8s.usacloud.jp/dsr"
	other   = "example.com/metal"
	stdFin  = servicehelpers.LoadBalancerCleanupFinalizer
	ownFin  = desired.ClassFinalizer
	foreign = "example.com/keep"
)

type svcOpt func(*v1.Service)

func class(c string) svcOpt       { return func(s *v1.Service) { s.Spec.LoadBalancerClass = ptr.To(c) } }
func typ(t v1.ServiceType) svcOpt { return func(s *v1.Service) { s.Spec.Type = t } }
func fins(f ...string) svcOpt     { return func(s *v1.Service) { s.Finalizers = f } }
func deleting() svcOpt {
	return func(s *v1.Service) { s.DeletionTimestamp = &metav1.Time{} }
}
func withIP(ip string) svcOpt {
	return func(s *v1.Service) { s.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: ip}} }
}

func svc(opts ...svcOpt) *v1.Service {
	s := &v1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: "u1"},
		Spec: v1.ServiceSpec{Type: v1.ServiceTypeLoadBalancer}}
	for _, o := range opts {
		o(s)
	}
	return s
}

func TestDecide(t *testing.T) {
	classOnly := desired.Scope{Class: ours}
	own := desired.Scope{Class: ours, OwnLoopWithoutClass: true}
	noClass := desired.Scope{}
	for _, tc := range []struct {
		name  string
		svc   *v1.Service
		scope desired.Scope
		want  Action
	}{
		{"our class is ensured", svc(class(ours)), classOnly, Ensure},
		{"our class with its finalizer is ensured", svc(class(ours), fins(ownFin)), classOnly, Ensure},
		{"another class is never touched", svc(class(other)), classOnly, Skip},
		{"another class with the upstream finalizer is not ours to clean", svc(class(other), fins(stdFin), deleting()), own, Skip},
		{"no class goes upstream by default", svc(), classOnly, Skip},
		{"no class with the upstream finalizer goes upstream by default", svc(fins(stdFin), deleting()), classOnly, Skip},
		{"no class is ours in own mode", svc(), own, Ensure},
		{"no class deleting in own mode is cleaned up", svc(fins(stdFin), deleting()), own, Cleanup},
		{"no class no longer a load balancer in own mode is cleaned up", svc(typ(v1.ServiceTypeClusterIP), fins(stdFin)), own, Cleanup},
		{"no class deleting without a finalizer: nothing to do", svc(deleting()), own, Skip},
		{"our class deleting is cleaned up", svc(class(ours), fins(ownFin), deleting()), classOnly, Cleanup},
		{"our class deleting before the finalizer was added: nothing to do", svc(class(ours), deleting()), classOnly, Skip},
		{"type changed away (class cleared) keeps our finalizer: cleaned up", svc(typ(v1.ServiceTypeClusterIP), fins(ownFin)), classOnly, Cleanup},
		{"class served no more by configuration: cleaned up", svc(class(ours), fins(ownFin)), noClass, Cleanup},
		{"through a type change, another class now: our appliance goes", svc(class(other), fins(ownFin)), classOnly, Cleanup},
		{"not a load balancer, no finalizer", svc(typ(v1.ServiceTypeNodePort)), own, Skip},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Decide(tc.svc, tc.scope); got != tc.want {
				t.Errorf("Decide = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestAfterCleanup(t *testing.T) {
	classOnly := desired.Scope{Class: ours}
	own := desired.Scope{Class: ours, OwnLoopWithoutClass: true}
	for _, tc := range []struct {
		name       string
		svc        *v1.Service
		scope      desired.Scope
		wantFins   []string
		keepStatus bool
	}{
		{"own finalizer off, others kept, status cleared", svc(class(ours), fins(foreign, ownFin), deleting(), withIP("203.0.113.10")), classOnly, []string{foreign}, false},
		{"own mode takes the upstream finalizer off a Service without a class", svc(fins(stdFin, foreign), deleting(), withIP("203.0.113.10")), own, []string{foreign}, false},
		{"upstream mode leaves the upstream finalizer alone", svc(typ(v1.ServiceTypeClusterIP), fins(stdFin, ownFin)), classOnly, []string{stdFin}, false},
		{"another class's status is left to it", svc(class(other), fins(ownFin), withIP("198.51.100.7")), classOnly, []string{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.svc.DeepCopy()
			got := AfterCleanup(tc.svc, tc.scope)
			if !slices.Equal(got.Finalizers, tc.wantFins) && !(len(got.Finalizers) == 0 && len(tc.wantFins) == 0) {
				t.Errorf("finalizers %v, want %v", got.Finalizers, tc.wantFins)
			}
			if kept := len(got.Status.LoadBalancer.Ingress) > 0; kept != tc.keepStatus && len(before.Status.LoadBalancer.Ingress) > 0 {
				t.Errorf("status kept = %v, want %v", kept, tc.keepStatus)
			}
			if !slices.Equal(tc.svc.Finalizers, before.Finalizers) {
				t.Error("the cached Service was changed")
			}
		})
	}
}

func TestWithFinalizer(t *testing.T) {
	if WithFinalizer(svc(class(ours), fins(ownFin)), ownFin) != nil {
		t.Error("a Service that has the finalizer needs no patch")
	}
	s := svc(class(ours), fins(foreign))
	got := WithFinalizer(s, ownFin)
	if got == nil || !slices.Equal(got.Finalizers, []string{foreign, ownFin}) {
		t.Fatalf("got %v", got)
	}
	if len(s.Finalizers) != 1 {
		t.Error("the cached Service was changed")
	}
}

func TestNeedsSync(t *testing.T) {
	base := svc(class(ours), fins(ownFin))
	statusOnly := base.DeepCopy()
	statusOnly.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: "203.0.113.10"}}
	statusOnly.Status.Conditions = []metav1.Condition{{Type: "k8s.usacloud.jp/LoadBalancerServing"}}
	annotated := base.DeepCopy()
	annotated.Annotations = map[string]string{"k8s.usacloud.jp/load-balancer-ha": "true"}
	ports := base.DeepCopy()
	ports.Spec.Ports = []v1.ServicePort{{Port: 80}}
	gone := base.DeepCopy()
	gone.DeletionTimestamp = &metav1.Time{}
	recreated := base.DeepCopy()
	recreated.UID = "u2"
	for _, tc := range []struct {
		name     string
		old, cur *v1.Service
		want     bool
	}{
		{"first sight", nil, base, true},
		{"a status write (ours or anyone's) starts nothing", base, statusOnly, false},
		{"an annotation", base, annotated, true},
		{"the spec", base, ports, true},
		{"deletion", base, gone, true},
		{"finalizers", base, svc(class(ours)), true},
		{"a new Service under the same name", base, recreated, true},
	} {
		if got := NeedsSync(tc.old, tc.cur); got != tc.want {
			t.Errorf("%s: NeedsSync = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func node(name string, mod func(*v1.Node)) *v1.Node {
	n := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if mod != nil {
		mod(n)
	}
	return n
}

func TestEligibleNodes(t *testing.T) {
	label := func(v string) func(*v1.Node) {
		return func(n *v1.Node) { n.Labels = map[string]string{v1.LabelNodeExcludeBalancers: v} }
	}
	nodes := []*v1.Node{
		node("plain", nil),
		node("notready", func(n *v1.Node) {
			n.Status.Conditions = []v1.NodeCondition{{Type: v1.NodeReady, Status: v1.ConditionFalse}}
		}),
		node("excluded", label("true")),
		node("excluded-unreadable", label("maybe")),
		node("included-false", label("false")),
		node("deleting", func(n *v1.Node) { n.DeletionTimestamp = &metav1.Time{} }),
		node("autoscaled-away", func(n *v1.Node) {
			n.Spec.Taints = []v1.Taint{{Key: ToBeDeletedTaint, Effect: v1.TaintEffectNoSchedule}}
		}),
		node("other-taint", func(n *v1.Node) {
			n.Spec.Taints = []v1.Taint{{Key: "dedicated", Effect: v1.TaintEffectNoSchedule}}
		}),
	}
	var got []string
	for _, n := range EligibleNodes(nodes) {
		got = append(got, n.Name)
	}
	want := []string{"plain", "notready", "included-false", "other-taint"}
	if !slices.Equal(got, want) {
		t.Errorf("eligible %v, want %v", got, want)
	}
}

func TestNodeChangeMatters(t *testing.T) {
	a := node("n", nil)
	heartbeat := a.DeepCopy()
	heartbeat.Status.Conditions = []v1.NodeCondition{{Type: v1.NodeReady, Status: v1.ConditionTrue}}
	excluded := a.DeepCopy()
	excluded.Labels = map[string]string{v1.LabelNodeExcludeBalancers: "true"}
	provider := a.DeepCopy()
	provider.Spec.ProviderID = "sakuracloud://is1a/113000000001"
	if NodeChangeMatters(a, heartbeat) {
		t.Error("a heartbeat must not resync every Service")
	}
	if !NodeChangeMatters(a, excluded) || !NodeChangeMatters(a, provider) {
		t.Error("exclusion and providerID changes must resync")
	}
}
