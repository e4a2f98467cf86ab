package engine

import (
	"strings"
	"testing"
	"time"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/desired"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/ipam"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/sweep"
	kubefake "k8s.io/client-go/kubernetes/fake"
)

// TestSweepAfterServiceDeletedWhileDown: two Services get appliances; one
// Service disappears without EnsureLoadBalancerDeleted (the controller was
// down); the sweep built from the adapter removes exactly that appliance and
// frees the adapter's reservation for it.
func TestSweepAfterServiceDeletedWhileDown(t *testing.T) {
	e := newEnv(t, 28)
	e.cfg.SweepIntervalSec = 1
	e.cfg.SweepMode = "delete"
	e.rebuild()
	nodes := e.addNodes(2, 1)
	a, b := service("a", 80), service("b", 80)
	e.ensureUp(a, nodes)
	e.ensureUp(b, nodes)
	e.rebuild() // the controller restarts; Service a was deleted meanwhile

	kube := kubefake.NewSimpleClientset(b)
	r, err := e.lb.Sweeper(sweep.KubeServices{Client: kube})
	if err != nil {
		t.Fatal(err)
	}
	// The fake stamps CreatedAt with the real time; look from past the grace period.
	r.Now = func() time.Time { return time.Now().Add(time.Hour) }
	e.lb.mem.reserve(string(a.UID), ipam.Reservation{SwitchID: e.sw.ID})

	for i := 0; i < 5000; i++ {
		if _, err := r.Sweep(e.ctx); err != nil {
			t.Fatal(err)
		}
		if len(e.lbs()) == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	left := e.lbs()
	if len(left) != 1 || !strings.Contains(strings.Join(left[0].Tags, " "), desired.ServiceTag(string(b.UID))) {
		t.Fatalf("after the sweep: %d appliances %v; want only Service b's", len(left), left)
	}
	if _, ok := e.lb.mem.reservation(string(a.UID)); ok {
		t.Error("the swept Service's address reservation was kept")
	}
}

func TestSweeperOffOrMisconfigured(t *testing.T) {
	e := newEnv(t, 28)
	kube := sweep.KubeServices{Client: kubefake.NewSimpleClientset()}
	if _, err := e.lb.Sweeper(kube); err == nil || !strings.Contains(err.Error(), "sweepIntervalSec is 0") {
		t.Errorf("interval 0: %v", err)
	}
	e.cfg.SweepIntervalSec = 60
	e.cfg.SweepMode = "purge"
	e.rebuild()
	if _, err := e.lb.Sweeper(kube); err == nil || !strings.Contains(err.Error(), "loadBalancer.sweepMode") {
		t.Errorf("bad mode: %v", err)
	}
	if _, err := e.lb.Sweeper(nil); err == nil {
		t.Error("no Service lister accepted")
	}
	e.cfg.SweepMode = "report"
	e.rebuild()
	r, err := e.lb.Sweeper(kube)
	if err != nil || r.Mode != sweep.ModeReport || r.Interval != time.Minute || r.Grace != sweep.DefaultGrace {
		t.Errorf("report: %+v, %v", r, err)
	}
}
