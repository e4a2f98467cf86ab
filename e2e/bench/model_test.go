package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	before := Counts{"LoadBalancer.Find": {"200": 5}}
	after := Counts{
		"LoadBalancer.Find":   {"200": 8, "429": 1},
		"LoadBalancer.Create": {"201": 2, "503": 1},
		"LoadBalancer.Config": {"409": 1},
		"Server.Find":         {"200": 3},
	}
	got := Summarize(after.Sub(before))
	want := Tally{Total: 11, Reads: 7, Writes: 4, Throttled: 2, Failed: 1}
	if got.Total != want.Total || got.Reads != want.Reads || got.Writes != want.Writes ||
		got.Throttled != want.Throttled || got.Failed != want.Failed {
		t.Errorf("Summarize = %+v, want %+v", got, want)
	}
	if n := WritesOK(after.Sub(before)); n != 2 {
		t.Errorf("WritesOK = %d, want 2 (only 2xx writes took effect)", n)
	}
	if s := got.OpsString(); s != "LoadBalancer.Find 4, LoadBalancer.Create 3, Server.Find 3, LoadBalancer.Config 1" {
		t.Errorf("OpsString = %q", s)
	}
}

func TestIsWrite(t *testing.T) {
	for op, want := range map[string]bool{
		"LoadBalancer.Create": true, "LoadBalancer.UpdateSettings": true, "LoadBalancer.Shutdown": true,
		"LoadBalancer.Find": false, "LoadBalancer.Status": false, "Server.Read": false, "Unknown": false,
	} {
		if IsWrite(op) != want {
			t.Errorf("IsWrite(%q) = %v, want %v", op, !want, want)
		}
	}
}

func TestNaive(t *testing.T) {
	n := Naive{ServiceSyncs: 100, NodePasses: 1, Nodes: 200, NodeReads: 1, Writes: 200}
	if n.Reads() != 401 || n.Total() != 601 {
		t.Errorf("Naive = %d reads, %d total; want 401, 601", n.Reads(), n.Total())
	}
}

// The checked-in topology is what the generator makes (regenerate with
// `go run ./bench -write-topology` from e2e/).
func TestTopologyUpToDate(t *testing.T) {
	p := defaultParams()
	b, err := os.ReadFile(filepath.Join("testdata", "topology.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != topologyYAML(p.Nodes, p.NodesOnBlock) {
		t.Error("testdata/topology.yaml is stale: run `go run ./bench -write-topology` in e2e/")
	}
	// Room for every appliance: 251 assignable, minus servers on the block,
	// minus the extra node's reserved address, two addresses per appliance.
	if free := 251 - p.NodesOnBlock - 1; free < 2*p.Services {
		t.Errorf("router block has %d free addresses for %d appliances", free, p.Services)
	}
}

func TestCleanBenchOutput(t *testing.T) {
	raw := "goos: linux\nBenchmarkAPICalls-2   \tI1125 21:46:29.466703   20194 loadbalancer.go:127] service default/web: created\n" +
		"I1125 21:46:29.473329   20194 loadbalancer.go:127] more\n" +
		"     100\t  123 ns/op\t 10.0 calls/create\nPASS\nok  \tpkg\t1.2s\n"
	want := "goos: linux\nBenchmarkAPICalls-2\t100\t  123 ns/op\t 10.0 calls/create\nPASS\nok  \tpkg\t1.2s"
	if got := cleanBenchOutput(raw); got != want {
		t.Errorf("cleanBenchOutput =\n%s\nwant\n%s", got, want)
	}
}

func TestPolls(t *testing.T) {
	c := func(find, create, status409, status200 int) Counts {
		return Counts{
			"LoadBalancer.Find":   {"200": find},
			"LoadBalancer.Create": {"201": create},
			"LoadBalancer.Status": {"409": status409, "200": status200},
			"Server.Find":         {"200": 1},
		}
	}
	created := func(x Counts) bool { return answered(x, "LoadBalancer.Create") > 0 }
	ticks := []tick{
		{counts: c(2, 0, 0, 0), status: "?"},
		{counts: c(3, 1, 0, 0), status: ""}, // the create's look: booting
		{counts: c(4, 1, 1, 1), status: ""}, // a poll, a 409 Status, a health read
		{counts: c(6, 1, 1, 1), status: ""},
		{counts: c(7, 1, 1, 1), status: "up"}, // the read that saw it up is not a poll
		{counts: c(8, 1, 1, 1), status: "up"},
	}
	polls, err := Polls(ticks, created, booting)
	if err != nil {
		t.Fatal(err)
	}
	if got := Summarize(polls); got.Total != 4 || got.ByOp["LoadBalancer.Find"] != 3 || got.ByOp["LoadBalancer.Status"] != 1 {
		t.Errorf("polls = %+v, want 3 finds and one 409 Status", got)
	}
	window := c(8, 1, 1, 1)
	rest, health := splitCalls(window, polls)
	if r := Summarize(rest); health != 1 || r.Total != 7 || r.Writes != 1 {
		t.Errorf("rest = %+v (%d health), want 7 calls with 1 write and 1 health read apart", r, health)
	}
	if _, err := Polls(ticks[:1], created, booting); err != errNoStart {
		t.Errorf("no create seen: err = %v", err)
	}
	// Up before the first look after the create: no polls.
	up := []tick{{counts: c(1, 0, 0, 0), status: "?"}, {counts: c(2, 1, 0, 0), status: "up"}, {counts: c(3, 1, 0, 0), status: "up"}}
	if p, err := Polls(up, created, booting); err != nil || Summarize(p).Total != 0 {
		t.Errorf("boot over at the first look: %v, %v", p, err)
	}
	// Never identified: an error, not every read counted as a poll.
	unknown := []tick{{counts: c(2, 1, 0, 0), status: "?"}, {counts: c(5, 1, 0, 0), status: "?"}}
	if _, err := Polls(unknown, created, booting); err != errNotWatched {
		t.Errorf("never identified: err = %v", err)
	}
}

// Looks count every appliance read after the start, the one that finds
// the transition over included: the Read that finds the appliance down
// is a shutdown look.
func TestLooks(t *testing.T) {
	c := func(find, read, shutdown, del int) Counts {
		return Counts{"Appliance.Find": {"200": find}, "LoadBalancer.Read": {"200": read},
			"LoadBalancer.Shutdown": {"202": shutdown}, "LoadBalancer.Delete": {"200": del}}
	}
	shut := func(x Counts) bool { return answered(x, "LoadBalancer.Shutdown") > 0 }
	ticks := []tick{
		{counts: c(1, 0, 0, 0), status: "up"},
		{counts: c(1, 0, 1, 0), status: "up"},
		{counts: c(1, 0, 1, 0), status: "down"},
		{counts: c(1, 1, 1, 0), status: "down"}, // the Read that finds it down
		{counts: c(1, 1, 1, 1), status: "gone"},
	}
	looks, err := Looks(ticks, shut)
	if err != nil || Summarize(looks).Total != 1 || Summarize(looks).ByOp["LoadBalancer.Read"] != 1 {
		t.Errorf("shutdown looks = %v, %v; want the one Read", looks, err)
	}
	if _, err := Looks(ticks[:1], shut); err != errNoStart {
		t.Errorf("no shutdown seen: err = %v", err)
	}
	if !IsApplianceRead("Appliance.Find", "200") {
		t.Error("the zone's listing is not counted as a look at an appliance")
	}
}

func TestShutdownPolls(t *testing.T) {
	c := func(find, read, shutdown, del int) Counts {
		return Counts{"LoadBalancer.Find": {"200": find}, "LoadBalancer.Read": {"200": read},
			"LoadBalancer.Shutdown": {"202": shutdown}, "LoadBalancer.Delete": {"200": del}}
	}
	shut := func(x Counts) bool { return answered(x, "LoadBalancer.Shutdown") > 0 }
	ticks := []tick{
		{counts: c(1, 0, 0, 0), status: "up"},
		{counts: c(1, 0, 1, 0), status: "up"},
		{counts: c(1, 1, 1, 0), status: "up"}, // read while shutting down
		{counts: c(1, 2, 1, 0), status: "down"},
		{counts: c(1, 2, 1, 1), status: "gone"},
	}
	polls, err := Polls(ticks, shut, shuttingDown)
	if err != nil || Summarize(polls).Total != 1 || Summarize(polls).ByOp["LoadBalancer.Read"] != 1 {
		t.Errorf("shutdown polls = %v, %v; want one Read", polls, err)
	}
}

func TestBulkFloor(t *testing.T) {
	r := BulkResult{N: 100, Took: 90 * time.Second, Writes: 100, BootPolls: 150, RPS: 5, Boot: 2 * time.Second}
	if r.Floor() != 52*time.Second {
		t.Errorf("floor = %s, want 52s (250 calls at 5/s + 2s boot)", r.Floor())
	}
	if got := r.Ratio(); got < 1.73 || got > 1.74 {
		t.Errorf("ratio = %.3f, want 90/52", got)
	}
}

func TestMedianInt(t *testing.T) {
	if m := medianInt([]int{5, 1, 9, 4}); m != 5 {
		t.Errorf("median = %d, want 5 (the upper middle)", m)
	}
	if m := medianInt([]int{3, 1, 2}); m != 2 {
		t.Errorf("median = %d, want 2", m)
	}
}

func TestCountsAdd(t *testing.T) {
	a := Counts{"X.Find": {"200": 1}}
	b := Counts{"X.Find": {"200": 2, "429": 1}, "Y.Read": {"200": 1}}
	if s := Summarize(a.Add(b)); s.Total != 5 || s.Throttled != 1 {
		t.Errorf("Add = %+v", s)
	}
}

func TestBulkBootPolls(t *testing.T) {
	t0 := time.Now()
	c := func(find, create int) Counts {
		return Counts{"LoadBalancer.Find": {"200": find}, "LoadBalancer.Create": {"201": create}, "Switch.Read": {"200": create}}
	}
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	ticks := []tick{
		{sent: at(0), at: at(1), counts: c(0, 0)},
		{sent: at(100), at: at(101), counts: c(20, 9)},
		{sent: at(200), at: at(201), counts: c(25, 10)}, // the last create
		{sent: at(1200), at: at(1201), counts: c(28, 10)},
		{sent: at(2000), at: at(2001), counts: c(30, 10)}, // arrived before 100ms + 2s: still polls
		{sent: at(2300), at: at(2301), counts: c(34, 10)}, // after the boot
	}
	r := bulkBootPolls(ticks, c(34, 10), 10, 2*time.Second, 3)
	if r.Reads != 34 || r.Tail != 5 || r.Estimate != 4 || r.Polls != 5 {
		t.Errorf("bulk polls = %+v, want 34 reads, tail 5, estimate 34-30=4, polls 5", r)
	}
	if r := bulkBootPolls(ticks, c(34, 10), 10, 2*time.Second, 1); r.Estimate != 24 || r.Polls != 24 {
		t.Errorf("bulk polls = %+v, want the estimate 24", r)
	}
}
