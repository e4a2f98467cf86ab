// Package zoneview is one listing of a zone's appliances, of every class,
// shared by whoever needs a look at them: finding a Service's load
// balancer by its tags, the address and VRID inventory of a switch, the
// looks at booting appliances. SAKURA Cloud lists every appliance class in
// one collection, so a single paged listing serves all of these where the
// class finds took one call per class and per question (issue #18).
//
// Lister makes the listings, at most one at a time, and lets callers who
// need one no older than a given time share the one in flight.
package zoneview

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/types"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/sakuraapi"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/ipam"
)

// Snapshot is one listing of the zone's appliances. It is never changed
// after it is made, so goroutines share it; the appliances it hands out
// are shared too and must not be modified.
type Snapshot struct {
	// At is when the listing started: nothing made or changed before it
	// is missing from it (unless a page boundary moved under it).
	At time.Time

	appliances sakuraapi.Appliances
	// unlisted are the zones whose listing failed, with the error: what
	// is not in the snapshot may be there.
	unlisted map[string]error
}

// NewSnapshot holds the listing a, started at at. Each class is put in ID
// order (oldest first) and an appliance listed twice (pages that moved
// while they were read) is kept once.
func NewSnapshot(at time.Time, a sakuraapi.Appliances) *Snapshot {
	return &Snapshot{At: at, appliances: sakuraapi.Appliances{
		LoadBalancers:  oldestFirst(a.LoadBalancers, func(v *iaas.LoadBalancer) types.ID { return v.ID }),
		VPCRouters:     oldestFirst(a.VPCRouters, func(v *iaas.VPCRouter) types.ID { return v.ID }),
		Databases:      oldestFirst(a.Databases, func(v *iaas.Database) types.ID { return v.ID }),
		NFS:            oldestFirst(a.NFS, func(v *iaas.NFS) types.ID { return v.ID }),
		MobileGateways: oldestFirst(a.MobileGateways, func(v *iaas.MobileGateway) types.ID { return v.ID }),
	}}
}

// WithUnlisted is s, noting that the zones of unlisted could not be
// listed (a listing of several zones that some answered).
func (s *Snapshot) WithUnlisted(unlisted map[string]error) *Snapshot {
	c := *s
	c.unlisted = unlisted
	return &c
}

// ProvesAbsence says whether an appliance missing from the listing is
// missing everywhere: not when a zone could not be listed, as the
// appliance may live there. Creating one then could give a Service a
// second appliance (and a second paid address) once the zone answers.
func (s *Snapshot) ProvesAbsence() error {
	if len(s.unlisted) == 0 {
		return nil
	}
	zones := slices.Sorted(maps.Keys(s.unlisted))
	parts := make([]string, len(zones))
	for i, z := range zones {
		parts[i] = fmt.Sprintf("zone %s (%v)", z, s.unlisted[z])
	}
	return fmt.Errorf("the appliances of %s could not be listed, so none found elsewhere does not mean none exists; retrying before anything is created", strings.Join(parts, ", "))
}

// Listed says whether the listing covers zone (its appliances are all
// in it): an address inventory of a switch of zone needs them.
func (s *Snapshot) Listed(zone string) error {
	if err, ok := s.unlisted[zone]; ok {
		return fmt.Errorf("the appliances of zone %s could not be listed: %w", zone, err)
	}
	return nil
}

// oldestFirst copies list without nils and repeats, in ID order (IDs grow
// with creation time).
func oldestFirst[T any](list []*T, id func(*T) types.ID) []*T {
	out := make([]*T, 0, len(list))
	for _, v := range list {
		if v != nil {
			out = append(out, v)
		}
	}
	slices.SortStableFunc(out, func(a, b *T) int { return cmp.Compare(id(a), id(b)) })
	return slices.CompactFunc(out, func(a, b *T) bool { return id(a) == id(b) })
}

// LoadBalancers are every load balancer of the zone, whoever made it,
// oldest first.
func (s *Snapshot) LoadBalancers() []*iaas.LoadBalancer {
	return slices.Clone(s.appliances.LoadBalancers)
}

// Appliances are the listing's appliances by class, each oldest first.
func (s *Snapshot) Appliances() sakuraapi.Appliances {
	a := s.appliances
	a.LoadBalancers, a.VPCRouters, a.Databases = slices.Clone(a.LoadBalancers), slices.Clone(a.VPCRouters), slices.Clone(a.Databases)
	a.NFS, a.MobileGateways = slices.Clone(a.NFS), slices.Clone(a.MobileGateways)
	return a
}

// Owned are the load balancers that carry every one of tags, oldest
// first: what apply's FindOwned (cluster and Service tags), FindShared
// (cluster and sharing tags) and FindCluster (cluster tag) find, answered
// from the listing. No tags owns nothing: asking without them is a
// mistake that must not hand out every appliance of the zone.
func (s *Snapshot) Owned(tags ...string) []*iaas.LoadBalancer {
	if len(tags) == 0 {
		return nil
	}
	var out []*iaas.LoadBalancer
	for _, lb := range s.appliances.LoadBalancers {
		if hasTags(lb.Tags, tags) {
			out = append(out, lb)
		}
	}
	return out
}

func hasTags(have types.Tags, want []string) bool {
	for _, t := range want {
		if !slices.Contains(have, t) {
			return false
		}
	}
	return true
}

// Usage is the addresses and VRIDs the listing's appliances, of every
// class, hold on switchID. Servers and next hops are not appliances: see
// SwitchUsage.
func (s *Snapshot) Usage(switchID types.ID) *ipam.Usage {
	u := ipam.NewUsage()
	ipam.AddAppliances(u, &s.appliances, switchID)
	return u
}

// SwitchUsage is everything on sw: its next hops, the servers
// (Switch.GetServers's answer) and the listing's appliances.
func (s *Snapshot) SwitchUsage(sw *iaas.Switch, servers []*iaas.Server) *ipam.Usage {
	return ipam.SwitchUsage(sw, servers, &s.appliances)
}
