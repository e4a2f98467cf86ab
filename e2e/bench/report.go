package main

import (
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"time"
)

//go:embed preamble.md
var preamble string

// Row is one line of the results table.
type Row struct {
	Figure, Measured, Naive, Note string
}

// LatencyResult is the time from Service creation to EXTERNAL-IP.
type LatencyResult struct {
	Latency, Boot, Median, Max, Overhead time.Duration
	N                                    int
}

// RealisticResult is the realistic-boot phase: overhead is the time to
// EXTERNAL-IP minus the boot delay.
type RealisticResult struct {
	Boot                        time.Duration
	N                           int
	MedianOverhead, MaxOverhead time.Duration
	Polls                       []int // boot polls (syncs) per create
	PollsMedian                 int
}

// BulkResult is the bulk create and the floor the API budget allows.
type BulkResult struct {
	N                 int
	Took              time.Duration
	Writes, BootPolls int
	RPS               float64
	Boot              time.Duration
}

// Floor is the shortest time the request budget allows for the bulk
// create: its writes and boot polls at RPS, plus one boot delay (the
// appliances boot in parallel, but the last one created cannot be up
// sooner than a boot delay after its create).
func (r BulkResult) Floor() time.Duration {
	if r.RPS <= 0 {
		return r.Boot
	}
	return time.Duration(float64(r.Writes+r.BootPolls)/r.RPS*float64(time.Second)) + r.Boot
}

// Ratio is measured ÷ floor.
func (r BulkResult) Ratio() float64 {
	f := r.Floor()
	if f <= 0 {
		return 0
	}
	return r.Took.Seconds() / f.Seconds()
}

// SteadyResult is one steady-state window.
type SteadyResult struct {
	Faults                                 bool
	Window                                 time.Duration
	ReadsPerMin, WritesPerMin, NaivePerMin float64
	RSSPeakKB, RSSLastKB                   int
	// RSSAnonKB and RSSFileKB split VmRSS at the end of the window.
	RSSAnonKB, RSSFileKB        int
	CPUPercent                  float64
	NodeStatusPasses, Throttled int
}

// Check is one listing of the simulator's appliances.
type Check struct {
	When                                                   string
	Appliances, Want, Duplicates, Leaks, Missing, Untagged int
	// InProgress: listed while creates were still under way (the fault
	// run's limit ran out), so Missing are not failures.
	InProgress bool
}

// FaultResult is the run with 429/503 answers.
type FaultResult struct {
	CreateN, CreateDone                                        int
	CreateTook, DeleteTook                                     time.Duration
	CreateCalls, CreateThrottled, DeleteCalls, DeleteThrottled int
	FailedSyncs                                                int
}

// Report is everything one run measured.
type Report struct {
	P           Params
	Date        time.Time
	Duration    time.Duration
	Rows        []Row
	Latency     []LatencyResult
	Steady      []SteadyResult
	Checks      []Check
	Faults      FaultResult
	NoopWrites  int
	DeleteCalls float64
	PeakRSSKB   int
	UnitBench   string
	// CreatesAlone are the creates measured one at a time (every latency);
	// CreateStats and DeleteStats summarise the creates and deletes
	// measured alone.
	CreatesAlone []alone
	CreateStats  AloneStats
	DeleteStats  AloneStats
	Realistic    *RealisticResult
	Bulk         *BulkResult
}

func newReport(p Params) *Report { return &Report{P: p, Date: time.Now().UTC()} }

func (r *Report) add(row Row) {
	r.Rows = append(r.Rows, row)
	logf("%s: %s (naive %s)", row.Figure, row.Measured, row.Naive)
}

// Target is one of the issues' targets (7 and 14), judged on this run.
type Target struct {
	Name, Want, Got string
	Met             bool
	// Info marks a figure that is reported without a pass or fail.
	Info bool
}

// bridgedColdCalls are the reads a cold inventory of a bridged switch
// adds: the bridge, the servers on the switch across it and the appliance
// listing of that switch's zone.
const bridgedColdCalls = 3

// Targets judges the run.
func (r *Report) Targets() []Target {
	var out []Target
	p := r.P
	if c := r.CreateStats; c.N > 0 {
		// The first create after the start reads the switch and its servers
		// (cold); the others reuse them for loadBalancer.inventoryTTLSec.
		// The bench's block is bridged to is1b, which adds the bridge, the
		// servers on the bridged switch and is1b's appliances to the cold
		// inventory (docs/load-balancers.md, Nodes of other zones).
		out = append(out, Target{Name: "API calls of the first Service create (cold), boot looks apart",
			Want: fmt.Sprintf("≤ %d calls (4, and %d for the bridged segment)", 4+bridgedColdCalls, bridgedColdCalls),
			Got:  fmt.Sprintf("%d calls + %d boot looks", c.FirstRest, c.FirstPolls),
			Met:  c.FirstRest <= 4+bridgedColdCalls})
		out = append(out, Target{Name: "API calls per later Service create (warm), boot looks apart",
			Want: fmt.Sprintf("≤ 2 calls (median of the %d later creates measured alone)", c.N-1),
			Got:  fmt.Sprintf("%d calls median + %d boot looks median (all %d: mean %.1f calls + %.1f looks)", c.LaterRestMedian, c.LaterPollsMedian, c.N, c.RestMean, c.PollsMean),
			Met:  c.N > 1 && c.LaterRestMedian <= 2})
	}
	if d := r.DeleteStats; d.N > 0 {
		out = append(out, Target{Name: "API calls per Service delete, shutdown looks apart",
			Want: fmt.Sprintf("≤ 3 calls (median of the %d deletes measured alone)", d.N),
			Got:  fmt.Sprintf("%d calls median (mean %.1f) + %d shutdown looks median (mean %.1f)", d.RestMedian, d.RestMean, d.PollsMedian, d.PollsMean),
			Met:  d.RestMedian <= 3})
	}
	for _, l := range r.Latency {
		out = append(out, Target{Name: fmt.Sprintf("CCM overhead to EXTERNAL-IP beyond the %s boot delay (%s API latency)", l.Boot, latName(l.Latency)),
			Want: "≤ 2s median", Got: fmt.Sprintf("%.2fs median, %.2fs max", l.Overhead.Seconds(), (l.Max - l.Boot).Seconds()), Met: l.Overhead <= 2*time.Second})
	}
	if x := r.Realistic; x != nil {
		out = append(out, Target{Name: fmt.Sprintf("CCM overhead to EXTERNAL-IP beyond a realistic %s boot", x.Boot),
			Want: "≤ 2s median",
			Got:  fmt.Sprintf("%.2fs median, %.2fs max; %d boot polls per create (median)", x.MedianOverhead.Seconds(), x.MaxOverhead.Seconds(), x.PollsMedian),
			Met:  x.MedianOverhead <= 2*time.Second})
	}
	if x := r.Bulk; x != nil {
		out = append(out, Target{Name: fmt.Sprintf("%d Services created at once: time to every EXTERNAL-IP vs the floor at requestsPerSecond %g", x.N, x.RPS),
			Want: "≤ 2× the floor (floor = (writes + boot polls) ÷ requestsPerSecond + boot delay)",
			Got:  fmt.Sprintf("%.1fs vs floor %.1fs: %.2f×", x.Took.Seconds(), x.Floor().Seconds(), x.Ratio()),
			Met:  x.Ratio() <= 2})
	}
	out = append(out, Target{Name: "no-op resync makes no writes", Want: "0 writes", Got: fmt.Sprintf("%d writes", r.NoopWrites), Met: r.NoopWrites == 0})
	for _, s := range r.Steady {
		if s.Faults {
			continue
		}
		got := s.ReadsPerMin + s.WritesPerMin
		out = append(out, Target{Name: fmt.Sprintf("steady-state calls/min at %d nodes in two zones × %d Services", p.Nodes, p.Services),
			Want: fmt.Sprintf("≤ 106 /min and 0 writes (naive here: %.0f /min)", s.NaivePerMin),
			Got:  fmt.Sprintf("%.1f /min (%.1f writes /min)", got, s.WritesPerMin),
			Met:  got <= 106 && s.WritesPerMin == 0})
	}
	st := r.steadyRSS()
	out = append(out, Target{Name: "controller VmRSS at the end of the steady window", Want: "< 100 MB",
		Got: fmt.Sprintf("%s (%s)", mb(st.RSSLastKB), st.split()), Met: st.RSSLastKB > 0 && st.RSSLastKB < 100*1024})
	out = append(out, Target{Name: "controller peak VmRSS over the whole run", Want: "< 150 MB",
		Got: mb(r.PeakRSSKB), Met: r.PeakRSSKB > 0 && r.PeakRSSKB < 150*1024})
	fdups, fleaks, fmissing, fchecks := 0, 0, 0, 0
	dups, leaks, missing := 0, 0, 0
	for _, c := range r.Checks {
		l := c.Leaks + c.Untagged
		if c.Want == 0 {
			l += c.Appliances
		}
		m := c.Missing
		if c.InProgress {
			m = 0
		}
		dups, leaks, missing = dups+c.Duplicates, leaks+l, missing+m
		if strings.Contains(c.When, "fault") {
			fchecks++
			fdups, fleaks, fmissing = fdups+c.Duplicates, fleaks+l, fmissing+m
		}
	}
	f := r.Faults
	made := fmt.Sprintf("%d Services, every EXTERNAL-IP in %.1fs", f.CreateDone, f.CreateTook.Seconds())
	if f.CreateDone < f.CreateN {
		made = fmt.Sprintf("%d of %d Services had an EXTERNAL-IP at the %s limit", f.CreateDone, f.CreateN, p.FaultCreateLimit)
	}
	out = append(out, Target{Name: fmt.Sprintf("fault run (%.0f%% 429/503): Services created, no duplicate or leaked appliance", p.FaultRate*100),
		Want: fmt.Sprintf("%d Services with EXTERNAL-IP (within %s), 0 duplicates, 0 leaked", p.FaultCreates, p.FaultCreateLimit),
		Got: fmt.Sprintf("%s; %d duplicates, %d leaked, %d Services without appliance (%d listings)",
			made, fdups, fleaks, fmissing, fchecks),
		Met: f.CreateN >= p.FaultCreates && f.CreateDone == f.CreateN && fchecks > 0 && fdups == 0 && fleaks == 0 && fmissing == 0})
	out = append(out, Target{Name: "duplicates or leaks (every listing, with and without faults)", Want: "0",
		Got: fmt.Sprintf("%d duplicates, %d leaked, %d Services without appliance", dups, leaks, missing), Met: dups == 0 && leaks == 0 && missing == 0})
	return out
}

func (r *Report) steadyRSS() SteadyResult {
	for _, s := range r.Steady {
		if !s.Faults {
			return s
		}
	}
	return SteadyResult{}
}

func (s SteadyResult) split() string {
	return fmt.Sprintf("%s anonymous + %s file-backed pages of the executable", mb(s.RSSAnonKB), mb(s.RSSFileKB))
}

// Table is the plain-text summary printed to stdout.
func (r *Report) Table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-100s | %-50s | %s\n", "figure", "measured", "naive")
	for _, row := range r.Rows {
		fmt.Fprintf(&b, "%-100s | %-50s | %s\n", row.Figure, row.Measured, row.Naive)
	}
	b.WriteString("\ntargets:\n")
	for _, t := range r.Targets() {
		fmt.Fprintf(&b, "  [%s] %s: want %s, got %s\n", t.verdict(), t.Name, t.Want, t.Got)
	}
	return b.String()
}

func (t Target) verdict() string {
	if t.Info {
		return "reported"
	}
	return metStr(t.Met)
}

func metStr(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

func cell(s string) string { return strings.ReplaceAll(s, "|", "\\|") }

// Markdown renders docs/benchmarks.md: the preamble, then this run.
func (r *Report) Markdown() string {
	p := r.P
	var b strings.Builder
	b.WriteString(strings.TrimSpace(preamble))
	b.WriteString("\n\n## Last run\n\n")
	fmt.Fprintf(&b, "- Date: %s (run took %s)\n", r.Date.Format("2006-01-02 15:04 MST"), r.Duration.Round(time.Second))
	fmt.Fprintf(&b, "- Machine: %s, %d CPUs (`nproc`; shared with other work), %s %s/%s\n", cpuModel(), runtime.NumCPU(), goVersion(), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(&b, "- Scale: %d nodes (servers) in two zones, is1a and is1b (cloud-config `zones`; odd-numbered servers in is1a, even in is1b); %d with a NIC on the /24 router+switch's segment (is1a's servers on the router's switch, is1b's on a switch bridged to it), the rest on a plain switch only; %d LoadBalancer Services (1 TCP port each)\n", p.Nodes, p.NodesOnBlock, p.Services)
	fmt.Fprintf(&b, "- Simulator: boot delay %s (%s in the realistic-boot phase; shutdown takes half the boot delay); latency 0 except the %s rows; faults: %.0f%% of `LoadBalancer.*` answered 503 and %.0f%% of every other operation answered 429\n", p.BootDelay, p.RealisticBoot, p.Latency, p.FaultRate*100, p.FaultRate*100)
	fmt.Fprintf(&b, "- Controller: `--node-status-update-frequency=%s --node-monitor-period=%s --concurrent-service-syncs=%d`, cloud-config `requestsPerSecond: %g` (every phase), `serverCacheTTLSec: %d`, `loadBalancer.sweepIntervalSec: %d`; retries: defaults (`retryMax` 5, 1–8 s waits); environment `MEMORY_LIMIT_MIB=%d` (the chart's default memory limit)\n",
		p.NodeStatusPeriod, p.NodeMonitorPeriod, p.ServiceWorkers, p.RequestsPerSecond, int(p.ServerCacheTTL.Seconds()), int(p.SweepInterval.Seconds()), p.MemoryLimitMiB)
	fmt.Fprintf(&b, "- Order: %d + %d Services created alone (zero and %s latency), %d alone with the realistic boot, all of them deleted alone; then %d created at once and the later phases on those %d; the fault run deletes them and creates %d\n",
		p.SequentialCreates, p.SequentialCreates, p.Latency, p.RealisticCreates, p.Services, p.Services, p.FaultCreates)
	fmt.Fprintf(&b, "- Steady-state windows: %s (no faults) and %s (faults)\n\n", p.SteadyWindow, p.FaultSteadyWindow)

	b.WriteString("### Targets\n\n| target | want | this run | |\n|---|---|---|---|\n")
	for _, t := range r.Targets() {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", cell(t.Name), cell(t.Want), cell(t.Got), t.verdict())
	}
	b.WriteString("\n### Figures\n\n| figure | measured | naive (same run) |\n|---|---|---|\n")
	for _, row := range r.Rows {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", cell(row.Figure), cell(row.Measured), cell(row.Naive))
	}
	b.WriteString("\n### Details\n\n")
	for _, row := range r.Rows {
		if row.Note != "" {
			fmt.Fprintf(&b, "- **%s**: %s\n", row.Figure, row.Note)
		}
	}
	b.WriteString("\nAppliance listings (simulator state):\n\n| when | appliances of this cluster | expected | duplicates | leaked | Services without one |\n|---|---|---|---|---|---|\n")
	for _, c := range r.Checks {
		missing := fmt.Sprint(c.Missing)
		if c.InProgress {
			missing += " (creates under way)"
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %s |\n", c.When, c.Appliances, c.Want, c.Duplicates, c.Leaks+c.Untagged, missing)
	}
	if r.UnitBench != "" {
		b.WriteString("\n### Unit benchmarks\n\n`go test -run '^$' -bench . -benchmem ./instances ./loadbalancer ./loadbalancer/engine` (iaas-api-go fake, counted by the client's Stats):\n\n```\n")
		b.WriteString(cleanBenchOutput(r.UnitBench))
		b.WriteString("\n```\n")
	}
	return b.String()
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
		}
	}
	return runtime.GOARCH
}

func goVersion() string {
	out, err := exec.Command("go", "env", "GOVERSION").Output()
	if err != nil {
		return runtime.Version()
	}
	return strings.TrimSpace(string(out))
}

// klogHeader matches a klog line header (I1125 21:46:29.444755   20194 file.go:127] ).
var klogHeader = regexp.MustCompile(`[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ [^ \]]+:\d+\] `)

// cleanBenchOutput keeps the `go test -bench` result lines: log lines the
// code under test printed are dropped, and a benchmark name whose result
// was pushed to a later line by them is joined with it again.
func cleanBenchOutput(raw string) string {
	var out []string
	pending := ""
	for _, l := range strings.Split(raw, "\n") {
		if loc := klogHeader.FindStringIndex(l); loc != nil {
			l = l[:loc[0]]
		}
		t := strings.TrimSpace(l)
		switch {
		case t == "":
			continue
		case strings.HasPrefix(t, "Benchmark") && !strings.Contains(t, "ns/op"):
			pending = t
		case pending != "" && strings.Contains(t, "ns/op"):
			out = append(out, pending+"\t"+t)
			pending = ""
		case strings.HasPrefix(t, "Benchmark"), strings.HasPrefix(t, "goos:"), strings.HasPrefix(t, "goarch:"),
			strings.HasPrefix(t, "pkg:"), strings.HasPrefix(t, "cpu:"), strings.HasPrefix(t, "ok "),
			strings.HasPrefix(t, "PASS"), strings.HasPrefix(t, "FAIL"), strings.HasPrefix(t, "---"):
			out = append(out, t)
		}
	}
	return strings.Join(out, "\n")
}
