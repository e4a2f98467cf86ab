package main

import (
	"os"
	"path/filepath"
	"testing"
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
