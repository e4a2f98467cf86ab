package torture

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"strings"
	"time"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/naked"
	"github.com/sacloud/iaas-api-go/search"
	"github.com/sacloud/iaas-api-go/types"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/e2e/sakurasim"
)

// The adoption actor (-torture.adopt) plays, once per seed and in this
// order, in its own namespace:
//
//  1. earlier: an appliance made the earlier controller's way for a
//     ClusterIP Service appears (name "a"+UID, tags @k8s, @k8s.Service),
//     then the Service turns LoadBalancer: it must get that appliance and
//     its VIP (203.0.113.23), and no other;
//  2. thief: a Service names by ID an appliance of another live Service of
//     the cluster: refused, nothing written (its Event AdoptionRefused);
//  3. preserve: Service 1 is given load-balancer-preserve and deleted, and
//     a new Service names its appliance by ID: it must show the same VIP;
//  4. twins: two appliances match a Service the earlier controller's way:
//     refused, both left byte for byte as they were.
//
// Its appliances take .20-.23, kept out of the controller's allocation by
// the reserved node range (nodes added during a run use .16-.19 only).
// The oracle adds: the VIP a Service was promised (1, 3) is the one it
// shows; a refused Service (2, 4) is excused only with AdoptionRefused and
// while its reason holds; the twins are never written.

const (
	adoptNS       = "legacy"
	annAdoptID    = "k8s.usacloud.jp/load-balancer-adopt-id"
	annPreserve   = "k8s.usacloud.jp/load-balancer-preserve"
	reasonRefused = "AdoptionRefused"
	earlierIP     = "203.0.113.22"
	earlierVIP    = "203.0.113.23"
	adoptActorID  = 9
)

var twinIPs = []string{"203.0.113.20", "203.0.113.21"}

// earlierName is cloudprovider.DefaultLoadBalancerName, as documented.
func earlierName(uid string) string {
	n := "a" + strings.ReplaceAll(uid, "-", "")
	return n[:min(len(n), 32)]
}

// adoptScript is the actor's four slots, in order.
func adoptScript(seed int64, r *rand.Rand) []*slot {
	uid := func(i int) string { return serviceUID(seed, adoptActorID, i) }
	steps := []*slot{
		{desc: "adopt: the earlier controller's appliance for legacy/old, then old turns LoadBalancer", run: func(w *world) string {
			return w.adoptEarlier("old", uid(1))
		}},
		{desc: "adopt: legacy/thief names another Service's appliance by ID (must be refused)", run: func(w *world) string {
			return w.adoptThief(uid(2))
		}},
		{desc: "adopt: legacy/old preserved and deleted; legacy/again adopts its appliance by ID", run: func(w *world) string {
			return w.preserveReadopt(uid(1), uid(3))
		}},
		{desc: "adopt: two earlier-style appliances match legacy/twin (must be refused)", run: func(w *world) string {
			return w.adoptTwins(uid(4))
		}},
	}
	_ = r // the gaps between the steps come from the same stream
	return steps
}

// promiseVIP records the VIP svc must show, unless the appliance was
// damaged out of band (its entries wiped or it was deleted: the address is
// then restored only while free) while it served any of uids.
func (w *world) promiseVIP(svc, vip string, uids ...string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.promised == nil {
		w.promised = map[string]promise{}
	}
	if vip == "" {
		delete(w.promised, svc)
	} else {
		w.promised[svc] = promise{vip: vip, uids: uids}
	}
}

type promise struct {
	vip  string
	uids []string
}

func (w *world) legacyService(name, uid string, ann map[string]string, lb bool) error {
	s := &v1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: adoptNS, Name: name, UID: k8stypes.UID(uid), Annotations: ann},
		Spec: v1.ServiceSpec{Type: v1.ServiceTypeClusterIP, Selector: map[string]string{"app": name},
			Ports: []v1.ServicePort{{Name: "p80", Protocol: v1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(8080)}}}}
	if lb {
		s.Spec.Type = v1.ServiceTypeLoadBalancer
		s.Spec.Ports[0].NodePort = 30080
		s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyCluster
	}
	return w.createService(s)
}

// earlierLB creates an appliance the earlier controller's way, waits until
// it is up, and returns it.
func (w *world) earlierLB(svcName, uid, ip, vip string) (*iaas.LoadBalancer, error) {
	req := &iaas.LoadBalancerCreateRequest{SwitchID: w.globalSW, PlanID: types.LoadBalancerPlans.Standard,
		VRID: 40 + int(ip[len(ip)-1]-'0'), IPAddresses: []string{ip}, NetworkMaskLen: 26, DefaultRoute: "203.0.113.1",
		Name: earlierName(uid), Tags: types.Tags{"@k8s", "@k8s.Service=" + svcName[:min(len(svcName), 18)]}}
	if vip != "" {
		req.VirtualIPAddresses = iaas.LoadBalancerVirtualIPAddresses{{VirtualIPAddress: vip, Port: 80, DelayLoop: 10}}
	}
	var lb *iaas.LoadBalancer
	if err := oobTry(func() error {
		var err error
		lb, err = w.oob.Create(bg, zoneName, req)
		return err
	}); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		cur, err := w.oob.Read(bg, zoneName, lb.ID)
		if err == nil && cur.InstanceStatus.IsUp() && cur.Availability.IsAvailable() {
			return cur, nil
		}
		time.Sleep(2 * time.Millisecond)
	}
	return lb, nil
}

func (w *world) adoptEarlier(name, uid string) string {
	lb, err := w.earlierLB(name, uid, earlierIP, earlierVIP)
	if err != nil {
		return errText(err)
	}
	if err := w.legacyService(name, uid, nil, false); err != nil {
		return errText(err)
	}
	w.promiseVIP(adoptNS+"/"+name, earlierVIP, uid)
	return joinNotes(fmt.Sprintf("appliance %s", lb.ID), errText(w.updateService(adoptNS, name, uid, func(s *v1.Service) {
		s.Spec.Type = v1.ServiceTypeLoadBalancer
		s.Spec.Ports[0].NodePort = 30080
		s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyCluster
	})))
}

func (w *world) adoptThief(uid string) string {
	var found *iaas.LoadBalancerFindResult
	if err := oobTry(func() error {
		var err error
		found, err = w.oob.Find(bg, zoneName, &iaas.FindCondition{Count: 100,
			Filter: search.Filter{search.Key("Tags.Name"): search.TagsAndEqual(tagCluster + clusterID)}})
		return err
	}); err != nil {
		return errText(err)
	}
	var victim *iaas.LoadBalancer
	for _, lb := range found.LoadBalancers {
		if _, foreign := w.foreign[lb.ID]; !foreign && len(memberUIDs(lb.Tags)) > 0 && !hasTag(lb.Tags, tagService+serviceUID(w.seed, adoptActorID, 1)) {
			victim = lb
			break
		}
	}
	if victim == nil {
		return "no other Service's appliance to name"
	}
	return joinNotes(fmt.Sprintf("names %s of %s", victim.ID, shortUIDs(memberUIDs(victim.Tags))),
		errText(w.legacyService("thief", uid, map[string]string{annAdoptID: victim.ID.String()}, true)))
}

func (w *world) preserveReadopt(oldUID, newUID string) string {
	old, err := w.getService(adoptNS, "old")
	if err != nil {
		return "no legacy/old"
	}
	// Wait (bounded) for old to be served, so that its preserve is what is played.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if s, err := w.getService(adoptNS, "old"); err == nil && len(s.Status.LoadBalancer.Ingress) > 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	_ = old
	if err := w.updateService(adoptNS, "old", oldUID, func(s *v1.Service) { s.Annotations = map[string]string{annPreserve: "true"} }); err != nil {
		return errText(err)
	}
	time.Sleep(20 * time.Millisecond) // the service controller syncs the annotation
	w.promiseVIP(adoptNS+"/old", "")
	if err := w.deleteService(adoptNS, "old", oldUID); err != nil {
		return errText(err)
	}
	// The appliance by its earlier name (it keeps it whoever owns it).
	var id types.ID
	if err := oobTry(func() error {
		r, err := w.oob.Find(bg, zoneName, &iaas.FindCondition{Count: 100})
		if err != nil {
			return err
		}
		for _, lb := range r.LoadBalancers {
			if lb.Name == earlierName(oldUID) {
				id = lb.ID
			}
		}
		return nil
	}); err != nil || id.IsEmpty() {
		return joinNotes("old's appliance not found", errText(err))
	}
	w.promiseVIP(adoptNS+"/again", earlierVIP, oldUID, newUID)
	return joinNotes(fmt.Sprintf("again names %s", id), errText(w.legacyService("again", newUID, map[string]string{annAdoptID: id.String()}, true)))
}

func (w *world) adoptTwins(uid string) string {
	var ids []string
	for _, ip := range twinIPs {
		lb, err := w.earlierLB("twin", uid, ip, "")
		if err != nil {
			return errText(err)
		}
		ids = append(ids, lb.ID.String())
		data, _ := json.Marshal(w.nakedLB(lb.ID))
		w.mu.Lock()
		if w.untouched == nil {
			w.untouched = map[types.ID]string{}
		}
		w.untouched[lb.ID] = string(data)
		w.mu.Unlock()
	}
	return joinNotes("appliances "+strings.Join(ids, ", "), errText(w.legacyService("twin", uid, nil, true)))
}

// nakedLB is the simulator's record of id (nil when gone).
func (w *world) nakedLB(id types.ID) *naked.LoadBalancer {
	for _, lb := range w.sim.Snapshot().LoadBalancers {
		if lb.ID == id {
			return lb
		}
	}
	return nil
}

// checkAdoption is the oracle's part for the adoption actor.
func (w *world) checkAdoption(services []*v1.Service, st *sakurasim.State) []violation {
	var out []violation
	w.mu.Lock()
	promised := map[string]string{}
	for k, p := range w.promised {
		damaged := false
		for _, u := range p.uids {
			damaged = damaged || len(w.damaged[u]) > 0
		}
		if !damaged {
			promised[k] = p.vip
		}
	}
	untouched := map[types.ID]string{}
	for k, v := range w.untouched {
		untouched[k] = v
	}
	w.mu.Unlock()
	for _, s := range services {
		want := promised[key(s)]
		if want == "" || !wantsLoadBalancer(s) || s.DeletionTimestamp != nil {
			continue
		}
		if ip, _ := statusIP(s); ip != want {
			out = append(out, violation{kind: "inv10/adopted-vip", svc: key(s), msg: fmt.Sprintf("Service %s adopted an appliance with VIP %s but shows %q", key(s), want, ip)})
		}
	}
	for id, was := range untouched {
		var now *naked.LoadBalancer
		for _, lb := range st.LoadBalancers {
			if lb.ID == id {
				now = lb
			}
		}
		data, _ := json.Marshal(now)
		if now == nil || string(data) != was {
			out = append(out, violation{kind: "inv10/refused-written", msg: fmt.Sprintf("appliance %s, refused for adoption (two matches), changed:\n      was %s\n      now %s", id, was, data)})
		}
	}
	return out
}

// adoptRefusal says why s is rightly refused ("" when it is not): it got
// AdoptionRefused and the reason still holds (the ID it names is absent
// or another Service's, or two appliances still match it).
func adoptRefusal(s *v1.Service, ev map[string]bool, st *sakurasim.State) string {
	if !ev[reasonRefused] {
		return ""
	}
	if id := s.Annotations[annAdoptID]; id != "" {
		for _, lb := range st.LoadBalancers {
			if lb.ID.String() != id {
				continue
			}
			for _, u := range memberUIDs(lb.Tags) {
				if u != string(s.UID) {
					return fmt.Sprintf("names %s, another Service's: refused (%s)", id, reasonRefused)
				}
			}
			return ""
		}
		return fmt.Sprintf("names %s, which does not exist: refused (%s)", id, reasonRefused)
	}
	n := 0
	for _, lb := range st.LoadBalancers {
		if lb.Name == earlierName(string(s.UID)) && hasTag(lb.Tags, "@k8s") && !hasTag(lb.Tags, tagCluster+clusterID) {
			n++
		}
	}
	if n > 1 {
		return fmt.Sprintf("%d earlier-style appliances match: refused (%s)", n, reasonRefused)
	}
	return ""
}
