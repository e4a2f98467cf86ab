package torture

import (
	"strings"
	"testing"
	"time"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/types"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
)

// TestCheckerCatchesDamage makes sure the invariants are not vacuous: one
// Service is brought up and settled, the controller is stopped, and then
// each kind of damage must be reported by the checker.
func TestCheckerCatchesDamage(t *testing.T) {
	o := currentOptions()
	o.settle = 10 * time.Second
	w, err := newWorld(0, o)
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	if err := w.startCCM(); err != nil {
		t.Fatal(err)
	}
	m := &svcModel{ns: "default", name: "web-0", uid: serviceUID(0, 9, 1), isLB: true, ports: []int32{80, 443}}
	s := &v1.Service{ObjectMeta: metav1.ObjectMeta{}}
	m.applyTo(s)
	if err := w.createService(s); err != nil {
		t.Fatal(err)
	}
	if v := w.settle(); len(v) > 0 {
		t.Fatalf("a single Service does not settle: %v\n%s", v, w.tr.String(true))
	}
	w.stopCCM() // nothing repairs what follows

	expect := func(what, kind string) {
		t.Helper()
		for _, v := range w.check() {
			if strings.HasPrefix(v.kind, kind) {
				return
			}
		}
		t.Errorf("%s: no %s violation reported; got %v", what, kind, w.check())
	}

	// A real server removed out of band.
	found, err := w.oob.Find(bg, zoneName, &iaas.FindCondition{})
	if err != nil {
		t.Fatal(err)
	}
	var ours, foreign *iaas.LoadBalancer
	for _, lb := range found.LoadBalancers {
		if _, f := w.foreign[lb.ID]; f {
			foreign = lb
		} else if len(memberUIDs(lb.Tags)) > 0 {
			ours = lb
		}
	}
	if ours == nil || foreign == nil {
		t.Fatalf("want one appliance of the cluster and the foreign ones, got %d appliances", len(found.LoadBalancers))
	}
	vips := ours.VirtualIPAddresses
	vips[0].Servers = vips[0].Servers[1:]
	if _, err := w.oob.UpdateSettings(bg, zoneName, ours.ID, &iaas.LoadBalancerUpdateSettingsRequest{VirtualIPAddresses: vips, SettingsHash: ours.SettingsHash}); err != nil {
		t.Fatal(err)
	}
	expect("real server removed (saved)", "inv1/entries")
	if _, ok := appliedSettings(w.sim, w.sim.Snapshot()); ok {
		if err := w.oob.Config(bg, zoneName, ours.ID); err != nil {
			t.Fatal(err)
		}
		expect("real server removed (applied)", "inv1/applied")
	}

	// An appliance that is not the cluster's, written.
	fv := foreign.VirtualIPAddresses
	fv[0].DelayLoop = 42
	if _, err := w.oob.UpdateSettings(bg, zoneName, foreign.ID, &iaas.LoadBalancerUpdateSettingsRequest{VirtualIPAddresses: fv, SettingsHash: foreign.SettingsHash}); err != nil {
		t.Fatal(err)
	}
	expect("foreign appliance changed", "inv3/foreign-changed")

	// The appliance stopped.
	if err := w.oob.Shutdown(bg, zoneName, ours.ID, &iaas.ShutdownOption{Force: true}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * w.knobs.bootDelay)
	expect("appliance stopped", "inv1/not-running")

	// The Service gone while its appliance stays.
	if err := w.updateService("default", "web-0", m.uid, func(s *v1.Service) { s.Finalizers = nil }); err != nil {
		t.Fatal(err)
	}
	if err := w.deleteService("default", "web-0", m.uid); err != nil {
		t.Fatal(err)
	}
	expect("Service deleted, appliance left", "inv2/leftover-appliance")

	// An appliance of the cluster with no member, made with an address in
	// use and a tag twice: the simulator accepts it (as SAKURA may).
	if _, err := w.oob.Create(bg, zoneName, &iaas.LoadBalancerCreateRequest{SwitchID: ours.SwitchID, PlanID: types.LoadBalancerPlans.Standard,
		VRID: 200, IPAddresses: []string{ours.IPAddresses[0]}, NetworkMaskLen: ours.NetworkMaskLen, DefaultRoute: ours.DefaultRoute,
		Name: "leak", Tags: types.Tags{tagCluster + clusterID, tagCluster + clusterID}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * w.knobs.bootDelay)
	expect("appliance without members", "inv8/leak")
	expect("appliance IP held twice", "inv8/address")
	expect("address in use written", "inv8/address-in-use-written")
	expect("tag twice", "inv7/duplicate-tag")
	expect("tag twice written", "inv7/duplicate-tag-written")
}

// A Service refused an address is a note only while the reason holds and
// with the Event that says so; an address on two Services never is.
func TestRefusalExcuse(t *testing.T) {
	o := currentOptions()
	w, err := newWorld(0, o)
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	a := &svcModel{ns: "default", name: "a", uid: serviceUID(0, 9, 1), isLB: true, ports: []int32{80}}
	b := &svcModel{ns: "default", name: "b", uid: serviceUID(0, 9, 2), isLB: true, ports: []int32{80}, pin: "203.0.113.57"}
	for _, m := range []*svcModel{a, b} {
		s := &v1.Service{}
		m.applyTo(s)
		if err := w.createService(s); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.updateServiceStatus("default", "a", &v1.LoadBalancerStatus{Ingress: []v1.LoadBalancerIngress{{IP: "203.0.113.57"}}}); err != nil {
		t.Fatal(err)
	}
	has := func(kind string) bool {
		for _, v := range w.check() {
			if v.kind == kind && v.svc == "default/b" {
				return true
			}
		}
		return false
	}
	// b pins a's address and has no appliance: without the Event a failure.
	if !has("inv1/appliance-count") {
		t.Fatalf("refused without an Event: not reported; got %v", w.check())
	}
	if _, err := w.kube.CoreV1().Events("default").Create(bg, &v1.Event{ObjectMeta: metav1.ObjectMeta{Name: "b.1", Namespace: "default"},
		InvolvedObject: v1.ObjectReference{Kind: "Service", Namespace: "default", Name: "b", UID: k8stypes.UID(b.uid)},
		Reason:         reasonPinUnavailable}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if has("inv1/appliance-count") || len(w.checkNotes()) == 0 {
		t.Fatalf("refused with the Event: still reported (notes %v)", w.checkNotes())
	}
	// The same address on both: a failure, Event or not.
	if err := w.updateServiceStatus("default", "b", &v1.LoadBalancerStatus{Ingress: []v1.LoadBalancerIngress{{IP: "203.0.113.57"}}}); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, v := range w.check() {
		found = found || v.kind == "inv4/status"
	}
	if !found {
		t.Fatalf("address on two Services not reported: %v", w.check())
	}
}

// TestServiceSemantics checks the fake API server's Service rules that the
// harness and the product rely on.
func TestServiceSemantics(t *testing.T) {
	c := fake.NewClientset()
	serviceSemantics(c)
	svcs := c.CoreV1().Services("default")
	s := &v1.Service{ObjectMeta: metav1.ObjectMeta{Name: "a", UID: "u1", Finalizers: []string{lbFinalizer}},
		Spec: v1.ServiceSpec{Type: v1.ServiceTypeLoadBalancer, LoadBalancerIP: "203.0.113.57"}}
	created, err := svcs.Create(bg, s, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	stale := created.DeepCopy()

	// The status subresource changes only the status.
	st := created.DeepCopy()
	st.Spec.LoadBalancerIP = "203.0.113.58"
	st.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: "203.0.113.30"}}
	if _, err := svcs.UpdateStatus(bg, st, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	got, _ := svcs.Get(bg, "a", metav1.GetOptions{})
	if got.Spec.LoadBalancerIP != "203.0.113.57" || len(got.Status.LoadBalancer.Ingress) != 1 {
		t.Fatalf("UpdateStatus: spec %q status %v", got.Spec.LoadBalancerIP, got.Status.LoadBalancer.Ingress)
	}
	// A stale copy is refused.
	stale.Spec.LoadBalancerIP = "203.0.113.59"
	if _, err := svcs.Update(bg, stale, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Fatalf("stale update: %v, want a conflict", err)
	}
	// An update of the Service keeps the status.
	got.Spec.LoadBalancerIP = "203.0.113.60"
	got.Status = v1.ServiceStatus{}
	if got, err = svcs.Update(bg, got, metav1.UpdateOptions{}); err != nil || len(got.Status.LoadBalancer.Ingress) != 1 {
		t.Fatalf("update: %v, status %v", err, got.Status)
	}
	// Delete with a finalizer: a deletion timestamp, which an update cannot clear.
	if err := svcs.Delete(bg, "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err = svcs.Get(bg, "a", metav1.GetOptions{})
	if err != nil || got.DeletionTimestamp == nil {
		t.Fatalf("after delete: %v, %v", err, got)
	}
	got.DeletionTimestamp = nil
	if got, err = svcs.Update(bg, got, metav1.UpdateOptions{}); err != nil || got.DeletionTimestamp == nil {
		t.Fatalf("update cleared the deletion timestamp: %v", err)
	}
	// Removing the last finalizer lets it go.
	got.Finalizers = nil
	if _, err := svcs.Update(bg, got, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := svcs.Get(bg, "a", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("after the last finalizer: %v, want not found", err)
	}
}
