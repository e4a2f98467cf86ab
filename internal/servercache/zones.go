package servercache

import (
	"time"

	"k8s.io/utils/clock"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/sakuraapi"
)

// Zones is one Cache per zone of the cluster, in configuration order. The
// caches share the client, and with it one request budget: a zone more
// does not raise the rate the controller may call the API at.
type Zones struct {
	caches []*Cache
	byName map[string]*Cache
}

// NewZones returns a cache for each of zones (duplicates are ignored).
func NewZones(client *sakuraapi.Client, zones []string, ttl time.Duration) *Zones {
	z := &Zones{byName: map[string]*Cache{}}
	for _, name := range zones {
		if z.byName[name] != nil {
			continue
		}
		c := New(client, name, ttl)
		z.caches = append(z.caches, c)
		z.byName[name] = c
	}
	return z
}

// Names lists the zones in configuration order.
func (z *Zones) Names() []string {
	out := make([]string, len(z.caches))
	for i, c := range z.caches {
		out[i] = c.zone
	}
	return out
}

// Zone returns the cache of zone, or nil when the cluster does not span it.
func (z *Zones) Zone(zone string) *Cache { return z.byName[zone] }

// All returns every zone's cache in configuration order.
func (z *Zones) All() []*Cache { return z.caches }

// SetClock replaces every cache's clock (tests, and the torture harness's
// compressed clock).
func (z *Zones) SetClock(clk clock.PassiveClock) {
	for _, c := range z.caches {
		c.SetClock(clk)
	}
}

// Invalidate makes every zone list again on its next lookup.
func (z *Zones) Invalidate() {
	for _, c := range z.caches {
		c.Invalidate()
	}
}

// Settle waits for background lists of every zone (tests).
func (z *Zones) Settle() {
	for _, c := range z.caches {
		c.Settle()
	}
}
