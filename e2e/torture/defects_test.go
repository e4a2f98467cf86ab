package torture

import (
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/naked"
	"github.com/sacloud/iaas-api-go/types"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/e2e/sakurasim"
)

// The defect actor plays what issue #18's defects need. Creates and
// deletes are of Services of its own (namespace edge, names e-<n>, never
// reused); the changes pick, at run time, any Service that shows an
// address (the Service actors set theirs again with their next update,
// which is one more change):
//
//   - join-burst: two Services of one sharing key created at once, so both
//     join (or one creates and one joins) on the same zone listing (defect 1);
//   - pin-member: a member pins the VIP another member of its key shows
//     (defect 2); the checks accept a refusal, never the address twice;
//   - wipe: every entry of a sole member removed out of band, so that the
//     controller joins it again (defect 3);
//   - join-race-delete: the last members of a key deleted while a new member
//     of that key is created, with shutdowns slowed to 150 ms (defect 4);
//   - restart-unlisted: a create, and a restart of the controller while the
//     simulator still hides the new appliance (defect 5);
//   - down-delete-restart: a Local Service deleted while its appliance is
//     down and its Delete is refused for a while, a restart right after and
//     an endpoint change, so the new controller's endpoint follower and
//     node syncs meet a Service with a deletion timestamp (defect 6; a boot
//     of that appliance is reported);
//   - restart-config: a change of one kind of setting (health check, delay
//     loop, sorry server, ports, real servers) whose Config hangs, and a
//     restart while it does, so the change is saved but not applied (defect
//     9; the health poll is on in a third of the seeds);
//   - replay-409: an UpdateSettings answered 503 after it was done, which
//     the client replays into a 409 on the stale settings hash (defect 8;
//     only where retryMax is 1).
//
// Its slots are drawn from a stream of their own, so -torture.defects=false
// gives every seed the script it had before the actor existed.

const (
	defectNS       = "edge"
	defectActorID  = 5
	maxDefectLive  = 3
	maxRestarts    = 2 // by the defect actor, on top of the take-overs
	defectPerCent  = 12
	sorryServer    = "198.51.100.9"
	hangingConfig  = "1500ms"               // beyond the client's 1 s timeout
	slowShutdown   = 300 * time.Millisecond // boot delay during join-race-delete (shutdown takes half)
	unlistedWindow = 20 * time.Millisecond
)

type defectActor struct {
	seed     int64
	seq      int
	live     []*svcModel // oldest first
	restarts int
}

func newDefectActor(seed int64) *defectActor { return &defectActor{seed: seed} }

func (a *defectActor) newModel(r *rand.Rand, key string) *svcModel {
	a.seq++
	m := &svcModel{ns: defectNS, name: fmt.Sprintf("e-%d", a.seq), uid: serviceUID(a.seed, defectActorID, a.seq), isLB: true,
		ports: drawPorts(r), key: key, proto: drawProto(r), interval: drawInterval(r)}
	m.plan, m.ha = keyOptions(key)
	a.live = append(a.live, m)
	return m
}

func (a *defectActor) remove(m *svcModel) {
	for i, x := range a.live {
		if x == m {
			a.live = append(a.live[:i], a.live[i+1:]...)
			return
		}
	}
}

// makeRoom deletes the oldest Services until n more fit; it returns them.
func (a *defectActor) makeRoom(n int, keep func(*svcModel) bool) []*svcModel {
	var out []*svcModel
	for len(a.live)+n > maxDefectLive {
		var victim *svcModel
		for _, m := range a.live {
			if keep == nil || !keep(m) {
				victim = m
				break
			}
		}
		if victim == nil {
			break
		}
		a.remove(victim)
		out = append(out, victim)
	}
	return out
}

func (a *defectActor) byKey(k string) []*svcModel {
	var out []*svcModel
	for _, m := range a.live {
		if m.key == k {
			out = append(out, m)
		}
	}
	return out
}

func (a *defectActor) next(r *rand.Rand) *slot {
	ops := []weighted{{"join-burst", 4}, {"wipe", 2}, {"replay-409", 3}, {"pin-member", 3}}
	if len(a.byKey("kb")) > 0 {
		ops = append(ops, weighted{"join-race-delete", 3})
	}
	if a.restarts < maxRestarts {
		ops = append(ops, weighted{"restart-unlisted", 3}, weighted{"restart-config", 4})
		if len(a.live) > 0 {
			ops = append(ops, weighted{"down-delete-restart", 2})
		}
	}
	if len(a.live) > 0 {
		ops = append(ops, weighted{"delete", 1})
	}
	switch op := pick(r, ops); op {
	case "join-burst":
		key := []string{"k0", "kb"}[r.Intn(2)]
		gone := a.makeRoom(2, nil)
		ms := []*svcModel{a.newModel(r, key), a.newModel(r, key)}
		return a.slot(fmt.Sprintf("join-burst: %s; create %s and %s of key %s at once", deletions(gone), ms[0].name, ms[1].name, key),
			func(w *world) string {
				out := deleteAll(w, gone)
				return joinNotes(out, together(w, creates(w, ms)...))
			})
	case "pin-member":
		n := r.Uint32()
		return a.slot("pin-member: a member of a sharing key pins the VIP another member shows", func(w *world) string {
			return w.pinMemberVIP(n)
		})
	case "wipe":
		return a.slot("wipe: remove every entry of a sole member out of band", func(w *world) string { return w.wipeSoleMember() })
	case "join-race-delete":
		last := a.byKey("kb")
		for _, m := range last {
			a.remove(m)
		}
		gone := a.makeRoom(1, nil)
		m := a.newModel(r, "kb")
		gap := time.Duration(r.Intn(30)) * time.Millisecond
		return a.slot(fmt.Sprintf("join-race-delete: delete the last members %s of key kb while %s joins it (%s later; shutdowns take %s)%s",
			names(last), m.name, gap, slowShutdown/2, strings.TrimPrefix(" "+deletions(gone), " no deletion")), func(w *world) string {
			out := deleteAll(w, gone)
			// A shutdown that takes a while, as SAKURA's does, leaves
			// the appliance up while the last member's delete waits.
			w.sim.SetBootDelay(slowShutdown)
			defer func() {
				time.Sleep(4 * slowShutdown)
				w.sim.SetBootDelay(w.knobs.bootDelay)
			}()
			return joinNotes(out, together(w, func() string { return deleteAll(w, last) },
				func() string { time.Sleep(gap); return creates(w, []*svcModel{m})[0]() }))
		})
	case "restart-unlisted":
		a.restarts++
		gone := a.makeRoom(1, nil)
		m := a.newModel(r, "")
		return a.slot(fmt.Sprintf("restart-unlisted: %screate %s, restart the controller while its appliance is unlisted", deletionsPrefix(gone), m.name),
			func(w *world) string {
				out := deleteAll(w, gone)
				w.sim.SetReadNotFoundWindow(unlistedWindow)
				defer func() {
					time.Sleep(unlistedWindow)
					w.sim.SetReadNotFoundWindow(w.knobs.notFound)
				}()
				if e := creates(w, []*svcModel{m})[0](); e != "" {
					return joinNotes(out, e)
				}
				id, ok := w.waitAppliance(m.uid, waitFor)
				if !ok {
					return joinNotes(out, "no appliance was created within 3s: no restart")
				}
				return joinNotes(out, fmt.Sprintf("appliance %s created", id), w.restart())
			})
	case "down-delete-restart":
		a.restarts++
		m := a.live[r.Intn(len(a.live))]
		a.remove(m)
		ready, later := drawReady(r), drawReady(r)
		return a.slot(fmt.Sprintf("down-delete-restart: make %s Local, shut its appliance down out of band, delete it (its appliance's Delete refused 409 ×3), restart the controller, change its endpoints",
			m.name), func(w *world) string {
			out := joinNotes(errText(w.updateService(m.ns, m.name, m.uid, func(s *v1.Service) {
				s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
			})), errText(w.applySlice(m.ns, m.name, ready)))
			id, what := w.oobShutdownOf(m.uid)
			out = joinNotes(out, what)
			if id != 0 {
				if err := w.sim.AddFaults(sakurasim.FaultRule{Op: "LoadBalancer.Delete", Status: 409, Times: 3}); err != nil {
					out = joinNotes(out, errText(err))
				}
			}
			derr := w.deleteService(m.ns, m.name, m.uid)
			if id != 0 && derr == nil {
				// The delete takes a while; nothing may boot the appliance
				// from now on (checked in noteRequest). Marked only once the
				// API server has the deletion: a boot before it is the
				// repair of a live Service's appliance, as it should be.
				w.markDeleting(id, key(&v1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: m.ns, Name: m.name}}), m.uid)
			}
			out = joinNotes(out, errText(derr), w.restart())
			time.Sleep(5 * time.Millisecond)
			out = joinNotes(out, errText(w.applySlice(m.ns, m.name, later)))
			time.Sleep(20 * time.Millisecond)
			w.deleteSlice(m.ns, m.name)
			return out
		})
	case "restart-config":
		a.restarts++
		n := r.Uint32()
		kind := []string{"healthcheck", "delay", "sorry", "ports", "realservers"}[r.Intn(5)]
		return a.slot(fmt.Sprintf("restart-config: change the %s of a Service with an address, hang its Config, restart the controller meanwhile", kind),
			func(w *world) string {
				rule := sakurasim.FaultRule{Op: "LoadBalancer.Config", Latency: hangingConfig, Times: 1}
				return w.changeUnderFault(n, kind, rule, true)
			})
	case "replay-409":
		n := r.Uint32()
		return a.slot("replay-409: change the delay loop of a Service with an address; its UpdateSettings is answered 503 after it is done",
			func(w *world) string {
				rule := sakurasim.FaultRule{Op: "LoadBalancer.UpdateSettings", Status: 503, After: true, Times: 1}
				return joinNotes(w.changeUnderFault(n, "delay", rule, false), fmt.Sprintf("retryMax %d", w.knobs.retryMax))
			})
	default: // delete
		m := a.live[0]
		a.remove(m)
		return a.slot("delete "+m.ns+"/"+m.name, func(w *world) string { return deleteAll(w, []*svcModel{m}) })
	}
}

func (a *defectActor) slot(desc string, run func(w *world) string) *slot {
	return &slot{desc: desc, run: run}
}

func names(ms []*svcModel) string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.name
	}
	return strings.Join(out, ",")
}

func deletions(ms []*svcModel) string {
	if len(ms) == 0 {
		return "no deletion"
	}
	return "delete " + names(ms)
}

func deletionsPrefix(ms []*svcModel) string {
	if len(ms) == 0 {
		return ""
	}
	return "delete " + names(ms) + ", "
}

func deleteAll(w *world, ms []*svcModel) string {
	var out []string
	for _, m := range ms {
		w.deleteSlice(m.ns, m.name)
		if e := errText(w.deleteService(m.ns, m.name, m.uid)); e != "" {
			out = append(out, m.name+": "+e)
		}
	}
	return strings.Join(out, "; ")
}

// creates returns one function per model that creates its Service.
func creates(w *world, ms []*svcModel) []func() string {
	var out []func() string
	for _, m := range ms {
		snap := m.clone()
		out = append(out, func() string {
			s := &v1.Service{}
			snap.applyTo(s)
			if err := w.createService(s); err != nil {
				return snap.name + ": " + errText(err)
			}
			if snap.local {
				return errText(w.applySlice(snap.ns, snap.name, snap.ready))
			}
			return ""
		})
	}
	return out
}

// together runs fs at the same moment and joins what they say.
func together(w *world, fs ...func() string) string {
	var wg sync.WaitGroup
	var start sync.WaitGroup
	start.Add(1)
	out := make([]string, len(fs))
	for i, f := range fs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start.Wait()
			out[i] = f()
		}()
	}
	start.Done()
	wg.Wait()
	return joinNotes(out...)
}

// restart stops the controller and starts the next generation at once.
//
// Restarts are serialized: two actions restarting at once would otherwise
// both stop the one running controller and then each start one, leaving
// two controllers running side by side, which leader election rules out
// (seed 60155 found the harness doing so: two processes each created an
// appliance for one Service).
func (w *world) restart() string {
	w.restartMu.Lock()
	defer w.restartMu.Unlock()
	w.stopCCM()
	if err := w.startCCM(); err != nil {
		return "restart: " + errText(err)
	}
	return fmt.Sprintf("restarted: ccm#%d runs", w.gens)
}

// waitAppliance waits until an appliance carries the member tag of uid.
func (w *world) waitAppliance(uid string, d time.Duration) (types.ID, bool) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		for _, lb := range w.sim.Snapshot().LoadBalancers {
			if hasTag(lb.Tags, tagService+uid) {
				return lb.ID, true
			}
		}
		time.Sleep(time.Millisecond)
	}
	return 0, false
}

func (w *world) waitStatus(ns, name string, d time.Duration) (string, bool) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if s, err := w.getService(ns, name); err == nil {
			if ip, _ := statusIP(s); ip != "" {
				return ip, true
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	return "", false
}

// waitFired waits until the fault rule like r has fired (or is gone).
func (w *world) waitFired(r sakurasim.FaultRule, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		found := false
		for _, f := range w.sim.Snapshot().Faults {
			if f.Op == r.Op && f.Latency == r.Latency && f.Status == r.Status && f.After == r.After && f.Times == r.Times {
				found = true
				if f.Fired > 0 {
					return true
				}
			}
		}
		if !found {
			return false // replaced by the fault actor
		}
		time.Sleep(time.Millisecond)
	}
	return false
}

// oobShutdownOf shuts down the appliance of uid out of band and waits
// (briefly) until it is down. It returns the appliance when uid is its
// only member (0 otherwise: booting a shared one again is right).
func (w *world) oobShutdownOf(uid string) (types.ID, string) {
	var lb *naked.LoadBalancer
	poll(waitFor, func() bool {
		for _, x := range w.sim.Snapshot().LoadBalancers {
			if hasTag(x.Tags, tagService+uid) && x.Instance != nil && x.Instance.Status == types.ServerInstanceStatuses.Up {
				lb = x
			}
		}
		return lb != nil
	})
	if lb == nil {
		return 0, "no appliance to shut down"
	}
	err := oobTry(func() error { return w.oob.Shutdown(bg, zoneName, lb.ID, &iaas.ShutdownOption{Force: true}) })
	if err != nil {
		return 0, fmt.Sprintf("shutdown %s: %s", lb.ID, errText(err))
	}
	w.damage(memberUIDs(lb.Tags), "shutdown")
	id := lb.ID
	if len(memberUIDs(lb.Tags)) != 1 {
		id = 0
	}
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		cur, rerr := w.oob.Read(bg, zoneName, lb.ID)
		if rerr == nil && cur.InstanceStatus.IsDown() {
			return id, fmt.Sprintf("appliance %s down", lb.ID)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return id, fmt.Sprintf("appliance %s shutting down", lb.ID)
}

// markDeleting records an appliance whose only member, svc, is being
// deleted: a controller that boots it afterwards is reported.
func (w *world) markDeleting(id types.ID, svc, uid string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.deleting == nil {
		w.deleting = map[types.ID]deletion{}
	}
	w.deleting[id] = deletion{svc: svc, uid: uid, at: time.Now()}
}

// wipeSoleMember removes, out of band, every entry of an appliance of the
// cluster that has one member (one with a sharing key first), and applies it.
func (w *world) wipeSoleMember() string {
	var cands []*naked.LoadBalancer
	poll(waitFor, func() bool {
		cands = nil
		for _, lb := range w.sim.Snapshot().LoadBalancers {
			if _, foreign := w.foreign[lb.ID]; foreign || len(memberUIDs(lb.Tags)) != 1 || len(settingsOf(lb)) == 0 {
				continue
			}
			if lb.Instance == nil || lb.Instance.Status != types.ServerInstanceStatuses.Up {
				continue
			}
			cands = append(cands, lb)
		}
		return len(cands) > 0
	})
	if len(cands) == 0 {
		return "no appliance with a sole member"
	}
	sort.SliceStable(cands, func(i, j int) bool {
		si, sj := sharingKey(cands[i].Tags) != "", sharingKey(cands[j].Tags) != ""
		if si != sj {
			return si
		}
		return cands[i].ID < cands[j].ID
	})
	lb := cands[0]
	uids := memberUIDs(lb.Tags)
	wiped := false
	err := oobTry(func() error {
		cur, err := w.oob.Read(bg, zoneName, lb.ID)
		if err != nil {
			return err
		}
		if _, err := w.oob.UpdateSettings(bg, zoneName, lb.ID, &iaas.LoadBalancerUpdateSettingsRequest{
			VirtualIPAddresses: []*iaas.LoadBalancerVirtualIPAddress{}, SettingsHash: cur.SettingsHash}); err != nil {
			return err
		}
		wiped = true
		return w.oob.Config(bg, zoneName, lb.ID)
	})
	what := fmt.Sprintf("wiped appliance %s (key %q, member %s)", lb.ID, sharingKey(lb.Tags), shortUIDs(uids))
	if wiped {
		// Saved is damage enough, applied or not: the entries are gone
		// from the settings the controller reads, and with them the only
		// record of a VIP the Service did not show yet (seed 110753: an
		// adopted appliance wiped before its Service's status was
		// written gets a new VIP; SAKURA keeps no record of removed
		// entries, so nothing could bring the old one back).
		w.damage(uids, "wipe")
	}
	if err != nil {
		return what + ": error: " + err.Error()
	}
	return what
}

// settledServices are the LoadBalancer Services that show an address and
// are not being deleted, in a stable order. Type enhanced Services are not
// among them: the defect actor's plays are about DSR appliances (their
// settings, Config, sharing keys), whose annotations an ELB Service refuses.
func (w *world) settledServices() []*v1.Service {
	var out []*v1.Service
	for _, s := range w.listServices() {
		if ip, _ := statusIP(s); ip != "" && wantsLoadBalancer(s) && s.DeletionTimestamp == nil && !isELBService(s) {
			out = append(out, s)
		}
	}
	return out
}

// pinMemberVIP sets spec.loadBalancerIP of a member of a sharing key to the
// address another member of that key shows (defect 2). The Service actors
// may set their own pin again later; that is one more change.
func (w *world) pinMemberVIP(n uint32) string {
	var groups [][]*v1.Service
	poll(waitFor, func() bool { groups = w.memberGroups(); return len(groups) > 0 })
	if len(groups) == 0 {
		return "no sharing key with two members that show an address"
	}
	g := groups[int(n%uint32(len(groups)))]
	i := int(n/7) % len(g)
	j := (i + 1 + int(n/13)%(len(g)-1)) % len(g)
	p, t := g[i], g[j]
	v, _ := statusIP(t)
	what := fmt.Sprintf("%s (key %s) pins %s, the address of %s", key(p), p.Annotations[annSharing], v, key(t))
	return joinNotes(what, errText(w.updateService(p.Namespace, p.Name, string(p.UID), func(s *v1.Service) { s.Spec.LoadBalancerIP = v })))
}

// memberGroups are the sharing keys with two or more members that show an address.
func (w *world) memberGroups() [][]*v1.Service {
	byKey := map[string][]*v1.Service{}
	var keys []string
	for _, s := range w.settledServices() {
		if k := s.Annotations[annSharing]; k != "" {
			if byKey[k] == nil {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], s)
		}
	}
	var groups [][]*v1.Service
	for _, k := range keys {
		if len(byKey[k]) >= 2 {
			groups = append(groups, byKey[k])
		}
	}
	return groups
}

// waitFor bounds how long a defect action waits for what it needs (a
// Service with an address, an appliance): the controller's boot looks run
// in real time, so early in a seed there may be none yet.
const waitFor = 3 * time.Second

// poll calls f every 5 ms until it is true or d passes.
func poll(d time.Duration, f func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if f() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// changeUnderFault puts rule in front of the fault rules, changes one kind
// of setting of a Service that shows an address, waits for the rule to
// fire and, with restart, restarts the controller while it does.
func (w *world) changeUnderFault(n uint32, kind string, rule sakurasim.FaultRule, restart bool) string {
	var svcs []*v1.Service
	if !poll(waitFor, func() bool { svcs = w.settledServices(); return len(svcs) > 0 }) {
		return "no Service shows an address"
	}
	s := svcs[int(n%uint32(len(svcs)))]
	if err := w.sim.AddFaults(rule); err != nil {
		return errText(err)
	}
	what, err := w.changeSetting(s, kind, n)
	out := joinNotes(fmt.Sprintf("%s: %s", key(s), what), errText(err))
	if !w.waitFired(rule, 800*time.Millisecond) {
		return joinNotes(out, fmt.Sprintf("no %s within 800ms", rule.Op))
	}
	out = joinNotes(out, faultText(rule)+" fired")
	if restart {
		out = joinNotes(out, w.restart())
	}
	return out
}

// changeSetting changes one kind of setting of s, in place.
func (w *world) changeSetting(s *v1.Service, kind string, n uint32) (string, error) {
	ns, name, uid := s.Namespace, s.Name, string(s.UID)
	var what string
	mutate := func(f func(*v1.Service)) error {
		return w.updateService(ns, name, uid, func(s *v1.Service) {
			if s.Annotations == nil {
				s.Annotations = map[string]string{}
			}
			f(s)
		})
	}
	switch kind {
	case "healthcheck":
		next := map[string]string{"": "tcp", "ping": "tcp", "tcp": "http", "http": "ping", "https": "ping"}[s.Annotations[annProtocol]]
		what = "health check " + next
		return what, mutate(func(s *v1.Service) {
			s.Annotations[annProtocol] = next
			delete(s.Annotations, annPath)
			if next == "http" {
				s.Annotations[annPath] = "/ready"
			}
		})
	case "delay":
		cur := s.Annotations[annInterval]
		next := []string{"15", "30", "60"}[n%3]
		if next == cur {
			next = []string{"15", "30", "60"}[(n+1)%3]
		}
		what = "delay loop " + next
		return what, mutate(func(s *v1.Service) { s.Annotations[annInterval] = next })
	case "sorry":
		if s.Annotations[annSorry] != "" {
			what = "sorry server removed"
			return what, mutate(func(s *v1.Service) { delete(s.Annotations, annSorry) })
		}
		what = "sorry server " + sorryServer
		return what, mutate(func(s *v1.Service) { s.Annotations[annSorry] = sorryServer })
	case "ports":
		have := map[int32]bool{}
		for _, p := range s.Spec.Ports {
			have[p.Port] = true
		}
		if len(s.Spec.Ports) > 1 {
			drop := s.Spec.Ports[len(s.Spec.Ports)-1].Port
			what = fmt.Sprintf("port %d removed", drop)
			return what, mutate(func(s *v1.Service) { s.Spec.Ports = s.Spec.Ports[:len(s.Spec.Ports)-1] })
		}
		var add int32
		for _, p := range portPool {
			if !have[p] {
				add = p
				break
			}
		}
		what = fmt.Sprintf("port %d added", add)
		return what, mutate(func(s *v1.Service) {
			s.Spec.Ports = append(s.Spec.Ports, v1.ServicePort{Name: fmt.Sprintf("p%d", add), Protocol: v1.ProtocolTCP, Port: add,
				TargetPort: intstr.FromInt32(add + 8000), NodePort: nodePort(add)})
		})
	default: // realservers: a Local Service ready on other nodes
		ready := drawReady(rand.New(rand.NewSource(int64(n))))
		what = "Local, ready on " + readyList(ready)
		err := mutate(func(s *v1.Service) { s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal })
		if err == nil {
			err = w.applySlice(ns, name, ready)
		}
		return what, err
	}
}

// deletion is a Service being deleted, and since when (markDeleting).
type deletion struct {
	svc, uid string
	at       time.Time
}
