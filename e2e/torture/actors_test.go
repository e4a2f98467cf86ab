package torture

import (
	"fmt"
	"math/rand"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/search"
	"github.com/sacloud/iaas-api-go/types"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/e2e/sakurasim"
)

// A seed's script is drawn up front from one random stream: every action
// slot is given to an actor, and the actor draws its parameters from its own
// model of what it did so far (never from the live state), so the same seed
// always yields the same script. A smaller -torture.actions keeps a prefix of
// it; -torture.skip turns slots into no-ops without changing the others.
// Actors run concurrently; the interleaving, and the few choices that need
// the live state (which appliance to damage), vary between runs.

type slot struct {
	idx      int // -1: a fix-up the actor appends after its script
	actor    string
	gap      time.Duration
	desc     string
	disabled string // why it does not run ("" = it runs)
	run      func(w *world) string
}

const (
	svcActors      = 3
	maxLivePerSvc  = 3
	maxTakeovers   = 2
	nodeNamePool   = 10 // endpoints are drawn over node-1..node-10 and zoneBNodes
	initialNodes   = 6  // node-1..node-6 in is1a, besides zoneBNodes
	maxLiveNodes   = 11
	minLiveNodes   = 3
	defaultActions = 20
)

var portPool = []int32{80, 443, 8080, 8443, 9000}

// zoneBNodes are the is1b nodes on the switch bridged to the block
// (testdata/topology.yaml); the node actor plays them like the others.
// node-b3, on an unbridged switch, is no actor's: it is never a real server.
var zoneBNodes = []string{"node-b1", "node-b2"}

// script is the seed's plan: per actor, its slots in order.
type script struct {
	n      int
	actors map[string][]*slot
	order  []string
}

func makeScript(seed int64, o options) *script {
	sr := rand.New(rand.NewSource(seed*7919 + 2))
	n := defaultActions + sr.Intn(41)
	if o.actions > 0 {
		n = o.actions
	}
	sc := &script{n: n, actors: map[string][]*slot{}}
	svcs := make([]*svcActor, svcActors)
	// The ELB choices have their own stream, drawn only when -torture.elb
	// is above 0: with 0 every seed plays the script it played before
	// ELBs were driven (the seeds named in comments still replay).
	var er *rand.Rand
	if o.elb > 0 {
		er = rand.New(rand.NewSource(seed*7919 + 6))
	}
	for i := range svcs {
		svcs[i] = newSvcActor(seed, i)
		svcs[i].elbShare, svcs[i].er = o.elb, er
	}
	nodes := newNodeActor()
	defects := newDefectActor(seed)
	dr := rand.New(rand.NewSource(seed*7919 + 3)) // the defect actor's own stream
	takeovers := 0
	for i := range n {
		var s *slot
		if o.defects && dr.Intn(100) < defectPerCent {
			s = defects.next(dr)
			s.actor = "defect"
			s.gap = time.Duration(dr.Intn(12)) * time.Millisecond
			s.idx = i
			if o.skip[i] {
				s.disabled = "-torture.skip"
			}
			sc.actors[s.actor] = append(sc.actors[s.actor], s)
			continue
		}
		r := sr.Intn(100)
		switch {
		case r < 58:
			a := svcs[sr.Intn(svcActors)]
			s = a.next(sr)
			s.actor = a.name()
			s.gap = time.Duration(sr.Intn(12)) * time.Millisecond
		case r < 72:
			s = nodes.next(sr)
			s.actor = "nodes"
			s.gap = time.Duration(sr.Intn(12)) * time.Millisecond
		case r < 80:
			s = oobAction(sr)
			if er != nil && er.Float64() < o.elb {
				// The ELBs' share of the damage is the Services' share.
				s = oobELBAction(er)
			}
			s.actor = "oob"
			s.gap = time.Duration(sr.Intn(15)) * time.Millisecond
			if !o.oob {
				s.disabled = "-torture.oob=false"
			}
		case r < 93:
			s = faultAction(sr, er, o.elb)
			s.actor = "faults"
			s.gap = time.Duration(5+sr.Intn(35)) * time.Millisecond
			if !o.faults {
				s.disabled = "-torture.faults=false"
			}
		default:
			s = &slot{desc: "take over: stop this controller, start a new one", run: takeover}
			s.actor = "takeover"
			s.gap = time.Duration(20+sr.Intn(100)) * time.Millisecond
			takeovers++
			if !o.takeover {
				s.disabled = "-torture.takeover=false"
			} else if takeovers > maxTakeovers {
				s.disabled = "at most 2 take-overs per seed"
			}
		}
		s.idx = i
		if o.skip[i] {
			s.disabled = "-torture.skip"
		}
		sc.actors[s.actor] = append(sc.actors[s.actor], s)
	}
	if o.adopt {
		// Its own stream and slot numbers after the others': the other
		// actors' scripts are those of a run without it.
		ar := rand.New(rand.NewSource(seed*7919 + 5))
		for k, s := range adoptScript(seed, ar) {
			s.actor, s.idx = "adopt", n+k
			s.gap = time.Duration(10+ar.Intn(60)) * time.Millisecond
			if o.skip[s.idx] {
				s.disabled = "-torture.skip"
			}
			sc.actors[s.actor] = append(sc.actors[s.actor], s)
		}
	}
	for _, a := range svcs {
		if fix := a.fixups(); len(fix) > 0 {
			sc.actors[a.name()] = append(sc.actors[a.name()], fix...)
		}
	}
	for k := range sc.actors {
		sc.order = append(sc.order, k)
	}
	sort.Strings(sc.order)
	return sc
}

// run executes every actor's slots concurrently and waits for all of them.
func (sc *script) run(w *world) int {
	var wg sync.WaitGroup
	var mu sync.Mutex
	ran := 0
	for _, name := range sc.order {
		slots := sc.actors[name]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, s := range slots {
				time.Sleep(s.gap)
				label := fmt.Sprintf("#%02d", s.idx)
				if s.idx < 0 {
					label = "fix"
				}
				if s.disabled != "" {
					w.tr.add("%s %-8s %s (skipped: %s)", label, s.actor, s.desc, s.disabled)
					continue
				}
				out := s.run(w)
				if s.idx >= 0 {
					mu.Lock()
					ran++
					mu.Unlock()
				}
				if out != "" {
					out = " → " + out
				}
				w.tr.add("%s %-8s %s%s", label, s.actor, s.desc, out)
			}
		}()
	}
	wg.Wait()
	return ran
}

// --- Service actors

type svcModel struct {
	ns, name, uid string
	isLB          bool
	ports         []int32
	key           string
	pin           string // spec.loadBalancerIP
	// held are the pins the Service ever had: its VIP may still be any of
	// them (a pin removed, or replaced before the change took effect,
	// leaves the VIP where it was), so no other Service pins them while
	// it lives.
	held     map[string]bool
	local    bool
	proto    string
	interval int // 0: annotation unset
	plan     string
	ha       bool
	invalid  bool
	sorry    string // sorry server annotation (the defect actor only)
	ready    map[string]bool
	// elb: type enhanced (an Enhanced Load Balancer), fixed at creation
	// (the type cannot change in place). Such a Service carries no DSR
	// annotation, pin or sharing key (they are refused on it), and its
	// ports share one targetPort (an ELB server has no port per bind port).
	elb     bool
	elbPlan string // elb-plan annotation, "" = unset (the default, 100)
}

func (m *svcModel) clone() *svcModel {
	c := *m
	c.held = nil // the actor's bookkeeping, not part of the Service
	c.ports = append([]int32(nil), m.ports...)
	c.ready = map[string]bool{}
	for k, v := range m.ready {
		c.ready[k] = v
	}
	return &c
}

// keyOptions: every member of a sharing key asks for the same plan and HA.
func keyOptions(k string) (plan string, ha bool) {
	if k == "k1" {
		return "highspec", true
	}
	return "", false
}

// applyTo makes s what the model says.
func (m *svcModel) applyTo(s *v1.Service) {
	s.Namespace, s.Name, s.UID = m.ns, m.name, k8stypes.UID(m.uid)
	if m.isLB {
		s.Spec.Type = v1.ServiceTypeLoadBalancer
	} else {
		s.Spec.Type = v1.ServiceTypeClusterIP
	}
	s.Spec.Selector = map[string]string{"app": m.name}
	s.Spec.Ports = nil
	for _, p := range m.ports {
		sp := v1.ServicePort{Name: fmt.Sprintf("p%d", p), Protocol: v1.ProtocolTCP, Port: p, TargetPort: intstr.FromInt32(p + 8000)}
		if m.elb {
			sp.TargetPort = intstr.FromInt32(8080)
		}
		if m.isLB {
			sp.NodePort = nodePort(p)
		}
		s.Spec.Ports = append(s.Spec.Ports, sp)
	}
	// The API server refuses loadBalancerIP and externalTrafficPolicy on
	// a ClusterIP Service: the model keeps them for when it turns back.
	s.Spec.LoadBalancerIP, s.Spec.ExternalTrafficPolicy = "", ""
	if m.isLB {
		s.Spec.LoadBalancerIP = m.pin
		s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyCluster
		if m.local {
			s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
		}
	}
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	for _, a := range []string{annSharing, annPlan, annHA, annProtocol, annPath, annInterval, annSorry, annType, annELBPlan} {
		delete(s.Annotations, a)
	}
	if m.elb {
		s.Spec.LoadBalancerIP = ""
		s.Annotations[annType] = typeEnhanced
		switch {
		case m.invalid:
			s.Annotations[annELBPlan] = "fast"
		case m.elbPlan != "":
			s.Annotations[annELBPlan] = m.elbPlan
		}
		return
	}
	if m.key != "" {
		s.Annotations[annSharing] = m.key
	}
	if m.sorry != "" {
		s.Annotations[annSorry] = m.sorry
	}
	if m.plan != "" {
		s.Annotations[annPlan] = m.plan
	}
	if m.ha {
		s.Annotations[annHA] = "true"
	}
	if m.proto != "" {
		s.Annotations[annProtocol] = m.proto
		if m.proto == "http" {
			s.Annotations[annPath] = "/healthz"
		}
	}
	switch {
	case m.invalid:
		s.Annotations[annInterval] = "often"
	case m.interval > 0:
		s.Annotations[annInterval] = strconv.Itoa(m.interval)
	}
}

func (m *svcModel) summary() string {
	var b strings.Builder
	typ := "LB"
	if !m.isLB {
		typ = "ClusterIP"
	}
	if m.elb {
		typ += " ELB"
		if m.isLB {
			typ = "ELB"
		}
	}
	fmt.Fprintf(&b, "%s ports=%v", typ, m.ports)
	if m.elb {
		if m.elbPlan != "" {
			fmt.Fprintf(&b, " elb-plan=%s", m.elbPlan)
		}
		if m.local {
			b.WriteString(" Local")
		}
		if m.invalid {
			b.WriteString(" INVALID-elb-plan")
		}
		return b.String()
	}
	if m.key != "" {
		fmt.Fprintf(&b, " key=%s", m.key)
	}
	if m.pin != "" {
		fmt.Fprintf(&b, " pin=%s", m.pin)
	}
	if m.local {
		fmt.Fprintf(&b, " Local ready=%s", readyList(m.ready))
	}
	if m.proto != "" {
		fmt.Fprintf(&b, " hc=%s", m.proto)
	}
	if m.interval > 0 {
		fmt.Fprintf(&b, " interval=%d", m.interval)
	}
	if m.sorry != "" {
		fmt.Fprintf(&b, " sorry=%s", m.sorry)
	}
	if m.plan != "" {
		fmt.Fprintf(&b, " plan=%s", m.plan)
	}
	if m.ha {
		b.WriteString(" ha")
	}
	if m.invalid {
		b.WriteString(" INVALID-interval")
	}
	return b.String()
}

func readyList(r map[string]bool) string {
	var out []string
	for n, ok := range r {
		if ok {
			out = append(out, strings.TrimPrefix(n, "node-"))
		}
	}
	sort.Strings(out)
	return "[" + strings.Join(out, ",") + "]"
}

type svcActor struct {
	seed   int64
	id     int
	ns     string
	prefix string
	pins   []string
	seq    int
	live   map[string]*svcModel // by name
	held   map[string]string    // pin address -> name of the live Service holding it
	// elbShare of the Services created are of type enhanced, drawn from
	// er (nil when elbShare is 0).
	elbShare float64
	er       *rand.Rand
}

func newSvcActor(seed int64, id int) *svcActor {
	ns, prefix := "default", "web"
	switch id {
	case 1:
		ns = "team" // the same names in another namespace
	case 2:
		prefix = "api"
	}
	return &svcActor{seed: seed, id: id, ns: ns, prefix: prefix, pins: pinAddrs[2*id : 2*id+2],
		live: map[string]*svcModel{}, held: map[string]string{}}
}

func (a *svcActor) name() string { return fmt.Sprintf("svc%d", a.id) }

func (a *svcActor) liveNames() []string {
	out := make([]string, 0, len(a.live))
	for n := range a.live {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (a *svcActor) freePin(r *rand.Rand) string {
	var free []string
	for _, p := range a.pins {
		if a.held[p] == "" {
			free = append(free, p)
		}
	}
	if len(free) == 0 {
		return ""
	}
	return free[r.Intn(len(free))]
}

func (a *svcActor) release(m *svcModel) {
	for p := range m.held {
		if a.held[p] == m.name {
			delete(a.held, p)
		}
	}
	m.held = nil
}

func (a *svcActor) hold(m *svcModel, p string) {
	if m.held == nil {
		m.held = map[string]bool{}
	}
	m.held[p] = true
	a.held[p] = m.name
}

// nodePort is the NodePort the API server would have given port p: one
// of its own per port of the pool (an ELB reaches the Service on them, so
// two ports of a Service never share one, as the API server ensures).
func nodePort(p int32) int32 {
	if p < 2000 {
		return 30000 + p
	}
	return 31000 + p%1000
}

func drawPorts(r *rand.Rand) []int32 {
	n := 1 + r.Intn(2)
	perm := r.Perm(len(portPool))
	out := make([]int32, 0, n)
	for _, i := range perm[:n] {
		out = append(out, portPool[i])
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func drawReady(r *rand.Rand) map[string]bool {
	out := map[string]bool{}
	names := make([]string, 0, nodeNamePool+len(zoneBNodes))
	for i := 1; i <= nodeNamePool; i++ {
		names = append(names, fmt.Sprintf("node-%d", i))
	}
	for _, n := range append(names, zoneBNodes...) {
		switch r.Intn(4) {
		case 0:
			out[n] = true
		case 1:
			out[n] = false
		}
	}
	return out
}

func drawProto(r *rand.Rand) string {
	switch r.Intn(6) {
	case 0:
		return "tcp"
	case 1:
		return "http"
	case 2:
		return "ping"
	}
	return ""
}

// drawELBPlan draws an elb-plan annotation other than cur ("" = unset).
func drawELBPlan(r *rand.Rand, cur string) string {
	for {
		if p := []string{"", "", "100", "500", "1000"}[r.Intn(5)]; p != cur {
			return p
		}
	}
}

func drawInterval(r *rand.Rand) int {
	return []int{0, 0, 10, 15, 30, 60}[r.Intn(6)]
}

type weighted struct {
	name string
	w    int
}

func pick(r *rand.Rand, ops []weighted) string {
	total := 0
	for _, o := range ops {
		total += o.w
	}
	x := r.Intn(total)
	for _, o := range ops {
		if x < o.w {
			return o.name
		}
		x -= o.w
	}
	return ops[len(ops)-1].name
}

func (a *svcActor) next(r *rand.Rand) *slot {
	names := a.liveNames()
	ops := []weighted{}
	if len(names) < maxLivePerSvc {
		ops = append(ops, weighted{"create", 4})
	}
	if len(names) > 0 {
		ops = append(ops, weighted{"delete", 3}, weighted{"ports", 3}, weighted{"healthcheck", 2}, weighted{"pin", 2},
			weighted{"policy", 2}, weighted{"endpoints", 4}, weighted{"type", 2}, weighted{"invalid", 1}, weighted{"plan", 1})
	}
	op := pick(r, ops)
	if op == "create" {
		return a.create(r)
	}
	m := a.live[names[r.Intn(len(names))]]
	if m.elb && (op == "healthcheck" || op == "pin" || op == "plan") {
		// What an ELB has of these: its plan (a ChangePlan, under a new ID).
		op = "elb-plan"
		m.elbPlan = drawELBPlan(a.er, m.elbPlan)
	}
	switch op {
	case "delete":
		delete(a.live, m.name)
		a.release(m)
		return &slot{desc: fmt.Sprintf("delete %s/%s", m.ns, m.name), run: func(w *world) string {
			w.deleteSlice(m.ns, m.name)
			return errText(w.deleteService(m.ns, m.name, m.uid))
		}}
	case "ports":
		m.ports = drawPorts(r)
	case "healthcheck":
		m.proto, m.interval = drawProto(r), drawInterval(r)
	case "pin":
		if m.pin != "" && r.Intn(2) == 0 {
			m.pin = "" // the VIP stays: the address remains held
		} else if p := a.freePin(r); p != "" {
			m.pin = p
			a.hold(m, p)
		}
	case "policy":
		m.local = !m.local
	case "endpoints":
		m.ready = drawReady(r)
		snap := m.clone()
		return &slot{desc: fmt.Sprintf("endpoints of %s/%s ready on %s", m.ns, m.name, readyList(snap.ready)), run: func(w *world) string {
			return errText(w.applySlice(snap.ns, snap.name, snap.ready))
		}}
	case "type":
		m.isLB = !m.isLB
	case "invalid":
		m.invalid = true
	case "plan":
		if m.key == "" {
			if m.plan == "" {
				m.plan = "highspec"
			} else {
				m.plan = ""
			}
		}
	}
	if op != "invalid" {
		m.invalid = false // every other change also fixes a bad annotation
	}
	snap := m.clone()
	if op == "elb-plan" {
		return &slot{desc: fmt.Sprintf("update %s/%s (%s, once it shows an address): %s", m.ns, m.name, op, snap.summary()), run: func(w *world) string {
			// A plan change is a ChangePlan only on an ELB that exists;
			// one made before the create only changes what is created.
			// The wait is bounded: the script goes on either way.
			shown := w.waitAddress(snap.ns, snap.name, snap.uid, time.Second)
			return joinNotes(errText(w.updateService(snap.ns, snap.name, snap.uid, snap.applyTo)), shown)
		}}
	}
	return &slot{desc: fmt.Sprintf("update %s/%s (%s): %s", m.ns, m.name, op, snap.summary()), run: func(w *world) string {
		return errText(w.updateService(snap.ns, snap.name, snap.uid, snap.applyTo))
	}}
}

// waitAddress waits up to d for the Service with that UID to show an
// address, and says when it did not.
func (w *world) waitAddress(ns, name, uid string, d time.Duration) string {
	if poll(d, func() bool {
		s, err := w.getService(ns, name)
		if err != nil || string(s.UID) != uid {
			return true // gone or replaced: nothing to wait for
		}
		ip, _ := statusIP(s)
		return ip != "" || !wantsLoadBalancer(s)
	}) {
		return ""
	}
	return fmt.Sprintf("no address after %s", d)
}

func (a *svcActor) create(r *rand.Rand) *slot {
	var free []string
	for j := range maxLivePerSvc {
		n := fmt.Sprintf("%s-%d", a.prefix, j)
		if a.live[n] == nil {
			free = append(free, n)
		}
	}
	name := free[r.Intn(len(free))]
	a.seq++
	m := &svcModel{ns: a.ns, name: name, uid: serviceUID(a.seed, a.id, a.seq), isLB: true, ports: drawPorts(r),
		proto: drawProto(r), interval: drawInterval(r), local: r.Intn(3) == 0, ready: drawReady(r)}
	if r.Intn(100) < 55 {
		k := fmt.Sprintf("k%d", r.Intn(2))
		taken := false
		for _, o := range a.live {
			taken = taken || o.key == k
		}
		if !taken {
			m.key = k
			m.plan, m.ha = keyOptions(k)
		}
	}
	if m.key == "" {
		if r.Intn(5) == 0 {
			m.plan = "highspec"
		}
		m.ha = r.Intn(10) == 0
	}
	if r.Intn(4) == 0 {
		if p := a.freePin(r); p != "" {
			m.pin = p
			a.hold(m, p)
		}
	}
	if a.elbShare > 0 && a.er.Float64() < a.elbShare {
		// Drawn after the DSR choices, which are dropped, so that the
		// main stream is the same as without ELBs.
		a.release(m)
		m.elb, m.key, m.plan, m.ha, m.pin = true, "", "", false, ""
		m.elbPlan = drawELBPlan(a.er, "-")
	}
	a.live[name] = m
	snap := m.clone()
	return &slot{desc: fmt.Sprintf("create %s/%s uid …%s: %s", m.ns, m.name, m.uid[len(m.uid)-4:], snap.summary()), run: func(w *world) string {
		// The name is free once the previous Service of that name is gone.
		deadline := time.Now().Add(time.Second)
		for {
			if _, err := w.getService(snap.ns, snap.name); err != nil {
				break
			}
			if time.Now().After(deadline) {
				return "not created: the previous Service of that name is still being deleted"
			}
			time.Sleep(2 * time.Millisecond)
		}
		s := &v1.Service{ObjectMeta: metav1.ObjectMeta{}}
		snap.applyTo(s)
		if err := w.createService(s); err != nil {
			return errText(err)
		}
		return errText(w.applySlice(snap.ns, snap.name, snap.ready))
	}}
}

// fixups repair what the script left invalid, so the final state is valid.
func (a *svcActor) fixups() []*slot {
	var out []*slot
	for _, n := range a.liveNames() {
		m := a.live[n]
		if !m.invalid {
			continue
		}
		m.invalid = false
		snap := m.clone()
		out = append(out, &slot{idx: -1, actor: a.name(), desc: fmt.Sprintf("update %s/%s (fix annotation): %s", m.ns, m.name, snap.summary()),
			run: func(w *world) string { return errText(w.updateService(snap.ns, snap.name, snap.uid, snap.applyTo)) }})
	}
	return out
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return "error: " + err.Error()
}

// --- the node actor: servers and Nodes come and go

type nodeActor struct {
	live     []string
	slot     map[string]int // added node -> index in nodeSlots
	free     []int
	excluded map[string]bool
	next_    int
}

func newNodeActor() *nodeActor {
	a := &nodeActor{slot: map[string]int{}, excluded: map[string]bool{}, next_: initialNodes + 1}
	for i := 1; i <= initialNodes; i++ {
		a.live = append(a.live, fmt.Sprintf("node-%d", i))
	}
	a.live = append(a.live, zoneBNodes...)
	for i := range nodeSlots {
		a.free = append(a.free, i)
	}
	return a
}

func (a *nodeActor) remove(name string) {
	for i, n := range a.live {
		if n == name {
			a.live = append(a.live[:i], a.live[i+1:]...)
			break
		}
	}
	if s, ok := a.slot[name]; ok {
		a.free = append(a.free, s)
		sort.Ints(a.free)
		delete(a.slot, name)
	}
	delete(a.excluded, name)
}

// eligible counts the live nodes that are not excluded. At least two stay:
// with none, nothing tells the controller which router+switch to use
// (NoAddressBlock, as documented), which is not what this test is about.
func (a *nodeActor) eligible() int {
	n := 0
	for _, name := range a.live {
		if !a.excluded[name] {
			n++
		}
	}
	return n
}

func (a *nodeActor) next(r *rand.Rand) *slot {
	ops := []weighted{{"replace", 1}, {"not-ready", 1}}
	if a.eligible() > 2 || len(a.excluded) > 0 {
		ops = append(ops, weighted{"exclude", 2})
	}
	if len(a.live) < maxLiveNodes && len(a.free) > 0 {
		ops = append(ops, weighted{"add", 4})
	}
	if len(a.live) > minLiveNodes && a.eligible() > 2 {
		ops = append(ops, weighted{"remove-server", 2}, weighted{"remove-node", 2})
	}
	op := pick(r, ops)
	if op == "add" {
		si := a.free[r.Intn(len(a.free))]
		for i, f := range a.free {
			if f == si {
				a.free = append(a.free[:i], a.free[i+1:]...)
				break
			}
		}
		name := fmt.Sprintf("node-%d", a.next_)
		a.next_++
		a.live = append(a.live, name)
		a.slot[name] = si
		ip := nodeSlots[si]
		priv := fmt.Sprintf("192.168.0.%d", 100+si)
		// Its global address on the shared segment (first NIC, as on
		// SAKURA), where ELBs reach it: 198.51.100.x for 203.0.113.x.
		global := "198.51.100." + ip[strings.LastIndexByte(ip, '.')+1:]
		return &slot{desc: fmt.Sprintf("add server and Node %s (%s, global %s)", name, ip, global), run: func(w *world) string {
			if _, err := w.sim.AddServer(sakurasim.ServerSpec{Name: name, NICs: []sakurasim.NICSpec{{Shared: true, IPAddress: global},
				{Switch: globalSwitch, UserIPAddress: ip}, {Switch: privateSwitch, UserIPAddress: priv}}}); err != nil {
				return "error: " + err.Error()
			}
			// kubelet registers the Node later; the cloud-node controller initialises it.
			time.Sleep(time.Millisecond)
			return errText(w.createNode(newNode(name, ip)))
		}}
	}
	name := a.live[r.Intn(len(a.live))]
	if op == "exclude" && !a.excluded[name] && a.eligible() <= 2 {
		for _, n := range a.live { // only an excluded node may change
			if a.excluded[n] {
				name = n
				break
			}
		}
	}
	switch op {
	case "exclude":
		ex := !a.excluded[name]
		a.excluded[name] = ex
		return &slot{desc: fmt.Sprintf("label %s excluded=%v", name, ex), run: func(w *world) string {
			return errText(w.updateNode(name, "", func(n *v1.Node) {
				if ex {
					n.Labels[excludeLabel] = "true"
				} else {
					delete(n.Labels, excludeLabel)
				}
			}))
		}}
	case "not-ready":
		return &slot{desc: fmt.Sprintf("kubelet of %s stops reporting: its Node turns NotReady, its server stays (the Node must stay)", name), run: func(w *world) string {
			return errText(w.updateNode(name, "", func(n *v1.Node) {
				for i := range n.Status.Conditions {
					if n.Status.Conditions[i].Type == v1.NodeReady {
						n.Status.Conditions[i].Status = v1.ConditionUnknown
					}
				}
			}))
		}}
	case "replace":
		return &slot{desc: fmt.Sprintf("plan change of server %s (new ID, @previous-id)", name), run: func(w *world) string {
			if _, err := w.sim.ReplaceServer(name, 4, 8); err != nil {
				return errText(err)
			}
			return w.afterPlanChange(name)
		}}
	case "remove-server":
		a.remove(name)
		return &slot{desc: fmt.Sprintf("delete server %s; its Node turns NotReady (the lifecycle controller deletes it)", name), run: func(w *world) string {
			if err := w.sim.DeleteServer(name); err != nil {
				return "error: " + err.Error()
			}
			return errText(w.updateNode(name, "", func(n *v1.Node) {
				for i := range n.Status.Conditions {
					if n.Status.Conditions[i].Type == v1.NodeReady {
						n.Status.Conditions[i].Status = v1.ConditionUnknown
					}
				}
			}))
		}}
	default: // remove-node
		a.remove(name)
		return &slot{desc: fmt.Sprintf("kubectl delete node %s, then delete its server", name), run: func(w *world) string {
			err := w.deleteNode(name)
			if e := w.sim.DeleteServer(name); e != nil && err == nil {
				err = e
			}
			return errText(err)
		}}
	}
}

// --- out-of-band damage, through the API with a separate client

func oobAction(r *rand.Rand) *slot {
	pickN := r.Uint32()
	switch r.Intn(7) {
	case 0, 1:
		return &slot{desc: "out of band: shut down one of the cluster's appliances", run: func(w *world) string {
			return w.oobDamage(pickN, "shutdown")
		}}
	case 2, 3:
		return &slot{desc: "out of band: delete one of the cluster's appliances", run: func(w *world) string {
			return w.oobDamage(pickN, "delete")
		}}
	default:
		return &slot{desc: "out of band: edit the settings of one of the cluster's appliances", run: func(w *world) string {
			return w.oobDamage(pickN, "edit")
		}}
	}
}

// oobELBAction damages one of the cluster's ELBs through the API, as
// someone in the control panel would: deletes it (the repair pass must
// make a new one) or takes a server out of its settings.
func oobELBAction(r *rand.Rand) *slot {
	pickN := r.Uint32()
	if r.Intn(3) == 2 {
		return &slot{desc: "out of band: take a server out of one of the cluster's ELBs", run: func(w *world) string {
			return w.oobELBDamage(pickN, "elb-edit")
		}}
	}
	return &slot{desc: "out of band: delete one of the cluster's ELBs", run: func(w *world) string {
		return w.oobELBDamage(pickN, "elb-delete")
	}}
}

func (w *world) oobELBDamage(pickN uint32, kind string) string {
	// ELBs come a while after their Services (the controller works on
	// the appliances too): the damage waits for one, up to a bound.
	var cands []*iaas.ProxyLB
	var err error
	poll(time.Second, func() bool {
		var found *iaas.ProxyLBFindResult
		err = oobTry(func() error {
			var err error
			found, err = w.oobELB.Find(bg, &iaas.FindCondition{Count: 100,
				Filter: search.Filter{search.Key("Tags.Name"): search.TagsAndEqual(tagCluster + clusterID)}})
			return err
		})
		if err != nil {
			return true
		}
		cands = nil
		for _, p := range found.ProxyLBs {
			if _, foreign := w.foreignELBs[p.ID]; foreign || len(memberUIDs(p.Tags)) == 0 {
				continue
			}
			if kind == "elb-edit" && len(p.Servers) == 0 {
				continue
			}
			cands = append(cands, p)
		}
		return len(cands) > 0
	})
	if err != nil {
		return "error: " + err.Error()
	}
	if len(cands) == 0 {
		return "no ELB to damage"
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].ID < cands[j].ID })
	p := cands[int(pickN%uint32(len(cands)))]
	uids := memberUIDs(p.Tags)
	what := fmt.Sprintf("%s %s (Service …%s)", kind, p.ID, shortUIDs(uids))
	switch kind {
	case "elb-delete":
		err = oobTry(func() error { return w.oobELB.Delete(bg, p.ID) })
	case "elb-edit":
		err = oobTry(func() error {
			cur, err := w.oobELB.Read(bg, p.ID)
			if err != nil {
				return err
			}
			if len(cur.Servers) == 0 {
				return nil
			}
			i := int(pickN/7) % len(cur.Servers)
			what += fmt.Sprintf(": server %s:%d removed", cur.Servers[i].IPAddress, cur.Servers[i].Port)
			servers := append(append([]*iaas.ProxyLBServer{}, cur.Servers[:i]...), cur.Servers[i+1:]...)
			_, err = w.oobELB.UpdateSettings(bg, p.ID, &iaas.ProxyLBUpdateSettingsRequest{
				HealthCheck: cur.HealthCheck, SorryServer: cur.SorryServer, BindPorts: cur.BindPorts, Servers: servers,
				Rules: cur.Rules, LetsEncrypt: cur.LetsEncrypt, StickySession: cur.StickySession, Timeout: cur.Timeout,
				Gzip: cur.Gzip, BackendHttpKeepAlive: cur.BackendHttpKeepAlive, ProxyProtocol: cur.ProxyProtocol,
				Syslog: cur.Syslog, MonitoringSuiteLog: cur.MonitoringSuiteLog, OriginGuard: cur.OriginGuard,
				StrictRule: cur.StrictRule, SettingsHash: cur.SettingsHash})
			return err
		})
	}
	if err != nil {
		return what + ": error: " + err.Error()
	}
	w.damage(uids, kind)
	return what
}

// oobTry retries an out-of-band call through injected faults.
func oobTry(f func() error) error {
	var err error
	for range 8 {
		if err = f(); err == nil {
			return nil
		}
		time.Sleep(2 * time.Millisecond)
	}
	return err
}

func (w *world) oobDamage(pickN uint32, kind string) string {
	var found *iaas.LoadBalancerFindResult
	err := oobTry(func() error {
		var err error
		found, err = w.oob.Find(bg, zoneName, &iaas.FindCondition{Count: 100,
			Filter: search.Filter{search.Key("Tags.Name"): search.TagsAndEqual(tagCluster + clusterID)}})
		return err
	})
	if err != nil {
		return "error: " + err.Error()
	}
	var cands []*iaas.LoadBalancer
	for _, lb := range found.LoadBalancers {
		if _, foreign := w.foreign[lb.ID]; foreign || len(memberUIDs(lb.Tags)) == 0 {
			continue
		}
		if kind != "delete" && !lb.InstanceStatus.IsUp() {
			continue
		}
		cands = append(cands, lb)
	}
	if len(cands) == 0 {
		return "no appliance to damage"
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].ID < cands[j].ID })
	lb := cands[int(pickN%uint32(len(cands)))]
	uids := memberUIDs(lb.Tags)
	what := fmt.Sprintf("%s %s (members %s)", kind, lb.ID, shortUIDs(uids))
	switch kind {
	case "shutdown":
		err = oobTry(func() error { return w.oob.Shutdown(bg, zoneName, lb.ID, &iaas.ShutdownOption{Force: true}) })
	case "delete":
		err = oobTry(func() error { return w.oob.Shutdown(bg, zoneName, lb.ID, &iaas.ShutdownOption{Force: true}) })
		if err == nil {
			deadline := time.Now().Add(500 * time.Millisecond)
			for time.Now().Before(deadline) {
				cur, rerr := w.oob.Read(bg, zoneName, lb.ID)
				if rerr == nil && cur.InstanceStatus.IsDown() {
					break
				}
				time.Sleep(2 * time.Millisecond)
			}
			err = oobTry(func() error { return w.oob.Delete(bg, zoneName, lb.ID) })
		}
	case "edit":
		err = oobTry(func() error {
			cur, err := w.oob.Read(bg, zoneName, lb.ID)
			if err != nil {
				return err
			}
			vips := cur.VirtualIPAddresses
			if len(vips) == 0 {
				return nil
			}
			e := vips[int(pickN/7)%len(vips)]
			switch {
			case len(e.Servers) > 0 && pickN%3 != 0:
				what += fmt.Sprintf(": real server %s of %s:%d removed", e.Servers[0].IPAddress, e.VirtualIPAddress, e.Port.Int())
				e.Servers = e.Servers[1:]
			case pickN%3 == 0 && len(vips) > 1:
				what += fmt.Sprintf(": entry %s:%d removed", e.VirtualIPAddress, e.Port.Int())
				vips = append(vips[:int(pickN/7)%len(vips)], vips[int(pickN/7)%len(vips)+1:]...)
			default:
				what += fmt.Sprintf(": entry %s:%d delay loop 59", e.VirtualIPAddress, e.Port.Int())
				e.DelayLoop = 59
			}
			if _, err := w.oob.UpdateSettings(bg, zoneName, lb.ID, &iaas.LoadBalancerUpdateSettingsRequest{
				VirtualIPAddresses: vips, SettingsHash: cur.SettingsHash}); err != nil {
				return err
			}
			return w.oob.Config(bg, zoneName, lb.ID)
		})
	}
	if err != nil {
		return what + ": error: " + err.Error()
	}
	w.damage(uids, kind)
	return what
}

func memberUIDs(tags types.Tags) []string {
	var out []string
	for _, t := range tags {
		if u, ok := strings.CutPrefix(t, tagService); ok && u != "" {
			out = append(out, u)
		}
	}
	sort.Strings(out)
	return out
}

func shortUIDs(uids []string) string {
	out := make([]string, len(uids))
	for i, u := range uids {
		out[i] = "…" + u[max(0, len(u)-4):]
	}
	return strings.Join(out, ",")
}

// --- simulator faults

var faultOps = []string{"LoadBalancer.Find", "LoadBalancer.Create", "LoadBalancer.Read", "LoadBalancer.UpdateSettings",
	"LoadBalancer.Update", "LoadBalancer.Config", "LoadBalancer.Shutdown", "LoadBalancer.Delete", "LoadBalancer.Status",
	"Server.Find", "Server.Read", "Switch.Read", "Switch.Find", "Internet.Find", "Internet.Read", "VPCRouter.Find",
	"LoadBalancer.*", "*"}

var writeOps = []string{"LoadBalancer.Create", "LoadBalancer.UpdateSettings", "LoadBalancer.Update", "LoadBalancer.Config",
	"LoadBalancer.Shutdown", "LoadBalancer.Delete"}

// elbFaultOps are the ELB operations the controller calls.
var elbFaultOps = []string{"ProxyLB.Find", "ProxyLB.Create", "ProxyLB.Read", "ProxyLB.UpdateSettings", "ProxyLB.Delete",
	"ProxyLB.ChangePlan", "ProxyLB.*"}

// faultAction draws a set of fault rules from r. With er (ELBs driven), a
// share elb of the rules is turned onto ELB operations, drawn from er so
// that r's draws stay those of a run without ELBs.
func faultAction(r, er *rand.Rand, elb float64) *slot {
	if r.Intn(5) == 0 {
		return &slot{desc: "faults: none", run: func(w *world) string {
			fired := w.firedFaults()
			return joinNotes(fired, errText(w.sim.SetFaults(nil)))
		}}
	}
	var rules []sakurasim.FaultRule
	for range 1 + r.Intn(3) {
		var f sakurasim.FaultRule
		switch r.Intn(11) {
		case 0, 1, 2, 3:
			f = sakurasim.FaultRule{Op: faultOps[r.Intn(len(faultOps))], Status: []int{500, 409, 429, 503, 423, 500}[r.Intn(6)],
				Rate: 0.1 + 0.1*float64(r.Intn(4))}
			if r.Intn(2) == 0 {
				f.Times = 1 + r.Intn(3)
			}
		case 4:
			f = sakurasim.FaultRule{Op: faultOps[r.Intn(len(faultOps))], Drop: true, Rate: 0.2, Times: 1 + r.Intn(2), After: r.Intn(2) == 0}
		case 5:
			f = sakurasim.FaultRule{Op: writeOps[r.Intn(len(writeOps))], Status: 500, After: true, Times: 1}
		case 6:
			// The settings are saved but not applied: Config fails once.
			f = sakurasim.FaultRule{Op: "LoadBalancer.Config", Status: 500, Times: 1}
		case 8:
			// One zone's API is down: is1b's servers cannot be listed.
			// Nodes there must stay, and the block's real servers with them.
			f = sakurasim.FaultRule{Op: "*", Zone: zoneB, Status: []int{503, 500}[r.Intn(2)]}
		case 7:
			if r.Intn(3) == 0 {
				// Beyond the client's 1 s timeout.
				f = sakurasim.FaultRule{Op: append(writeOps, "LoadBalancer.Find")[r.Intn(len(writeOps)+1)], Latency: "1100ms", Times: 1, After: r.Intn(2) == 0}
			} else {
				f = sakurasim.FaultRule{Op: "*", Latency: fmt.Sprintf("%dms", 1+r.Intn(4)), Rate: 0.5}
			}
		default:
			f = sakurasim.FaultRule{Op: "*", Latency: fmt.Sprintf("%dms", 1+r.Intn(3)), Rate: 0.3}
		}
		if er != nil && f.Zone == "" && er.Float64() < elb {
			// The same fault on an ELB operation (global: no zone).
			f.Op = elbFaultOps[er.Intn(len(elbFaultOps))]
		}
		rules = append(rules, f)
	}
	// The first matching rule is rolled: a zone's outage before specific
	// operations before resources before everything.
	rank := func(f sakurasim.FaultRule) int {
		switch {
		case f.Zone != "":
			return -1
		case f.Op == "*":
			return 2
		case strings.HasSuffix(f.Op, ".*"):
			return 1
		}
		return 0
	}
	sort.SliceStable(rules, func(i, j int) bool { return rank(rules[i]) < rank(rules[j]) })
	desc := make([]string, len(rules))
	for i, f := range rules {
		desc[i] = faultText(f)
	}
	return &slot{desc: "faults: " + strings.Join(desc, "; "), run: func(w *world) string {
		fired := w.firedFaults()
		cp := append([]sakurasim.FaultRule(nil), rules...)
		return joinNotes(fired, errText(w.sim.SetFaults(cp)))
	}}
}

// firedFaults says how often the rules being replaced fired.
func (w *world) firedFaults() string {
	var parts []string
	for _, f := range w.sim.Snapshot().Faults {
		if f.Fired > 0 {
			parts = append(parts, fmt.Sprintf("%s fired %d×", faultText(f), f.Fired))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "before: " + strings.Join(parts, ", ")
}

func joinNotes(notes ...string) string {
	var out []string
	for _, n := range notes {
		if n != "" {
			out = append(out, n)
		}
	}
	return strings.Join(out, "; ")
}

func faultText(f sakurasim.FaultRule) string {
	var b strings.Builder
	b.WriteString(f.Op)
	switch {
	case f.Drop:
		b.WriteString(" drop")
	case f.Status != 0:
		fmt.Fprintf(&b, " %d", f.Status)
	}
	if f.Latency != "" {
		b.WriteString(" +" + f.Latency)
	}
	if f.After {
		b.WriteString(" after")
	}
	if f.Zone != "" {
		b.WriteString(" in " + f.Zone)
	}
	if f.Rate > 0 {
		fmt.Fprintf(&b, " rate %.1f", f.Rate)
	}
	if f.Times > 0 {
		fmt.Fprintf(&b, " ×%d", f.Times)
	}
	return b.String()
}

// takeover stops the running controller mid-flight and starts the next one
// at once. It does not wait out the simulator's read-not-found window: a
// leader that releases its lease on the way out is followed within
// moments, SAKURA may hide a new appliance for seconds, and a crash may come
// right after a create, so the new leader must cope with an appliance it
// cannot list yet (issue #18, defect 5).
func takeover(w *world) string {
	return w.restart()
}

// afterPlanChange plays what follows a plan change in a cluster: the server
// reboots, its Node turns NotReady, and the lifecycle controller keeps the
// Node while its providerID still leads to a server (by ID or one
// @previous-id hop) and deletes it otherwise, after which kubelet registers
// it again without a providerID. The harness applies that outcome at once.
func (w *world) afterPlanChange(name string) string {
	n, err := w.kube.CoreV1().Nodes().Get(bg, name, metav1.GetOptions{})
	if err != nil {
		return "" // no Node (yet): kubelet registers it later
	}
	if n.Spec.ProviderID == "" || serverMatcher(w.sim.Snapshot().Servers)(n) != nil {
		return ""
	}
	if err := w.deleteNode(name); err != nil {
		return errText(err)
	}
	ip := ""
	for _, a := range n.Status.Addresses {
		if a.Type == v1.NodeInternalIP {
			ip = a.Address
		}
	}
	fresh := newNode(name, ip)
	for k, v := range n.Labels {
		fresh.Labels[k] = v
	}
	time.Sleep(time.Millisecond)
	if err := w.createNode(fresh); err != nil {
		return errText(err)
	}
	return "its providerID leads to no server any more: the Node was deleted and registered again"
}
