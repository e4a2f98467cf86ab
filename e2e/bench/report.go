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
	Latency, Median, Max, Overhead time.Duration
	N                              int
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
}

// FaultResult is the run with 429/503 answers.
type FaultResult struct {
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
	CreateCalls float64
	DeleteCalls float64
	PeakRSSKB   int
	UnitBench   string
}

func newReport(p Params) *Report { return &Report{P: p, Date: time.Now().UTC()} }

func (r *Report) add(row Row) {
	r.Rows = append(r.Rows, row)
	logf("%s: %s (naive %s)", row.Figure, row.Measured, row.Naive)
}

// Target is one of issue 7's targets, judged on this run.
type Target struct {
	Name, Want, Got string
	Met             bool
}

// Targets judges the run.
func (r *Report) Targets() []Target {
	var out []Target
	out = append(out, Target{"no-op resync makes no writes", "0 writes", fmt.Sprintf("%d writes", r.NoopWrites), r.NoopWrites == 0})
	for _, s := range r.Steady {
		if s.Faults {
			continue
		}
		// One read per node and per Service per minute is already O(N+S);
		// anything proportional to N×S would be far above it.
		bound := float64(r.P.Nodes + r.P.Services)
		got := s.ReadsPerMin + s.WritesPerMin
		out = append(out, Target{"steady-state calls/min do not grow with nodes × Services",
			fmt.Sprintf("< nodes + Services = %.0f /min (naive here: %.0f /min)", bound, s.NaivePerMin),
			fmt.Sprintf("%.1f /min", got), got < bound})
	}
	for _, l := range r.Latency {
		out = append(out, Target{fmt.Sprintf("CCM overhead to EXTERNAL-IP beyond the boot delay (%s API latency)", latName(l.Latency)),
			"< 2s", fmt.Sprintf("%.2fs median, %.2fs max", l.Overhead.Seconds(), (l.Max - r.P.BootDelay).Seconds()), l.Overhead < 2*time.Second})
	}
	out = append(out, Target{fmt.Sprintf("RSS at %d nodes × %d Services", r.P.Nodes, r.P.Services), "< 100 MB",
		fmt.Sprintf("%s peak over the whole run; %s at the end of the steady window (%s)", mb(r.PeakRSSKB), mb(r.steadyRSS().RSSLastKB), r.steadyRSS().split()), r.PeakRSSKB > 0 && r.PeakRSSKB < 100*1024})
	dups, leaks, missing := 0, 0, 0
	for _, c := range r.Checks {
		dups += c.Duplicates
		leaks += c.Leaks + c.Untagged
		missing += c.Missing
		if c.Want == 0 {
			leaks += c.Appliances
		}
	}
	out = append(out, Target{"duplicates or leaks (with and without faults)", "0",
		fmt.Sprintf("%d duplicates, %d leaked, %d Services without appliance", dups, leaks, missing), dups == 0 && leaks == 0 && missing == 0})
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
		fmt.Fprintf(&b, "  [%s] %s: want %s, got %s\n", metStr(t.Met), t.Name, t.Want, t.Got)
	}
	return b.String()
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
	fmt.Fprintf(&b, "- Scale: %d nodes (servers; %d with a NIC on the /24 router+switch, the rest on a plain switch only), %d LoadBalancer Services (1 TCP port each)\n", p.Nodes, p.NodesOnBlock, p.Services)
	fmt.Fprintf(&b, "- Simulator: boot delay %s; latency 0 except the %s row; faults: %.0f%% of `LoadBalancer.*` answered 503 and %.0f%% of every other operation answered 429\n", p.BootDelay, p.Latency, p.FaultRate*100, p.FaultRate*100)
	fmt.Fprintf(&b, "- Controller: `--node-status-update-frequency=%s --node-monitor-period=%s --concurrent-service-syncs=%d`, cloud-config `requestsPerSecond: %g`, `serverCacheTTLSec: %d`, `loadBalancer.sweepIntervalSec: %d`; retries: defaults (`retryMax` 5, 1–8 s waits)\n",
		p.NodeStatusPeriod, p.NodeMonitorPeriod, p.ServiceWorkers, p.RequestsPerSecond, int(p.ServerCacheTTL.Seconds()), int(p.SweepInterval.Seconds()))
	fmt.Fprintf(&b, "- Steady-state windows: %s (no faults) and %s (faults)\n\n", p.SteadyWindow, p.FaultSteadyWindow)

	b.WriteString("### Targets\n\n| target | want | this run | |\n|---|---|---|---|\n")
	for _, t := range r.Targets() {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", cell(t.Name), cell(t.Want), cell(t.Got), metStr(t.Met))
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
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d |\n", c.When, c.Appliances, c.Want, c.Duplicates, c.Leaks+c.Untagged, c.Missing)
	}
	if r.UnitBench != "" {
		b.WriteString("\n### Unit benchmarks\n\n`go test -run '^$' -bench . -benchmem ./instances ./loadbalancer` (iaas-api-go fake, counted by the client's Stats):\n\n```\n")
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
