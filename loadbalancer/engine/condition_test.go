package engine

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubefake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/cloud-provider/api"
)

func TestConditionOf(t *testing.T) {
	up := &v1.LoadBalancerStatus{Ingress: []v1.LoadBalancerIngress{{IP: "203.0.113.20"}}}
	v4only := &v1.Service{}
	dual := &v1.Service{Spec: v1.ServiceSpec{IPFamilies: []v1.IPFamily{v1.IPv4Protocol, v1.IPv6Protocol}}}
	cases := []struct {
		name       string
		svc        *v1.Service
		st         *v1.LoadBalancerStatus
		err        error
		out        outcome
		want       bool
		status     metav1.ConditionStatus
		reason     string
		msgContain string
	}{
		{"serving", v4only, up, nil, outcome{}, true, metav1.ConditionTrue, ReasonServing, "serving on 203.0.113.20"},
		{"serving dual-stack", dual, up, nil, outcome{}, true, metav1.ConditionTrue, ReasonServing, "IPv4 only"},
		{"served with a caveat", v4only, up, nil, outcome{caveatReason: ReasonChangeNeedsNewAppliance, caveatMsg: "plan is standard, wanted highspec"}, true, metav1.ConditionTrue, ReasonChangeNeedsNewAppliance, "wanted highspec"},
		{"no real server", v4only, up, nil, outcome{noBackends: true}, true, metav1.ConditionFalse, ReasonNoReadyEndpoints, "no real server"},
		{"every real server down", v4only, up, nil, outcome{health: realServerHealth{Total: 2, Down: []string{"203.0.113.36 (server node-1)", "203.0.113.37 (server node-2)"}}},
			true, metav1.ConditionFalse, ReasonRealServerDown, "every real server down (203.0.113.36 (server node-1), 203.0.113.37"},
		{"some real servers down", v4only, up, nil, outcome{health: realServerHealth{Total: 3, Down: []string{"203.0.113.37 (server node-2)"}}},
			true, metav1.ConditionTrue, ReasonServing, "1 of 3 real servers down by the health check (203.0.113.37 (server node-2))"},
		{"booting", v4only, nil, api.NewRetryError("load balancer 1 is not up yet (migrating/down)", 0), outcome{}, true, metav1.ConditionFalse, ReasonBooting, "being created"},
		{"up without an address yet", v4only, &v1.LoadBalancerStatus{}, nil, outcome{}, true, metav1.ConditionFalse, ReasonBooting, ""},
		{"refused annotation", v4only, nil, reasoned(ReasonInvalidAnnotation, errors.New("annotation k8s.usacloud.jp/load-balancer-ha: invalid value")), outcome{}, true, metav1.ConditionFalse, ReasonInvalidAnnotation, "load-balancer-ha"},
		{"a reason wrapped further up", v4only, nil, fmt.Errorf("sync: %w", reasoned(ReasonAddressBlockExhausted, errors.New("no free address"))), outcome{}, true, metav1.ConditionFalse, ReasonAddressBlockExhausted, "no free address"},
		{"an answer not about the appliance", v4only, nil, errors.New("implemented elsewhere"), outcome{}, false, "", "", ""},
		{"nothing to serve", v4only, nil, nil, outcome{}, false, "", "", ""},
	}
	for _, c := range cases {
		cond, ok := conditionOf(c.svc, c.st, c.err, c.out)
		if ok != c.want {
			t.Errorf("%s: shown %v, want %v", c.name, ok, c.want)
			continue
		}
		if !ok {
			continue
		}
		if cond.Type != ConditionServing || cond.Status != c.status || cond.Reason != c.reason || !strings.Contains(cond.Message, c.msgContain) {
			t.Errorf("%s: %+v, want %s/%s containing %q", c.name, cond, c.status, c.reason, c.msgContain)
		}
	}
}

// The condition goes booting -> serving through the ordinary path, is
// written only when it changes, and keeps its transition time while its
// status stays.
func TestConditionFollowsTheLoadBalancer(t *testing.T) {
	e := newEnv(t, 27)
	nodes := e.addNodes(3, 0)
	svc := service("web", 80)
	kube := kubefake.NewClientset(svc)
	e.lb.kube = kube
	condition := func() *metav1.Condition {
		t.Helper()
		cur, err := kube.CoreV1().Services(svc.Namespace).Get(e.ctx, svc.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for i := range cur.Status.Conditions {
			if cur.Status.Conditions[i].Type == ConditionServing {
				return &cur.Status.Conditions[i]
			}
		}
		return nil
	}
	applies := func() int {
		n := 0
		for _, a := range kube.Actions() {
			if a.GetVerb() == "patch" && a.GetSubresource() == "status" {
				n++
			}
		}
		return n
	}
	if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", svc, nodes); err == nil {
		t.Fatal("want a RetryError while it boots")
	}
	if c := condition(); c == nil || c.Status != metav1.ConditionFalse || c.Reason != ReasonBooting {
		t.Fatalf("while booting: %+v", c)
	}
	st := e.ensureUp(svc, nodes)
	c := condition()
	if c == nil || c.Status != metav1.ConditionTrue || c.Reason != ReasonServing || !strings.Contains(c.Message, st.Ingress[0].IP) {
		t.Fatalf("once up: %+v", c)
	}
	if evs := e.events(); findEvent(evs, "Normal", ReasonServing, st.Ingress[0].IP) == "" {
		t.Errorf("no Normal %s Event once serving (kubectl describe shows Events, not conditions): %v", ReasonServing, evs)
	}
	since := c.LastTransitionTime
	before := applies()
	for i := 0; i < 3; i++ { // resyncs from the same (older) copy
		if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", svc, nodes); err != nil {
			t.Fatal(err)
		}
	}
	if applies() != before {
		t.Errorf("an unchanged condition was written again (%d writes)", applies()-before)
	}
	cur, _ := kube.CoreV1().Services(svc.Namespace).Get(e.ctx, svc.Name, metav1.GetOptions{})

	// A bad annotation: not serving, the annotation named; fixed: serving.
	bad := cur.DeepCopy()
	bad.Annotations = map[string]string{"k8s.usacloud.jp/load-balancer-ha": "yes"}
	if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", bad, nodes); err == nil {
		t.Fatal("an invalid annotation was accepted")
	}
	if c := condition(); c == nil || c.Status != metav1.ConditionFalse || c.Reason != ReasonInvalidAnnotation || !strings.Contains(c.Message, "load-balancer-ha") {
		t.Fatalf("with an invalid annotation: %+v", c)
	}
	cur, _ = kube.CoreV1().Services(svc.Namespace).Get(e.ctx, svc.Name, metav1.GetOptions{})
	fixed := cur.DeepCopy()
	fixed.Annotations = nil
	if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", fixed, nodes); err != nil {
		t.Fatal(err)
	}
	if c := condition(); c == nil || c.Status != metav1.ConditionTrue || c.Reason != ReasonServing {
		t.Fatalf("fixed: %+v", c)
	} else if !c.LastTransitionTime.After(since.Time) && !c.LastTransitionTime.Equal(&since) {
		t.Errorf("transition time went back: %v before %v", c.LastTransitionTime, since)
	}
}

// Every problem of a Service at once: a bad annotation, a UDP port and
// IPv6 only are named in one message, and nothing is created.
func TestEveryProblemAtOnce(t *testing.T) {
	e := newEnv(t, 27)
	nodes := e.addNodes(3, 0)
	svc := service("game", 80)
	svc.Annotations = map[string]string{"k8s.usacloud.jp/load-balancer-ha": "yes"}
	svc.Spec.Ports = append(svc.Spec.Ports, v1.ServicePort{Name: "udp", Port: 7777, Protocol: v1.ProtocolUDP})
	svc.Spec.IPFamilies = []v1.IPFamily{v1.IPv6Protocol}
	_, err := e.lb.EnsureLoadBalancer(e.ctx, "test", svc, nodes)
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"load-balancer-ha", "7777/UDP", "ipFamilies"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the message does not name %s: %v", want, err)
		}
	}
	if reasonOf(err, "") != ReasonInvalidAnnotation {
		t.Errorf("reason %q, want the first problem's, %s", reasonOf(err, ""), ReasonInvalidAnnotation)
	}
	if len(e.lbs()) != 0 {
		t.Error("an appliance was created")
	}
	v6 := service("v6", 80)
	v6.Spec.IPFamilies = []v1.IPFamily{v1.IPv6Protocol}
	if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", v6, nodes); reasonOf(err, "") != ReasonUnsupportedIPFamily {
		t.Errorf("IPv6 only: %v, want %s", err, ReasonUnsupportedIPFamily)
	}
}

// A game server's Service: a UDP port beside a TCP query port. Without the
// opt-in nothing is created; with serve-tcp the TCP port is served and the
// status shows the UDP port with its error.
func TestMixedProtocolsServeTCP(t *testing.T) {
	e := newEnv(t, 27)
	nodes := e.addNodes(3, 0)
	svc := service("game", 27015)
	svc.Spec.Ports = append(svc.Spec.Ports, v1.ServicePort{Name: "game", Port: 27015, Protocol: v1.ProtocolUDP})
	if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", svc, nodes); reasonOf(err, "") != ReasonUnsupportedProtocol {
		t.Fatalf("without the opt-in: %v", err)
	}
	if len(e.lbs()) != 0 {
		t.Fatal("an appliance was created without the opt-in")
	}
	svc.Annotations = map[string]string{"k8s.usacloud.jp/load-balancer-mixed-protocol": "serve-tcp"}
	st := e.ensureUp(svc, nodes)
	lbs := e.lbs()
	if len(lbs) != 1 || len(lbs[0].VirtualIPAddresses) != 1 || lbs[0].VirtualIPAddresses[0].Port != 27015 {
		t.Fatalf("with serve-tcp: %d appliances, entries %v; want one entry for the TCP port", len(lbs), lbs[0].VirtualIPAddresses)
	}
	if len(st.Ingress) != 1 || len(st.Ingress[0].Ports) != 2 {
		t.Fatalf("status %+v: want both ports listed", st)
	}
	for _, p := range st.Ingress[0].Ports {
		switch p.Protocol {
		case v1.ProtocolTCP:
			if p.Error != nil {
				t.Errorf("the served TCP port shows an error: %s", *p.Error)
			}
		case v1.ProtocolUDP:
			if p.Error == nil || *p.Error != PortErrorUnsupportedProtocol {
				t.Errorf("the UDP port's error: %v, want %s", p.Error, PortErrorUnsupportedProtocol)
			}
		}
	}
	cond, ok := conditionOf(svc, st, nil, outcome{skipped: svc.Spec.Ports[1:]})
	if !ok || cond.Status != metav1.ConditionTrue || !strings.Contains(cond.Message, "27015/UDP are not served") {
		t.Errorf("condition %+v", cond)
	}
}

func TestHealthChangesCondition(t *testing.T) {
	down := func(total int, d ...string) realServerHealth { return realServerHealth{Total: total, Down: d} }
	for _, c := range []struct {
		name          string
		before, after realServerHealth
		want          bool
	}{
		{"first poll, all up", realServerHealth{}, down(3), false},
		{"a node added, all up", down(3), down(4), false},
		{"one goes down", down(3), down(3, "a"), true},
		{"still the same one down", down(3, "a"), down(3, "a"), false},
		{"another one down", down(3, "a"), down(3, "a", "b"), true},
		{"back up", down(3, "a"), down(3), true},
		{"a node added while one is down", down(3, "a"), down(4, "a"), true},
	} {
		if got := c.after.changesCondition(c.before); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
