package engine

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/search"
	"github.com/sacloud/iaas-api-go/types"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/sakuraapi"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/annotations"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/desired"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/ipam"
	v1 "k8s.io/api/core/v1"
)

// Choosing the plain switch of a load-balancer-type switch Service. The
// network is not in the API (a plain switch has no subnet): it comes from
// the Service's validated ip-range / assign-ip-range / gateway.

const howToChooseSwitch = "set the Service annotation " + annotations.SwitchSelector +
	" (tags the plain switch carries), or switchID/switchSelector under loadBalancer in the cloud-config (with loadBalancer.type: switch)"

// cfgDescribesSwitch: the cloud-config's switchID/switchSelector describe
// the switch of the cluster's default type, so they apply to type switch
// Services only when that default is switch (and to internet ones otherwise).
func (l *Engine) cfgDescribesSwitch() bool {
	return strings.EqualFold(l.cfg.Type, annotations.TypeSwitch)
}

// resolve chooses where the Service's appliance lives, by its type, among
// the switches of the Service's zone.
func (l *Engine) resolve(ctx context.Context, svc *v1.Service, opts annotations.Options, nodes []*v1.Node, servers []desired.Server) (ipam.Block, error) {
	zone := l.serviceZone(opts)
	// Other zones' switches are neither readable in zone nor a place for
	// its appliance.
	servers = slices.DeleteFunc(slices.Clone(servers), func(s desired.Server) bool { return s.Zone != "" && s.Zone != zone })
	var b ipam.Block
	var err error
	if opts.Type == annotations.TypeSwitch {
		b, err = l.resolveSwitch(ctx, zone, svc, opts, nodes, servers)
	} else {
		b, err = l.resolveBlock(ctx, zone, svc, opts, nodes, servers)
	}
	b.Zone = zone
	return b, err
}

// serviceZone is the zone the Service's appliance is looked for a block
// in: the one its annotation names, else zone.
func (l *Engine) serviceZone(opts annotations.Options) string {
	return cmp.Or(opts.Zone, l.client.Zone)
}

// resolveSwitch: Service switch-selector, else cloud-config switchID, else
// cloud-config switchSelector, else the one plain switch the nodes' NICs
// share (with node addresses inside ip-range).
func (l *Engine) resolveSwitch(ctx context.Context, zone string, svc *v1.Service, opts annotations.Options, nodes []*v1.Node, servers []desired.Server) (ipam.Block, error) {
	p := opts.Private
	var sw *iaas.Switch
	var err error
	_, svcSel := svc.Annotations[annotations.SwitchSelector]
	switch {
	case svcSel && len(opts.SwitchSelector) > 0:
		sw, err = l.plainBySelector(ctx, zone, opts.SwitchSelector, "annotation "+annotations.SwitchSelector)
	case l.cfgDescribesSwitch() && l.cfg.SwitchID != "":
		sw, err = l.plainByID(ctx, zone, types.StringID(l.cfg.SwitchID), "cloud-config switchID")
	case l.cfgDescribesSwitch() && len(l.cfg.SwitchSelector) > 0:
		sw, err = l.plainBySelector(ctx, zone, l.cfg.SwitchSelector, "cloud-config switchSelector")
	default:
		sw, err = l.plainByNodes(ctx, zone, p.Network, nodes, servers)
	}
	if err != nil {
		return ipam.Block{}, err
	}
	b, err := ipam.PlainBlock(sw, p.Network, p.Assign, p.Gateway)
	if err != nil {
		return ipam.Block{}, &blockError{ReasonNoAddressBlock, err.Error()}
	}
	return b, nil
}

func (l *Engine) plainByID(ctx context.Context, zone string, id types.ID, from string) (*iaas.Switch, error) {
	sw, err := l.readSwitch(ctx, zone, id)
	if err != nil {
		if sakuraapi.IsNotFound(err) {
			return nil, &blockError{ReasonNoAddressBlock, fmt.Sprintf("switch %s (%s) does not exist in zone %s", id, from, zone)}
		}
		return nil, fmt.Errorf("reading switch %s (%s): %w", id, from, err)
	}
	if ipam.IsRouterSwitch(sw) {
		return nil, &blockError{ReasonNoAddressBlock, fmt.Sprintf("switch %s (%s) has a router; %s: %s needs a plain switch (use %s for a router+switch)", sw.ID, from, annotations.Type, annotations.TypeSwitch, annotations.TypeInternet)}
	}
	return sw, nil
}

// plainBySelector finds the one plain switch with every tag. The tag →
// switch answer is reused for switchTTL (the block itself depends on the
// Service's ranges, so only the switch ID is cached).
func (l *Engine) plainBySelector(ctx context.Context, zone string, tags []string, from string) (*iaas.Switch, error) {
	key := "plain|" + zone + "|" + strings.Join(tags, ",")
	l.switches.mu.Lock()
	c, ok := l.switches.selectors[key]
	l.switches.mu.Unlock()
	if ok && l.clock.Since(c.at) < switchTTL {
		return l.plainByID(ctx, zone, c.block.SwitchID, from)
	}
	sws, err := ipam.FindAll(ctx, func(ctx context.Context, c *iaas.FindCondition) ([]*iaas.Switch, int, error) {
		r, err := l.client.Switches.Find(ctx, zone, c)
		if err != nil {
			return nil, 0, err
		}
		return r.Switches, r.Total, nil
	}, &iaas.FindCondition{Filter: search.Filter{search.Key("Tags.Name"): search.TagsAndEqual(tags...)}})
	if err != nil {
		return nil, fmt.Errorf("finding switches tagged %v: %w", tags, err)
	}
	var plain []*iaas.Switch
	var routed []string
	for _, sw := range sws {
		if !desired.HasTags(sw.Tags, tags...) {
			continue
		}
		if ipam.IsRouterSwitch(sw) {
			routed = append(routed, sw.ID.String())
			continue
		}
		plain = append(plain, sw)
	}
	sort.Slice(plain, func(i, j int) bool { return plain[i].ID < plain[j].ID })
	switch len(plain) {
	case 0:
		msg := fmt.Sprintf("no plain switch carries tags %v (%s)", tags, from)
		if len(routed) > 0 {
			msg += fmt.Sprintf("; router+switches %s do, but %s: %s needs a switch without a router", strings.Join(routed, ", "), annotations.Type, annotations.TypeSwitch)
		}
		return nil, &blockError{ReasonNoAddressBlock, msg + "; " + howToChooseSwitch}
	case 1:
		l.switches.mu.Lock()
		l.switches.selectors[key] = cachedBlock{block: ipam.Block{SwitchID: plain[0].ID}, at: l.clock.Now()}
		l.switches.items[plain[0].ID] = cachedSwitch{sw: plain[0], at: l.clock.Now()}
		l.switches.mu.Unlock()
		return plain[0], nil
	}
	var ids []string
	for _, sw := range plain {
		ids = append(ids, fmt.Sprintf("%s (%s)", sw.Name, sw.ID))
	}
	return nil, &blockError{ReasonAmbiguousAddressBlock, fmt.Sprintf("%d plain switches carry tags %v (%s): %s; add tags so exactly one matches", len(plain), tags, from, strings.Join(ids, ", "))}
}

// plainByNodes picks the plain switch the nodes have NICs on; when there
// are several, only those where some node has an address inside network.
func (l *Engine) plainByNodes(ctx context.Context, zone string, network netip.Prefix, nodes []*v1.Node, servers []desired.Server) (*iaas.Switch, error) {
	counts := desired.NodeNICSwitches(nodes, servers)
	var ids []types.ID
	for id := range counts {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	var plain []*iaas.Switch
	for _, id := range ids {
		sw, err := l.readSwitch(ctx, zone, id)
		if err != nil {
			if sakuraapi.IsNotFound(err) {
				continue
			}
			return nil, fmt.Errorf("reading switch %s of the nodes: %w", id, err)
		}
		if !ipam.IsRouterSwitch(sw) {
			plain = append(plain, sw)
		}
	}
	if len(plain) > 1 {
		var inRange []*iaas.Switch
		for _, sw := range plain {
			if len(desired.SelectBackendsOn(nodes, servers, sw.ID, network).Selected) > 0 {
				inRange = append(inRange, sw)
			}
		}
		if len(inRange) > 0 {
			plain = inRange
		}
	}
	switch len(plain) {
	case 0:
		return nil, &blockError{ReasonNoAddressBlock, "no plain switch found: none of the nodes has a NIC on a switch without a router; connect the nodes to one, or " + howToChooseSwitch}
	case 1:
		return plain[0], nil
	}
	var names []string
	for _, sw := range plain {
		names = append(names, fmt.Sprintf("%s (%s)", sw.Name, sw.ID))
	}
	return nil, &blockError{ReasonAmbiguousAddressBlock, fmt.Sprintf("the nodes sit on %d plain switches with addresses in %s (%s); choose one: %s", len(plain), network, strings.Join(names, ", "), howToChooseSwitch)}
}

// blockOf describes sw for allocation: a router+switch from the API, a
// plain switch from the Service's ranges. network overrides the ranges'
// network for an existing appliance (its mask is immutable).
func blockOf(sw *iaas.Switch, opts annotations.Options) (ipam.Block, error) {
	if ipam.IsRouterSwitch(sw) {
		if opts.Type == annotations.TypeSwitch {
			return ipam.Block{}, fmt.Errorf("switch %s (%s): %w; %s: %s needs a plain switch", sw.Name, sw.ID, ipam.ErrHasRouter, annotations.Type, annotations.TypeSwitch)
		}
		return ipam.BlockFromSwitch(sw)
	}
	if opts.Type != annotations.TypeSwitch {
		return ipam.Block{}, fmt.Errorf("switch %s (%s) has no router: it has no global addresses for %s: %s", sw.Name, sw.ID, annotations.Type, annotations.TypeInternet)
	}
	p := opts.Private
	return ipam.PlainBlock(sw, p.Network, p.Assign, p.Gateway)
}

// addNodeAddresses marks the addresses the nodes report (any type) inside
// the block as used: on a plain switch SAKURA often does not know them, and
// on a router+switch a node may carry an address configured inside its OS
// that SAKURA's NIC record lacks.
func addNodeAddresses(u *ipam.Usage, b ipam.Block, nodes []*v1.Node) {
	for ip, who := range desired.NodeAddressesIn(nodes, b.Prefix) {
		u.AddIP(ip, who)
	}
}

// haveType is the type of an existing appliance, judged by its switch
// (of the appliance's zone).
func (l *Engine) haveType(ctx context.Context, lb *iaas.LoadBalancer) (string, *iaas.Switch, error) {
	sw, err := l.readSwitch(ctx, l.exec.ZoneOf(lb.ID), lb.SwitchID)
	if err != nil {
		return "", nil, err
	}
	if ipam.IsRouterSwitch(sw) {
		return annotations.TypeInternet, sw, nil
	}
	return annotations.TypeSwitch, sw, nil
}

// networkOf is the network an appliance was created with (immutable).
func networkOf(lb *iaas.LoadBalancer) netip.Prefix {
	for _, s := range lb.IPAddresses {
		if a, err := netip.ParseAddr(s); err == nil && lb.NetworkMaskLen > 0 {
			if p, err := a.Prefix(lb.NetworkMaskLen); err == nil {
				return p
			}
		}
	}
	return netip.Prefix{}
}
