package serviceloop

import (
	"slices"
	"strconv"

	servicecontroller "k8s.io/cloud-provider/controllers/service"

	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/desired"
)

// Action is what one sync does with a Service.
type Action int

const (
	// Skip: not this loop's Service (another class, the upstream service
	// controller's, not a load balancer and nothing to clean up).
	Skip Action = iota
	// Ensure: take the Service on (finalizer first) and reconcile its
	// appliance.
	Ensure
	// Cleanup: delete the appliance, then take this loop's finalizers off.
	Cleanup
)

func (a Action) String() string {
	return [...]string{"skip", "ensure", "cleanup"}[a]
}

// Decide is what the loop does with svc under scope.
func Decide(svc *v1.Service, scope desired.Scope) Action {
	if svc.DeletionTimestamp == nil && scope.OwnLoop(svc) {
		return Ensure
	}
	if len(scope.OwnLoopFinalizers(svc)) > 0 {
		// Deleted, no longer a load balancer, or (through a type change)
		// of another class now: its appliance must go.
		return Cleanup
	}
	return Skip
}

// NeedsSync reports whether an update from old to cur can change what the
// loop does: its own status writes (and anyone's) do not, so they do not
// start another reconcile. The repair pass and the node events cover the
// rest.
func NeedsSync(old, cur *v1.Service) bool {
	if old == nil || old.UID != cur.UID {
		return true
	}
	return !apiequality.Semantic.DeepEqual(old.Spec, cur.Spec) ||
		!apiequality.Semantic.DeepEqual(old.Annotations, cur.Annotations) ||
		!slices.Equal(old.Finalizers, cur.Finalizers) ||
		(old.DeletionTimestamp == nil) != (cur.DeletionTimestamp == nil)
}

// WithFinalizer is svc with fin added (nil if it already has it).
func WithFinalizer(svc *v1.Service, fin string) *v1.Service {
	if slices.Contains(svc.Finalizers, fin) {
		return nil
	}
	out := svc.DeepCopy()
	out.Finalizers = append(out.Finalizers, fin)
	return out
}

// AfterCleanup is svc once its appliance is gone: without the loop's
// finalizers and, unless another implementation's class now serves it,
// without a load-balancer status.
func AfterCleanup(svc *v1.Service, scope desired.Scope) *v1.Service {
	out := svc.DeepCopy()
	drop := scope.OwnLoopFinalizers(svc)
	out.Finalizers = slices.DeleteFunc(out.Finalizers, func(f string) bool { return slices.Contains(drop, f) })
	if !(svc.Spec.Type == v1.ServiceTypeLoadBalancer && !scope.Serves(svc)) {
		out.Status.LoadBalancer = v1.LoadBalancerStatus{}
	}
	return out
}

// Node eligibility, as the upstream service controller decides it for its
// stable node set (k8s.io/cloud-provider/controllers/service): a Node is a
// real-server candidate unless it is being deleted, labelled
// node.kubernetes.io/exclude-from-external-load-balancers (any value but a
// false one; an unreadable value excludes, as upstream), or tainted by the
// cluster autoscaler for deletion. Readiness is not asked: a NotReady node
// stays a real server, and the appliance's health check takes it out,
// which avoids rewriting every appliance when a node flaps.

// ToBeDeletedTaint is the cluster autoscaler's taint on a node it is about
// to delete; the upstream service controller leaves such nodes out too.
const ToBeDeletedTaint = servicecontroller.ToBeDeletedTaint

// Eligible reports whether n may be a real server.
func Eligible(n *v1.Node) bool {
	if n.DeletionTimestamp != nil {
		return false
	}
	if v, ok := n.Labels[v1.LabelNodeExcludeBalancers]; ok {
		if excluded, err := strconv.ParseBool(v); err != nil || excluded {
			return false
		}
	}
	return !slices.ContainsFunc(n.Spec.Taints, func(t v1.Taint) bool { return t.Key == ToBeDeletedTaint })
}

// EligibleNodes are the nodes that may be real servers.
func EligibleNodes(nodes []*v1.Node) []*v1.Node {
	var out []*v1.Node
	for _, n := range nodes {
		if Eligible(n) {
			out = append(out, n)
		}
	}
	return out
}

// NodeChangeMatters reports whether a Node update can change a Service's
// real servers: its eligibility or its providerID (which names its
// server). Status heartbeats do not.
func NodeChangeMatters(old, cur *v1.Node) bool {
	return Eligible(old) != Eligible(cur) || old.Spec.ProviderID != cur.Spec.ProviderID
}
