package main

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/e2e/cluster"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/e2e/sakurasim"
)

// Boot and shutdown polls of one appliance are told apart from the rest of
// a create's or delete's calls by time: while one Service is created (or
// deleted) alone, a sampler looks at the simulator every few milliseconds,
// first at its request counts, then at the appliance's instance status
// (GET /_admin/load-balancers/{id}; the simulator settles a transition on
// every call, so the status flips the moment the boot or shutdown ends).
// Counts taken before a look that still saw the appliance booting were all
// answered while it was booting.

// tick is one look: the request counts, then the watched appliance's status.
type tick struct {
	// sent is when the counts were asked for, at when they had arrived:
	// the simulator took them in between.
	sent, at time.Time
	counts   Counts
	// status is the appliance's instance status as the look after the
	// counts saw it: "" (being created), "up", "down", "gone" (no such
	// appliance), or "?" while no appliance is watched yet.
	status string
}

// sampler records ticks until stopped.
type sampler struct {
	sim   *cluster.Simulator
	every time.Duration
	// discover returns the ID of the appliance to watch ("" while there is
	// none yet); it is asked only once ready reports true for a tick's
	// counts, and no more once it has answered.
	discover func(context.Context) string
	ready    func(Counts) bool

	mu    sync.Mutex
	id    string
	ticks []tick
	stop  chan struct{}
	done  chan struct{}
}

// startSampler starts looking every `every`. id is the appliance to watch
// from the start ("" to discover it).
func startSampler(ctx context.Context, sim *cluster.Simulator, every time.Duration, id string, ready func(Counts) bool, discover func(context.Context) string) *sampler {
	s := &sampler{sim: sim, every: every, id: id, ready: ready, discover: discover, stop: make(chan struct{}), done: make(chan struct{})}
	go s.run(ctx)
	return s
}

func (s *sampler) run(ctx context.Context) {
	defer close(s.done)
	t := time.NewTicker(s.every)
	defer t.Stop()
	for {
		s.look(ctx)
		select {
		case <-ctx.Done():
			return
		case <-s.stop:
			s.look(ctx) // one last look after the work ended
			return
		case <-t.C:
		}
	}
}

func (s *sampler) look(ctx context.Context) {
	var st sakurasim.RequestStats
	sent := time.Now()
	if err := s.sim.Admin(ctx, http.MethodGet, "/requests", nil, &st); err != nil {
		return
	}
	tk := tick{sent: sent, at: time.Now(), counts: countsOf(st), status: "?"}
	if s.id == "" && s.discover != nil && (s.ready == nil || s.ready(tk.counts)) {
		s.id = s.discover(ctx)
	}
	if s.id != "" {
		cfg, err := s.sim.LoadBalancer(ctx, s.id)
		switch {
		case err == nil:
			tk.status = cfg.Status
		case strings.Contains(err.Error(), "404"):
			tk.status = "gone"
		default:
			return // not a usable look
		}
	}
	s.mu.Lock()
	s.ticks = append(s.ticks, tk)
	s.mu.Unlock()
}

// Stop ends the sampling and returns the ticks.
func (s *sampler) Stop() []tick {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ticks
}

func countsOf(st sakurasim.RequestStats) Counts {
	out := Counts{}
	for op, o := range st.Operations {
		out[op] = map[string]int{}
		for s, n := range o.ByStatus {
			out[op][s] = n
		}
	}
	return out
}

// answered is how many requests of op the counts hold with a 2xx answer.
func answered(c Counts, op string) int {
	n := 0
	for st, v := range c[op] {
		if code, _ := strconv.Atoi(st); code >= 200 && code < 300 {
			n += v
		}
	}
	return n
}

// IsApplianceRead reports whether a request (operation and answer status)
// is a look at a load balancer that counts as a boot or shutdown poll: a
// listing of the zone's appliances, a find or read of load balancers, or a
// Status read that did not answer 2xx
// (the simulator answers 409 still_creating while an appliance boots). A
// Status answered 2xx is the health poll reading a running appliance; it
// is reported apart.
func IsApplianceRead(op, status string) bool {
	if op == "Appliance.Find" {
		return true // the zone's one listing of every appliance class
	}
	if !strings.HasPrefix(op, "LoadBalancer.") || IsWrite(op) {
		return false
	}
	if op == "LoadBalancer.Status" {
		code, _ := strconv.Atoi(status)
		return code < 200 || code >= 300
	}
	return true
}

// IsHealthRead is a Status read answered 2xx: the health poll (or repair
// pass) looking at a running appliance.
func IsHealthRead(op, status string) bool {
	code, _ := strconv.Atoi(status)
	return op == "LoadBalancer.Status" && code >= 200 && code < 300
}

// Filter keeps the counts for which keep is true.
func (c Counts) Filter(keep func(op, status string) bool) Counts {
	out := Counts{}
	for op, m := range c {
		for st, n := range m {
			if n == 0 || !keep(op, st) {
				continue
			}
			if out[op] == nil {
				out[op] = map[string]int{}
			}
			out[op][st] = n
		}
	}
	return out
}

// errNoStart says the sampled interval never showed the operation that
// starts the polling (the create or shutdown was not seen).
var errNoStart = errors.New("the sampler never saw the operation that starts the wait")

// errNotWatched says the appliance was never identified, so its status is unknown.
var errNotWatched = errors.New("the sampler never identified the appliance")

// Polls splits the polls out of sampled ticks: from the first tick whose
// counts show started (the LoadBalancer.Create or Shutdown answered) up to
// the last tick after it whose look still saw the appliance busy (booting
// or shutting down), the appliance reads (IsApplianceRead) are polls.
// Reads in the few milliseconds between the last busy look and the end of
// the wait count as ordinary calls, so the polls are never overstated.
func Polls(ticks []tick, started func(Counts) bool, busy func(status string) bool) (Counts, error) {
	i0 := -1
	for i, t := range ticks {
		if started(t.counts) {
			i0 = i
			break
		}
	}
	if i0 < 0 {
		return Counts{}, errNoStart
	}
	seen := false
	for _, t := range ticks[i0:] {
		seen = seen || t.status != "?"
	}
	if !seen {
		return Counts{}, errNotWatched
	}
	i1 := i0
	for i := i0; i < len(ticks) && busy(ticks[i].status); i++ {
		i1 = i
	}
	if !busy(ticks[i0].status) {
		return Counts{}, nil // over before the first look after the start
	}
	return ticks[i1].counts.Sub(ticks[i0].counts).Filter(IsApplianceRead), nil
}

// Looks are the appliance reads (IsApplianceRead) from the first tick
// whose counts show started (the LoadBalancer.Create or Shutdown answered)
// to the end of the window: every look at the appliance after the create
// (or shutdown) was sent, the one that finds it up (or down) included, is
// a look for the boot (or the shutdown) to end. Polls, by contrast, stops
// at the last look that saw the appliance busy and so counts that last
// look as an ordinary call.
func Looks(ticks []tick, started func(Counts) bool) (Counts, error) {
	for i, t := range ticks {
		if started(t.counts) {
			return ticks[len(ticks)-1].counts.Sub(ticks[i].counts).Filter(IsApplianceRead), nil
		}
	}
	return Counts{}, errNoStart
}

// booting: an appliance being created; "?" means it was not identified yet,
// which happens only in the first look after its create.
func booting(status string) bool { return status == "" || status == "?" }

// shuttingDown: still up after its Shutdown was answered.
func shuttingDown(status string) bool { return status == "up" }

// splitCalls splits a measured window's counts into the polls, the health
// poll's Status reads of running appliances, and the rest.
func splitCalls(window, polls Counts) (rest Counts, health int) {
	health = Summarize(window.Filter(IsHealthRead)).Total
	rest = window.Sub(polls).Filter(func(op, st string) bool { return !IsHealthRead(op, st) })
	return rest, health
}

// bulkPolls are the boot polls of many creates at once.
type bulkPolls struct {
	// Reads are the phase's appliance reads (IsApplianceRead); Estimate
	// is Reads less what n creates need without polls; Tail the reads
	// between the last LoadBalancer.Create answer and the end of that
	// appliance's boot, when nothing but polls is left; Polls is the
	// larger of Estimate and Tail.
	Reads, Estimate, Tail, Polls int
}

// bulkBootPolls splits the boot polls out of a bulk create. Reads of
// concurrent creates cannot be told from polls one by one (one listing may
// serve both), so the polls are estimated: every appliance read of the
// phase, less n times the reads a create makes without polls when it is
// measured alone (perCreate). The reads after the last create until its
// boot ends (boot after its answer, as the simulator boots) are polls for
// certain, so the estimate is never below them.
func bulkBootPolls(ticks []tick, window Counts, n int, boot time.Duration, perCreate float64) bulkPolls {
	var r bulkPolls
	r.Reads = Summarize(window.Filter(IsApplianceRead)).Total
	r.Estimate = max(0, r.Reads-int(float64(n)*perCreate+0.5))
	if len(ticks) > 0 {
		reads := func(c Counts) int { return Summarize(c.Filter(IsApplianceRead)).Total }
		base := answered(ticks[0].counts, "LoadBalancer.Create")
		for k, t := range ticks {
			if answered(t.counts, "LoadBalancer.Create") < base+n {
				continue
			}
			// The last create was answered after the previous look was
			// asked for, so its boot ends no sooner than that plus the boot
			// delay; looks that had arrived by then hold only earlier reads.
			end := t
			if k > 0 {
				limit := ticks[k-1].sent.Add(boot)
				for _, u := range ticks[k:] {
					if u.at.After(limit) {
						break
					}
					end = u
				}
			}
			r.Tail = max(0, reads(end.counts)-reads(t.counts))
			break
		}
	}
	r.Polls = max(r.Estimate, r.Tail)
	return r
}
