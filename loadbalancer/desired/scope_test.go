package desired

import (
	"slices"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	servicehelpers "k8s.io/cloud-provider/service/helpers"
	"k8s.io/utils/ptr"
)

func TestScope(t *testing.T) {
	lb := func(class *string, fins ...string) *v1.Service {
		return &v1.Service{ObjectMeta: metav1.ObjectMeta{Finalizers: fins},
			Spec: v1.ServiceSpec{Type: v1.ServiceTypeLoadBalancer, LoadBalancerClass: class}}
	}
	ours, other := ptr.To("k8s.usacloud.jp/dsr"), ptr.To("example.com/metal")
	elb := ptr.To("k8s.usacloud.jp/elb")
	upstream := Scope{Class: *ours}
	withELB := Scope{Class: *ours, ELBClass: *elb}
	own := Scope{Class: *ours, OwnLoopWithoutClass: true}
	none := Scope{}
	clusterIP := lb(nil)
	clusterIP.Spec.Type = v1.ServiceTypeClusterIP
	for _, tc := range []struct {
		name           string
		scope          Scope
		svc            *v1.Service
		serves, ownsIt bool
		finalizer      string
	}{
		{"no class, upstream loop", upstream, lb(nil), true, false, servicehelpers.LoadBalancerCleanupFinalizer},
		{"no class, own loop", own, lb(nil), true, true, servicehelpers.LoadBalancerCleanupFinalizer},
		{"our class", upstream, lb(ours), true, true, ClassFinalizer},
		{"our class when no class is served", none, lb(ours), false, false, ClassFinalizer},
		{"another class", own, lb(other), false, false, ClassFinalizer},
		{"the ELB class", withELB, lb(elb), true, true, ClassFinalizer},
		{"the ELB class when none is configured", upstream, lb(elb), false, false, ClassFinalizer},
		{"not a load balancer", own, clusterIP, false, false, servicehelpers.LoadBalancerCleanupFinalizer},
	} {
		if got := tc.scope.Serves(tc.svc); got != tc.serves {
			t.Errorf("%s: Serves = %v", tc.name, got)
		}
		if got := tc.scope.OwnLoop(tc.svc); got != tc.ownsIt {
			t.Errorf("%s: OwnLoop = %v", tc.name, got)
		}
		if got := FinalizerOf(tc.svc); got != tc.finalizer {
			t.Errorf("%s: FinalizerOf = %s", tc.name, got)
		}
	}
	std := servicehelpers.LoadBalancerCleanupFinalizer
	both := lb(nil, std, ClassFinalizer)
	if got := upstream.OwnLoopFinalizers(both); !slices.Equal(got, []string{ClassFinalizer}) {
		t.Errorf("upstream mode: the own loop takes off only its own finalizer, got %v", got)
	}
	if got := own.OwnLoopFinalizers(both); !slices.Equal(got, []string{ClassFinalizer, std}) {
		t.Errorf("own mode: both, got %v", got)
	}
	if got := own.OwnLoopFinalizers(lb(other, std)); len(got) != 0 {
		t.Errorf("another class's upstream finalizer is not the own loop's: %v", got)
	}
	if !withELB.IsELBClass(lb(elb)) || withELB.IsELBClass(lb(ours)) || withELB.IsELBClass(lb(nil)) || !withELB.MayDelete(lb(elb)) {
		t.Error("the ELB class is told apart from the others, and its Services' load balancers are this controller's to delete")
	}
	if !upstream.MayDelete(lb(nil)) || !upstream.MayDelete(lb(ours)) || upstream.MayDelete(lb(other, servicehelpers.LoadBalancerCleanupFinalizer)) ||
		!upstream.MayDelete(lb(other, ClassFinalizer)) || !none.MayDelete(lb(ours, ClassFinalizer)) || none.MayDelete(lb(ours)) {
		t.Error("MayDelete: no class, ours, or once ours (the class finalizer); never another class's")
	}
	if !HasFinalizer(lb(ours, ClassFinalizer)) || !HasFinalizer(lb(nil, std)) || HasFinalizer(lb(nil, "example.com/x")) {
		t.Error("HasFinalizer")
	}
}
