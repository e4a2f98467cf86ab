package engine

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sacloud/iaas-api-go"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/metrics"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/decide"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/desired"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/klog/v2"
)

// Real-server health, as the appliance's own health check sees it.
//
// The appliance checks every real server (ping by default) and stops sending
// new connections to one that fails. Nobody looking at the Service would
// know: so a poll reads each appliance's Status and records an Event on the
// owning Service when a real server goes DOWN, and again when it is UP.
// Only changes are reported; a server already DOWN at the first poll is
// reported once.

// Real-server states in the appliance's Status.
const (
	serverUp   = "UP"
	serverDown = "DOWN"
)

// healthPoller remembers the last state of each real server.
type healthPoller struct {
	l        *Engine
	services corelisters.ServiceLister
	last     map[string]string // appliance/vip:port/server -> UP|DOWN
	// gap spaces two Status reads (0: back to back).
	gap time.Duration
}

// watchAppliances runs the health poll every health interval and the repair
// pass every repair interval (0: off) until ctx ends.
// rate > 0 spaces the Status reads to at most rate per second.
//
// The health poll and the repair pass share one listing of this cluster's
// appliances per tick (one list call, not two): the repair pass runs first
// on the fresh listing, then the health poll reads each Status.
func (l *Engine) watchAppliances(ctx context.Context, services corelisters.ServiceLister, health, repair time.Duration, rate float64) {
	h := &healthPoller{l: l, services: services, last: map[string]string{}}
	if rate > 0 {
		h.gap = time.Duration(float64(time.Second) / rate)
	}
	tick := health
	if tick <= 0 || (repair > 0 && repair < tick) {
		tick = repair
	}
	if tick <= 0 {
		return
	}
	var lastHealth, lastRepair time.Time
	due := func(last time.Time, every time.Duration, now time.Time) bool {
		// A tenth of a tick of slack: ticks come a little early or late.
		return every > 0 && (last.IsZero() || now.Sub(last) >= every-tick/10)
	}
	wait.UntilWithContext(ctx, func(ctx context.Context) {
		now := l.clock.Now()
		doRepair, doHealth := due(lastRepair, repair, now), due(lastHealth, health, now)
		if !doRepair && !doHealth {
			return
		}
		exec, nodes, cluster := l.exec, []*v1.Node(nil), ""
		if f := l.follower(); f != nil {
			if nodes, cluster = f.latestNodes(); nodes != nil {
				exec = l.executor(cluster)
			}
		}
		lbs, err := exec.FindCluster(ctx)
		if err != nil {
			klog.ErrorS(err, "Listing this cluster's load balancers for the health poll and repair pass failed")
			return
		}
		l.pruneState(exec, lbs)
		if doRepair && nodes != nil {
			sum := l.repairWith(ctx, lbs, cluster)
			klog.V(2).InfoS("Repair pass done", "services", sum.Services, "repaired", len(sum.Repaired), "failed", len(sum.Failed))
			lastRepair = now
		}
		if doHealth {
			h.poll(ctx, lbs, cluster, nodes)
			lastHealth = now
		}
	}, tick)
}

// poll reads the Status of each running appliance of lbs. A Service
// whose servers' health changed while some are down gets its condition
// refreshed (showHealth).
//
// cluster and nodes are the service controller's latest (nil before its
// first call: then the condition waits for the next reconcile).
func (h *healthPoller) poll(ctx context.Context, lbs []*iaas.LoadBalancer, cluster string, nodes []*v1.Node) {
	l := h.l
	now := map[string]string{}
	up, down := 0, 0
	var names map[string]string // server address -> server name, read once per poll
	nameOf := func(addr string) string {
		if names == nil {
			names = h.serverNames(ctx)
		}
		if n := names[addr]; n != "" {
			return addr + " (server " + n + ")"
		}
		return addr
	}
	found := map[*iaas.LoadBalancer]map[*v1.Service]*serverStates{}
	read := 0
	for _, lb := range lbs {
		if !isUp(lb) {
			continue
		}
		if read++; read > 1 && h.gap > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(h.gap):
			}
		}
		st, err := l.client.LoadBalancers.Status(ctx, l.exec.ZoneOf(lb.ID), lb.ID)
		if err != nil {
			klog.ErrorS(err, "Health poll: reading status failed; keeping the last known states", "loadBalancer", lb.ID)
			for k, v := range h.last {
				if strings.HasPrefix(k, lb.ID.String()+"/") {
					now[k] = v
				}
			}
			continue
		}
		if decide.Unapplied(lb.VirtualIPAddresses, st.Status) {
			// The appliance runs other settings than it saved: a Config
			// that failed (perhaps before a restart). The next reconcile
			// of one of its Services applies them first, once per saved
			// settings: should Status never match (an API that reports
			// differently), this costs one Config, not one per poll.
			l.mem.suspectUnapplied(lb)
		}
		found[lb] = map[*v1.Service]*serverStates{}
		for _, v := range st.Status {
			if v == nil {
				continue
			}
			svc := h.owner(lb, v)
			if svc != nil && found[lb][svc] == nil {
				found[lb][svc] = &serverStates{all: map[string]bool{}, down: map[string]bool{}}
			}
			at := fmt.Sprintf("%s:%d", v.VirtualIPAddress, v.Port.Int())
			for _, s := range v.Servers {
				if s == nil {
					continue
				}
				state := strings.ToUpper(string(s.Status))
				key := fmt.Sprintf("%s/%s/%s", lb.ID, at, s.IPAddress)
				now[key] = state
				if state == serverUp {
					up++
				} else {
					down++
				}
				if svc != nil {
					found[lb][svc].all[s.IPAddress] = true
					if state != serverUp {
						found[lb][svc].down[s.IPAddress] = true
					}
				}
				prev := h.last[key]
				if svc == nil || prev == state || (state == serverUp && prev == "") {
					continue
				}
				who := nameOf(s.IPAddress)
				if state == serverUp {
					l.event(svc, false, ReasonRealServerUp, "real server %s of %s on load balancer %s passes its health check again and gets connections", who, at, lb.ID)
				} else {
					l.event(svc, true, ReasonRealServerDown, "real server %s of %s on load balancer %s is %s by the appliance's health check and gets no new connections; check the node, or the health check annotations if every server is down", who, at, lb.ID, state)
				}
			}
		}
	}
	h.last = now
	metrics.SetRealServers(up, down)
	for lb, svcs := range found {
		for svc, states := range svcs {
			h.showHealth(ctx, lb, svc, states.summary(nameOf), cluster, nodes)
		}
	}
}

// serverStates are one Service's real servers on one poll, by address.
type serverStates struct{ all, down map[string]bool }

func (s *serverStates) summary(nameOf func(string) string) realServerHealth {
	h := realServerHealth{Total: len(s.all)}
	for addr := range s.down {
		h.Down = append(h.Down, nameOf(addr))
	}
	slices.Sort(h.Down)
	return h
}

// showHealth records what the poll found for svc and, when it changed
// while some server is (or was) down, reconciles svc on the listing at
// hand, so that its condition says so now rather than at the next repair
// pass. A change among servers all up (the usual case) costs nothing.
func (h *healthPoller) showHealth(ctx context.Context, lb *iaas.LoadBalancer, svc *v1.Service, found realServerHealth, cluster string, nodes []*v1.Node) {
	l := h.l
	before := l.mem.setHealth(string(svc.UID), found)
	if !found.changesCondition(before) || !l.scope.Serves(svc) || nodes == nil {
		return
	}
	if _, err := l.Reconcile(ctx, Request{Trigger: decide.ByFollower, Cluster: cluster, Service: svc, Nodes: nodes, Observed: []*iaas.LoadBalancer{lb}}); err != nil {
		klog.V(2).InfoS("Health poll: the Service's condition is refreshed at its next reconcile", "service", serviceKey(svc.Namespace, svc.Name), "reason", err.Error())
	}
}

// owner is the Service whose VIP entry v reports on, or nil.
func (h *healthPoller) owner(lb *iaas.LoadBalancer, v *iaas.LoadBalancerStatus) *v1.Service {
	if h.services == nil {
		return nil
	}
	for _, e := range lb.VirtualIPAddresses {
		if e == nil || e.VirtualIPAddress != v.VirtualIPAddress || e.Port.Int() != v.Port.Int() {
			continue
		}
		ref, ok := strings.CutPrefix(e.Description, desired.EntryDescriptionPrefix)
		if !ok {
			return nil
		}
		ns, name, _ := strings.Cut(ref, "/")
		svc, err := h.services.Services(ns).Get(name)
		if err != nil {
			return nil
		}
		return svc
	}
	return nil
}

// serverNames maps every server address of the zone to the server's name
// (the node name, usually), from the shared server cache.
func (h *healthPoller) serverNames(ctx context.Context) map[string]string {
	out := map[string]string{}
	servers, err := h.l.listServers(ctx)
	if err != nil {
		return out
	}
	for _, s := range servers {
		for _, ip := range s.IPs {
			if ip != "" {
				out[ip] = s.Name
			}
		}
	}
	return out
}
