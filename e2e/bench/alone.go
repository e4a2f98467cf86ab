package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/e2e/cluster"
)

// Creates and deletes measured one Service at a time: every call in the
// window is the Service's (apart from the periodic loops), and the boot or
// shutdown polls are split out by the sampler (sampler.go).

// sampleEvery is how often the sampler looks while one Service is created
// or deleted alone. At requestsPerSecond 5 the controller's calls are
// 200 ms apart once its burst is spent, so a look falls between any two.
const sampleEvery = 20 * time.Millisecond

// alone is one Service created or deleted by itself.
type alone struct {
	name string
	took time.Duration
	// rest are the calls of the window without the polls and without the
	// health poll's Status reads of running appliances (health).
	rest, polls Counts
	health      int
	// pollSyncs are the service controller's syncs of this Service that
	// found its appliance still booting (its log: "is not up yet").
	pollSyncs int
	syncs     int
}

// applianceOf returns the ID of the appliance tagged with the Service UID
// ("" if there is none).
func (b *bench) applianceOf(ctx context.Context, uid string) (string, error) {
	lbs, err := b.sim.LoadBalancers(ctx)
	if err != nil {
		return "", err
	}
	for _, lb := range lbs {
		if hasTag(lb.Tags, clusterTag) && hasTag(lb.Tags, serviceTagKey+uid) {
			return lb.ID.String(), nil
		}
	}
	return "", nil
}

// bootPollLine: the service controller's log line for a sync of Service
// name that found its appliance still booting.
func bootPollSyncs(log string, off int64, name string) int {
	return countLines(log, off, "error processing service "+namespace+"/"+name+" (", "is not up yet")
}

// waitIP waits for the Service's EXTERNAL-IP and returns the time since start.
func (b *bench) waitIP(ctx context.Context, name string, start time.Time, limit time.Duration) (time.Duration, error) {
	var took time.Duration
	err := pollUntil(ctx, limit, 50*time.Millisecond, func() (bool, error) {
		if crashed, why := b.ccm.Crashed(); crashed {
			return false, fmt.Errorf("controller crashed: %s", why)
		}
		s, err := b.kube.CoreV1().Services(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		if externalIP(s) != "" {
			took = time.Since(start)
			return true, nil
		}
		return false, nil
	})
	if err != nil {
		return 0, fmt.Errorf("%s got no EXTERNAL-IP: %w", name, err)
	}
	return took, nil
}

// createAlone creates one Service, waits for its EXTERNAL-IP and splits
// its calls into boot polls and the rest.
func (b *bench) createAlone(ctx context.Context, boot time.Duration) (alone, error) {
	svc := b.newService()
	if err := b.settle(ctx, settleShort); err != nil {
		return alone{}, err
	}
	ph, err := b.begin(ctx)
	if err != nil {
		return alone{}, err
	}
	base := answered(ph.counts, "LoadBalancer.Create")
	created := func(c Counts) bool { return answered(c, "LoadBalancer.Create") > base }
	var uid atomic.Value
	uid.Store("")
	smp := startSampler(ctx, b.sim, sampleEvery, "", created, func(ctx context.Context) string {
		u := uid.Load().(string)
		if u == "" {
			return ""
		}
		id, _ := b.applianceOf(ctx, u)
		return id
	})
	start := time.Now()
	made, err := b.kube.CoreV1().Services(namespace).Create(ctx, svc, metav1.CreateOptions{})
	if err != nil {
		smp.Stop()
		return alone{}, err
	}
	uid.Store(string(made.UID))
	took, err := b.waitIP(ctx, svc.Name, start, 2*time.Minute+boot)
	if err != nil {
		smp.Stop()
		return alone{}, err
	}
	if err := b.settle(ctx, settleShort); err != nil {
		smp.Stop()
		return alone{}, err
	}
	ticks := smp.Stop()
	d, _, _, err := ph.end(ctx)
	if err != nil {
		return alone{}, err
	}
	polls, err := Looks(ticks, created)
	if err != nil {
		return alone{}, fmt.Errorf("%s: %w", svc.Name, err)
	}
	rest, health := splitCalls(d, polls)
	return alone{name: svc.Name, took: took, rest: rest, polls: polls, health: health,
		pollSyncs: bootPollSyncs(b.ccm.LogFile, ph.logOff, svc.Name),
		syncs:     ph.logCount(logEnsure)}, nil
}

// deleteAlone deletes one Service, waits until it is gone and splits its
// calls into shutdown polls and the rest.
func (b *bench) deleteAlone(ctx context.Context, svc corev1.Service) (alone, error) {
	id, err := b.applianceOf(ctx, string(svc.UID))
	if err != nil {
		return alone{}, err
	}
	if id == "" {
		return alone{}, fmt.Errorf("%s has no appliance to delete", svc.Name)
	}
	if err := b.settle(ctx, settleShort); err != nil {
		return alone{}, err
	}
	ph, err := b.begin(ctx)
	if err != nil {
		return alone{}, err
	}
	base := answered(ph.counts, "LoadBalancer.Shutdown")
	shut := func(c Counts) bool { return answered(c, "LoadBalancer.Shutdown") > base }
	smp := startSampler(ctx, b.sim, sampleEvery, id, nil, nil)
	start := time.Now()
	if err := b.kube.CoreV1().Services(namespace).Delete(ctx, svc.Name, metav1.DeleteOptions{}); err != nil {
		smp.Stop()
		return alone{}, err
	}
	var took time.Duration
	err = pollUntil(ctx, 2*time.Minute, 50*time.Millisecond, func() (bool, error) {
		if crashed, why := b.ccm.Crashed(); crashed {
			return false, fmt.Errorf("controller crashed: %s", why)
		}
		_, err := b.kube.CoreV1().Services(namespace).Get(ctx, svc.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			took = time.Since(start)
			return true, nil
		}
		return false, nil
	})
	if err == nil {
		err = b.settle(ctx, settleShort)
	}
	ticks := smp.Stop()
	if err != nil {
		return alone{}, fmt.Errorf("deleting %s: %w", svc.Name, err)
	}
	d, _, _, err := ph.end(ctx)
	if err != nil {
		return alone{}, err
	}
	polls, err := Looks(ticks, shut)
	if errors.Is(err, errNoStart) {
		polls, err = Counts{}, nil // deleted without a shutdown: nothing to poll for
	}
	if err != nil {
		return alone{}, fmt.Errorf("%s: %w", svc.Name, err)
	}
	rest, health := splitCalls(d, polls)
	return alone{name: svc.Name, took: took, rest: rest, polls: polls, health: health, syncs: ph.logCount(logDelete)}, nil
}

// AloneStats summarises creates (or deletes) measured alone.
type AloneStats struct {
	N int
	// Rest and Polls are per create: mean and median.
	RestMean, PollsMean     float64
	RestMedian, PollsMedian int
	// FirstRest and FirstPolls are the first one's (a create: cold);
	// LaterRestMedian and LaterPollsMedian the median of the others.
	FirstRest, FirstPolls             int
	LaterRestMedian, LaterPollsMedian int
	RestReads, RestWrites             float64 // means
	// RestApplianceReads is the mean of the load balancer reads
	// (IsApplianceRead) among the calls without polls.
	RestApplianceReads float64
	Health             int // health-poll Status reads in all windows
	PollSyncs, Syncs   int
	Rest, Polls        Tally // summed over all
	PerItem            []string
}

func summarizeAlone(l []alone) AloneStats {
	s := AloneStats{N: len(l)}
	var rest, polls []int
	sumRest, sumPolls := Counts{}, Counts{}
	for _, a := range l {
		r, p := Summarize(a.rest), Summarize(a.polls)
		rest, polls = append(rest, r.Total), append(polls, p.Total)
		sumRest, sumPolls = sumRest.Add(a.rest), sumPolls.Add(a.polls)
		s.Health += a.health
		s.PollSyncs += a.pollSyncs
		s.Syncs += a.syncs
		s.PerItem = append(s.PerItem, fmt.Sprintf("%s %d+%d", a.name, r.Total, p.Total))
	}
	s.Rest, s.Polls = Summarize(sumRest), Summarize(sumPolls)
	if s.N > 0 {
		f := float64(s.N)
		s.RestMean, s.PollsMean = float64(s.Rest.Total)/f, float64(s.Polls.Total)/f
		s.RestReads, s.RestWrites = float64(s.Rest.Reads)/f, float64(s.Rest.Writes)/f
		s.RestMedian, s.PollsMedian = medianInt(rest), medianInt(polls)
		s.FirstRest, s.FirstPolls = rest[0], polls[0]
		s.LaterRestMedian, s.LaterPollsMedian = medianInt(rest[1:]), medianInt(polls[1:])
		s.RestApplianceReads = float64(Summarize(sumRest.Filter(IsApplianceRead)).Total) / f
	}
	return s
}

// medianInt is the middle value (the upper one of an even count).
func medianInt(v []int) int {
	if len(v) == 0 {
		return 0
	}
	s := append([]int(nil), v...)
	sort.Ints(s)
	return s[len(s)/2]
}

func (s AloneStats) measured(polls string) string {
	return fmt.Sprintf("%.1f calls without %s polls (%.1f reads, %.1f writes; median %d) + %.1f %s polls (median %d)",
		s.RestMean, polls, s.RestReads, s.RestWrites, s.RestMedian, s.PollsMean, polls, s.PollsMedian)
}

func (b *bench) phaseSequential(ctx context.Context) error {
	p := b.p
	for _, lat := range []time.Duration{0, p.Latency} {
		if lat > 0 {
			if err := b.sim.SetFaults(ctx, []cluster.FaultRule{{Op: "*", Latency: lat.String()}}); err != nil {
				return err
			}
		}
		var list []alone
		var times []time.Duration
		for i := 0; i < p.SequentialCreates; i++ {
			a, err := b.createAlone(ctx, p.BootDelay)
			if err != nil {
				return err
			}
			list = append(list, a)
			times = append(times, a.took)
		}
		if lat > 0 {
			if err := b.sim.ClearFaults(ctx); err != nil {
				return err
			}
		}
		n := p.SequentialCreates
		st := summarizeAlone(list)
		b.rep.CreatesAlone = append(b.rep.CreatesAlone, list...)
		med, worst := medianMax(times)
		overhead := med - p.BootDelay
		b.rep.Latency = append(b.rep.Latency, LatencyResult{Latency: lat, Boot: p.BootDelay, Median: med, Max: worst, Overhead: overhead, N: n})
		b.rep.add(Row{
			Figure:   fmt.Sprintf("time to EXTERNAL-IP minus %s boot, %s API latency (median of %d, each created alone)", p.BootDelay, latName(lat), n),
			Measured: fmt.Sprintf("%.2fs (max %.2fs)", overhead.Seconds(), (worst - p.BootDelay).Seconds()),
			Naive:    "-",
			Note:     fmt.Sprintf("%.1f Service syncs per create", float64(st.Syncs)/float64(n)),
		})
		b.rep.add(Row{
			Figure:   fmt.Sprintf("API calls per Service create (%s latency; each alone, boot polls apart)", latName(lat)),
			Measured: st.measured("boot"),
			Naive:    naivePerStr(Naive{ServiceSyncs: st.Syncs, NodePasses: n, Nodes: p.Nodes, Writes: st.Rest.Writes}, n),
			Note: fmt.Sprintf("without polls: %s; boot polls: %s; %d syncs found the appliance booting (controller log); also %d health-poll Status reads of other, running appliances in the windows; per Service (calls + boot polls): %s",
				st.Rest.OpsString(), st.Polls.OpsString(), st.PollSyncs, st.Health, strings.Join(st.PerItem, ", ")),
		})
	}
	b.rep.CreateStats = summarizeAlone(b.rep.CreatesAlone)
	return nil
}

// phaseRealisticBoot creates Services one at a time while new appliances
// take RealisticBoot to come up, as real ones do.
func (b *bench) phaseRealisticBoot(ctx context.Context) (err error) {
	p := b.p
	if err := b.sim.SetDelays(ctx, p.RealisticBoot, -1); err != nil {
		return err
	}
	defer func() {
		if rerr := b.sim.SetDelays(context.WithoutCancel(ctx), p.BootDelay, -1); rerr != nil && err == nil {
			err = rerr
		}
	}()
	var list []alone
	var over []time.Duration
	var polls, syncPolls []int
	var per []string
	for i := 0; i < p.RealisticCreates; i++ {
		a, err := b.createAlone(ctx, p.RealisticBoot)
		if err != nil {
			return err
		}
		list = append(list, a)
		o := a.took - p.RealisticBoot
		pc := Summarize(a.polls).Total
		over, polls, syncPolls = append(over, o), append(polls, pc), append(syncPolls, a.pollSyncs)
		per = append(per, fmt.Sprintf("%s %.2fs, %d boot polls (%d syncs)", a.name, o.Seconds(), pc, a.pollSyncs))
	}
	st := summarizeAlone(list)
	med, worst := medianMax(over)
	b.rep.Realistic = &RealisticResult{Boot: p.RealisticBoot, N: p.RealisticCreates, MedianOverhead: med, MaxOverhead: worst,
		Polls: polls, PollsMedian: medianInt(polls)}
	b.rep.add(Row{
		Figure:   fmt.Sprintf("time to EXTERNAL-IP minus %s boot (realistic boot, zero API latency; median of %d, each created alone)", p.RealisticBoot, p.RealisticCreates),
		Measured: fmt.Sprintf("%.2fs (max %.2fs)", med.Seconds(), worst.Seconds()),
		Naive:    "-",
		Note:     "per Service: " + strings.Join(per, "; "),
	})
	b.rep.add(Row{
		Figure:   fmt.Sprintf("boot polls per create with a %s boot (each alone)", p.RealisticBoot),
		Measured: fmt.Sprintf("%.1f calls (median %d; %s); %.1f calls without boot polls", st.PollsMean, st.PollsMedian, intsStr(polls), st.RestMean),
		Naive:    "-",
		Note: fmt.Sprintf("boot polls: %s; syncs that found the appliance booting: %s (controller log); without polls: %s; also %d health-poll Status reads of other appliances in the windows",
			st.Polls.OpsString(), intsStr(syncPolls), st.Rest.OpsString(), st.Health),
	})
	return nil
}

func intsStr(v []int) string {
	var s []string
	for _, x := range v {
		s = append(s, fmt.Sprint(x))
	}
	return strings.Join(s, ", ")
}

// phaseDeletesAlone deletes every Service there is, one at a time.
func (b *bench) phaseDeletesAlone(ctx context.Context) error {
	l, err := b.kube.CoreV1().Services(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	svcs := l.Items
	sort.Slice(svcs, func(i, j int) bool { return svcs[i].Name < svcs[j].Name })
	var list []alone
	var times []time.Duration
	for _, s := range svcs {
		a, err := b.deleteAlone(ctx, s)
		if err != nil {
			return err
		}
		list = append(list, a)
		times = append(times, a.took)
	}
	st := summarizeAlone(list)
	b.rep.DeleteStats = st
	med, worst := medianMax(times)
	b.rep.add(Row{
		Figure:   fmt.Sprintf("API calls per Service delete (%d, each alone, shutdown polls apart)", st.N),
		Measured: st.measured("shutdown") + fmt.Sprintf("; gone in %.1fs median (max %.1fs)", med.Seconds(), worst.Seconds()),
		Naive:    naivePerStr(Naive{ServiceSyncs: st.Syncs, Writes: st.Rest.Writes}, max(st.N, 1)),
		Note: fmt.Sprintf("shutdown takes %s (half the boot delay); without polls: %s; shutdown polls: %s; %d delete syncs; also %d health-poll Status reads in the windows; per Service (calls + shutdown polls): %s",
			b.p.BootDelay/2, st.Rest.OpsString(), st.Polls.OpsString(), st.Syncs, st.Health, strings.Join(st.PerItem, ", ")),
	})
	return b.checkAppliances(ctx, 0, "after deleting the Services created alone")
}
