package engine

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/types"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/desired"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/ipam"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/zoneview"
)

// A switch on a SAKURA bridge shares one layer-2 segment with a switch of
// each other zone on that bridge. A DSR appliance reaches real servers on
// any of them (it rewrites only the MAC), and every server and appliance on
// any of them holds an address of the same network: both the real servers
// and the address inventory follow the segment, not the switch alone.

type cachedBridge struct {
	bridge *iaas.Bridge
	at     time.Time
}

// readBridge reads bridge id unless a copy younger than maxAge is at hand.
// A bridge is regional: any zone's path reads it, and its BridgeInfo lists
// the switches of the zones other than the one asked.
func (l *Engine) readBridge(ctx context.Context, zone string, id types.ID, maxAge time.Duration) (*iaas.Bridge, error) {
	l.switches.mu.Lock()
	c, ok := l.switches.bridges[id]
	l.switches.mu.Unlock()
	if ok && l.clock.Since(c.at) < maxAge {
		return c.bridge, nil
	}
	at := l.clock.Now()
	b, err := l.client.Bridges.Read(ctx, zone, id)
	if err != nil {
		return nil, fmt.Errorf("reading bridge %s: %w", id, err)
	}
	l.switches.mu.Lock()
	l.switches.bridges[id] = cachedBridge{bridge: b, at: at}
	l.switches.mu.Unlock()
	return b, nil
}

// segmentOf is the segment of sw, the switch of a load balancer (in its
// zone): sw first, then the switches bridged to it by zone and ID.
func (l *Engine) segmentOf(ctx context.Context, sw *iaas.Switch, maxAge time.Duration) (desired.Segment, error) {
	zone := l.switchZone(sw.ID)
	seg := desired.Segment{Switches: []types.ID{sw.ID}, Zones: []string{zone}}
	if sw.BridgeID.IsEmpty() {
		return seg, nil
	}
	b, err := l.readBridge(ctx, zone, sw.BridgeID, maxAge)
	if err != nil {
		return seg, err
	}
	others := slices.Clone(b.BridgeInfo)
	others = slices.DeleteFunc(others, func(i *iaas.BridgeInfo) bool { return i == nil || i.ID == sw.ID })
	slices.SortFunc(others, func(a, b *iaas.BridgeInfo) int {
		if c := strings.Compare(a.ZoneName, b.ZoneName); c != 0 {
			return c
		}
		return int(a.ID - b.ID)
	})
	for _, i := range others {
		seg.Switches = append(seg.Switches, i.ID)
		seg.Zones = append(seg.Zones, i.ZoneName)
	}
	return seg, nil
}

// bridgedUsage adds to u what the switches bridged to sw hold: the
// addresses of the servers on them and the addresses and VRIDs of the
// appliances of their zones on them. A server of is1b on a switch bridged
// to the load balancer's switch holds an address of the same network; an
// inventory without it would hand that address out as a VIP.
func (l *Engine) bridgedUsage(ctx context.Context, u *ipam.Usage, sw *iaas.Switch) error {
	seg, err := l.segmentOf(ctx, sw, l.inventoryTTL())
	if err != nil {
		return err
	}
	for i, id := range seg.Switches[1:] {
		zone := seg.Zones[i+1]
		servers, err := l.switchServersIn(ctx, zone, id)
		if err != nil {
			return err
		}
		ipam.AddServers(u, servers, id)
		lister, floor := l.otherZone(zone)
		snap, err := lister.Get(ctx, latest(l.clock.Now().Add(-l.inventoryTTL()), floor))
		if err != nil {
			return fmt.Errorf("listing the appliances of zone %s (switch %s is bridged to %s): %w", zone, id, sw.ID, err)
		}
		apps := snap.Appliances()
		ipam.AddAppliances(u, &apps, id)
	}
	return nil
}

// otherZone is the appliance listing of another zone, made on first use,
// and the time its listings must have started at or after. This controller
// makes no appliance there, so a listing as old as the inventory may be
// reused, unless a refused write has made the inventory suspect since.
func (l *Engine) otherZone(zone string) (*zoneview.Lister, time.Time) {
	l.switches.mu.Lock()
	defer l.switches.mu.Unlock()
	z := l.switches.otherZones[zone]
	if z == nil {
		z = zoneview.NewLister(l.client.Appliances, zone, l.clock)
		l.switches.otherZones[zone] = z
	}
	return z, l.switches.bridgedFloor
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
