package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/types"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/desired"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/ipam"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/zoneview"
)

// One listing of the appliances of the cluster's zones (every class,
// zoneview.Lister) answers the locator, the sharing key's lookup, the boot looks and the
// address and VRID inventory. Where five class finds and a tag find per
// question were, a create now costs one shared listing (plus, once per
// inventoryTTL, the switch's record and its servers) and the create.

// zoneReuse is how old a listing may be for these questions. Creates that
// follow one another (100 Services at once) then cost one listing every two
// seconds, not one each. It is safe for this process's own appliances: one
// not in the listing is still reserved (memory) or recorded on its
// Service, and a reservation is dropped only against a listing that shows
// it (then the floor below makes the next listing newer). Another
// cluster's appliance made within these two seconds is missed, as it would
// be by a listing made a moment before it.
const zoneReuse = 2 * time.Second

// recentZone is a listing of the zone no older than zoneReuse (and never
// older than the floor set by forgetInventory or releaseListed).
func (l *Engine) recentZone(ctx context.Context) (*zoneview.Snapshot, error) {
	// Never older than a reservation may live: Merge drops reservations
	// past CreateVisibilityGrace (tests shorten the grace).
	return l.zoneSince(ctx, l.clock.Now().Add(-min(zoneReuse, CreateVisibilityGrace/2)))
}

// zoneSince is a listing of the zone started at or after notBefore and
// the floor.
func (l *Engine) zoneSince(ctx context.Context, notBefore time.Time) (*zoneview.Snapshot, error) {
	l.switches.mu.Lock()
	if l.switches.zoneFloor.After(notBefore) {
		notBefore = l.switches.zoneFloor
	}
	l.switches.mu.Unlock()
	return l.zone.Get(ctx, notBefore)
}

// raiseZoneFloor makes the next listing used one started from now on.
func (l *Engine) raiseZoneFloor() {
	l.switches.mu.Lock()
	l.switches.zoneFloor = l.clock.Now()
	l.switches.mu.Unlock()
}

// ownedIn is the load balancers of snap carrying every tag, oldest first,
// as copies (callers set fields on theirs).
func ownedIn(snap *zoneview.Snapshot, tags ...string) []*iaas.LoadBalancer {
	var out []*iaas.LoadBalancer
	for _, lb := range snap.Owned(tags...) {
		c := *lb
		out = append(out, &c)
	}
	return out
}

// ownedBy is ownedIn for the Service uid of the cluster exec works for.
func ownedBy(snap *zoneview.Snapshot, cluster, uid string) []*iaas.LoadBalancer {
	return ownedIn(snap, desired.ClusterTag(cluster), desired.ServiceTag(uid))
}

// switchServers is the servers on switch id, reused for inventoryTTL. They
// are made by people, seldom; a create the API refuses forgets them
// (forgetInventory), so the next try reads them again.
func (l *Engine) switchServers(ctx context.Context, id types.ID) ([]*iaas.Server, error) {
	return l.switchServersIn(ctx, l.switchZone(id), id)
}

// switchServersIn is switchServers for a switch of zone (switch IDs are
// unique across zones).
func (l *Engine) switchServersIn(ctx context.Context, zone string, id types.ID) ([]*iaas.Server, error) {
	l.switches.mu.Lock()
	c, ok := l.switches.servers[id]
	l.switches.mu.Unlock()
	if ok && l.clock.Since(c.at) < l.inventoryTTL() {
		return c.servers, nil
	}
	at := l.clock.Now()
	r, err := l.client.Switches.GetServers(ctx, zone, id)
	if err != nil {
		return nil, fmt.Errorf("listing servers on switch %s of zone %s: %w", id, zone, err)
	}
	if l.inventoryTTL() > 0 {
		l.switches.mu.Lock()
		l.switches.servers[id] = cachedServers{servers: r.Servers, at: at}
		l.switches.mu.Unlock()
	}
	return r.Servers, nil
}

type cachedServers struct {
	servers []*iaas.Server
	at      time.Time
}

// switchUsage is every address and VRID in use on sw's segment: its next
// hops, its servers and every appliance of the zone's listing with a NIC on
// it, and the same of every switch bridged to it.
func (l *Engine) switchUsage(ctx context.Context, sw *iaas.Switch) (*ipam.Usage, error) {
	servers, err := l.switchServers(ctx, sw.ID)
	if err != nil {
		return nil, err
	}
	snap, err := l.recentZone(ctx)
	if err != nil {
		return nil, err
	}
	// The appliances on sw all live in sw's zone.
	if err := snap.Listed(l.switchZone(sw.ID)); err != nil {
		return nil, err
	}
	u := snap.SwitchUsage(sw, servers)
	if err := l.bridgedUsage(ctx, u, sw); err != nil {
		return nil, err
	}
	return u, nil
}
