package engine

import (
	"context"
	"fmt"
	"strings"

	"github.com/sacloud/iaas-api-go/types"
	v1 "k8s.io/api/core/v1"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/config"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/metrics"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/annotations"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/desired"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/ipam"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/topology"
)

// Several router+switch blocks (loadBalancer.blocks): a new address comes
// from the first block in configured order with room for the appliance,
// the next taking over when it is full. An appliance already on any of
// them stays where it is, and an address the Service pins or shows keeps
// it in the block that holds the address.

// blockRef is a configured block: its switch and the switch's zone.
type blockRef struct {
	zone string
	id   types.ID
}

// listedBlocks is the configured blocks when they decide svc's block (type
// internet, no selector annotation on the Service), else nil: those of the
// Service's zone when it names one, else all of them in order. A zone
// with no configured block is an error naming the blocks there are.
func (l *Engine) listedBlocks(svc *v1.Service, opts annotations.Options) ([]blockRef, error) {
	if len(l.cfg.Blocks) == 0 || opts.Type == annotations.TypeSwitch {
		return nil, nil
	}
	if _, ok := svc.Annotations[annotations.RouterSelector]; ok {
		return nil, nil
	}
	if _, ok := svc.Annotations[annotations.SwitchSelector]; ok {
		return nil, nil
	}
	refs := make([]blockRef, 0, len(l.cfg.Blocks))
	for _, entry := range l.cfg.Blocks {
		zone, id := config.SplitBlock(entry, l.client.Zone)
		if opts.Zone == "" || opts.Zone == zone {
			refs = append(refs, blockRef{zone: zone, id: types.StringID(id)})
		}
	}
	if len(refs) == 0 {
		return nil, &blockError{ReasonNoAddressBlock, fmt.Sprintf("annotation %s names zone %s, but cloud-config blocks (%s) list no switch of it; add one as %s/<switch ID>, or name the zone of a listed block",
			annotations.Zone, opts.Zone, strings.Join(l.cfg.Blocks, ", "), opts.Zone)}
	}
	return refs, nil
}

// allowedBlocks is where svc's appliance may live: any of the configured
// blocks, or the one block resolve chooses.
type allowedBlocks struct {
	switches []types.ID
	listed   bool // from cloud-config blocks
}

// String names the allowed blocks for a drift message.
func (a allowedBlocks) String() string {
	if a.listed {
		parts := make([]string, len(a.switches))
		for i, id := range a.switches {
			parts[i] = id.String()
		}
		return "one of cloud-config blocks " + strings.Join(parts, ", ")
	}
	return a.switches[0].String()
}

// allowed says which blocks an existing appliance of svc may be on (the
// drift check, adoption).
func (l *Engine) allowed(ctx context.Context, svc *v1.Service, opts annotations.Options, nodes []*v1.Node, servers []desired.Server) (allowedBlocks, error) {
	refs, err := l.listedBlocks(svc, opts)
	if err != nil {
		return allowedBlocks{}, err
	}
	if refs != nil {
		ids := make([]types.ID, len(refs))
		for i, r := range refs {
			ids[i] = r.id
		}
		return allowedBlocks{switches: ids, listed: true}, nil
	}
	b, err := l.resolve(ctx, svc, opts, nodes, servers)
	if err != nil {
		return allowedBlocks{}, err
	}
	return allowedBlocks{switches: []types.ID{b.SwitchID}}, nil
}

// placeNew chooses the block of a new appliance: the first configured
// block with room (spill says why the default was passed over), or the
// one block resolve chooses.
func (l *Engine) placeNew(ctx context.Context, svc *v1.Service, opts annotations.Options, nodes []*v1.Node, servers []desired.Server) (placed placement, err error) {
	refs, err := l.listedBlocks(svc, opts)
	if err != nil {
		return placement{}, err
	}
	if refs != nil {
		placed.block, placed.spill, err = l.blockFromList(ctx, svc, opts, nodes, refs)
		placed.again = topology.PlaceAgain(len(refs), tiedToAddress(svc, opts))
		return placed, err
	}
	placed.block, err = l.resolve(ctx, svc, opts, nodes, servers)
	return placed, err
}

// placement is where a new appliance goes.
type placement struct {
	block ipam.Block
	// spill, when not empty, says that the default block was passed over
	// and why.
	spill string
	// again: should the block be full by the time its addresses are taken,
	// place the appliance again (topology.PlaceAgain).
	again bool
}

// tiedToAddress: an address the Service pins or shows decides its block.
func tiedToAddress(svc *v1.Service, opts annotations.Options) bool {
	return opts.IP != "" || statusIP(svc) != ""
}

// addressesNeeded is how many free addresses a new appliance takes: its
// VIP and one address per appliance (two for a redundant pair).
func addressesNeeded(opts annotations.Options) int {
	if opts.HA {
		return 3
	}
	return 2
}

// blockFromList chooses the block of a new appliance among ids. spill,
// when not empty, says that the default block was passed over and why.
// Blocks are counted in order until one has room; all of them when an
// address the Service pins or shows must be placed.
func (l *Engine) blockFromList(ctx context.Context, svc *v1.Service, opts annotations.Options, nodes []*v1.Node, refs []blockRef) (block ipam.Block, spill string, err error) {
	placing := tiedToAddress(svc, opts)
	listed := make([]topology.Block, 0, len(refs))
	free := map[string]int{}
	found := map[string]ipam.Block{}
	for _, ref := range refs {
		tb := topology.Block{ID: ref.id.String(), Zone: ref.zone}
		if placing || !hasRoom(free) {
			b, n, reason, err := l.blockFree(ctx, svc, opts, nodes, ref)
			if err != nil {
				if reason == ReasonNoAddressBlock {
					return ipam.Block{}, "", &blockError{ReasonNoAddressBlock, fmt.Sprintf("cloud-config blocks: %v", err)}
				}
				return ipam.Block{}, "", reasoned(reason, err)
			}
			found[tb.ID] = b
			tb.Network = b.Prefix
			if n >= addressesNeeded(opts) {
				free[tb.ID] = n
			} else {
				free[tb.ID] = 0
			}
		}
		listed = append(listed, tb)
	}
	switch held, pinned := topology.HoldingBlock(listed, opts.IP, statusIP(svc)); pinned {
	case topology.PinHeld:
		return found[held], "", nil
	case topology.PinOutside:
		return ipam.Block{}, "", reasoned(ReasonLoadBalancerIPInvalid, fmt.Errorf("%s %s is in none of the cloud-config blocks (%s)", annotations.LoadBalancerIP, opts.IP, describeBlocks(found, refs)))
	}
	chosen, spilled, why := topology.ChooseBlock(listed, free, "")
	if chosen == "" {
		return ipam.Block{}, "", &blockError{ReasonAddressBlockExhausted, fmt.Sprintf("no free address for a new load balancer (%d needed): %s", addressesNeeded(opts), why)}
	}
	if spilled {
		spill = why
	}
	return found[chosen], spill, nil
}

// hasRoom reports whether a counted block has room.
func hasRoom(free map[string]int) bool {
	for _, n := range free {
		if n > 0 {
			return true
		}
	}
	return false
}

// blockFree reads block id, takes stock of it under the switch's lock and
// returns (and reports in the metrics) how many addresses are free.
func (l *Engine) blockFree(ctx context.Context, svc *v1.Service, opts annotations.Options, nodes []*v1.Node, ref blockRef) (ipam.Block, int, string, error) {
	defer l.locks.lock(switchLock(ref.id))()
	b, usage, reason, err := l.usageOf(ctx, ref.zone, ref.id, opts, nodes, string(svc.UID))
	if err != nil {
		return b, 0, reason, err
	}
	free := len(ipam.Free(b, usage, l.reserved))
	metrics.SetBlockAddresses(ref.zone, b.SwitchID.String(), free, len(b.Usable())-free)
	return b, free, "", nil
}

func describeBlocks(found map[string]ipam.Block, refs []blockRef) string {
	parts := make([]string, 0, len(refs))
	for _, ref := range refs {
		if b, ok := found[ref.id.String()]; ok {
			parts = append(parts, b.String())
		} else {
			parts = append(parts, "switch "+ref.id.String())
		}
	}
	return strings.Join(parts, ", ")
}
