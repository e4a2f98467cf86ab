// Command bench runs the real sakura-cloud-controller-manager binary against
// the SAKURA API simulator and a real kube-apiserver (e2e/cluster), counts
// the API calls the simulator receives in each phase (Service create, no-op
// resync, node added, delete, steady state, and the same under 30% 429/503
// answers, and endpoint churn behind externalTrafficPolicy: Local), measures the controller's RSS and CPU, and writes
// docs/benchmarks.md. It is not part of `make test`; run it with `make bench`
// or, from e2e/, `go run ./bench -out ../docs/benchmarks.md`.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/e2e/cluster"
)

// Params are the benchmark's knobs. requestsPerSecond 5 sets the pace of
// every phase; the defaults take about 20 minutes on 2 cores, and the
// fault run's limit keeps a slow controller under about 30.
type Params struct {
	Nodes, NodesOnBlock, Services, SequentialCreates int
	// FaultCreates Services are created with faults on (after the first
	// Services are deleted with faults on); the bench waits at most
	// FaultCreateLimit for their EXTERNAL-IPs, to bound the run's length.
	FaultCreates     int
	FaultCreateLimit time.Duration
	BootDelay        time.Duration
	// RealisticBoot is the boot delay of the realistic-boot phase, in which
	// RealisticCreates Services are created one at a time.
	RealisticBoot    time.Duration
	RealisticCreates int
	// MemoryLimitMiB is passed to the controller as MEMORY_LIMIT_MIB (the
	// chart's default memory limit, from the downward API).
	MemoryLimitMiB                      int
	Latency                             time.Duration
	FaultRate                           float64
	NodeStatusPeriod, NodeMonitorPeriod time.Duration
	SweepInterval, ServerCacheTTL       time.Duration
	SteadyWindow, FaultSteadyWindow     time.Duration
	RequestsPerSecond                   float64
	ServiceWorkers                      int
	// ChurnWindow is how long pods move and blip, one of each per ChurnEvery.
	ChurnWindow, ChurnEvery time.Duration
}

func defaultParams() Params {
	return Params{
		Nodes: 200, NodesOnBlock: 40, Services: 100, SequentialCreates: 3, FaultCreates: 100,
		BootDelay: 2 * time.Second, Latency: 100 * time.Millisecond, FaultRate: 0.3,
		RealisticBoot: 60 * time.Second, RealisticCreates: 3,
		MemoryLimitMiB: 256, FaultCreateLimit: 8 * time.Minute,
		NodeStatusPeriod: 15 * time.Second, NodeMonitorPeriod: 5 * time.Second,
		SweepInterval: 20 * time.Second, ServerCacheTTL: 60 * time.Second,
		SteadyWindow: 60 * time.Second, FaultSteadyWindow: 30 * time.Second,
		RequestsPerSecond: 5, ServiceWorkers: 10,
		ChurnWindow: 60 * time.Second, ChurnEvery: time.Second,
	}
}

func main() {
	p := defaultParams()
	out := flag.String("out", "", "write the Markdown report here (e.g. ../docs/benchmarks.md)")
	unitBench := flag.String("unit-bench", "", "file with `go test -bench` output to include in the report")
	writeTopo := flag.Bool("write-topology", false, "regenerate bench/testdata/topology.yaml and exit")
	keep := flag.Bool("keep-logs", false, "keep the run's logs even when it succeeds")
	flag.IntVar(&p.Services, "services", p.Services, "LoadBalancer Services")
	flag.DurationVar(&p.SteadyWindow, "steady", p.SteadyWindow, "steady-state window")
	flag.IntVar(&p.FaultCreates, "fault-creates", 0, "Services created in the fault run (0: as many as -services)")
	flag.DurationVar(&p.RealisticBoot, "realistic-boot", p.RealisticBoot, "boot delay of the realistic-boot phase")
	flag.DurationVar(&p.ChurnWindow, "churn", p.ChurnWindow, "endpoint churn window")
	flag.DurationVar(&p.FaultCreateLimit, "fault-create-limit", p.FaultCreateLimit, "longest wait for the fault run's EXTERNAL-IPs")
	flag.Parse()
	if p.FaultCreates == 0 {
		p.FaultCreates = p.Services
	}

	topo := filepath.Join("bench", "testdata", "topology.yaml")
	if *writeTopo {
		if err := os.WriteFile(topo, []byte(topologyYAML(p.Nodes, p.NodesOnBlock)), 0o644); err != nil {
			fatal(err)
		}
		return
	}
	topo, err := filepath.Abs(topo)
	if err != nil {
		fatal(err)
	}
	if _, err := os.Stat(topo); err != nil {
		fatal(fmt.Errorf("run from the e2e module directory: %w", err))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	start := time.Now()
	// kube-controller-manager runs Deployments and EndpointSlices for the
	// endpoint-following phases.
	c, err := cluster.Start(ctx, cluster.Options{Logf: logf, ControllerManager: true})
	if err != nil {
		fatal(fmt.Errorf("control plane: %w", err))
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		c.Stop()
		os.Exit(130)
	}()
	b := &bench{p: p, c: c, topo: topo, rep: newReport(p)}
	err = b.run(ctx)
	if err != nil || *keep {
		c.StopKeepLogs()
		logf("logs kept in %s", c.Dir)
	} else {
		c.Stop()
	}
	if err != nil {
		fatal(err)
	}
	b.rep.Duration = time.Since(start)
	if *unitBench != "" {
		if raw, err := os.ReadFile(*unitBench); err == nil {
			b.rep.UnitBench = string(raw)
		}
	}
	fmt.Println(b.rep.Table())
	if *out != "" {
		if err := os.WriteFile(*out, []byte(b.rep.Markdown()), 0o644); err != nil {
			fatal(err)
		}
		logf("wrote %s", *out)
	}
}

func logf(format string, args ...any) {
	fmt.Printf("bench %s: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func fatal(err error) {
	fmt.Fprintf(os.Stderr, "bench: %v\n", err)
	os.Exit(1)
}
