package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/desired"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	"k8s.io/cloud-provider/api"
	"k8s.io/klog/v2"
)

// The condition this controller keeps on every LoadBalancer Service it
// serves: whether its load balancer is serving, with a reason from the same
// stable list as the Events (docs/load-balancers.md) and a message a person
// can act on. Events expire after an hour; the condition stays until the
// next reconcile changes it.
const (
	// ConditionServing is the condition's type.
	ConditionServing = "k8s.usacloud.jp/LoadBalancerServing"
	// ReasonServing: the load balancer serves the Service's address.
	ReasonServing = "LoadBalancerServing"
	// ReasonBooting: the load balancer is being created, booted or waited
	// for; the address follows once it is up.
	ReasonBooting = "LoadBalancerBooting"
	// conditionManager is the field manager of the condition's writes
	// (server-side apply of the status): it owns that one condition and
	// nothing else, so no other writer's fields are clobbered.
	conditionManager = "sakura-cloud-controller-manager-conditions"
)

// ConditionReasons are the condition's reasons beside the Event reasons.
var ConditionReasons = []string{ReasonServing, ReasonBooting}

// outcome is what a reconcile learned beyond its status and error, for the
// condition: a caveat on a Service that is served.
type outcome struct {
	// caveatReason and caveatMsg: served, but not as the Service asks
	// (a setting that needs a new appliance, a sharing conflict).
	caveatReason, caveatMsg string
	// noBackends: served with no real server (externalTrafficPolicy:
	// Local and no ready endpoint).
	noBackends bool
	// skipped are the ports not served (mixed protocols, serve-tcp).
	skipped []v1.ServicePort
	// health is what the last health poll found for the Service's
	// entries (none yet: zero).
	health realServerHealth
}

// realServerHealth is what one health poll found for one Service's
// entries: its real servers (by address) and those its appliance's health
// check does not find UP on at least one of the Service's ports.
type realServerHealth struct {
	Total int
	// Down are the servers not UP, as "address (server name)", sorted.
	Down []string
}

func (h realServerHealth) allDown() bool { return h.Total > 0 && len(h.Down) == h.Total }

// changesCondition reports whether a poll that found h after before can
// change the condition: it differs, and some server is or was down. A
// change among servers all up (a node added, the usual case) cannot.
func (h realServerHealth) changesCondition(before realServerHealth) bool {
	same := h.Total == before.Total && slices.Equal(h.Down, before.Down)
	return !same && (len(h.Down) > 0 || len(before.Down) > 0)
}

// PortErrorUnsupportedProtocol is the error a port the appliance does not
// serve shows in status.loadBalancer.ingress[].ports[] (the API asks for a
// domain-qualified CamelCase value from a provider).
const PortErrorUnsupportedProtocol = "k8s.usacloud.jp/UnsupportedProtocol"

// withPortStatus adds, when some ports are skipped, the status of every
// port to each ingress: none for the served ones, an error for the others.
func withPortStatus(svc *v1.Service, st *v1.LoadBalancerStatus, skipped []v1.ServicePort) *v1.LoadBalancerStatus {
	if st == nil || len(skipped) == 0 || len(st.Ingress) == 0 {
		return st
	}
	bad := map[string]bool{}
	for _, p := range skipped {
		bad[string(p.Protocol)+"/"+fmt.Sprint(p.Port)] = true
	}
	var ports []v1.PortStatus
	for _, p := range svc.Spec.Ports {
		ps := v1.PortStatus{Port: p.Port, Protocol: p.Protocol}
		if bad[string(p.Protocol)+"/"+fmt.Sprint(p.Port)] {
			e := PortErrorUnsupportedProtocol
			ps.Error = &e
		}
		ports = append(ports, ps)
	}
	out := st.DeepCopy()
	for i := range out.Ingress {
		out.Ingress[i].Ports = ports
	}
	return out
}

// portNames are ports as "7777/UDP".
func portNames(ports []v1.ServicePort) []string {
	out := make([]string, 0, len(ports))
	for _, p := range ports {
		out = append(out, fmt.Sprintf("%d/%s", p.Port, p.Protocol))
	}
	return out
}

const bootingMessage = "the load balancer is being created or booted (SAKURA appliances take about a minute); its address appears once it is up"

// conditionOf is the condition a reconcile's result shows; ok is false
// when it shows none (nothing to serve, or an answer that is not about the
// load balancer, such as a Service of another class).
func conditionOf(svc *v1.Service, st *v1.LoadBalancerStatus, err error, out outcome) (cond metav1.Condition, ok bool) {
	cond.Type = ConditionServing
	var retry *api.RetryError
	var re *reasonedError
	switch {
	case errors.As(err, &retry):
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, ReasonBooting, bootingMessage
	case errors.As(err, &re):
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, re.reason, err.Error()
	case err != nil, st == nil:
		return cond, false
	case len(st.Ingress) == 0 || st.Ingress[0].IP == "":
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, ReasonBooting, bootingMessage
	case out.noBackends:
		cond.Status, cond.Reason = metav1.ConditionFalse, ReasonNoReadyEndpoints
		cond.Message = fmt.Sprintf("the load balancer has %s but no real server: externalTrafficPolicy is Local and no node runs a ready endpoint", st.Ingress[0].IP)
	case out.health.allDown():
		cond.Status, cond.Reason = metav1.ConditionFalse, ReasonRealServerDown
		cond.Message = fmt.Sprintf("the load balancer has %s but its health check finds every real server down (%s); check the nodes and the pods, or the health check annotations",
			st.Ingress[0].IP, strings.Join(out.health.Down, ", "))
	default:
		cond.Status, cond.Reason = metav1.ConditionTrue, ReasonServing
		msg := []string{"serving on " + st.Ingress[0].IP}
		if out.caveatReason != "" {
			cond.Reason = out.caveatReason
			msg = append(msg, out.caveatMsg)
		}
		if desired.DualStack(svc) {
			msg = append(msg, "IPv4 only: the SAKURA load balancer has no IPv6 address")
		}
		if len(out.skipped) > 0 {
			msg = append(msg, "ports "+strings.Join(portNames(out.skipped), ", ")+" are not served (TCP only)")
		}
		if n := len(out.health.Down); n > 0 {
			msg = append(msg, fmt.Sprintf("%d of %d real servers down by the health check (%s)", n, out.health.Total, strings.Join(out.health.Down, ", ")))
		}
		cond.Message = strings.Join(msg, "; ")
	}
	return cond, true
}

// showCondition writes cond on svc when it differs from what svc shows and
// from what this process wrote last; the transition time moves only when
// the status does.
func (l *Engine) showCondition(ctx context.Context, svc *v1.Service, cond metav1.Condition) {
	if l.kube == nil {
		return
	}
	key := cond.Type + "/" + string(cond.Status) + "/" + cond.Reason + "/" + cond.Message
	var shown *metav1.Condition
	for i := range svc.Status.Conditions {
		if svc.Status.Conditions[i].Type == cond.Type {
			shown = &svc.Status.Conditions[i]
		}
	}
	if shown != nil && shown.Status == cond.Status && shown.Reason == cond.Reason && shown.Message == cond.Message {
		l.mem.wroteCondition(string(svc.UID), key)
		return
	}
	if !l.mem.wroteCondition(string(svc.UID), key) {
		return // written already; the Service copy at hand is older
	}
	since := metav1.NewTime(l.clock.Now())
	if shown != nil && shown.Status == cond.Status {
		since = shown.LastTransitionTime
	}
	// The UID: never a condition on another Service that took the name.
	ac := corev1ac.Service(svc.Name, svc.Namespace).WithUID(svc.UID).WithStatus(corev1ac.ServiceStatus().WithConditions(
		metav1ac.Condition().WithType(cond.Type).WithStatus(cond.Status).WithReason(cond.Reason).
			WithMessage(cond.Message).WithObservedGeneration(svc.Generation).WithLastTransitionTime(since)))
	if _, err := l.kube.CoreV1().Services(svc.Namespace).ApplyStatus(ctx, ac, metav1.ApplyOptions{FieldManager: conditionManager, Force: true}); err != nil {
		l.mem.forgetCondition(string(svc.UID))
		klog.ErrorS(err, "Could not write the Service's load balancer condition; the next reconcile tries again", "service", serviceKey(svc.Namespace, svc.Name))
		return
	}
	if cond.Status == metav1.ConditionTrue && (shown == nil || shown.Status != metav1.ConditionTrue) {
		// The end of a create (or of an outage) in the Events too:
		// kubectl describe svc shows Events but not conditions.
		l.event(svc, false, ReasonServing, "%s", cond.Message)
	}
}
