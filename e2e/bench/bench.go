package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/e2e/cluster"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/e2e/sakurasim"
)

const (
	clusterID = "bench"
	namespace = "bench"
	// Tags the controller puts on its appliances (docs/load-balancers.md).
	clusterTag    = "k8s.usacloud.jp/cluster=" + clusterID
	serviceTagKey = "k8s.usacloud.jp/service-uid="

	// Log lines of k8s.io/cloud-provider v0.37 controllers (--v=2) that mark
	// one pass each; the naive figures are computed from their counts.
	logEnsure     = "Ensuring load balancer for service"
	logDelete     = "Deleting existing load balancer for service"
	logUpdate     = "Updating backends for load balancer"
	logNodeStatus = "nodes status took"
)

type bench struct {
	p    Params
	c    *cluster.Cluster
	topo string
	rep  *Report
	kube kubernetes.Interface
	sim  *cluster.Simulator
	ccm  *cluster.CCM
	rss  *rssSampler
	// created counts Services made so far (names are unique per run).
	created    int
	ccmStarted time.Time
}

// phase is one measured interval.
type phase struct {
	b       *bench
	counts  Counts
	logOff  int64
	cpu     time.Duration
	started time.Time
}

func (b *bench) begin(ctx context.Context) (*phase, error) {
	if crashed, why := b.ccm.Crashed(); crashed {
		return nil, fmt.Errorf("controller crashed: %s", why)
	}
	c, err := b.counts(ctx)
	if err != nil {
		return nil, err
	}
	cpu, _ := cpuTime(b.ccm.Process.Pid())
	b.rss.Mark()
	return &phase{b: b, counts: c, logOff: logSize(b.ccm.LogFile), cpu: cpu, started: time.Now()}, nil
}

// end returns the requests since begin, the elapsed time and the
// controller's CPU time in the phase.
func (ph *phase) end(ctx context.Context) (Counts, time.Duration, time.Duration, error) {
	c, err := ph.b.counts(ctx)
	if err != nil {
		return nil, 0, 0, err
	}
	cpu, _ := cpuTime(ph.b.ccm.Process.Pid())
	return c.Sub(ph.counts), time.Since(ph.started), cpu - ph.cpu, nil
}

// settle is how long the API must have been idle (quiet), waited for at
// most limit; the zero value does not wait.
type settle struct{ quiet, limit time.Duration }

// Settles used around phases.
var (
	settleShort = settle{time.Second, 10 * time.Second}
	settleUsual = settle{2 * time.Second, 20 * time.Second}
)

// measurement is what one phase cost.
type measurement struct {
	*phase
	counts       Counts
	tally        Tally
	elapsed, cpu time.Duration
}

// measure waits for before, runs work as one measured phase, waits for
// after, and returns the phase's cost.
func (b *bench) measure(ctx context.Context, before, after settle, work func(*phase) error) (measurement, error) {
	if err := b.settle(ctx, before); err != nil {
		return measurement{}, err
	}
	ph, err := b.begin(ctx)
	if err != nil {
		return measurement{}, err
	}
	if err := work(ph); err != nil {
		return measurement{}, err
	}
	if err := b.settle(ctx, after); err != nil {
		return measurement{}, err
	}
	d, el, cpu, err := ph.end(ctx)
	if err != nil {
		return measurement{}, err
	}
	return measurement{phase: ph, counts: d, tally: Summarize(d), elapsed: el, cpu: cpu}, nil
}

func (b *bench) settle(ctx context.Context, s settle) error {
	if s.limit == 0 {
		return nil
	}
	return b.waitQuiet(ctx, s.quiet, s.limit)
}

func (ph *phase) logCount(substr string) int {
	return countInLog(ph.b.ccm.LogFile, ph.logOff, substr)
}

func (b *bench) counts(ctx context.Context) (Counts, error) {
	var st sakurasim.RequestStats
	if err := b.sim.Admin(ctx, http.MethodGet, "/requests", nil, &st); err != nil {
		return nil, err
	}
	out := Counts{}
	for op, o := range st.Operations {
		out[op] = map[string]int{}
		for s, n := range o.ByStatus {
			out[op][s] = n
		}
	}
	return out, nil
}

func (b *bench) run(ctx context.Context) error {
	p := b.p
	// The harness's admin client is limited to 50 QPS; registering 200
	// Nodes and 100 Services goes faster with a roomier one.
	cfg := rest.CopyConfig(b.c.Config)
	cfg.QPS, cfg.Burst = 500, 1000
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	b.c.Client, b.kube = kube, kube

	b.sim, err = b.c.StartSimulator(ctx, cluster.SimulatorOptions{Topology: b.topo, BootDelay: p.BootDelay, Name: "sim-bench"})
	if err != nil {
		return err
	}
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	logf("registering %d nodes", p.Nodes)
	if err := b.registerNodes(ctx, p.Nodes); err != nil {
		return err
	}
	b.ccmStarted = time.Now()
	b.ccm, err = b.c.StartCCM(ctx, cluster.CCMOptions{
		Simulator: b.sim, ClusterID: clusterID, Name: "ccm-bench", NoLeaderElect: true,
		// The Go runtime's GC trace (stderr, into the log) shows how much of
		// the RSS is live heap. MEMORY_LIMIT_MIB is what the chart passes
		// from the container's memory limit (downward API).
		Env: []string{"GODEBUG=gctrace=1", fmt.Sprintf("MEMORY_LIMIT_MIB=%d", p.MemoryLimitMiB)},
		Extra: map[string]any{
			"zones":             benchZones,
			"requestsPerSecond": p.RequestsPerSecond,
			"serverCacheTTLSec": int(p.ServerCacheTTL.Seconds()),
			"loadBalancer": map[string]any{
				"reservedIPRanges": []string{extraNodeIP},
				"sweepIntervalSec": int(p.SweepInterval.Seconds()),
			},
		},
		Args: []string{
			"--node-status-update-frequency=" + p.NodeStatusPeriod.String(),
			"--node-monitor-period=" + p.NodeMonitorPeriod.String(),
			fmt.Sprintf("--concurrent-service-syncs=%d", p.ServiceWorkers),
		},
	})
	if err != nil {
		return err
	}
	b.rss = &rssSampler{pid: b.ccm.Process.Pid()}
	stop := make(chan struct{})
	defer close(stop)
	go b.rss.run(stop, time.Second)

	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"node initialisation", b.phaseNodeInit},
		{"sequential creates", b.phaseSequential},
		{"realistic boot", b.phaseRealisticBoot},
		{"deletes, one at a time", b.phaseDeletesAlone},
		{"bulk create", b.phaseBulkCreate},
		{"no-op resync", b.phaseNoopResync},
		{"steady state", func(ctx context.Context) error { return b.phaseSteady(ctx, p.SteadyWindow, false) }},
		{"node added", b.phaseNodeAdded},
		{"endpoints: switch to Local", b.phaseEndpointsLocal},
		{"endpoints: churn", b.phaseEndpointChurn},
		{"faults on", b.faultsOn},
		{"faults: steady state", func(ctx context.Context) error { return b.phaseSteady(ctx, p.FaultSteadyWindow, true) }},
		{"faults: delete", func(ctx context.Context) error { return b.phaseDelete(ctx, true) }},
		{"faults: create", b.phaseFaultCreate},
	}
	for _, s := range steps {
		logf("phase: %s", s.name)
		if err := s.fn(ctx); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	_, _, overall := b.rss.Peak()
	b.rep.PeakRSSKB = overall
	return nil
}

func (b *bench) registerNodes(ctx context.Context, n int) error {
	names := make(chan string)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range names {
				if _, err := b.c.RegisterNode(ctx, cluster.NodeSpec{Name: name}); err != nil {
					errs <- err
				}
			}
		}()
	}
	for i := 1; i <= n; i++ {
		names <- serverName(i)
	}
	close(names)
	wg.Wait()
	close(errs)
	return <-errs
}

// initialized counts Nodes with a providerID and without the uninitialized taint.
func (b *bench) initialized(ctx context.Context) (int, int, error) {
	l, err := b.kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0, 0, err
	}
	done := 0
	for _, n := range l.Items {
		tainted := false
		for _, t := range n.Spec.Taints {
			tainted = tainted || t.Key == cluster.TaintUninitialized
		}
		if n.Spec.ProviderID != "" && !tainted {
			done++
		}
	}
	return done, len(l.Items), nil
}

func (b *bench) waitNodesInitialized(ctx context.Context, want int, limit time.Duration) error {
	return pollUntil(ctx, limit, 500*time.Millisecond, func() (bool, error) {
		if crashed, why := b.ccm.Crashed(); crashed {
			return false, fmt.Errorf("controller crashed: %s", why)
		}
		done, _, err := b.initialized(ctx)
		return err == nil && done >= want, nil
	})
}

// waitQuiet waits until the simulator has seen no API request for quiet
// (admin calls are not counted), at most limit. The health poll's Status
// reads of running appliances do not count either: at requestsPerSecond 5
// it reads one appliance a second without pause once there are 60 or
// more, and the API would never be quiet.
func (b *bench) waitQuiet(ctx context.Context, quiet, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	last, since := -1, time.Now()
	for time.Now().Before(deadline) {
		var st sakurasim.RequestStats
		if err := b.sim.Admin(ctx, http.MethodGet, "/requests", nil, &st); err != nil {
			return err
		}
		total := st.Total - Summarize(countsOf(st).Filter(IsHealthRead)).Total
		if total != last {
			last, since = total, time.Now()
		} else if time.Since(since) >= quiet {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	return nil // a periodic loop may keep it busy; the phase is still measured
}

func (b *bench) phaseNodeInit(ctx context.Context) error {
	// The controller started after the Nodes registered: its first pass
	// initialises all of them at once.
	ph := &phase{b: b, counts: Counts{}, logOff: 0, started: b.ccmStarted}
	if err := b.waitNodesInitialized(ctx, b.p.Nodes, 3*time.Minute); err != nil {
		return fmt.Errorf("nodes not initialised: %w", err)
	}
	took := time.Since(ph.started)
	if err := b.waitQuiet(ctx, 2*time.Second, 20*time.Second); err != nil {
		return err
	}
	d, _, _, err := ph.end(ctx)
	if err != nil {
		return err
	}
	t := Summarize(d)
	b.rep.add(Row{
		Figure:   fmt.Sprintf("initialise %d new Nodes (controller start)", b.p.Nodes),
		Measured: callsStr(t), Naive: naiveStr(Naive{NodeReads: b.p.Nodes, Writes: WritesOK(d)}),
		Note: fmt.Sprintf("all initialised %.1fs after start; %s", took.Seconds(), t.OpsString()),
	})
	return nil
}

// newService returns a LoadBalancer Service with one TCP port.
func (b *bench) newService() *corev1.Service {
	b.created++
	name := fmt.Sprintf("svc-%03d", b.created)
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeLoadBalancer,
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}},
		},
	}
}

func externalIP(s *corev1.Service) string {
	for _, in := range s.Status.LoadBalancer.Ingress {
		if in.IP != "" {
			return in.IP
		}
	}
	return ""
}

func latName(d time.Duration) string {
	if d == 0 {
		return "zero"
	}
	return d.String()
}

// createMany creates n Services at once and waits for every EXTERNAL-IP.
func (b *bench) createMany(ctx context.Context, n int, limit time.Duration) (time.Duration, error) {
	took, done, err := b.createManyUpTo(ctx, n, limit)
	if err == nil && done < n {
		err = fmt.Errorf("%d of %d Services without EXTERNAL-IP after %s", n-done, n, limit)
	}
	return took, err
}

// createManyUpTo creates n Services at once and waits for every
// EXTERNAL-IP, at most limit; it returns how many had one by then.
func (b *bench) createManyUpTo(ctx context.Context, n int, limit time.Duration) (time.Duration, int, error) {
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	svcs := make(chan *corev1.Service, n)
	for i := 0; i < n; i++ {
		svcs <- b.newService()
	}
	close(svcs)
	for w := 0; w < 10; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range svcs {
				if _, err := b.kube.CoreV1().Services(namespace).Create(ctx, s, metav1.CreateOptions{}); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return 0, 0, err
	}
	done := 0
	deadline := time.Now().Add(limit)
	for {
		if crashed, why := b.ccm.Crashed(); crashed {
			return 0, done, fmt.Errorf("controller crashed: %s", why)
		}
		if l, err := b.kube.CoreV1().Services(namespace).List(ctx, metav1.ListOptions{}); err == nil {
			done = 0
			for i := range l.Items {
				if externalIP(&l.Items[i]) != "" {
					done++
				}
			}
			if done == len(l.Items) {
				return time.Since(start), done, nil
			}
		}
		if time.Now().After(deadline) {
			return time.Since(start), done, nil
		}
		select {
		case <-ctx.Done():
			return 0, done, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (b *bench) phaseBulkCreate(ctx context.Context) error {
	p := b.p
	n := p.Services
	if l, err := b.kube.CoreV1().Services(namespace).List(ctx, metav1.ListOptions{}); err != nil {
		return err
	} else if len(l.Items) > 0 {
		return fmt.Errorf("%d Services left before the bulk create", len(l.Items))
	}
	var took time.Duration
	var ticks []tick
	m, err := b.measure(ctx, settleUsual, settleUsual, func(*phase) (err error) {
		smp := startSampler(ctx, b.sim, 100*time.Millisecond, "", nil, nil)
		took, err = b.createMany(ctx, n, 10*time.Minute)
		ticks = smp.Stop()
		return err
	})
	if err != nil {
		return err
	}
	ph, t, d := m.phase, m.tally, m.counts
	syncs := ph.logCount(logEnsure)
	peak, _, _ := b.rss.Peak()
	bp := bulkBootPolls(ticks, d, n, p.BootDelay, b.rep.CreateStats.RestApplianceReads)
	pollSyncs := countLines(b.ccm.LogFile, ph.logOff, "error processing service "+namespace+"/", "is not up yet")
	r := BulkResult{N: n, Took: took, Writes: WritesOK(d), BootPolls: bp.Polls, RPS: p.RequestsPerSecond, Boot: p.BootDelay}
	b.rep.Bulk = &r
	b.rep.add(Row{
		Figure: fmt.Sprintf("create %d Services at once: all EXTERNAL-IPs", n),
		Measured: fmt.Sprintf("%.1fs; floor %.1fs = (%d writes + %d boot polls) ÷ %g/s + %s boot; measured/floor %.2f×; %s (%.1f per Service); controller RSS peak %s",
			took.Seconds(), r.Floor().Seconds(), r.Writes, r.BootPolls, r.RPS, r.Boot, r.Ratio(), callsStr(t), float64(t.Total)/float64(n), mb(peak)),
		Naive: naiveStr(Naive{ServiceSyncs: syncs, NodePasses: n, Nodes: p.Nodes, Writes: WritesOK(d)}),
		Note: fmt.Sprintf("boot polls: %d appliance reads in the phase less %d × %.1f that creates measured alone make without polls = %d, at least the %d made between the last create and the end of its boot; %d syncs, %d of them found the appliance booting; %s; %s",
			bp.Reads, n, b.rep.CreateStats.RestApplianceReads, bp.Estimate, bp.Tail, syncs, pollSyncs, t.OpsString(), ph.lastGC()),
	})
	return b.checkAppliances(ctx, n, "after the bulk create")
}

// checkAppliances lists the simulator's load balancers: exactly one of this
// cluster's per Service UID, want in all (0 after deleting everything).
func (b *bench) checkAppliances(ctx context.Context, want int, when string) error {
	return b.checkAppliancesAt(ctx, want, when, false)
}

// checkAppliancesInProgress lists while creates are still under way: a
// Service without an appliance is not a failure of the listing.
func (b *bench) checkAppliancesInProgress(ctx context.Context, want int, when string) error {
	return b.checkAppliancesAt(ctx, want, when, true)
}

func (b *bench) checkAppliancesAt(ctx context.Context, want int, when string, inProgress bool) error {
	var st sakurasim.State
	if err := b.sim.Admin(ctx, http.MethodGet, "/state", nil, &st); err != nil {
		return err
	}
	perUID := map[string]int{}
	ours, untagged := 0, 0
	for _, lb := range st.LoadBalancers {
		if !hasTag(lb.Tags, clusterTag) {
			continue
		}
		ours++
		uid := ""
		for _, t := range lb.Tags {
			if v, ok := strings.CutPrefix(t, serviceTagKey); ok {
				uid = v
			}
		}
		if uid == "" {
			untagged++
		}
		perUID[uid]++
	}
	dups := 0
	for _, n := range perUID {
		dups += n - 1
	}
	svcs, err := b.kube.CoreV1().Services(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	missing := 0
	for _, s := range svcs.Items {
		if perUID[string(s.UID)] == 0 {
			missing++
		}
	}
	leaks := 0
	live := map[string]bool{}
	for _, s := range svcs.Items {
		live[string(s.UID)] = true
	}
	for uid, n := range perUID {
		if !live[uid] {
			leaks += n
		}
	}
	b.rep.Checks = append(b.rep.Checks, Check{When: when, Appliances: ours, Want: want, Duplicates: dups, Leaks: leaks, Missing: missing, Untagged: untagged, InProgress: inProgress})
	logf("check %s: %d appliances (want %d), %d duplicates, %d leaked, %d Services without one", when, ours, want, dups, leaks, missing)
	return nil
}

func hasTag(tags []string, t string) bool {
	for _, x := range tags {
		if x == t {
			return true
		}
	}
	return false
}

func (b *bench) phaseNoopResync(ctx context.Context) error {
	var want int
	m, err := b.measure(ctx, settleUsual, settle{2 * time.Second, 30 * time.Second}, func(ph *phase) error {
		l, err := b.kube.CoreV1().Services(namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		// An annotation change makes the service controller sync the Service
		// (needsUpdate compares annotations) with nothing to change in the cloud.
		patch := []byte(fmt.Sprintf(`{"metadata":{"annotations":{"bench.sakura-ccm/touched":%q}}}`, time.Now().Format(time.RFC3339Nano)))
		for _, s := range l.Items {
			if _, err := b.kube.CoreV1().Services(namespace).Patch(ctx, s.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
				return err
			}
		}
		want = len(l.Items)
		_ = pollUntil(ctx, time.Minute, 250*time.Millisecond, func() (bool, error) { return ph.logCount(logEnsure) >= want, nil })
		return nil
	})
	if err != nil {
		return err
	}
	t := m.tally
	syncs := m.logCount(logEnsure)
	b.rep.NoopWrites = t.Writes
	b.rep.add(Row{
		Figure:   fmt.Sprintf("no-op resync of all %d Services (annotation touched)", want),
		Measured: fmt.Sprintf("%s (%.2f per Service)", callsStr(t), float64(t.Total)/float64(max(want, 1))),
		Naive:    naiveStr(Naive{ServiceSyncs: syncs, NodePasses: 1, Nodes: b.p.Nodes}),
		Note:     fmt.Sprintf("%d syncs; %s", syncs, t.OpsString()),
	})
	return nil
}

func (b *bench) phaseSteady(ctx context.Context, window time.Duration, faults bool) error {
	p := b.p
	m, err := b.measure(ctx, settleUsual, settle{}, func(*phase) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(window):
			return nil
		}
	})
	if err != nil {
		return err
	}
	ph, t, d, el, cpu := m.phase, m.tally, m.counts, m.elapsed, m.cpu
	peak, last, _ := b.rss.Peak()
	min := el.Minutes()
	passes := ph.logCount(logNodeStatus)
	updates := ph.logCount(logUpdate) + ph.logCount(logEnsure)
	naive := Naive{ServiceSyncs: updates, NodePasses: passes, Nodes: p.Nodes, Writes: WritesOK(d)}
	label := "steady state"
	if faults {
		label = fmt.Sprintf("steady state with %.0f%% 429/503", p.FaultRate*100)
	}
	s := SteadyResult{Faults: faults, Window: el, ReadsPerMin: float64(t.Reads) / min, WritesPerMin: float64(t.Writes) / min,
		NaivePerMin: float64(naive.Total()) / min, RSSPeakKB: peak, RSSLastKB: last, CPUPercent: 100 * cpu.Seconds() / el.Seconds(),
		NodeStatusPasses: passes, Throttled: t.Throttled}
	anon, file := rssSplit(b.ccm.Process.Pid())
	s.RSSAnonKB, s.RSSFileKB = anon, file
	b.rep.Steady = append(b.rep.Steady, s)
	b.rep.add(Row{
		Figure: fmt.Sprintf("%s, %d nodes in two zones × %d Services: calls/min (%.0fs window, %d node-status passes)",
			label, p.Nodes, b.p.Services, el.Seconds(), passes),
		Measured: fmt.Sprintf("%.1f reads + %.1f writes /min", s.ReadsPerMin, s.WritesPerMin),
		Naive:    fmt.Sprintf("%.0f /min", s.NaivePerMin),
		Note:     fmt.Sprintf("%s; %d answered 429/503", t.OpsString(), t.Throttled),
	})
	b.rep.add(Row{
		Figure:   fmt.Sprintf("%s: controller RSS and CPU", label),
		Measured: fmt.Sprintf("RSS %s (peak %s; now %s anonymous + %s the binary's file pages), CPU %.1f%% of one core", mb(last), mb(peak), mb(anon), mb(file), s.CPUPercent),
		Naive:    "-",
		Note:     ph.lastGC(),
	})
	return nil
}

func (b *bench) phaseNodeAdded(ctx context.Context) error {
	want := b.p.Services
	m, err := b.measure(ctx, settleUsual, settle{3 * time.Second, 60 * time.Second}, func(ph *phase) error {
		if _, err := b.sim.AddServer(ctx, extraServerSpec()); err != nil {
			return err
		}
		if _, err := b.c.RegisterNode(ctx, cluster.NodeSpec{Name: extraNode}); err != nil {
			return err
		}
		if err := b.waitNodesInitialized(ctx, b.p.Nodes+1, time.Minute); err != nil {
			return err
		}
		_ = pollUntil(ctx, 2*time.Minute, 250*time.Millisecond, func() (bool, error) { return ph.logCount(logUpdate) >= want, nil })
		return nil
	})
	if err != nil {
		return err
	}
	t, d, el := m.tally, m.counts, m.elapsed
	updates := m.logCount(logUpdate)
	b.rep.add(Row{
		Figure:   fmt.Sprintf("node added (%s, sorts into every LB's 40 real servers), %d Services", extraNode, want),
		Measured: fmt.Sprintf("%s (%.2f per Service); settled in %.1fs", callsStr(t), float64(t.Total)/float64(want), el.Seconds()),
		Naive:    naiveStr(Naive{ServiceSyncs: updates, NodePasses: 1, Nodes: b.p.Nodes + 1, NodeReads: 1, Writes: WritesOK(d)}),
		Note:     fmt.Sprintf("%d UpdateLoadBalancer calls; %s", updates, t.OpsString()),
	})
	return nil
}

// deleteAll deletes every Service and waits until they are gone (the
// controller removes its finalizer after the appliance is deleted).
func (b *bench) deleteAll(ctx context.Context, limit time.Duration) (int, time.Duration, error) {
	start := time.Now()
	l, err := b.kube.CoreV1().Services(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0, 0, err
	}
	for _, s := range l.Items {
		if err := b.kube.CoreV1().Services(namespace).Delete(ctx, s.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return 0, 0, err
		}
	}
	err = pollUntil(ctx, limit, 250*time.Millisecond, func() (bool, error) {
		if crashed, why := b.ccm.Crashed(); crashed {
			return false, fmt.Errorf("controller crashed: %s", why)
		}
		l, err := b.kube.CoreV1().Services(namespace).List(ctx, metav1.ListOptions{})
		return err == nil && len(l.Items) == 0, nil
	})
	return len(l.Items), time.Since(start), err
}

func (b *bench) phaseDelete(ctx context.Context, faults bool) error {
	var n int
	var took time.Duration
	m, err := b.measure(ctx, settle{}, settleUsual, func(*phase) (err error) {
		n, took, err = b.deleteAll(ctx, 12*time.Minute)
		return err
	})
	if err != nil {
		return err
	}
	t, d := m.tally, m.counts
	syncs := m.logCount(logDelete)
	label := "delete all Services"
	when := "after deleting every Service"
	if faults {
		label += fmt.Sprintf(" with %.0f%% 429/503", b.p.FaultRate*100)
		when += " (faults)"
		b.rep.Faults.DeleteTook, b.rep.Faults.DeleteThrottled, b.rep.Faults.DeleteCalls = took, t.Throttled, t.Total
	} else {
		b.rep.DeleteCalls = float64(t.Total) / float64(max(n, 1))
	}
	b.rep.add(Row{
		Figure:   fmt.Sprintf("%s (%d): all gone", label, n),
		Measured: fmt.Sprintf("%.1fs; %s (%.2f per delete); %d answered 429/503 (retried)", took.Seconds(), callsStr(t), float64(t.Total)/float64(max(n, 1)), t.Throttled),
		Naive:    naiveStr(Naive{ServiceSyncs: syncs, Writes: WritesOK(d)}),
		Note:     fmt.Sprintf("%d delete syncs; %d answered 429/503; %s", syncs, t.Throttled, t.OpsString()),
	})
	return b.checkAppliances(ctx, 0, when)
}

// faultsOn makes the simulator answer p.FaultRate of requests with an
// error. Only the first matching rule is rolled: 503 for load balancer
// operations, 429 for everything else.
func (b *bench) faultsOn(ctx context.Context) error {
	return b.sim.SetFaults(ctx, []cluster.FaultRule{
		{Op: "LoadBalancer.*", Status: 503, Rate: b.p.FaultRate},
		{Op: "*", Status: 429, Rate: b.p.FaultRate},
	})
}

func (b *bench) phaseFaultCreate(ctx context.Context) error {
	p := b.p
	n := p.FaultCreates
	var took time.Duration
	var done int
	m, err := b.measure(ctx, settle{}, settle{}, func(*phase) (err error) {
		took, done, err = b.createManyUpTo(ctx, n, p.FaultCreateLimit)
		return err
	})
	if err != nil {
		return err
	}
	if err := b.sim.ClearFaults(ctx); err != nil {
		return err
	}
	t, d := m.tally, m.counts
	syncs := m.logCount(logEnsure)
	failed := m.apiErrorSyncs()
	b.rep.Faults.CreateN, b.rep.Faults.CreateDone, b.rep.Faults.CreateTook, b.rep.Faults.CreateThrottled, b.rep.Faults.CreateCalls = n, done, took, t.Throttled, t.Total
	b.rep.Faults.FailedSyncs = failed
	how := fmt.Sprintf("all in %.1fs", took.Seconds())
	if done < n {
		how = fmt.Sprintf("NOT all within the bench's %s limit: %d of %d had one then", p.FaultCreateLimit, done, n)
	}
	b.rep.add(Row{
		Figure:   fmt.Sprintf("create %d Services with %.0f%% 429/503: all EXTERNAL-IPs", n, p.FaultRate*100),
		Measured: fmt.Sprintf("%s; %s; %d answered 429/503 (retried)", how, callsStr(t), t.Throttled),
		Naive:    naiveStr(Naive{ServiceSyncs: syncs, NodePasses: n, Nodes: p.Nodes + 1, Writes: WritesOK(d)}),
		Note: fmt.Sprintf("%d syncs; %d syncs failed on a 429/503 left after the client's retries and were requeued; %s",
			syncs, failed, t.OpsString()),
	})
	if done < n {
		// Duplicates and leaks are well defined mid-create; Services still
		// without an appliance are creates in progress.
		return b.checkAppliancesInProgress(ctx, n, fmt.Sprintf("after the create with faults (at the %s limit, creates still under way)", p.FaultCreateLimit))
	}
	return b.checkAppliances(ctx, n, "after the create with faults")
}

// gcTrace matches the heap figures of a GODEBUG=gctrace=1 line:
// "gc 12 @30.1s 1%: ..., 14->15->7 MB, 16 MB goal, 0 MB stacks, 1 MB globals, 2 P".
var gcTrace = regexp.MustCompile(`gc \d+ @[0-9.]+s .* (\d+)->(\d+)->(\d+) MB, (\d+) MB goal`)

// lastGC summarises the garbage collections in the phase: how many, the
// largest heap at a GC's end and the largest live heap it left, and the
// last live heap.
func (ph *phase) lastGC() string {
	b, err := os.ReadFile(ph.b.ccm.LogFile)
	if err != nil || ph.logOff > int64(len(b)) {
		return ""
	}
	m := gcTrace.FindAllStringSubmatch(string(b[ph.logOff:]), -1)
	if len(m) == 0 {
		return "no garbage collection in the window"
	}
	maxEnd, maxLive := 0, 0
	for _, g := range m {
		end, _ := strconv.Atoi(g[2])
		live, _ := strconv.Atoi(g[3])
		maxEnd, maxLive = max(maxEnd, end), max(maxLive, live)
	}
	last := m[len(m)-1]
	return fmt.Sprintf("Go heap (GODEBUG=gctrace=1): %d GCs in the window, heap in use up to %d MB at a GC's end, live heap up to %d MB, %s MB live after the last GC; RSS also holds freed heap not yet returned to the OS and the binary's pages",
		len(m), maxEnd, maxLive, last[3])
}

// apiErrorSyncs counts Service syncs in the phase that failed on a 429 or
// 503 the client gave up retrying (the service controller requeues them).
func (ph *phase) apiErrorSyncs() int {
	b, err := os.ReadFile(ph.b.ccm.LogFile)
	if err != nil || ph.logOff > int64(len(b)) {
		return -1
	}
	n := 0
	for _, l := range strings.Split(string(b[ph.logOff:]), "\n") {
		if !strings.Contains(l, "error processing service") {
			continue
		}
		low := strings.ToLower(l)
		for _, k := range []string{"429", "503", "too_many_requests", "service_unavailable", "too many requests", "service unavailable"} {
			if strings.Contains(low, k) {
				n++
				break
			}
		}
	}
	return n
}

func pollUntil(ctx context.Context, limit, every time.Duration, fn func() (bool, error)) error {
	deadline := time.Now().Add(limit)
	for {
		ok, err := fn()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not reached within %s", limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(every):
		}
	}
}

func medianMax(d []time.Duration) (time.Duration, time.Duration) {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s) == 0 {
		return 0, 0
	}
	return s[len(s)/2], s[len(s)-1]
}

func mb(kb int) string { return fmt.Sprintf("%.1f MB", float64(kb)/1024) }

func callsStr(t Tally) string {
	return fmt.Sprintf("%d calls (%d reads, %d writes)", t.Total, t.Reads, t.Writes)
}

func perStr(t Tally, n int) string {
	f := float64(n)
	return fmt.Sprintf("%.1f calls (%.1f reads, %.1f writes)", float64(t.Total)/f, float64(t.Reads)/f, float64(t.Writes)/f)
}

func naiveStr(n Naive) string {
	return fmt.Sprintf("%d (%d reads, %d writes)", n.Total(), n.Reads(), n.Writes)
}

func naivePerStr(n Naive, per int) string {
	f := float64(per)
	return fmt.Sprintf("%.1f (%.1f reads, %.1f writes)", float64(n.Total())/f, float64(n.Reads())/f, float64(n.Writes)/f)
}
