package engine

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/search"
	"github.com/sacloud/iaas-api-go/types"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/sakuraapi"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/annotations"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/desired"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/ipam"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/zoneview"
	v1 "k8s.io/api/core/v1"
)

// switchTTL bounds how long a switch's block description is reused for
// choosing a block; allocation reuses it for inventoryTTL at most.
const switchTTL = 5 * time.Minute

// inventoryTTL is how long an allocation may reuse a switch's record and
// the addresses of its other consumers (loadBalancer.inventoryTTLSec).
func (l *Engine) inventoryTTL() time.Duration {
	return time.Duration(l.cfg.InventoryTTLSec) * time.Second
}

// releaseListed releases owner's reservation because a listing shows its
// appliance. The zone listing allocations use may be older than that
// listing (the repair pass lists on its own) and not show the appliance;
// with the reservation gone, an allocation reusing it would hand the
// appliance's VIP out again (torture seeds 6035, 6211), so the next
// allocation lists afresh.
func (l *Engine) releaseListed(owner string) {
	if _, ok := l.mem.reservation(owner); !ok {
		return
	}
	l.raiseZoneFloor()
	l.mem.release(owner)
}

// forgetInventory drops what is remembered of a switch, so the next
// allocation on it reads everything again (after the API refused a create,
// which an address taken outside the controller can cause).
func (l *Engine) forgetInventory(id types.ID) {
	l.switches.mu.Lock()
	if c, ok := l.switches.items[id]; ok && !c.sw.BridgeID.IsEmpty() {
		// The address the API refused may be held across the bridge.
		if b, ok := l.switches.bridges[c.sw.BridgeID]; ok {
			for _, i := range b.bridge.BridgeInfo {
				if i != nil {
					delete(l.switches.servers, i.ID)
				}
			}
			delete(l.switches.bridges, c.sw.BridgeID)
		}
	}
	delete(l.switches.servers, id)
	delete(l.switches.items, id)
	l.switches.zoneFloor = l.clock.Now()
	l.switches.bridgedFloor = l.clock.Now()
	l.switches.mu.Unlock()
}

// forgetInventoryIfRefused forgets the switch's inventory when the API
// refused a write that may carry a newly chosen address (a join's VIP, a
// pinned VIP): an address taken outside the controller since the inventory
// was read is the likely cause, and a kept inventory would choose it again
// for five minutes (issue #18, defect 7).
func (l *Engine) forgetInventoryIfRefused(id types.ID, err error) {
	if sakuraapi.NotDone(err) {
		l.forgetInventory(id)
	}
}

// blockError is a user-facing problem choosing the block.
type blockError struct {
	reason string
	msg    string
}

func (e *blockError) Error() string { return e.msg }

const howToChoose = "set the Service annotation " + annotations.SwitchSelector + " or " + annotations.RouterSelector +
	" (tags the router+switch carries), or routerID/switchID/routerSelector/switchSelector under loadBalancer in the cloud-config"

type switchCache struct {
	mu        sync.Mutex
	items     map[types.ID]cachedSwitch
	selectors map[string]cachedBlock
	// zones: the zone each switch was read in (kept when its copy is
	// forgotten: a switch never changes zone).
	zones map[types.ID]string
	// servers holds, per switch, the servers on it, reused for inventoryTTL.
	servers map[types.ID]cachedServers
	// zoneFloor: listings of the zone used from now on must have started
	// at or after it (forgetInventory, releaseListed).
	zoneFloor time.Time
	// bridges holds the bridges of switches, reused like the switches.
	bridges map[types.ID]cachedBridge
	// otherZones are the appliance listings of zones that switches are
	// bridged to (segment.go), used from bridgedFloor on (forgetInventory).
	otherZones   map[string]*zoneview.Lister
	bridgedFloor time.Time
}

type cachedBlock struct {
	block ipam.Block
	at    time.Time
}

type cachedSwitch struct {
	sw   *iaas.Switch
	zone string
	at   time.Time
}

// readSwitch reads switch id of zone for choosing a block, reusing a copy
// younger than switchTTL.
func (l *Engine) readSwitch(ctx context.Context, zone string, id types.ID) (*iaas.Switch, error) {
	return l.readSwitchWithin(ctx, zone, id, switchTTL)
}

// readSwitchWithin reads switch id of zone unless a copy younger than
// maxAge is at hand, and remembers the zone (switchZone).
func (l *Engine) readSwitchWithin(ctx context.Context, zone string, id types.ID, maxAge time.Duration) (*iaas.Switch, error) {
	l.switches.mu.Lock()
	c, ok := l.switches.items[id]
	l.switches.mu.Unlock()
	if ok && c.zone == zone && l.clock.Since(c.at) < maxAge {
		return c.sw, nil
	}
	sw, err := l.client.Switches.Read(ctx, zone, id)
	if err != nil {
		return nil, err
	}
	l.switches.mu.Lock()
	l.switches.items[id] = cachedSwitch{sw: sw, zone: zone, at: l.clock.Now()}
	l.switches.zones[id] = zone
	l.switches.mu.Unlock()
	return sw, nil
}

// switchZone is the zone switch id was read in. Every switch the engine
// handles was read by readSwitchWithin first (switch IDs are unique
// across zones); an unknown one is taken for the client's zone.
func (l *Engine) switchZone(id types.ID) string {
	l.switches.mu.Lock()
	defer l.switches.mu.Unlock()
	if z, ok := l.switches.zones[id]; ok {
		return z
	}
	return l.client.Zone
}

// resolveBlock chooses the router+switch: Service selectors, else the
// configured router/switch ID, else configured selectors, else the one the
// nodes' NICs sit on.
func (l *Engine) resolveBlock(ctx context.Context, zone string, svc *v1.Service, opts annotations.Options, nodes []*v1.Node, servers []desired.Server) (ipam.Block, error) {
	_, svcRouterSel := svc.Annotations[annotations.RouterSelector]
	_, svcSwitchSel := svc.Annotations[annotations.SwitchSelector]
	cfg := l.cfg
	switchSel := opts.SwitchSelector
	if l.cfgDescribesSwitch() {
		// The config's switch settings describe the plain switch of the
		// default type switch, not a router+switch.
		cfg.SwitchID = ""
		if !svcSwitchSel {
			switchSel = nil
		}
	}
	switch {
	case svcRouterSel || svcSwitchSel:
		return l.blockBySelectors(ctx, zone, opts.RouterSelector, switchSel)
	case cfg.SwitchID != "":
		return l.blockBySwitchID(ctx, zone, types.StringID(cfg.SwitchID), "cloud-config switchID")
	case cfg.RouterID != "":
		r, err := l.client.Internet.Read(ctx, zone, types.StringID(cfg.RouterID))
		if err != nil {
			return ipam.Block{}, fmt.Errorf("reading router %s from cloud-config routerID: %w", cfg.RouterID, err)
		}
		if r.Switch == nil {
			return ipam.Block{}, &blockError{ReasonNoAddressBlock, fmt.Sprintf("router %s (cloud-config routerID) has no switch", cfg.RouterID)}
		}
		return l.blockBySwitchID(ctx, zone, r.Switch.ID, "cloud-config routerID "+cfg.RouterID)
	case len(opts.RouterSelector) > 0 || len(switchSel) > 0:
		return l.blockBySelectors(ctx, zone, opts.RouterSelector, switchSel)
	}
	counts := desired.NodeSwitches(nodes, servers)
	var ids []types.ID
	for id := range counts {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	var blocks []ipam.Block
	for _, id := range ids {
		sw, err := l.readSwitch(ctx, zone, id)
		if err != nil {
			if sakuraapi.IsNotFound(err) {
				continue
			}
			return ipam.Block{}, fmt.Errorf("reading switch %s of the nodes: %w", id, err)
		}
		if b, err := ipam.BlockFromSwitch(sw); err == nil {
			blocks = append(blocks, b)
		}
	}
	switch len(blocks) {
	case 0:
		return ipam.Block{}, &blockError{ReasonNoAddressBlock, "no router+switch found: none of the nodes has a NIC on a router+switch; connect the nodes to one, or " + howToChoose}
	case 1:
		return blocks[0], nil
	}
	var names []string
	for _, b := range blocks {
		names = append(names, b.String())
	}
	return ipam.Block{}, &blockError{ReasonAmbiguousAddressBlock, fmt.Sprintf("the nodes sit on %d router+switch blocks (%s); choose one: %s", len(blocks), strings.Join(names, ", "), howToChoose)}
}

func (l *Engine) blockBySwitchID(ctx context.Context, zone string, id types.ID, from string) (ipam.Block, error) {
	sw, err := l.readSwitch(ctx, zone, id)
	if err != nil {
		if sakuraapi.IsNotFound(err) {
			return ipam.Block{}, &blockError{ReasonNoAddressBlock, fmt.Sprintf("switch %s (%s) does not exist in zone %s", id, from, zone)}
		}
		return ipam.Block{}, fmt.Errorf("reading switch %s (%s): %w", id, from, err)
	}
	b, err := ipam.BlockFromSwitch(sw)
	if err != nil {
		return ipam.Block{}, &blockError{ReasonNoAddressBlock, fmt.Sprintf("%s: %v", from, err)}
	}
	return b, nil
}

// blockBySelectors resolves tags to one block; a success is reused for
// switchTTL so steady-state resyncs do not search the zone each time.
func (l *Engine) blockBySelectors(ctx context.Context, zone string, routerTags, switchTags []string) (ipam.Block, error) {
	key := zone + "|" + strings.Join(routerTags, ",") + "|" + strings.Join(switchTags, ",")
	l.switches.mu.Lock()
	c, ok := l.switches.selectors[key]
	l.switches.mu.Unlock()
	if ok && l.clock.Since(c.at) < switchTTL {
		return c.block, nil
	}
	b, err := l.searchBySelectors(ctx, zone, routerTags, switchTags)
	if err == nil {
		l.switches.mu.Lock()
		l.switches.selectors[key] = cachedBlock{block: b, at: l.clock.Now()}
		l.switches.mu.Unlock()
	}
	return b, err
}

func (l *Engine) searchBySelectors(ctx context.Context, zone string, routerTags, switchTags []string) (ipam.Block, error) {
	var candidates map[types.ID]bool
	if len(switchTags) > 0 {
		sws, err := ipam.FindAll(ctx, func(ctx context.Context, c *iaas.FindCondition) ([]*iaas.Switch, int, error) {
			r, err := l.client.Switches.Find(ctx, zone, c)
			if err != nil {
				return nil, 0, err
			}
			return r.Switches, r.Total, nil
		}, &iaas.FindCondition{Filter: search.Filter{search.Key("Tags.Name"): search.TagsAndEqual(switchTags...)}})
		if err != nil {
			return ipam.Block{}, fmt.Errorf("finding switches tagged %v: %w", switchTags, err)
		}
		candidates = map[types.ID]bool{}
		for _, sw := range sws {
			if desired.HasTags(sw.Tags, switchTags...) {
				candidates[sw.ID] = true
			}
		}
	}
	if len(routerTags) > 0 {
		rs, err := ipam.FindAll(ctx, func(ctx context.Context, c *iaas.FindCondition) ([]*iaas.Internet, int, error) {
			r, err := l.client.Internet.Find(ctx, zone, c)
			if err != nil {
				return nil, 0, err
			}
			return r.Internet, r.Total, nil
		}, &iaas.FindCondition{Filter: search.Filter{search.Key("Tags.Name"): search.TagsAndEqual(routerTags...)}})
		if err != nil {
			return ipam.Block{}, fmt.Errorf("finding routers tagged %v: %w", routerTags, err)
		}
		byRouter := map[types.ID]bool{}
		for _, r := range rs {
			if r.Switch != nil && desired.HasTags(r.Tags, routerTags...) {
				byRouter[r.Switch.ID] = true
			}
		}
		if candidates == nil {
			candidates = byRouter
		} else {
			for id := range candidates {
				if !byRouter[id] {
					delete(candidates, id)
				}
			}
		}
	}
	desc := fmt.Sprintf("router tags %v, switch tags %v in zone %s", routerTags, switchTags, zone)
	var blocks []ipam.Block
	for id := range candidates {
		b, err := l.blockBySwitchID(ctx, zone, id, desc)
		var be *blockError
		if errors.As(err, &be) {
			continue // a plain switch with those tags is not a router+switch
		}
		if err != nil {
			return ipam.Block{}, err
		}
		blocks = append(blocks, b)
	}
	sort.Slice(blocks, func(i, j int) bool { return blocks[i].SwitchID < blocks[j].SwitchID })
	switch len(blocks) {
	case 0:
		return ipam.Block{}, &blockError{ReasonNoAddressBlock, fmt.Sprintf("no router+switch matches %s; tag the router or its switch, or %s", desc, howToChoose)}
	case 1:
		return blocks[0], nil
	}
	var names []string
	for _, b := range blocks {
		names = append(names, b.String())
	}
	return ipam.Block{}, &blockError{ReasonAmbiguousAddressBlock, fmt.Sprintf("%d router+switch blocks match %s (%s); add tags so exactly one matches, or %s", len(blocks), desc, strings.Join(names, ", "), howToChoose)}
}
