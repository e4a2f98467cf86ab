package desired

import (
	"slices"

	v1 "k8s.io/api/core/v1"
	servicehelpers "k8s.io/cloud-provider/service/helpers"
)

// ClassFinalizer is the finalizer this project's Service loop puts on the
// Services of its class. It is not the upstream one
// (servicehelpers.LoadBalancerCleanupFinalizer): the upstream service
// controller cleans up every Service carrying that one when it is deleted,
// class or not, and would take the finalizer off before this loop deleted
// the appliance.
const ClassFinalizer = "k8s.usacloud.jp/load-balancer-cleanup"

// Scope says which LoadBalancer Services this controller serves, and which
// of them its own Service loop serves (the others go through the upstream
// service controller). Every loop asks it; none decides alone.
type Scope struct {
	// Class is the spec.loadBalancerClass served ("" serves no class).
	Class string
	// ELBClass is a second class served, whose Services get an Enhanced
	// Load Balancer ("" serves no such class).
	ELBClass string
	// OwnLoopWithoutClass: Services without a class are served by the own
	// loop too, and the upstream service controller stands down.
	OwnLoopWithoutClass bool
}

// Serves reports whether svc is a LoadBalancer Service of this controller:
// no class, or this controller's class.
func (s Scope) Serves(svc *v1.Service) bool {
	if svc.Spec.Type != v1.ServiceTypeLoadBalancer {
		return false
	}
	return s.classServed(svc)
}

// classServed reports whether svc's class (none, or this controller's) is
// served here.
func (s Scope) classServed(svc *v1.Service) bool {
	c := svc.Spec.LoadBalancerClass
	return c == nil || (s.Class != "" && *c == s.Class) || s.IsELBClass(svc)
}

// IsELBClass reports whether svc is of the Enhanced Load Balancer class.
func (s Scope) IsELBClass(svc *v1.Service) bool {
	c := svc.Spec.LoadBalancerClass
	return c != nil && s.ELBClass != "" && *c == s.ELBClass
}

// OwnLoop reports whether the own Service loop (not the upstream service
// controller) serves svc.
func (s Scope) OwnLoop(svc *v1.Service) bool {
	return s.Serves(svc) && (svc.Spec.LoadBalancerClass != nil || s.OwnLoopWithoutClass)
}

// MayDelete reports whether svc's appliance, if it has one, is this
// controller's to delete: svc has no class or this controller's, or it
// carries the class finalizer (it was served here before its class
// changed through a type change, or before the configuration changed).
// A Service of another class is never even looked up.
func (s Scope) MayDelete(svc *v1.Service) bool {
	return s.classServed(svc) || slices.Contains(svc.Finalizers, ClassFinalizer)
}

// FinalizerOf is the finalizer that holds svc's deletion until its
// appliance is gone: the upstream one without a class (whichever loop
// serves it, so switching loops needs no migration of the finalizer), the
// project's own with one.
func FinalizerOf(svc *v1.Service) string {
	if svc.Spec.LoadBalancerClass == nil {
		return servicehelpers.LoadBalancerCleanupFinalizer
	}
	return ClassFinalizer
}

// OwnLoopFinalizers are the finalizers on svc that the own loop must take
// off once the appliance is gone: its own (on any Service, whatever it has
// become since), and the upstream one on a Service without a class when
// the own loop serves those.
func (s Scope) OwnLoopFinalizers(svc *v1.Service) []string {
	var out []string
	if slices.Contains(svc.Finalizers, ClassFinalizer) {
		out = append(out, ClassFinalizer)
	}
	if s.OwnLoopWithoutClass && svc.Spec.LoadBalancerClass == nil &&
		slices.Contains(svc.Finalizers, servicehelpers.LoadBalancerCleanupFinalizer) {
		out = append(out, servicehelpers.LoadBalancerCleanupFinalizer)
	}
	return out
}

// HasFinalizer reports whether svc carries a finalizer that holds its
// appliance's deletion (the upstream one or the class one): the Service
// has been taken on by a loop.
func HasFinalizer(svc *v1.Service) bool {
	return servicehelpers.HasLBFinalizer(svc) || slices.Contains(svc.Finalizers, ClassFinalizer)
}
