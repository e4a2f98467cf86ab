package torture

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/klog/v2"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/serviceloop"
)

var (
	flagSeeds    = flag.Int("torture.seeds", 20, "number of seeds to run (from -torture.first)")
	flagSeed     = flag.Int64("torture.seed", -1, "run only this seed")
	flagFirst    = flag.Int64("torture.first", 1, "first seed")
	flagActions  = flag.Int("torture.actions", 0, "actions per seed (0: 20-60, chosen by the seed); a smaller count replays a prefix of the seed's script")
	flagSkip     = flag.String("torture.skip", "", "comma-separated action slots to leave out (as printed by the minimiser)")
	flagParallel = flag.Int("torture.parallel", 0, "seeds run at once (0: 4 per CPU, at most 32)")
	flagSettle   = flag.Duration("torture.settle", 15*time.Second, "bound on the settle phase of one seed")
	flagMinimize = flag.Bool("torture.minimize", false, "shrink each failing seed to its smallest failing action prefix and slot set")
	flagOOB      = flag.Bool("torture.oob", true, "damage appliances out of band (shutdown, delete, settings change)")
	flagFaults   = flag.Bool("torture.faults", true, "inject simulator faults")
	flagTakeover = flag.Bool("torture.takeover", true, "hand the work over to a second controller mid-run")
	flagTrace    = flag.Bool("torture.trace", false, "print the trace of passing seeds too, and the API writes in every trace")
	flagReport   = flag.Int("torture.report", 8, "failing seeds whose trace is printed in full")
	flagKlog     = flag.Int("torture.klog", -1, "klog verbosity on stderr (-1: quiet unless -v, then 0; -2: quiet even with -v)")
	flagLBConfig = flag.String("torture.lbconfig", "", "extra loadBalancer cloud-config keys, key=value[,key=value] (e.g. a repair interval)")
	flagRepeat   = flag.Int("torture.repeat", 1, "run each seed this many times (interleavings vary between runs)")
	flagTraceDir = flag.String("torture.tracedir", "", "write the full report of every failing run to this directory (seed-N[-k].txt)")
	flagStrict   = flag.Bool("torture.strict", false, "the simulator refuses an address in use (409) instead of accepting and storing it as SAKURA may")
	flagAdopt    = flag.Bool("torture.adopt", true, "play the adoption actor (the earlier controller's appliance adopted, adopt-by-ID of another Service's appliance refused, preserve then re-adopt, two matches refused)")
	flagLoop     = flag.String("torture.loop", "mixed", "which loop serves the Services: upstream (the emulated k8s.io/cloud-provider service controller), own (the product's serviceController: own), or mixed (one seed in four own, drawn from the seed)")
	flagELB      = flag.Float64("torture.elb", defaultELBShare, "share of the Services the Service actors create that are of type enhanced (an Enhanced Load Balancer instead of a DSR appliance); 0 plays the scripts of a run without ELBs")
	flagDefects  = flag.Bool("torture.defects", true, "play the actors aimed at issue #18's defects (joins in one listing, pins on a member's VIP, wiped entries, restarts mid-create and mid-Config, 503-then-409 replays)")
)

// The one HTTP server of the test binary. iaas-api-go keeps the API root in
// package globals, so every caller of every seed points at this server; it
// routes each request by its access token to the seed's simulator.
var (
	apiServer *httptest.Server
	routes    sync.Map // access token -> *route
)

// route is one access token: a simulator and who is calling.
type route struct {
	w    *world
	role string // "ccm#1", "ccm#2", ... or "oob"
	gen  int    // controller generation (0 for oob)
	// stopped is set when that controller generation was stopped; requests
	// it starts afterwards are recorded.
	stopped atomic.Bool
}

func TestMain(m *testing.M) {
	flag.Parse()
	quietKlog()
	// The product's own Service loop waits like the upstream one; the
	// harness compresses both by timeScale (svcctl_test.go does it for
	// the emulated upstream loop).
	serviceloop.MinRetryDelay /= timeScale
	serviceloop.MaxRetryDelay /= timeScale
	serviceloop.RetryAfterDivisor = timeScale
	apiServer = httptest.NewUnstartedServer(http.HandlerFunc(serveAPI))
	// Every controller generation of every seed has its own HTTP client;
	// closing idle connections frees those of finished seeds.
	apiServer.Config.IdleTimeout = 3 * time.Second
	apiServer.Start()
	code := m.Run()
	apiServer.Close()
	os.Exit(code)
}

func quietKlog() {
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	level := *flagKlog
	if level == -1 && testing.Verbose() {
		level = 0
	}
	if level < 0 {
		_ = fs.Set("logtostderr", "false")
		_ = fs.Set("alsologtostderr", "false")
		_ = fs.Set("stderrthreshold", "FATAL")
		klog.SetOutput(io.Discard)
		klog.LogToStderr(false)
		return
	}
	_ = fs.Set("v", strconv.Itoa(level))
}

// statusRecorder remembers the answer's status and lets the simulator
// hijack the connection (dropped-connection faults).
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func serveAPI(w http.ResponseWriter, r *http.Request) {
	user, _, ok := r.BasicAuth()
	v, found := routes.Load(user)
	if !ok || !found {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"is_fatal":true,"status":"401 Unauthorized","error_code":"unauthorized","error_msg":"unknown access token"}`)
		return
	}
	rt := v.(*route)
	wd := rt.w
	wd.inflight.Add(1)
	defer wd.inflight.Add(-1)
	rec := &statusRecorder{ResponseWriter: w}
	var out http.ResponseWriter = rec
	if hj, ok := w.(http.Hijacker); ok {
		out = &hijackRecorder{statusRecorder: rec, hj: hj}
	}
	// Writes are traced; a write a stopped controller starts is counted
	// (its reads are not: the server cache detaches its list from
	// cancellation, which changes nothing).
	if r.Method != http.MethodGet {
		late := rt.gen > 0 && rt.stopped.Load()
		start := time.Now()
		defer func() { wd.noteRequest(rt, r.Method, r.URL.Path, rec.status, start, late) }()
	}
	wd.sim.Handler().ServeHTTP(out, r)
}

// hijackRecorder is a statusRecorder that is also an http.Hijacker.
type hijackRecorder struct {
	*statusRecorder
	hj http.Hijacker
}

func (h *hijackRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) { return h.hj.Hijack() }

// TestTorture runs the seeds, several at once, and reports every failing one
// with its replay command and trace.
func TestTorture(t *testing.T) {
	seeds := seedList(t)
	par := *flagParallel
	if par <= 0 {
		par = min(4*runtime.GOMAXPROCS(0), 32)
	}
	started := time.Now()
	var (
		mu       sync.Mutex
		results  []*result
		actions  atomic.Int64
		next     atomic.Int64
		wg       sync.WaitGroup
		runs     = len(seeds) * max(1, *flagRepeat)
		seedTime atomic.Int64
	)
	for range par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= runs {
					return
				}
				seed := seeds[i%len(seeds)]
				res := runSeed(seed, currentOptions())
				actions.Add(int64(res.actions))
				seedTime.Add(int64(res.elapsed))
				mu.Lock()
				results = append(results, res)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	wall := time.Since(started)
	sort.Slice(results, func(i, j int) bool { return results[i].seed < results[j].seed })

	var failed []*result
	for _, r := range results {
		if r.failed() {
			failed = append(failed, r)
		} else if *flagTrace {
			t.Logf("%s", r.report(true))
		}
	}
	if *flagTraceDir != "" {
		if err := writeReports(*flagTraceDir, failed); err != nil {
			t.Errorf("writing the failing runs' reports: %v", err)
		}
	}
	reported := 0
	for _, r := range failed {
		if reported < *flagReport {
			t.Errorf("%s", r.report(true))
			reported++
		} else {
			t.Errorf("%s", r.report(false))
		}
	}
	if *flagMinimize {
		done := map[int64]bool{}
		for _, r := range failed {
			if !done[r.seed] {
				done[r.seed] = true
				t.Logf("%s", minimize(r))
			}
		}
	}
	if len(failed) > 0 {
		t.Logf("%s", signatureSummary(failed))
	}
	t.Logf("torture: %d goroutines, %d open files after the runs", runtime.NumGoroutine(), openFiles())
	t.Logf("torture: %d runs (%d seeds from %d) × %.1f actions on average = %d actions; %d failed; wall %s (%.0f ms per seed, %.0f ms of seed time each, %d at once); %s",
		len(results), len(seeds), seeds[0], float64(actions.Load())/float64(max(1, len(results))), actions.Load(), len(failed),
		wall.Round(time.Millisecond), float64(wall.Milliseconds())/float64(max(1, len(results))),
		float64(time.Duration(seedTime.Load()).Milliseconds())/float64(max(1, len(results))), par, appliedNote())
}

func seedList(t *testing.T) []int64 {
	if *flagSeed >= 0 {
		return []int64{*flagSeed}
	}
	n := *flagSeeds
	if testing.Short() && n > 5 {
		n = 5
		t.Logf("torture: -short: %d seeds instead of %d", n, *flagSeeds)
	}
	if n < 1 {
		t.Fatalf("-torture.seeds must be at least 1")
	}
	out := make([]int64, n)
	for i := range out {
		out[i] = *flagFirst + int64(i)
	}
	return out
}

// options are what a run of one seed may vary; flags give the defaults.
type options struct {
	actions  int          // 0: the seed's own count
	skip     map[int]bool // action slots left out
	oob      bool
	faults   bool
	takeover bool
	settle   time.Duration
	lbExtra  map[string]string
	strict   bool
	defects  bool
	adopt    bool
	loop     string // upstream, own or mixed
	elb      float64
}

func currentOptions() options {
	o := options{actions: *flagActions, skip: parseSkip(*flagSkip), oob: *flagOOB, faults: *flagFaults,
		takeover: *flagTakeover, settle: *flagSettle, lbExtra: map[string]string{}, strict: *flagStrict, defects: *flagDefects, adopt: *flagAdopt, loop: *flagLoop,
		elb: *flagELB}
	for _, kv := range strings.Split(*flagLBConfig, ",") {
		if k, v, ok := strings.Cut(strings.TrimSpace(kv), "="); ok && k != "" {
			o.lbExtra[k] = v
		}
	}
	return o
}

func parseSkip(s string) map[int]bool {
	out := map[int]bool{}
	for _, f := range strings.Split(s, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil {
			out[n] = true
		}
	}
	return out
}

// replay is the one-line command that runs seed again with o.
func replay(seed int64, o options) string {
	var b strings.Builder
	fmt.Fprintf(&b, "cd e2e && go test ./torture -run TestTorture -torture.seed=%d", seed)
	if o.actions > 0 {
		fmt.Fprintf(&b, " -torture.actions=%d", o.actions)
	}
	if len(o.skip) > 0 {
		var s []int
		for k := range o.skip {
			s = append(s, k)
		}
		sort.Ints(s)
		parts := make([]string, len(s))
		for i, k := range s {
			parts[i] = strconv.Itoa(k)
		}
		fmt.Fprintf(&b, " -torture.skip=%s", strings.Join(parts, ","))
	}
	if !o.oob {
		b.WriteString(" -torture.oob=false")
	}
	if !o.faults {
		b.WriteString(" -torture.faults=false")
	}
	if !o.takeover {
		b.WriteString(" -torture.takeover=false")
	}
	if o.strict {
		b.WriteString(" -torture.strict")
	}
	if !o.defects {
		b.WriteString(" -torture.defects=false")
	}
	if o.elb != defaultELBShare {
		fmt.Fprintf(&b, " -torture.elb=%g", o.elb)
	}
	if o.loop != "mixed" {
		fmt.Fprintf(&b, " -torture.loop=%s", o.loop)
	}
	if o.settle != 15*time.Second {
		fmt.Fprintf(&b, " -torture.settle=%s", o.settle)
	}
	if *flagLBConfig != "" {
		fmt.Fprintf(&b, " -torture.lbconfig=%s", *flagLBConfig)
	}
	b.WriteString(" -v")
	return b.String()
}

// minimize shrinks a failing seed: first the shortest failing prefix of its
// action script, then every slot of that prefix whose removal keeps it
// failing. Interleavings vary, so each probe runs up to three times.
func minimize(r *result) string {
	o := r.opts
	fails := func(o options) (*result, bool) {
		for range 3 {
			if res := runSeed(r.seed, o); res.failed() {
				return res, true
			}
		}
		return nil, false
	}
	lo, hi := 1, r.actions
	best := r
	for lo < hi {
		mid := (lo + hi) / 2
		o2 := o
		o2.actions = mid
		if res, ok := fails(o2); ok {
			hi, best = mid, res
		} else {
			lo = mid + 1
		}
	}
	o.actions = hi
	if hi != r.actions {
		if res, ok := fails(o); ok {
			best = res
		}
	}
	skip := map[int]bool{}
	for k := range o.skip {
		skip[k] = true
	}
	for slot := 0; slot < hi; slot++ {
		if skip[slot] {
			continue
		}
		o2 := o
		o2.skip = map[int]bool{slot: true}
		for k := range skip {
			o2.skip[k] = true
		}
		if res, ok := fails(o2); ok {
			skip[slot], best = true, res
		}
	}
	o.skip = skip
	return fmt.Sprintf("minimised seed %d: %d of %d actions (%d slots left out) still fail [%s]\n  replay: %s\n%s",
		r.seed, hi-len(skip), r.actions, len(skip), best.signature(), replay(r.seed, o), best.report(true))
}

// signatureSummary groups failing seeds by what failed.
func signatureSummary(failed []*result) string {
	by := map[string][]int64{}
	for _, r := range failed {
		by[r.signature()] = append(by[r.signature()], r.seed)
	}
	keys := make([]string, 0, len(by))
	for k := range by {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return len(by[keys[i]]) > len(by[keys[j]]) })
	var b strings.Builder
	fmt.Fprintf(&b, "torture: %d failing runs by signature:\n", len(failed))
	for _, k := range keys {
		s := by[k]
		show := s
		if len(show) > 12 {
			show = show[:12]
		}
		fmt.Fprintf(&b, "  %4d × %s  seeds %v\n", len(s), k, show)
	}
	return b.String()
}

func openFiles() int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(entries)
}

func writeReports(dir string, failed []*result) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	seen := map[int64]int{}
	for _, r := range failed {
		name := fmt.Sprintf("seed-%d.txt", r.seed)
		if n := seen[r.seed]; n > 0 {
			name = fmt.Sprintf("seed-%d-%d.txt", r.seed, n)
		}
		seen[r.seed]++
		if err := os.WriteFile(filepath.Join(dir, name), []byte(r.report(true)), 0o644); err != nil {
			return err
		}
	}
	return nil
}
