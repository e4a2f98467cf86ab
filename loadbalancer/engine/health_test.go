package engine

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/types"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/sakuraapi"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	kubefake "k8s.io/client-go/kubernetes/fake"
)

// statusStub answers Status with the states in down (address -> DOWN), or
// with err; everything else goes to the fake.
type statusStub struct {
	sakuraapi.LoadBalancerAPI
	down map[string]bool
	err  error
}

func (s *statusStub) Status(ctx context.Context, zone string, id types.ID) (*iaas.LoadBalancerStatusResult, error) {
	if s.err != nil {
		return nil, s.err
	}
	lb, err := s.Read(ctx, zone, id)
	if err != nil {
		return nil, err
	}
	res := &iaas.LoadBalancerStatusResult{}
	for _, v := range lb.VirtualIPAddresses {
		st := &iaas.LoadBalancerStatus{VirtualIPAddress: v.VirtualIPAddress, Port: v.Port}
		for _, srv := range v.Servers {
			state := types.EServerInstanceStatus("UP")
			if s.down[srv.IPAddress] {
				state = "DOWN"
			}
			st.Servers = append(st.Servers, &iaas.LoadBalancerServerStatus{IPAddress: srv.IPAddress, Port: srv.Port, Status: state})
		}
		res.Status = append(res.Status, st)
	}
	return res, nil
}

func TestHealthPollReportsChangesOnce(t *testing.T) {
	e := newEnv(t, 28)
	nodes := e.addNodes(2, 0)
	svc := service("web", 80)
	e.ensureUp(svc, nodes)
	e.events()

	stub := &statusStub{LoadBalancerAPI: e.client.LoadBalancers, down: map[string]bool{}}
	e.client.LoadBalancers = stub
	factory := informers.NewSharedInformerFactory(kubefake.NewClientset(svc), 0)
	services := factory.Core().V1().Services()
	if err := services.Informer().GetIndexer().Add(svc); err != nil {
		t.Fatal(err)
	}
	h := &healthPoller{l: e.lb, services: services.Lister(), last: map[string]string{}}
	poll := func() []string {
		lbs, err := e.lb.exec.FindCluster(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		h.poll(e.ctx, lbs, "", nil)
		return e.events()
	}

	if evs := poll(); len(evs) != 0 {
		t.Fatalf("all UP at the first poll must be quiet, got %v", evs)
	}
	stub.down[e.ip(1)] = true
	evs := poll()
	if len(evs) != 1 || findEvent(evs, "Warning", ReasonRealServerDown, e.ip(1), "node-001", ":80") == "" {
		t.Fatalf("want one RealServerDown naming %s (node-001), got %v", e.ip(1), evs)
	}
	if evs := poll(); len(evs) != 0 {
		t.Fatalf("a server still DOWN is not reported again, got %v", evs)
	}
	// A failed Status read keeps the last states: no flapping Events.
	stub.err = errors.New("503")
	if evs := poll(); len(evs) != 0 {
		t.Fatalf("a failed read reported %v", evs)
	}
	stub.err = nil
	if evs := poll(); len(evs) != 0 {
		t.Fatalf("after a failed read the state is unchanged, got %v", evs)
	}
	delete(stub.down, e.ip(1))
	evs = poll()
	if len(evs) != 1 || findEvent(evs, "Normal", ReasonRealServerUp, e.ip(1)) == "" {
		t.Fatalf("want one RealServerUp, got %v", evs)
	}
}

// What the health poll finds shows on the condition at once: every real
// server down turns it to not serving (naming them), back up to serving;
// a poll that finds nothing new writes nothing.
func TestHealthShowsOnTheCondition(t *testing.T) {
	e := newEnv(t, 28)
	nodes := e.addNodes(2, 0)
	svc := service("web", 80)
	kube := kubefake.NewClientset(svc)
	e.lb.kube = kube
	e.ensureUp(svc, nodes)
	stub := &statusStub{LoadBalancerAPI: e.client.LoadBalancers, down: map[string]bool{}}
	e.client.LoadBalancers = stub
	factory := informers.NewSharedInformerFactory(kube, 0)
	services := factory.Core().V1().Services()
	if err := services.Informer().GetIndexer().Add(svc); err != nil {
		t.Fatal(err)
	}
	h := &healthPoller{l: e.lb, services: services.Lister(), last: map[string]string{}}
	condition := func() metav1.Condition {
		t.Helper()
		lbs, err := e.lb.exec.FindCluster(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		h.poll(e.ctx, lbs, "test", nodes)
		cur, err := kube.CoreV1().Services(svc.Namespace).Get(e.ctx, svc.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cur.Status.Conditions {
			if c.Type == ConditionServing {
				return c
			}
		}
		return metav1.Condition{}
	}
	if c := condition(); c.Reason != ReasonServing {
		t.Fatalf("all up: %+v", c)
	}
	stub.down[e.ip(0)], stub.down[e.ip(1)] = true, true
	if c := condition(); c.Status != metav1.ConditionFalse || c.Reason != ReasonRealServerDown || !strings.Contains(c.Message, "node-000") || !strings.Contains(c.Message, "node-001") {
		t.Fatalf("every server down: %+v", c)
	}
	writes := len(kube.Actions())
	if c := condition(); c.Reason != ReasonRealServerDown || len(kube.Actions()) != writes+1 { // the Get above only
		t.Fatalf("an unchanged finding was written again (%d actions): %+v", len(kube.Actions())-writes, c)
	}
	delete(stub.down, e.ip(1))
	if c := condition(); c.Status != metav1.ConditionTrue || !strings.Contains(c.Message, "1 of 2 real servers down") {
		t.Fatalf("one back up: %+v", c)
	}
	delete(stub.down, e.ip(0))
	if c := condition(); c.Status != metav1.ConditionTrue || strings.Contains(c.Message, "down") {
		t.Fatalf("all back up: %+v", c)
	}
}
