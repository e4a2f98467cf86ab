// Package endpoints decides which nodes of a Service with
// externalTrafficPolicy: Local should receive traffic: the nodes that run a
// ready endpoint, kept for a hold-down after their last endpoint went away
// so a short readiness blip does not rewrite the load balancer twice.
//
// It is pure (the clock is passed in), so the damping is table-tested.
package endpoints

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
)

// ReadyNodes returns the nodes that run at least one ready endpoint of the
// slices. An endpoint without a Ready condition counts as ready (the API's
// own rule); terminating endpoints are not ready. Endpoints without a node
// name cannot be placed on a real server and are ignored.
func ReadyNodes(slices []*discoveryv1.EndpointSlice) map[string]bool {
	out := map[string]bool{}
	for _, s := range slices {
		if s == nil {
			continue
		}
		for _, e := range s.Endpoints {
			if e.NodeName == nil || *e.NodeName == "" {
				continue
			}
			if e.Conditions.Ready != nil && !*e.Conditions.Ready {
				continue
			}
			out[*e.NodeName] = true
		}
	}
	return out
}

// Damper remembers, per Service, when each node last had a ready endpoint.
// A node is active while it has one, and for HoldDown after it lost its
// last one. Gaining an endpoint takes effect at once: traffic should reach
// a new pod quickly, while dropping a node on a blip only causes churn.
type Damper struct {
	HoldDown time.Duration

	mu        sync.Mutex
	lastReady map[string]map[string]time.Time // service key -> node -> last seen ready
}

// Active records ready (observed at now) for the Service key and returns
// the active nodes and, when some node is held only by the hold-down, how
// long until the earliest of them expires (0 otherwise): the caller looks
// again then.
func (d *Damper) Active(key string, ready map[string]bool, now time.Time) (map[string]bool, time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.lastReady == nil {
		d.lastReady = map[string]map[string]time.Time{}
	}
	seen := d.lastReady[key]
	if seen == nil {
		seen = map[string]time.Time{}
		d.lastReady[key] = seen
	}
	for n := range ready {
		seen[n] = now
	}
	active := map[string]bool{}
	var recheck time.Duration
	for n, at := range seen {
		left := d.HoldDown - now.Sub(at)
		switch {
		case ready[n]:
			active[n] = true
		case left > 0:
			active[n] = true
			if recheck == 0 || left < recheck {
				recheck = left
			}
		default:
			delete(seen, n)
		}
	}
	return active, recheck
}

// Forget drops what is known about a Service.
func (d *Damper) Forget(key string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.lastReady, key)
}

// Names renders a node set as a sorted, comma-separated list: a stable
// value to compare two sets by and to show in messages.
func Names(set map[string]bool) string {
	return strings.Join(slices.Sorted(maps.Keys(set)), ",")
}
