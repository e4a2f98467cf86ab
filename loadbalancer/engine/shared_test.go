package engine

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sacloud/iaas-api-go/types"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/sakuraapi"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/fake"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/annotations"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/desired"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/plan"
	v1 "k8s.io/api/core/v1"
)

func shared(name, key string, ports ...int32) *v1.Service {
	s := service(name, ports...)
	s.Annotations[annotations.SharingKey] = key
	return s
}

// entriesOf returns the VIP entries of lb owned by svc.
func entriesOf(lb *iaas.LoadBalancer, svc *v1.Service) []*iaas.LoadBalancerVirtualIPAddress {
	var out []*iaas.LoadBalancerVirtualIPAddress
	for _, v := range lb.VirtualIPAddresses {
		if v.Description == (desired.VIP{Owner: desired.RefOf(svc)}).Description() {
			out = append(out, v)
		}
	}
	return out
}

func TestSharedApplianceLifecycle(t *testing.T) {
	e := newEnv(t, 28)
	nodes := e.addNodes(3, 0)
	a, b := shared("a", "team", 80), shared("b", "team", 80, 443)

	stA := e.ensureUp(a, nodes)
	snap := e.client.Stats().Snapshot()
	stB := e.ensureUp(b, nodes)
	if n, by := writes(e.client, snap); by["LoadBalancer.Create"] != 0 || by["LoadBalancer.Update"] != 1 || n != 2 {
		t.Fatalf("joining must be one Update (+Config), no Create: %v", by)
	}
	lbs := e.lbs()
	if len(lbs) != 1 {
		t.Fatalf("want one shared appliance, got %d", len(lbs))
	}
	lb := lbs[0]
	if lb.Name != desired.SharedName("test", "team") || !hasAll(lb.Tags, desired.ClusterTag("test"), desired.SharingTag("team"), desired.ServiceTag("uid-a"), desired.ServiceTag("uid-b")) {
		t.Fatalf("name/tags %s %v", lb.Name, lb.Tags)
	}
	ipA, ipB := stA.Ingress[0].IP, stB.Ingress[0].IP
	if ipA == ipB || len(entriesOf(lb, a)) != 1 || len(entriesOf(lb, b)) != 2 || entriesOf(lb, b)[0].VirtualIPAddress != ipB {
		t.Fatalf("each Service needs its own VIP and entries: a %s b %s entries %d/%d", ipA, ipB, len(entriesOf(lb, a)), len(entriesOf(lb, b)))
	}
	// One appliance address plus two VIPs: the block's next three addresses.
	used := append([]string{ipA, ipB}, lb.IPAddresses...)
	slices.Sort(used)
	if len(lb.IPAddresses) != 1 || len(slices.Compact(used)) != 3 {
		t.Fatalf("addresses used %v", used)
	}
	if got := findEvent(e.events(), "Normal", ReasonJoinedShared, "team", ipB); got == "" {
		t.Fatal("no JoinedSharedLoadBalancer event naming the key and VIP")
	}

	// Resyncs write nothing; GetLoadBalancer reports each member's own VIP.
	snap = e.client.Stats().Snapshot()
	for _, s := range []*v1.Service{a, b} {
		if st, err := e.lb.EnsureLoadBalancer(e.ctx, "test", s, nodes); err != nil || st.Ingress[0].IP != map[string]string{"a": ipA, "b": ipB}[s.Name] {
			t.Fatalf("resync %s: %v %v", s.Name, st, err)
		}
	}
	if st, ok, err := e.lb.GetLoadBalancer(e.ctx, "test", b); err != nil || !ok || st.Ingress[0].IP != ipB {
		t.Fatalf("GetLoadBalancer(b) %v %v %v", st, ok, err)
	}
	if n, by := writes(e.client, snap); n != 0 {
		t.Fatalf("no-op resync wrote %v", by)
	}

	// A node change of one member touches only its entries.
	before := entriesOf(e.lbs()[0], b)
	if err := e.lb.UpdateLoadBalancer(e.ctx, "test", a, nodes[:2]); err != nil {
		t.Fatal(err)
	}
	lb = e.lbs()[0]
	if got := entriesOf(lb, a)[0].Servers; len(got) != 2 {
		t.Fatalf("a has %d real servers, want 2", len(got))
	}
	after := entriesOf(lb, b)
	if len(after) != 2 || len(after[0].Servers) != 3 || after[0].VirtualIPAddress != before[0].VirtualIPAddress {
		t.Fatalf("b's entries changed by a's update: %+v", after)
	}

	// The first Service to go leaves; the appliance stays for the other.
	snap = e.client.Stats().Snapshot()
	e.deleteAll(a)
	if _, by := writes(e.client, snap); by["LoadBalancer.Shutdown"] != 0 || by["LoadBalancer.Delete"] != 0 || by["LoadBalancer.Update"] != 1 {
		t.Fatalf("leaving must be one Update: %v", by)
	}
	lb = e.lbs()[0]
	if hasAll(lb.Tags, desired.ServiceTag("uid-a")) || len(entriesOf(lb, a)) != 0 || len(entriesOf(lb, b)) != 2 {
		t.Fatalf("after a left: tags %v entries %d", lb.Tags, len(lb.VirtualIPAddresses))
	}
	if got := findEvent(e.events(), ReasonLeftShared, "the 1 other Service(s)"); got == "" {
		t.Fatal("no LeftSharedLoadBalancer event")
	}
	// The last Service takes the appliance with it.
	e.deleteAll(b)
	e.settle()
	if n := len(e.lbs()); n != 0 {
		t.Fatalf("%d appliances left after the last member went", n)
	}
}

func TestSharingConflictLeavesApplianceAlone(t *testing.T) {
	e := newEnv(t, 28)
	nodes := e.addNodes(2, 0)
	e.ensureUp(shared("a", "team", 80), nodes)
	before := e.lbs()[0]

	c := shared("c", "team", 8080)
	c.Annotations[annotations.Plan] = annotations.PlanHighSpec
	c.Annotations[annotations.HA] = "true"
	snap := e.client.Stats().Snapshot()
	_, err := e.lb.EnsureLoadBalancer(e.ctx, "test", c, nodes)
	if err == nil || isRetry(err) {
		t.Fatalf("a conflicting member must be refused, got %v", err)
	}
	if n, by := writes(e.client, snap); n != 0 {
		t.Fatalf("conflict wrote %v", by)
	}
	ev := findEvent(e.events(), "Warning", ReasonSharingConflict, "plan is standard, wanted highspec", "ha is false, wanted true", annotations.SharingKey)
	if ev == "" {
		t.Fatal("SharingConflict event must name plan and ha with both values")
	}
	after := e.lbs()[0]
	if len(after.VirtualIPAddresses) != len(before.VirtualIPAddresses) || strings.Join(after.Tags, ",") != strings.Join(before.Tags, ",") {
		t.Fatalf("appliance changed: %v -> %v", before.Tags, after.Tags)
	}

	// A member changing a fixed setting later is reported the same way, and
	// nothing is written, not even its own entries' changes (a new port).
	a := shared("a", "team", 80, 81)
	a.Annotations[annotations.Plan] = annotations.PlanHighSpec
	snap = e.client.Stats().Snapshot()
	if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", a, nodes); err != nil {
		t.Fatal(err)
	}
	if findEvent(e.events(), "Warning", ReasonSharingConflict, "plan is standard, wanted highspec") == "" {
		t.Fatal("member drift not reported as SharingConflict")
	}
	if n, by := writes(e.client, snap); n != 0 {
		t.Fatalf("a member in conflict wrote %v", by)
	}
}

func TestSharedApplianceFull(t *testing.T) {
	e := newEnv(t, 27)
	nodes := e.addNodes(1, 0)
	ports := make([]int32, 19)
	for i := range ports {
		ports[i] = int32(8000 + i)
	}
	e.ensureUp(shared("big", "team", ports...), nodes)
	snap := e.client.Stats().Snapshot()
	_, err := e.lb.EnsureLoadBalancer(e.ctx, "test", shared("more", "team", 80, 443), nodes)
	if err == nil {
		t.Fatal("21 entries accepted")
	}
	if n, _ := writes(e.client, snap); n != 0 {
		t.Fatal("a refused join wrote")
	}
	if findEvent(e.events(), "Warning", ReasonSharedApplianceFull, "19 VIP+port entries", "needs 2 more") == "" {
		t.Fatal("no SharedLoadBalancerFull event with the numbers")
	}
}

// TestTwoJoinsWithinOneListingGetTwoVIPs is issue #18's defect 1: B joins
// and writes VIP V; C joins the same key at once and reuses the zone
// listing made before V was written. C must not get V.
func TestTwoJoinsWithinOneListingGetTwoVIPs(t *testing.T) {
	e := newEnv(t, 28)
	nodes := e.addNodes(2, 0)
	a, b, c := shared("a", "team", 80), shared("b", "team", 81), shared("c", "team", 82)
	stA := e.ensureUp(a, nodes)
	stB := e.ensureUp(b, nodes)
	stC := e.ensureUp(c, nodes)
	seen := map[string]string{}
	for name, st := range map[string]*v1.LoadBalancerStatus{"a": stA, "b": stB, "c": stC} {
		ip := st.Ingress[0].IP
		if other, dup := seen[ip]; dup {
			t.Fatalf("Services %s and %s both got %s", other, name, ip)
		}
		seen[ip] = name
	}
	lb := e.lbs()[0]
	vips := map[string]int{}
	for _, v := range lb.VirtualIPAddresses {
		vips[v.VirtualIPAddress+"/"+v.Port.String()]++
	}
	for k, n := range vips {
		if n > 1 {
			t.Fatalf("entry %s written %d times: %v", k, n, vips)
		}
	}
}

// TestPinningAnotherMembersVIPIsRefused is issue #18's defect 2: a member
// that sets spec.loadBalancerIP to another member's VIP must not get it.
func TestPinningAnotherMembersVIPIsRefused(t *testing.T) {
	e := newEnv(t, 28)
	nodes := e.addNodes(2, 0)
	a, b := shared("a", "team", 80), shared("b", "team", 81)
	stA := e.ensureUp(a, nodes)
	stB := e.ensureUp(b, nodes)
	e.events()
	b.Spec.LoadBalancerIP = stA.Ingress[0].IP
	b.Annotations[annotations.HealthzInterval] = "30" // a change beside the refused pin
	st, err := e.lb.EnsureLoadBalancer(e.ctx, "test", b, nodes)
	if err == nil {
		t.Fatalf("b took a's VIP %s: status %v", stA.Ingress[0].IP, st)
	}
	for _, v := range entriesOf(e.lbs()[0], b) {
		if v.DelayLoop.Int() != 30 {
			t.Fatalf("the refused pin held up b's other change: delay loop %d", v.DelayLoop.Int())
		}
	}
	if ev := findEvent(e.events(), "Warning", ReasonLoadBalancerIPInvalid, stA.Ingress[0].IP); ev == "" {
		t.Fatalf("no %s Event naming the address", ReasonLoadBalancerIPInvalid)
	}
	for _, v := range entriesOf(e.lbs()[0], b) {
		if v.VirtualIPAddress != stB.Ingress[0].IP {
			t.Fatalf("b's entries moved to %s", v.VirtualIPAddress)
		}
	}
	// A free address is still accepted, and a retry of it too.
	free := e.ip(10)
	b.Spec.LoadBalancerIP = free
	for i := 0; i < 2; i++ {
		if st, err := e.lb.EnsureLoadBalancer(e.ctx, "test", b, nodes); err != nil || st.Ingress[0].IP != free {
			t.Fatalf("pin to the free %s (try %d): %v %v", free, i, st, err)
		}
	}
}

// TestRejoinAfterWipeKeepsOneTagAndDeletes is issue #18's defect 3: a sole
// member whose entries were wiped out of band joins again with one tag, and
// its deletion removes the appliance instead of leaking it.
func TestRejoinAfterWipeKeepsOneTagAndDeletes(t *testing.T) {
	e := newEnv(t, 28)
	nodes := e.addNodes(2, 0)
	a := shared("a", "solo", 80)
	e.ensureUp(a, nodes)
	lb := e.lbs()[0]
	if _, err := fake.NewLoadBalancerOp().UpdateSettings(e.ctx, zone, lb.ID, &iaas.LoadBalancerUpdateSettingsRequest{VirtualIPAddresses: iaas.LoadBalancerVirtualIPAddresses{}, SettingsHash: lb.SettingsHash}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", a, nodes); err != nil {
			t.Fatalf("re-join %d: %v", i, err)
		}
	}
	lb = e.lbs()[0]
	n := 0
	for _, tag := range lb.Tags {
		if tag == desired.ServiceTag(string(a.UID)) {
			n++
		}
	}
	if n != 1 || len(entriesOf(lb, a)) != 1 {
		t.Fatalf("after the re-join: member tag %d times, %d entries; tags %v", n, len(entriesOf(lb, a)), lb.Tags)
	}
	e.deleteAll(a)
	if lbs := e.lbs(); len(lbs) != 0 {
		t.Fatalf("the sole member's appliance leaked: %v", lbs[0].Tags)
	}
}

// TestJoinNeverLandsOnAnApplianceBeingShutDown is issue #18's defect 4:
// the last member's delete sends the shutdown and returns while the
// appliance still reads up; a new member of the key must not join it.
func TestJoinNeverLandsOnAnApplianceBeingShutDown(t *testing.T) {
	e := newEnv(t, 28)
	nodes := e.addNodes(2, 0)
	a, b := shared("a", "team", 80), shared("b", "team", 81)
	e.ensureUp(a, nodes)
	old := e.lbs()[0].ID

	// The appliance keeps reading "up" after the shutdown, as SAKURA's
	// can for a while; the delete does not wait for it.
	was := fake.PowerOffDuration
	fake.PowerOffDuration = time.Hour
	e.lb.deleteWaits = nil
	if err := e.lb.EnsureLoadBalancerDeleted(e.ctx, "test", a); err == nil || !isRetry(err) {
		t.Fatalf("the delete should wait for the shutdown: %v", err)
	}
	stB, err := e.lb.EnsureLoadBalancer(e.ctx, "test", b, nodes)
	fake.PowerOffDuration = was
	if err == nil {
		t.Fatalf("b joined the appliance being shut down: %v", stB)
	}
	for _, lb := range e.lbs() {
		if lb.ID == old && desired.HasTags(lb.Tags, desired.ServiceTag(string(b.UID))) {
			t.Fatalf("b is a member of %s, which is being shut down", old)
		}
		if lb.ID == old && desired.SharingKeyOf(lb.Tags) != "" {
			t.Fatalf("the appliance being shut down still carries its sharing key: %v", lb.Tags)
		}
	}
}

// refusingUpdates refuses, with 409, writes whose entries use one address,
// as SAKURA would when something outside the inventory holds it.
type refusingUpdates struct {
	sakuraapi.LoadBalancerAPI
	refuse  string
	refused int
}

func (r *refusingUpdates) uses(vips iaas.LoadBalancerVirtualIPAddresses) bool {
	for _, v := range vips {
		if v.VirtualIPAddress == r.refuse {
			r.refused++
			return true
		}
	}
	return false
}

func (r *refusingUpdates) Update(ctx context.Context, zone string, id types.ID, req *iaas.LoadBalancerUpdateRequest) (*iaas.LoadBalancer, error) {
	if r.uses(req.VirtualIPAddresses) {
		return nil, iaas.NewAPIError("PUT", nil, http.StatusConflict, &iaas.APIErrorResponse{ErrorCode: "conflict"})
	}
	return r.LoadBalancerAPI.Update(ctx, zone, id, req)
}

// TestRefusedJoinForgetsTheInventory is issue #18's defect 7: a server
// took an address after the (five-minute) inventory was read; the join
// that chose it is refused, and the next try reads the switch again and
// takes another address instead of being refused for five minutes.
func TestRefusedJoinForgetsTheInventory(t *testing.T) {
	e := newEnv(t, 28)
	e.cfg.InventoryTTLSec = 300
	e.rebuild()
	nodes := e.addNodes(2, 0)
	a, b := shared("a", "team", 80), shared("b", "team", 81)
	stA := e.ensureUp(a, nodes)
	// The next free address goes to a server made by hand.
	taken := ""
	for i := 0; i < 8 && taken == ""; i++ {
		ip := e.ip(i)
		free := ip != stA.Ingress[0].IP
		for _, lb := range e.lbs() {
			free = free && !slices.Contains(lb.IPAddresses, ip)
		}
		for _, n := range []int{0, 1} {
			free = free && ip != e.ip(n)
		}
		if free {
			taken = ip
		}
	}
	e.addServer("by-hand", e.sw, taken)
	r := &refusingUpdates{LoadBalancerAPI: e.client.LoadBalancers, refuse: taken}
	e.client.LoadBalancers = r
	var st *v1.LoadBalancerStatus
	for i := 0; i < 5 && st == nil; i++ {
		st, _ = e.lb.EnsureLoadBalancer(e.ctx, "test", b, nodes)
	}
	if st == nil || st.Ingress[0].IP == taken {
		t.Fatalf("b never joined on another address than %s (refused %d times): %v", taken, r.refused, st)
	}
	if r.refused != 1 {
		t.Fatalf("refused %d times; the inventory should be read again after the first", r.refused)
	}
}

// failingUpdates answers the next Update with code after carrying it out.
type failingUpdates struct {
	sakuraapi.LoadBalancerAPI
	code int
}

func (f *failingUpdates) Update(ctx context.Context, zone string, id types.ID, req *iaas.LoadBalancerUpdateRequest) (*iaas.LoadBalancer, error) {
	lb, err := f.LoadBalancerAPI.Update(ctx, zone, id, req)
	if err != nil || f.code == 0 {
		return lb, err
	}
	code := f.code
	f.code = 0
	return nil, iaas.NewAPIError("PUT", nil, code, &iaas.APIErrorResponse{ErrorCode: "fault"})
}

// TestJoinAnswered500KeepsItsVIP (torture seed 10001): a join's write is
// answered 500 after it was carried out. Its VIP must stay held, so that a
// create right after, reusing the zone listing made before the write, does
// not get the same address.
func TestJoinAnswered500KeepsItsVIP(t *testing.T) {
	e := newEnv(t, 28)
	nodes := e.addNodes(2, 0)
	a, b := shared("a", "team", 80), shared("b", "team", 81)
	e.ensureUp(a, nodes)
	e.client.LoadBalancers = &failingUpdates{LoadBalancerAPI: e.client.LoadBalancers, code: http.StatusInternalServerError}
	if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", b, nodes); err == nil {
		t.Fatal("the join answered 500 reported success")
	}
	var joined string
	for _, v := range entriesOf(e.lbs()[0], b) {
		joined = v.VirtualIPAddress
	}
	if joined == "" {
		t.Fatal("precondition: the join's write was not carried out")
	}
	c := service("c", 80)
	st := e.ensureUp(c, nodes)
	if st.Ingress[0].IP == joined {
		t.Fatalf("c got %s, which b's join wrote though its answer was 500", joined)
	}
}

// A member pinning another member's VIP whose own entries are then wiped
// out of band joins again on the address it shows; the refused pin is
// still reported (torture seeds 100706, 100757: the entries never came
// back).
func TestWipedMemberWithARefusedPinRejoinsOnItsAddress(t *testing.T) {
	e := newEnv(t, 28)
	nodes := e.addNodes(2, 0)
	a, b := shared("a", "team", 80), shared("b", "team", 81)
	stA := e.ensureUp(a, nodes)
	stB := e.ensureUp(b, nodes)
	b.Status.LoadBalancer = *stB
	b.Spec.LoadBalancerIP = stA.Ingress[0].IP
	lb := e.lbs()[0]
	_, others := plan.SplitEntries(lb.VirtualIPAddresses, desired.RefOf(b))
	if _, err := fake.NewLoadBalancerOp().UpdateSettings(e.ctx, zone, lb.ID, &iaas.LoadBalancerUpdateSettingsRequest{VirtualIPAddresses: others, SettingsHash: lb.SettingsHash}); err != nil {
		t.Fatal(err)
	}
	_, err := e.lb.EnsureLoadBalancer(e.ctx, "test", b, nodes)
	if reasonOf(err, "") != ReasonLoadBalancerIPInvalid {
		t.Fatalf("the refused pin: %v, want %s", err, ReasonLoadBalancerIPInvalid)
	}
	got := entriesOf(e.lbs()[0], b)
	if len(got) != 1 || got[0].VirtualIPAddress != stB.Ingress[0].IP {
		t.Fatalf("b's entries after the rejoin: %v, want one on %s", got, stB.Ingress[0].IP)
	}
	if a := entriesOf(e.lbs()[0], a); len(a) != 1 || a[0].VirtualIPAddress != stA.Ingress[0].IP {
		t.Fatalf("a's entries changed: %v", a)
	}
}

// A member that is the last of its key, deleted and wanted again before the
// deletion finished, gets its appliance back with the key's tag (its
// deletion took the tag off before the shutdown): other members of the key
// then join it instead of making a second appliance (torture seed 101907).
func TestWantedAgainBeforeItsDeletionFinishedIsSharedAgain(t *testing.T) {
	e := newEnv(t, 28)
	nodes := e.addNodes(2, 0)
	a, b := shared("a", "team", 80), shared("b", "team", 81)
	e.ensureUp(a, nodes)
	e.lb.deleteWaits = nil // the delete returns once the shutdown is sent
	if err := e.lb.EnsureLoadBalancerDeleted(e.ctx, "test", a); err == nil {
		t.Fatal("want a RetryError while it shuts down")
	}
	if got := desired.SharingKeyOf(e.lbs()[0].Tags); got != "" {
		t.Fatalf("the deletion did not unshare first: key %q", got)
	}
	e.ensureUp(a, nodes)
	lbs := e.lbs()
	if len(lbs) != 1 || desired.SharingKeyOf(lbs[0].Tags) != "team" {
		t.Fatalf("wanted again: %d appliances, key %q; want the one, shared by team again", len(lbs), desired.SharingKeyOf(lbs[0].Tags))
	}
	e.ensureUp(b, nodes)
	if n := len(e.lbs()); n != 1 {
		t.Fatalf("b made a second appliance for the key: %d", n)
	}
}
