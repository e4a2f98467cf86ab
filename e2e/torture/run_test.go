package torture

import (
	"flag"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
)

// result is the outcome of one run of one seed.
type result struct {
	seed       int64
	opts       options
	knobs      knobs
	actions    int // action slots that ran
	slots      int // action slots of the script
	elapsed    time.Duration
	violations []violation
	notes      []string
	tr         *tracer
}

type violation struct {
	kind string // "inv1/real-servers", ...: the first part names the invariant
	msg  string
	svc  string // namespace/name of the Service it is about, if one
}

func (r *result) failed() bool { return len(r.violations) > 0 }

// signature names the kinds of violation of a failing run, for grouping.
func (r *result) signature() string {
	set := map[string]bool{}
	for _, v := range r.violations {
		set[v.kind] = true
	}
	kinds := make([]string, 0, len(set))
	for k := range set {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	return strings.Join(kinds, " + ")
}

func (r *result) report(full bool) string {
	var b strings.Builder
	status := "passed"
	if r.failed() {
		status = "FAILED"
	}
	fmt.Fprintf(&b, "seed %d %s (%d actions, %s; %s)\n  replay: %s\n", r.seed, status, r.actions,
		r.elapsed.Round(time.Millisecond), r.knobs, replay(r.seed, r.opts))
	for _, v := range r.violations {
		fmt.Fprintf(&b, "  [%s] %s\n", v.kind, v.msg)
	}
	for _, n := range r.notes {
		fmt.Fprintf(&b, "  note: %s\n", n)
	}
	if full && r.tr != nil {
		b.WriteString(r.tr.String(*flagTrace || r.failed()))
	}
	return b.String()
}

// runSeed runs one seed: setup, the actors' script, the settle phase, the checks.
func runSeed(seed int64, o options) *result {
	res := &result{seed: seed, opts: o}
	start := time.Now()
	defer func() { res.elapsed = time.Since(start) }()
	w, err := newWorld(seed, o)
	if err != nil {
		res.violations = append(res.violations, violation{kind: "harness", msg: "setting up: " + err.Error()})
		return res
	}
	defer w.close()
	res.knobs, res.tr = w.knobs, w.tr
	sc := makeScript(seed, o)
	res.slots = sc.n
	w.tr.add("seed %d: %d action slots; %s", seed, sc.n, w.knobs)
	if err := w.startCCM(); err != nil {
		res.violations = append(res.violations, violation{kind: "harness", msg: "starting the controller: " + err.Error()})
		return res
	}
	res.actions = sc.run(w)
	w.tr.add("actions done; settle phase (faults cleared, the controller keeps being called)")
	res.violations = w.settle()
	res.notes = append(res.notes, w.checkNotes()...)
	if len(res.violations) > 0 {
		w.tr.add("final state:\n%s", w.describe())
	}
	w.mu.Lock()
	if w.late > 0 {
		res.notes = append(res.notes, fmt.Sprintf("a stopped controller started %d API writes after it was stopped", w.late))
	}
	w.mu.Unlock()
	return res
}

// settle clears the faults and keeps the controllers running until the
// cluster is quiet and the invariants hold for a while, or the deadline
// passes; then it returns what is wrong.
func (w *world) settle() []violation {
	if fired := w.firedFaults(); fired != "" {
		w.tr.add("faults cleared (%s)", fired)
	}
	_ = w.sim.SetFaults(nil)
	deadline := time.Now().Add(w.opts.settle)
	var okSince time.Time
	for {
		quiet, why := w.quiet()
		if quiet {
			if v := w.check(); len(v) == 0 {
				if okSince.IsZero() {
					okSince = time.Now()
				}
				if time.Since(okSince) >= w.stability() {
					w.tr.add("settled")
					return w.foundWhileRunning()
				}
			} else {
				okSince = time.Time{}
			}
		} else {
			okSince = time.Time{}
		}
		if time.Now().After(deadline) {
			v := w.check()
			if !quiet {
				v = append(v, violation{kind: "settle/not-quiescent", msg: fmt.Sprintf("after %s the controller still works: %s", w.opts.settle, why)})
			}
			w.tr.add("settle deadline (%s) passed", w.opts.settle)
			return append(v, w.foundWhileRunning()...)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// stability is how long the invariants must hold: long enough for the
// endpoint follower's debounce (1 s) after the last change that concerns a
// Local Service.
func (w *world) stability() time.Duration {
	d := 100 * time.Millisecond
	for _, s := range w.listServices() {
		if isLocalLB(s) {
			if left := time.Duration(w.lastLocal.Load()+int64(1300*time.Millisecond)) - time.Duration(time.Now().UnixNano()); left > d {
				d = left
			}
			break
		}
	}
	return d
}

func (w *world) foundWhileRunning() []violation {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]violation(nil), w.findings...)
}

// finalRefusals are the errors of a Service that asks for what cannot be
// had while the cluster stays as it is: a pinned address another Service or
// appliance holds, or a block with no free address. The controller refuses
// it every time without writing: that is the steady state, not work left,
// and checkNotes reports each one. A refused adoption is one too (one that
// only waited for another Service's deletion is taken up by the repair
// pass, as the real service controller's long backoff would leave it).
var finalRefusals = []string{"requested load balancer IP unavailable", "is exhausted", "not adopting load balancer"}

func finalRefusal(err error) bool {
	for _, r := range finalRefusals {
		if strings.Contains(err.Error(), r) {
			return true
		}
	}
	return false
}

// quiet: no work queued or in flight anywhere, and no write for a moment.
func (w *world) quiet() (bool, string) {
	m := w.current()
	if m == nil {
		return false, "no controller runs"
	}
	// The own loop's queue is the product's: its work shows as API
	// writes and requests in flight (below) and in the checks.
	if m.sc != nil && !m.sc.quiescent() {
		errs := m.sc.errors()
		keys := make([]string, 0, len(errs))
		for k := range errs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s: %s", k, errs[k]))
		}
		if len(parts) == 0 {
			parts = []string{"queue not empty"}
		}
		return false, "service controller retrying: " + strings.Join(parts, "; ")
	}
	if m.nodeBusy.Load() > 0 {
		return false, "node controllers busy"
	}
	servers := map[string]bool{}
	for _, sv := range w.sim.Snapshot().Servers {
		servers[sv.Name] = true
	}
	for _, n := range w.listNodes() {
		if n.Spec.ProviderID == "" && !servers[n.Name] {
			// A Node the controller never matched to a server is kept, with
			// a NoMatchingServer Event, for the operator to fix or delete
			// (issue #19): its server was deleted before the cloud-node
			// controller initialised it. It stays uninitialised and NotReady.
			continue
		}
		if hasTaint(n, uninitTaint) {
			return false, "Node " + n.Name + " not initialised by the cloud-node controller"
		}
		// A NotReady Node whose server exists (its kubelet stopped) is
		// rightly kept; one whose server is gone must be deleted.
		if !nodeReady(n) && !servers[n.Name] {
			return false, "Node " + n.Name + " NotReady and not deleted by the lifecycle controller"
		}
	}
	if w.inflight.Load() > 0 {
		return false, "API requests in flight"
	}
	if time.Since(time.Unix(0, w.lastWrite.Load())) < 20*time.Millisecond {
		return false, "API writes going on"
	}
	return true, ""
}

// --- trace

// tracer keeps what happened in a seed: actions (always printed on
// failure), controller errors (the last ones) and API writes (-torture.trace).
type tracer struct {
	start time.Time
	mu    sync.Mutex
	lines []string
	ctls  []string
	ctlN  int
	apis  []string
}

func newTracer(start time.Time) *tracer { return &tracer{start: start} }

func fmtDur(d time.Duration) string { return fmt.Sprintf("%6.1fms", float64(d.Microseconds())/1000) }

func (t *tracer) add(format string, args ...any) {
	line := fmtDur(time.Since(t.start)) + " " + fmt.Sprintf(format, args...)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, line)
}

var flagCtlKeep = flag.Int("torture.ctlkeep", 25, "service controller errors kept per seed for the trace")

func (t *tracer) ctl(line string) {
	line = fmtDur(time.Since(t.start)) + " " + line
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ctlN++
	t.ctls = append(t.ctls, line)
	if len(t.ctls) > *flagCtlKeep {
		t.ctls = t.ctls[len(t.ctls)-*flagCtlKeep:]
	}
}

func (t *tracer) api(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.apis = append(t.apis, line)
}

func (t *tracer) String(withAPI bool) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var b strings.Builder
	b.WriteString("  trace:\n")
	for _, l := range t.lines {
		b.WriteString("    " + l + "\n")
	}
	if t.ctlN > 0 {
		fmt.Fprintf(&b, "  service controller errors (%d, last %d):\n", t.ctlN, len(t.ctls))
		for _, l := range t.ctls {
			b.WriteString("    " + l + "\n")
		}
	}
	if withAPI && *flagTrace {
		fmt.Fprintf(&b, "  API writes (%d):\n", len(t.apis))
		for _, l := range t.apis {
			b.WriteString("    " + l + "\n")
		}
	} else if withAPI {
		fmt.Fprintf(&b, "  (%d API writes; -torture.trace lists them)\n", len(t.apis))
	}
	return b.String()
}

// statusIP is the one address in the Service's status, or "".
func statusIP(s *v1.Service) (string, int) {
	var ips []string
	for _, in := range s.Status.LoadBalancer.Ingress {
		if in.IP != "" {
			ips = append(ips, in.IP)
		}
	}
	if len(ips) == 0 {
		return "", 0
	}
	return ips[0], len(ips)
}

// describe lists the cluster's appliances and LoadBalancer Services at the
// end, for the trace of a failing run.
func (w *world) describe() string {
	var b strings.Builder
	for _, lb := range w.sim.Snapshot().LoadBalancers {
		if _, foreign := w.foreign[lb.ID]; foreign {
			continue
		}
		status := ""
		if lb.Instance != nil {
			status = string(lb.Instance.Status)
		}
		var tags, vips []string
		for _, t := range lb.Tags {
			tags = append(tags, strings.TrimPrefix(strings.Replace(t, tagService, "uid=…", 1), "k8s.usacloud.jp/"))
		}
		for i, t := range tags {
			if strings.HasPrefix(t, "uid=…") {
				tags[i] = "uid=…" + t[len(t)-4:]
			}
		}
		for _, e := range settingsOf(lb) {
			vips = append(vips, fmt.Sprintf("%s:%s(%d)", e.VirtualIPAddress, e.Port, len(e.Servers)))
		}
		fmt.Fprintf(&b, "      appliance %s %s %s/%s tags=%v entries=%v\n", lb.ID, lb.Name, lb.Availability, status, tags, vips)
	}
	b.WriteString(w.describeELBs())
	for _, s := range w.listServices() {
		ip, _ := statusIP(s)
		del := ""
		if s.DeletionTimestamp != nil {
			del = " deleting"
		}
		if isELBService(s) {
			del += fmt.Sprintf(" enhanced(elb-id=%s elb-plan=%s)", s.Annotations[annELBID], s.Annotations[annELBPlan])
		}
		fmt.Fprintf(&b, "      Service %s uid=…%s %s%s finalizer=%v status=%s pin=%s\n", key(s), short(string(s.UID)), s.Spec.Type, del, hasFinalizer(s), ip, s.Spec.LoadBalancerIP)
	}
	return strings.TrimRight(b.String(), "\n")
}
