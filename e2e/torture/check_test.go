package torture

// The invariants, checked on the simulator's state after the settle phase:
//
//  1. every LoadBalancer Service has exactly one appliance (tags
//     cluster=<id> and service-uid=<uid>), running, whose entries for the
//     Service's status IP are one per port with the nodes' addresses on the
//     switch as real servers (Local: the nodes with a ready endpoint), the
//     health check and delay loop the annotations ask for, and the pinned
//     VIP when spec.loadBalancerIP is set; in the applied settings too when
//     the simulator exposes them;
//  2. nothing is left for a deleted Service (or one that is no longer of
//     type LoadBalancer): no appliance, no service-uid tag, no entry, no
//     Service stuck in deletion; and no controller boots the appliance of
//     a Service being deleted (seen while running, world.noteRequest);
//  3. appliances that are not this cluster's are never written: byte for
//     byte what they were at the start, and no write request reached them;
//  4. no address is the VIP of, or in the status of, two Services;
//  5. the members of a sharing key share one appliance and each has its
//     entries;
//  6. an appliance damaged out of band is back in line (reported as inv6
//     when the failing Service's appliance was damaged during the seed);
//  7. no appliance carries a tag twice (a member's service-uid tag above
//     all), at the end or in any write the simulator accepted;
//  8. no appliance of the cluster is left without a member (a leak), and
//     no address (VIP or appliance IP) is held twice on a switch: by two
//     appliances, by an appliance and a server, or as an appliance's own
//     address and its VIP; and no write of the controller ever took an
//     address in use (the simulator accepts and records such writes, as
//     SAKURA's API may: see docs/simulator.md);
//  9. every address a Service shows is a VIP of an appliance that carries
//     its service-uid tag.
//
// Services of type enhanced are served by an Enhanced Load Balancer, not an
// appliance: invariants 1, 5 and 9 skip them, and elb_test.go (checkELBs)
// holds them and the cluster's ELBs to the same numbered invariants. The
// others (deletion, cleanup, no appliance for a Service that is not live,
// one Service per status address) cover them as they are.
//
// Nothing is excused, with one exception: a Service the controller
// refused, because the address it pins is held by something else or the
// dynamic range is full, may have no address (and no appliance, or its old
// one). It counts as refused only with the Event that says so
// (LoadBalancerIPUnavailable, AddressBlockExhausted) and while the reason
// still holds; it is then a note, not a failure. An address on two
// Services is a failure whatever the Events say.

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/sacloud/iaas-api-go/naked"
	"github.com/sacloud/iaas-api-go/types"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/e2e/sakurasim"
)

func (w *world) check() []violation {
	st := w.sim.Snapshot()
	applied, _ := appliedSettings(w.sim, st)
	services := w.listServices()
	nodes := w.listNodes()
	var out []violation
	add := func(kind, format string, args ...any) {
		out = append(out, violation{kind: kind, msg: fmt.Sprintf(format, args...)})
	}
	adds := func(s *v1.Service, kind, format string, args ...any) {
		out = append(out, violation{kind: kind, msg: fmt.Sprintf(format, args...), svc: key(s)})
	}
	w.mu.Lock()
	damaged := map[string][]string{}
	for k, v := range w.damaged {
		damaged[k] = v
	}
	w.mu.Unlock()

	// Servers and their addresses on the router+switch.
	serverOf := serverMatcher(st.Servers)
	eligible := map[string]string{} // node name -> address on the switch
	for _, n := range filterNodes(nodes, stableNodeSetPredicates...) {
		if s := serverOf(n); s != nil {
			if ip := w.segmentIP(s.Interfaces); ip != "" {
				eligible[n.Name] = ip
			}
		}
	}

	// Appliances: foreign ones by ID, this cluster's by tag.
	ours := map[types.ID]*naked.LoadBalancer{}
	var ourIDs []types.ID
	for _, lb := range st.LoadBalancers {
		if _, foreign := w.foreign[lb.ID]; foreign {
			continue
		}
		if hasTag(lb.Tags, tagCluster+clusterID) {
			ours[lb.ID] = lb
			ourIDs = append(ourIDs, lb.ID)
		}
	}
	sort.Slice(ourIDs, func(i, j int) bool { return ourIDs[i] < ourIDs[j] })

	// Invariant 3: foreign appliances untouched.
	seen := map[types.ID]bool{}
	for _, lb := range st.LoadBalancers {
		want, foreign := w.foreign[lb.ID]
		if !foreign {
			continue
		}
		seen[lb.ID] = true
		data, _ := json.Marshal(lb)
		if string(data) != want {
			add("inv3/foreign-changed", "appliance %s (%s), not this cluster's, changed:\n      was %s\n      now %s", lb.ID, lb.Name, want, data)
		}
	}
	for id := range w.foreign {
		if !seen[id] {
			add("inv3/foreign-deleted", "appliance %s, not this cluster's, was deleted", id)
		}
	}

	live := map[string]*v1.Service{} // UID -> Service that wants a load balancer
	statusOwners := map[string][]string{}
	keyMembers := map[string][]*v1.Service{}
	kindFor := func(s *v1.Service, kind string) string {
		if len(damaged[string(s.UID)]) > 0 && strings.HasPrefix(kind, "inv1") {
			return "inv6" + strings.TrimPrefix(kind, "inv1")
		}
		if s.Annotations[annSharing] != "" && strings.HasPrefix(kind, "inv1/entries") {
			return "inv5" + strings.TrimPrefix(kind, "inv1")
		}
		return kind
	}
	for _, s := range services {
		uid := string(s.UID)
		owned := ownedBy(ours, ourIDs, uid)
		if s.DeletionTimestamp != nil {
			add("inv2/deletion-stuck", "Service %s (uid …%s) is being deleted but keeps its finalizer (appliances %v)", key(s), short(uid), owned)
			continue
		}
		if !wantsLoadBalancer(s) {
			if len(owned) > 0 {
				add("inv2/not-lb-has-appliance", "Service %s is of type %s but appliances %v carry its service-uid tag", key(s), s.Spec.Type, owned)
			}
			if ip, _ := statusIP(s); ip != "" {
				add("inv2/not-lb-has-status", "Service %s is of type %s but its status shows %s", key(s), s.Spec.Type, ip)
			}
			if hasFinalizer(s) {
				add("inv2/cleanup-stuck", "Service %s is of type %s but keeps the cleanup finalizer: its load balancer was never cleaned up", key(s), s.Spec.Type)
			}
			continue
		}
		ip, n := statusIP(s)
		if ip != "" {
			statusOwners[ip] = append(statusOwners[ip], key(s))
		}
		if isELBService(s) {
			// Type enhanced: an Enhanced Load Balancer serves it, not an
			// appliance, so the appliance checks do not apply; checkELBs
			// holds it to the ELB's invariants, and to having no
			// appliance. It stays out of live: an appliance carrying its
			// service-uid tag is a leftover.
			continue
		}
		live[uid] = s
		if k := s.Annotations[annSharing]; k != "" {
			keyMembers[k] = append(keyMembers[k], s)
		}
		if len(owned) != 1 {
			adds(s, kindFor(s, "inv1/appliance-count"), "Service %s (uid …%s) has %d appliances %v, want exactly one%s", key(s), short(uid), len(owned), owned, damageNote(damaged[uid]))
			if len(owned) == 0 {
				continue
			}
		}
		lb := ours[owned[0]]
		if n != 1 {
			adds(s, kindFor(s, "inv1/status"), "Service %s: status shows %d addresses, want 1 (appliance %s)%s", key(s), n, lb.ID, damageNote(damaged[uid]))
			continue
		}
		if s.Spec.LoadBalancerIP != "" && ip != s.Spec.LoadBalancerIP {
			adds(s, kindFor(s, "inv1/pin"), "Service %s pins %s but its status shows %s", key(s), s.Spec.LoadBalancerIP, ip)
		}
		if lb.Instance == nil || lb.Instance.Status != types.ServerInstanceStatuses.Up || lb.Availability != types.Availabilities.Available {
			status := types.EServerInstanceStatus("")
			if lb.Instance != nil {
				status = lb.Instance.Status
			}
			adds(s, kindFor(s, "inv1/not-running"), "Service %s: appliance %s is %s/%s, not up%s", key(s), lb.ID, lb.Availability, status, damageNote(damaged[uid]))
		}
		shared := sharingKey(lb.Tags)
		if want := s.Annotations[annSharing]; shared != want {
			adds(s, kindFor(s, "inv1/sharing"), "Service %s (key %q) is on appliance %s shared by key %q", key(s), want, lb.ID, shared)
		}
		want := w.expectedEntry(s, eligible)
		for _, e := range w.entryProblems(s, ip, want, settingsOf(lb)) {
			adds(s, kindFor(s, "inv1/entries"), "Service %s on appliance %s: %s%s", key(s), lb.ID, e, damageNote(damaged[uid]))
		}
		if ap, ok := applied[lb.ID]; ok {
			for _, e := range w.entryProblems(s, ip, want, ap) {
				adds(s, kindFor(s, "inv1/applied"), "Service %s on appliance %s, applied configuration: %s%s", key(s), lb.ID, e, damageNote(damaged[uid]))
			}
		}
	}

	// Invariants 2 and 5 from the appliances' side.
	for _, id := range ourIDs {
		lb := ours[id]
		members := memberUIDs(lb.Tags)
		if len(members) == 0 {
			// The controller made it (the topology's tag-only appliance
			// is foreign): a member-less appliance is a leak.
			add("inv8/leak", "appliance %s (%s, %s/%s, tags %v) is the cluster's but carries no service-uid tag: nothing will ever delete it",
				id, lb.Name, lb.Availability, instanceStatus(lb), lb.Tags)
			continue
		}
		var alive []*v1.Service
		for _, u := range members {
			if s := live[u]; s != nil {
				alive = append(alive, s)
			} else {
				add("inv2/leftover-tag", "appliance %s carries service-uid …%s of no LoadBalancer Service%s", id, short(u), gone(services, u))
			}
		}
		if len(alive) == 0 {
			add("inv2/leftover-appliance", "appliance %s (%s) is left for Services that are gone: %s", id, lb.Name, shortUIDs(members))
			continue
		}
		vipOwner := map[string]string{}
		for _, s := range alive {
			if ip, _ := statusIP(s); ip != "" {
				vipOwner[ip] = key(s)
			}
		}
		for _, e := range settingsOf(lb) {
			if vipOwner[e.VirtualIPAddress] == "" {
				add("inv2/leftover-entry", "appliance %s has entry %s:%s that no member's status shows (members %s)", id, e.VirtualIPAddress, e.Port, keysOf(alive))
			}
		}
		for _, e := range applied[id] {
			if e != nil && vipOwner[e.VirtualIPAddress] == "" {
				add("inv2/leftover-entry-applied", "appliance %s runs entry %s:%s that no member's status shows (members %s)", id, e.VirtualIPAddress, e.Port, keysOf(alive))
			}
		}
	}

	// Invariant 4: one Service per status address and per VIP.
	for ip, owners := range statusOwners {
		if len(owners) > 1 {
			add("inv4/status", "address %s is in the status of %d Services: %s", ip, len(owners), strings.Join(owners, ", "))
		}
	}
	vipLBs := map[string][]types.ID{}
	for _, lb := range st.LoadBalancers {
		seenVIP := map[string]bool{}
		for _, e := range settingsOf(lb) {
			if !seenVIP[e.VirtualIPAddress] {
				seenVIP[e.VirtualIPAddress] = true
				vipLBs[e.VirtualIPAddress] = append(vipLBs[e.VirtualIPAddress], lb.ID)
			}
		}
	}
	for ip, ids := range vipLBs {
		if len(ids) > 1 {
			add("inv4/vip", "address %s is a VIP on %d appliances %v", ip, len(ids), ids)
		}
	}

	// Invariant 5: one appliance per sharing key.
	for k, ms := range keyMembers {
		lbs := map[types.ID][]string{}
		for _, s := range ms {
			for _, id := range ownedBy(ours, ourIDs, string(s.UID)) {
				lbs[id] = append(lbs[id], key(s))
			}
		}
		if len(lbs) > 1 {
			add("inv5/split", "the members of sharing key %s are on %d appliances: %v", k, len(lbs), lbs)
		}
	}
	// Invariant 7: no tag twice on an appliance of the cluster.
	for _, id := range ourIDs {
		count := map[string]int{}
		for _, t := range ours[id].Tags {
			count[t]++
		}
		for t, n := range count {
			if n > 1 {
				add("inv7/duplicate-tag", "appliance %s carries tag %s %d times (tags %v)", id, t, n, ours[id].Tags)
			}
		}
	}

	// Invariant 8: one holder per address on a layer-2 segment.
	holders := map[string][]string{} // "<switch>/<ip>" -> holders
	hold := func(sw types.ID, ip, who string) {
		if sw == w.globalSWB {
			sw = w.globalSW // one segment across the bridge
		}
		if ip != "" {
			k := sw.String() + "/" + ip
			holders[k] = append(holders[k], who)
		}
	}
	for _, sv := range st.Servers {
		for _, n := range sv.Interfaces {
			if n != nil && n.Switch != nil && n.UserIPAddress != "" {
				hold(n.Switch.ID, n.UserIPAddress, "server "+sv.Name)
			}
		}
	}
	for _, lb := range st.LoadBalancers {
		if lb.Remark == nil || lb.Remark.Switch == nil {
			continue
		}
		sw := lb.Remark.Switch.ID
		for _, a := range lb.Remark.Servers {
			if a != nil {
				hold(sw, a.IPAddress, fmt.Sprintf("appliance %s (appliance IP)", lb.ID))
			}
		}
		seenVIP := map[string]bool{}
		for _, e := range settingsOf(lb) {
			if !seenVIP[e.VirtualIPAddress] {
				seenVIP[e.VirtualIPAddress] = true
				hold(sw, e.VirtualIPAddress, fmt.Sprintf("appliance %s (VIP)", lb.ID))
			}
		}
	}
	// VPC routers hold their addresses too (the topology seeds them; the
	// controller never writes them).
	for _, v := range st.VPCRouters {
		if v.Remark == nil || len(v.Interfaces) == 0 || v.Interfaces[0] == nil || v.Interfaces[0].Switch == nil {
			continue
		}
		sw := v.Interfaces[0].Switch.ID
		for _, a := range v.Remark.Servers {
			if a != nil {
				hold(sw, a.IPAddress, "vpc router "+v.Name)
			}
		}
		if v.Settings != nil && v.Settings.Router != nil {
			for _, i := range v.Settings.Router.Interfaces {
				if i != nil {
					hold(sw, i.VirtualIPAddress, "vpc router "+v.Name+" (VIP)")
				}
			}
		}
	}
	for k, hs := range holders {
		if len(hs) > 1 {
			add("inv8/address", "address %s is held %d times: %s", k[strings.IndexByte(k, '/')+1:], len(hs), strings.Join(hs, ", "))
		}
	}
	// Conflicting writes the simulator accepted: the appliances that are
	// not foreign were all made by the controller (the out-of-band client
	// never creates, and its edits only remove entries or change a delay).
	_, accepted := w.sim.Conflicts()
	for _, c := range accepted {
		if _, foreign := w.foreign[c.Appliance]; foreign {
			continue
		}
		if c.Field == "Tags" {
			add("inv7/duplicate-tag-written", "%s %s at %s wrote tag %s twice", c.Op, c.Appliance, fmtDur(c.At.Sub(w.start)), c.Value)
			continue
		}
		add("inv8/address-in-use-written", "%s %s at %s wrote %s %s, already held by %s", c.Op, c.Appliance, fmtDur(c.At.Sub(w.start)), c.Field, c.Value, c.Holder)
	}

	// Invariant 9: a Service's address is a VIP of an appliance it is a member of.
	for _, s := range services {
		if live[string(s.UID)] != s {
			continue
		}
		ip, _ := statusIP(s)
		if ip == "" {
			continue
		}
		carried := false
		for _, lb := range st.LoadBalancers {
			if !hasTag(lb.Tags, tagService+string(s.UID)) {
				continue
			}
			for _, e := range settingsOf(lb) {
				carried = carried || e.VirtualIPAddress == ip
			}
		}
		if !carried {
			adds(s, "inv9/status-not-carried", "Service %s shows %s, which no appliance carrying its service-uid tag has as a VIP", key(s), ip)
		}
	}
	// Invariant 11: a node's server that exists keeps its Node, whichever
	// zone's API failed meanwhile (the harness deletes a Node only with
	// its server; the lifecycle controller only for a server gone).
	hasNode := map[string]bool{}
	for _, n := range nodes {
		hasNode[n.Name] = true
	}
	for _, sv := range st.Servers {
		if strings.HasPrefix(sv.Name, "node-") && !hasNode[sv.Name] {
			add("inv11/node-lost", "server %s (%s, zone %s) exists but its Node was deleted", sv.Name, sv.ID, sv.Zone.Name)
		}
	}
	out = append(out, w.checkAdoption(services, st)...)
	out = append(out, w.checkELBs(services, nodes, st, ours, ourIDs, damaged)...)
	return w.excuseRefusals(out, services, st, holders)
}

func instanceStatus(lb *naked.LoadBalancer) types.EServerInstanceStatus {
	if lb.Instance == nil {
		return ""
	}
	return lb.Instance.Status
}

// checkNotes are the refusals excused by the last check.
func (w *world) checkNotes() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.notes...)
}

// refusalEvents are the Event reasons the controller gives a Service it
// refuses an address.
const (
	reasonPinUnavailable = "LoadBalancerIPUnavailable"
	reasonExhausted      = "AddressBlockExhausted"
)

// serviceEvents maps a Service UID to the reasons of its Events.
func (w *world) serviceEvents() map[string]map[string]bool {
	out := map[string]map[string]bool{}
	l, err := w.kube.CoreV1().Events("").List(bg, metav1.ListOptions{})
	if err != nil {
		return out
	}
	for _, e := range l.Items {
		u := string(e.InvolvedObject.UID)
		if out[u] == nil {
			out[u] = map[string]bool{}
		}
		out[u][e.Reason] = true
	}
	return out
}

// dynamicRange is what the controller allocates from (testdata/topology.yaml).
var dynamicRange = [2]int{25, 56}

// excuseRefusals turns into notes the failures of a Service that was
// refused an address for a reason that still holds, and got the Event that
// says so: it shows no address (or not the one it pins) and has no
// appliance of its own, or keeps the one it had. Only the failures that a
// refusal implies are excused (no status, no appliance, the pin not
// shown); everything else about that Service stays a failure.
func (w *world) excuseRefusals(v []violation, services []*v1.Service, st *sakurasim.State, holders map[string][]string) []violation {
	events := w.serviceEvents()
	statusOf := map[string][]string{}
	for _, s := range services {
		if ip, _ := statusIP(s); ip != "" && wantsLoadBalancer(s) && s.DeletionTimestamp == nil {
			statusOf[ip] = append(statusOf[ip], key(s))
		}
	}
	// heldElsewhere: ip is shown by another Service or held on the switch
	// by something that is not an appliance of s.
	heldElsewhere := func(s *v1.Service, ip string) string {
		for _, o := range statusOf[ip] {
			if o != key(s) {
				return "shown by Service " + o
			}
		}
		own := map[string]bool{}
		for _, lb := range st.LoadBalancers {
			if hasTag(lb.Tags, tagService+string(s.UID)) {
				own[fmt.Sprintf("appliance %s (VIP)", lb.ID)] = true
				own[fmt.Sprintf("appliance %s (appliance IP)", lb.ID)] = true
			}
		}
		for _, h := range holders[w.globalSW.String()+"/"+ip] {
			if !own[h] {
				return "held by " + h
			}
		}
		return ""
	}
	free := 0
	for i := dynamicRange[0]; i <= dynamicRange[1]; i++ {
		ip := fmt.Sprintf("203.0.113.%d", i)
		if len(holders[w.globalSW.String()+"/"+ip]) == 0 && len(statusOf[ip]) == 0 {
			free++
		}
	}
	refused := map[string]string{} // Service key -> why
	for _, s := range services {
		if !wantsLoadBalancer(s) || s.DeletionTimestamp != nil {
			continue
		}
		ip, _ := statusIP(s)
		ev := events[string(s.UID)]
		if pin := s.Spec.LoadBalancerIP; pin != "" && ip != pin && ev[reasonPinUnavailable] {
			if by := heldElsewhere(s, pin); by != "" {
				refused[key(s)] = fmt.Sprintf("pins %s, %s: refused (%s)", pin, by, reasonPinUnavailable)
			}
		}
		if why := adoptRefusal(s, ev, st); ip == "" && why != "" {
			refused[key(s)] = why
		}
		if ip == "" && ev[reasonExhausted] && free == 0 {
			refused[key(s)] = fmt.Sprintf("the dynamic range .%d-.%d is full: refused (%s)", dynamicRange[0], dynamicRange[1], reasonExhausted)
		}
	}
	var out []violation
	var notes []string
	for _, x := range v {
		why := refused[x.svc]
		excusable := strings.HasSuffix(x.kind, "/pin") || strings.HasSuffix(x.kind, "/status") && strings.Contains(x.msg, "shows 0 addresses") ||
			strings.HasSuffix(x.kind, "/appliance-count") && strings.Contains(x.msg, "has 0 appliances")
		if why != "" && excusable {
			notes = append(notes, fmt.Sprintf("Service %s %s; not counted: [%s] %s", x.svc, why, x.kind, x.msg))
			continue
		}
		out = append(out, x)
	}
	w.mu.Lock()
	w.notes = notes
	w.mu.Unlock()
	return out
}

// serverMatcher matches Nodes to servers as docs/load-balancers.md says:
// by providerID (the server with that ID, else the one tagged
// @previous-id=<ID>), and by unique name only without a providerID.
func serverMatcher(servers []*naked.Server) func(*v1.Node) *naked.Server {
	byID := map[types.ID]*naked.Server{}
	byName := map[string][]*naked.Server{}
	byPrev := map[types.ID][]*naked.Server{}
	for _, s := range servers {
		byID[s.ID] = s
		byName[s.Name] = append(byName[s.Name], s)
		for _, t := range s.Tags {
			if p, ok := strings.CutPrefix(t, "@previous-id="); ok {
				byPrev[types.StringID(p)] = append(byPrev[types.StringID(p)], s)
			}
		}
	}
	return func(n *v1.Node) *naked.Server {
		if n.Spec.ProviderID != "" {
			rest, ok := strings.CutPrefix(n.Spec.ProviderID, providerScheme)
			if !ok {
				return nil
			}
			id := rest[strings.LastIndexByte(rest, '/')+1:]
			if s := byID[types.StringID(id)]; s != nil {
				return s
			}
			if r := byPrev[types.StringID(id)]; len(r) == 1 {
				return r[0]
			}
			return nil
		}
		if c := byName[n.Name]; len(c) == 1 {
			return c[0]
		}
		return nil
	}
}

// entryWant is what one Service's entries must look like.
type entryWant struct {
	ports    []int
	servers  []string
	protocol string
	path     string
	delay    int
	sorry    string // the sorry server, "" for none
}

func (w *world) expectedEntry(s *v1.Service, eligible map[string]string) entryWant {
	var want entryWant
	for _, p := range s.Spec.Ports {
		want.ports = append(want.ports, int(p.Port))
	}
	sort.Ints(want.ports)
	var ready map[string]bool
	if s.Spec.ExternalTrafficPolicy == v1.ServiceExternalTrafficPolicyLocal {
		ready = w.readyNodesOf(s.Namespace, s.Name)
	}
	for n, ip := range eligible {
		if ready == nil || ready[n] {
			want.servers = append(want.servers, ip)
		}
	}
	sort.Strings(want.servers)
	want.protocol = "ping"
	if p := s.Annotations[annProtocol]; p != "" {
		want.protocol = p
	}
	if want.protocol == "http" || want.protocol == "https" {
		want.path = "/"
		if p := s.Annotations[annPath]; p != "" {
			want.path = p
		}
	}
	want.sorry = s.Annotations[annSorry]
	want.delay = 10
	if d, err := strconv.Atoi(s.Annotations[annInterval]); err == nil {
		want.delay = d
	}
	return want
}

// entryProblems compares the entries for VIP ip with want.
func (w *world) entryProblems(s *v1.Service, ip string, want entryWant, settings []*naked.LoadBalancerSetting) []string {
	var out []string
	var ports []int
	for _, e := range settings {
		if e == nil || e.VirtualIPAddress != ip {
			continue
		}
		ports = append(ports, e.Port.Int())
		var servers []string
		for _, rs := range e.Servers {
			if rs == nil {
				continue
			}
			servers = append(servers, rs.IPAddress)
			if !rs.Enabled.Bool() {
				out = append(out, fmt.Sprintf("%s:%d real server %s is not enabled", ip, e.Port.Int(), rs.IPAddress))
			}
			if rs.Port.Int() != e.Port.Int() {
				out = append(out, fmt.Sprintf("%s:%d real server %s has port %d", ip, e.Port.Int(), rs.IPAddress, rs.Port.Int()))
			}
			hc := rs.HealthCheck
			if hc == nil || string(hc.Protocol) != want.protocol || (want.path != "" && hc.Path != want.path) {
				out = append(out, fmt.Sprintf("%s:%d real server %s health check %s, want %s %s", ip, e.Port.Int(), rs.IPAddress, hcText(hc), want.protocol, want.path))
			}
		}
		sort.Strings(servers)
		if !reflect.DeepEqual(servers, want.servers) && !(len(servers) == 0 && len(want.servers) == 0) {
			out = append(out, fmt.Sprintf("%s:%d real servers %v, want %v", ip, e.Port.Int(), servers, want.servers))
		}
		if e.SorryServer != want.sorry {
			out = append(out, fmt.Sprintf("%s:%d sorry server %q, want %q", ip, e.Port.Int(), e.SorryServer, want.sorry))
		}
		if e.DelayLoop.Int() != want.delay {
			out = append(out, fmt.Sprintf("%s:%d delay loop %d, want %d", ip, e.Port.Int(), e.DelayLoop.Int(), want.delay))
		}
	}
	sort.Ints(ports)
	if !reflect.DeepEqual(ports, want.ports) {
		out = append(out, fmt.Sprintf("entries for VIP %s on ports %v, want one per Service port %v", ip, ports, want.ports))
	}
	return out
}

func hcText(hc *naked.LoadBalancerHealthCheck) string {
	if hc == nil {
		return "none"
	}
	return strings.TrimSpace(string(hc.Protocol) + " " + hc.Path)
}

func settingsOf(lb *naked.LoadBalancer) []*naked.LoadBalancerSetting {
	if lb == nil || lb.Settings == nil {
		return nil
	}
	return lb.Settings.LoadBalancer
}

func ownedBy(ours map[types.ID]*naked.LoadBalancer, ids []types.ID, uid string) []types.ID {
	var out []types.ID
	for _, id := range ids {
		if hasTag(ours[id].Tags, tagService+uid) {
			out = append(out, id)
		}
	}
	return out
}

func hasFinalizer(s *v1.Service) bool {
	for _, f := range s.Finalizers {
		if f == lbFinalizer {
			return true
		}
	}
	return false
}

func hasTag(tags types.Tags, t string) bool {
	for _, x := range tags {
		if x == t {
			return true
		}
	}
	return false
}

func sharingKey(tags types.Tags) string {
	for _, t := range tags {
		if k, ok := strings.CutPrefix(t, tagSharing); ok {
			return k
		}
	}
	return ""
}

func short(uid string) string { return uid[max(0, len(uid)-4):] }

func damageNote(kinds []string) string {
	if len(kinds) == 0 {
		return ""
	}
	return fmt.Sprintf(" (its appliance was damaged out of band: %s)", strings.Join(kinds, ", "))
}

func keysOf(ss []*v1.Service) string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = key(s)
	}
	return strings.Join(out, ", ")
}

func gone(services []*v1.Service, uid string) string {
	for _, s := range services {
		if string(s.UID) == uid {
			return fmt.Sprintf(" (Service %s is of type %s)", key(s), s.Spec.Type)
		}
	}
	return " (the Service is gone)"
}

// --- applied settings, when the simulator exposes them

var (
	appliedOnce sync.Mutex
	appliedHow  string
)

func appliedNote() string {
	appliedOnce.Lock()
	defer appliedOnce.Unlock()
	if appliedHow == "" {
		return "applied settings: not exposed by the simulator, saved settings checked"
	}
	return "applied settings checked (" + appliedHow + ")"
}

func noteApplied(how string) {
	appliedOnce.Lock()
	defer appliedOnce.Unlock()
	appliedHow = how
}

// appliedSettings finds the settings each appliance runs, if the simulator
// exposes them apart from the saved ones: a method whose name has "Applied"
// in it (taking an appliance ID, or nothing), or a field of the admin state
// whose JSON name has "applied" in it (keyed or listed by appliance ID). It
// is looked up by reflection and JSON so that the harness builds against
// simulators with and without it.
func appliedSettings(sim *sakurasim.Simulator, st *sakurasim.State) (map[types.ID][]*naked.LoadBalancerSetting, bool) {
	out := map[types.ID][]*naked.LoadBalancerSetting{}
	sv := reflect.ValueOf(sim)
	for i := range sv.NumMethod() {
		m := sv.Type().Method(i)
		if !strings.Contains(m.Name, "Applied") {
			continue
		}
		ft := m.Type // receiver first
		switch {
		case ft.NumIn() == 2 && ft.NumOut() >= 1:
			for _, lb := range st.LoadBalancers {
				var arg reflect.Value
				switch ft.In(1) {
				case reflect.TypeOf(types.ID(0)):
					arg = reflect.ValueOf(lb.ID)
				case reflect.TypeOf(""):
					arg = reflect.ValueOf(lb.ID.String())
				default:
					continue
				}
				res := sv.Method(i).Call([]reflect.Value{arg})
				if last := res[len(res)-1]; len(res) > 1 {
					// (…, ok bool) or (…, err error): skip appliances it does not know.
					if last.Kind() == reflect.Bool && !last.Bool() {
						continue
					}
					if last.Type() == reflect.TypeOf((*error)(nil)).Elem() && !last.IsNil() {
						continue
					}
				}
				data, err := json.Marshal(res[0].Interface())
				if err != nil {
					continue
				}
				if s, ok := decodeSettings(data); ok {
					out[lb.ID] = s
				}
			}
			if len(out) > 0 {
				noteApplied("Simulator." + m.Name)
				return out, true
			}
		case ft.NumIn() == 1 && ft.NumOut() >= 1:
			data, err := json.Marshal(sv.Method(i).Call(nil)[0].Interface())
			if err == nil && decodeByID(data, out) {
				noteApplied("Simulator." + m.Name)
				return out, true
			}
		}
	}
	data, err := json.Marshal(st)
	if err != nil {
		return nil, false
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(data, &top) != nil {
		return nil, false
	}
	for k, raw := range top {
		if strings.Contains(strings.ToLower(k), "applied") && decodeByID(raw, out) {
			noteApplied("admin state field " + k)
			return out, true
		}
	}
	// Per appliance: an "applied..." key next to the naked load balancer.
	var lbs []map[string]json.RawMessage
	if json.Unmarshal(top["loadBalancers"], &lbs) == nil {
		for _, lb := range lbs {
			var id types.ID
			_ = json.Unmarshal(lb["ID"], &id)
			for k, raw := range lb {
				if strings.Contains(strings.ToLower(k), "applied") {
					if s, ok := decodeSettings(raw); ok && !id.IsEmpty() {
						out[id] = s
					}
				}
			}
		}
		if len(out) > 0 {
			noteApplied("admin state loadBalancers[].applied")
			return out, true
		}
	}
	return nil, false
}

// decodeByID reads {"<id>": settings} or [{"ID": id, ...settings...}].
func decodeByID(data []byte, out map[types.ID][]*naked.LoadBalancerSetting) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(data, &m) == nil {
		for k, raw := range m {
			id := types.StringID(k)
			if id.IsEmpty() {
				continue
			}
			if s, ok := decodeSettings(raw); ok {
				out[id] = s
			}
		}
		return len(out) > 0
	}
	var list []map[string]json.RawMessage
	if json.Unmarshal(data, &list) == nil {
		for _, item := range list {
			var id types.ID
			for _, k := range []string{"ID", "id", "applianceID", "ApplianceID"} {
				if raw, ok := item[k]; ok {
					_ = json.Unmarshal(raw, &id)
				}
			}
			if id.IsEmpty() {
				continue
			}
			whole, _ := json.Marshal(item)
			if s, ok := decodeSettings(whole); ok {
				out[id] = s
			}
		}
		return len(out) > 0
	}
	return false
}

// decodeSettings reads a settings list in any of the shapes iaas-api-go
// uses: a list, {"LoadBalancer": list}, or an object with a Settings or
// Applied field holding either.
func decodeSettings(data []byte) ([]*naked.LoadBalancerSetting, bool) {
	var list []*naked.LoadBalancerSetting
	if json.Unmarshal(data, &list) == nil && (len(list) == 0 || list[0] != nil) && string(data) != "null" {
		if len(list) == 0 || list[0].VirtualIPAddress != "" {
			return list, true
		}
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(data, &obj) != nil {
		return nil, false
	}
	for k, raw := range obj {
		lk := strings.ToLower(k)
		if lk == "loadbalancer" || lk == "settings" || strings.Contains(lk, "applied") {
			if lk != "loadbalancer" {
				if s, ok := decodeSettings(raw); ok {
					return s, true
				}
				continue
			}
			var l []*naked.LoadBalancerSetting
			if json.Unmarshal(raw, &l) == nil {
				return l, true
			}
		}
	}
	return nil, false
}
