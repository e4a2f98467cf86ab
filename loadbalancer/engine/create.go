package engine

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/types"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/metrics"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/sakuraapi"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/annotations"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/apply"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/desired"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/ipam"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/cloud-provider/api"
)

// Creating an appliance: allocation under the switch's lock, the create
// itself, and the moments after it when listings do not show it yet.

// checkNewVIP validates a pinned address that differs from the current VIP.
func (l *Engine) checkNewVIP(ctx context.Context, owner string, lb *iaas.LoadBalancer, opts annotations.Options, nodes []*v1.Node) error {
	ip := opts.IP
	defer l.locks.lock(switchLock(lb.SwitchID))()
	// An earlier try's hold on a pinned address is this Service's own.
	l.mem.release(vipOwner(owner))
	block, usage, _, err := l.usageOf(ctx, l.exec.ZoneOf(lb.ID), lb.SwitchID, opts, nodes, owner)
	if err != nil {
		return err
	}
	// lb may be newer than the listing usageOf reuses.
	ipam.AddLoadBalancers(usage, []*iaas.LoadBalancer{lb}, lb.SwitchID)
	if err := ipam.CheckVIP(block, usage, l.reserved, ip); err != nil {
		return err
	}
	// Hold the address for the settings write that follows the lock; a
	// listing that shows it releases the hold. Its own key keeps the
	// Service's create reservation, if any, intact.
	l.mem.reserve(vipOwner(owner), ipam.Reservation{SwitchID: lb.SwitchID, IPs: []netip.Addr{netip.MustParseAddr(ip)}})
	return nil
}

// restoreVIP chooses the VIP of an appliance left without entries: the
// address the Service shows while still free, else the lowest free one,
// held for the write that follows like a pinned one.
func (l *Engine) restoreVIP(ctx context.Context, svc *v1.Service, opts annotations.Options, nodes []*v1.Node, lb *iaas.LoadBalancer) (string, error) {
	defer l.locks.lock(switchLock(lb.SwitchID))()
	l.mem.release(vipOwner(string(svc.UID)))
	vip, err := l.allocateVIP(ctx, svc, opts, nodes, lb)
	if err != nil {
		return "", err
	}
	l.mem.reserve(vipOwner(string(svc.UID)), ipam.Reservation{SwitchID: lb.SwitchID, IPs: []netip.Addr{vip}})
	return vip.String(), nil
}

// usageOf takes stock of every address in use on switchID: the zone's load
// balancers (listed within zoneLBsReuse), the switch's other consumers (reused for
// inventoryTTL), this process's pending reservations and the nodes' own
// addresses. The caller holds the switch's lock.
// On error, reason is the Event reason that fits it.
//
// The zone's appliances come from a listing at most zoneReuse old, because
// this controller (and others like it) makes them; reservations and create
// records cover the ones made that the listing does not show yet. The
// switch's servers are made by people, seldom, and are reused for
// inventoryTTL; a create that the API refuses forgets them, so the next try
// reads them again.
//
// The addresses other LoadBalancer Services show in their status count as
// used too: an appliance deleted outside the controller frees its address in
// the cloud, but the Service still shows it (and clients still use it) until
// the repair pass re-creates the appliance on it, so it must never become
// another Service's VIP. self is the UID of the Service allocating.
func (l *Engine) usageOf(ctx context.Context, zone string, switchID types.ID, opts annotations.Options, nodes []*v1.Node, self string) (block ipam.Block, usage *ipam.Usage, reason string, err error) {
	// The reservations as they are before the listing is fetched: one
	// released meanwhile was shown by a listing the inventory's may
	// predate (ipam.Reservations.Hold).
	held := l.mem.reservationsOn(switchID)
	sw, err := l.readSwitchWithin(ctx, zone, switchID, l.inventoryTTL())
	if err != nil {
		return block, nil, ReasonAPIError, fmt.Errorf("reading switch %s of zone %s: %w", switchID, zone, err)
	}
	if block, err = blockOf(sw, opts); err != nil {
		return block, nil, ReasonNoAddressBlock, err
	}
	block.Zone = zone
	if usage, err = l.switchUsage(ctx, sw); err != nil {
		return block, nil, ReasonAPIError, err
	}
	l.mem.mergeReservations(usage, sw.ID, CreateVisibilityGrace)
	held.Hold(usage, sw.ID, l.clock.Now(), CreateVisibilityGrace)
	addNodeAddresses(usage, block, nodes)
	recs, err := l.recordsInFlight(self)
	if err != nil {
		return block, nil, ReasonAPIError, err
	}
	for _, rec := range recs {
		if rec.SwitchID == sw.ID.String() {
			for _, ip := range rec.IPs {
				usage.AddIP(ip.String(), "a load balancer a Service's create record holds (created moments ago, or before a restart)")
			}
			usage.AddVRID(rec.VRID, "a load balancer a Service's create record holds")
		}
	}
	shown, err := l.shownByOthers(self)
	if err != nil {
		return block, nil, ReasonAPIError, err
	}
	for ip, who := range shown {
		usage.AddIP(ip, fmt.Sprintf("Service %s (its status shows it)", who))
	}
	return block, usage, "", nil
}

// shownByOthers is every address a LoadBalancer Service other than self
// shows in its status, with that Service (namespace/name): none of them
// may become another Service's (allocation, adoption).
func (l *Engine) shownByOthers(self string) (map[string]string, error) {
	out := map[string]string{}
	f := l.follower()
	if f == nil {
		return out, nil
	}
	svcs, err := f.services.List(labels.Everything())
	if err != nil {
		return nil, fmt.Errorf("listing Services for the addresses they show: %w", err)
	}
	for _, other := range svcs {
		if string(other.UID) == self {
			continue
		}
		for _, in := range other.Status.LoadBalancer.Ingress {
			if in.IP != "" {
				out[in.IP] = other.Namespace + "/" + other.Name
			}
		}
	}
	return out, nil
}

// PlaceAgainAfter is how soon a create whose block filled up meanwhile
// places the appliance again (topology.PlaceAgain).
const PlaceAgainAfter = time.Second

// allocFailed reports an ipam.Allocate error as the Event it calls for;
// untouched says what was left as it was.
func (l *Engine) allocFailed(svc *v1.Service, err error, untouched string) error {
	var ex *ipam.ExhaustedError
	switch {
	case errors.As(err, &ex):
		return reasoned(ReasonAddressBlockExhausted, fmt.Errorf("%w; %s", err, untouched))
	case errors.Is(err, ipam.ErrPinnedUnavailable):
		return reasoned(ReasonLoadBalancerIPInvalid, fmt.Errorf("%w; fix spec.loadBalancerIP or %s", err, annotations.LoadBalancerIP))
	}
	return orReason(ReasonAPIError, err)
}

// create allocates addresses and creates the appliance under the switch's
// lock, so concurrent Services never receive the same address.
func (l *Engine) create(ctx context.Context, exec *apply.Executor, cluster string, svc *v1.Service, nodes []*v1.Node, p *prepared) (*v1.LoadBalancerStatus, error) {
	placed, err := l.placeNew(ctx, svc, p.opts, nodes, p.servers)
	block := placed.block
	if err == nil && placed.spill != "" {
		l.notice(svc, ReasonAddressBlockSpilled, []string{block.SwitchID.String()}, placed.spill)
	}
	if err != nil {
		var be *blockError
		if errors.As(err, &be) {
			return nil, reasoned(be.reason, err)
		}
		return nil, orReason(ReasonAPIError, err)
	}
	backends, err := l.backends(ctx, svc, nodes, p, block.SwitchID, block.Plain, block.Prefix)
	if err != nil {
		return nil, err
	}

	defer l.locks.lock(switchLock(block.SwitchID))()
	block, usage, reason, err := l.usageOf(ctx, block.Zone, block.SwitchID, p.opts, nodes, string(svc.UID))
	if err != nil {
		return nil, reasoned(reason, err)
	}
	free := len(ipam.Free(block, usage, l.reserved))
	metrics.SetBlockAddresses(block.Zone, block.SwitchID.String(), free, len(block.Usable())-free)
	n := 1
	if p.opts.HA {
		n = 2
	}
	res, err := allocateOn(block, usage, l.reserved, svc, p.opts, n)
	var ex *ipam.ExhaustedError
	if errors.As(err, &ex) && placed.again {
		return nil, api.NewRetryError(fmt.Sprintf("block %s filled up while this Service was placed (other creates ran at once); placing it again among the configured blocks", block), PlaceAgainAfter)
	}
	if err != nil {
		return nil, l.allocFailed(svc, err, "nothing was created")
	}
	vrid, err := ipam.PickVRID(usage)
	if err != nil {
		return nil, reasoned(ReasonAddressBlockExhausted, err)
	}
	want, err := desired.Build(desired.Input{ClusterID: cluster, Service: svc, Options: p.opts, SwitchID: block.SwitchID, VIP: res.VIP.String(), Backends: backends.Selected})
	if err != nil {
		return nil, reasoned(ReasonInvalidAnnotation, err)
	}
	ips := append([]netip.Addr{res.VIP}, res.Appliance...)
	rec := annotations.CreateRecord{At: l.clock.Now().UTC(), SwitchID: block.SwitchID.String(), IPs: ips, VRID: vrid, SharingKey: p.opts.SharingKey}
	if err := l.recordCreate(ctx, svc, rec); err != nil {
		return nil, orReason(ReasonAPIError, fmt.Errorf("%w; nothing was created", err))
	}
	lb, err := exec.Create(ctx, want, block, res.Appliance, vrid)
	if err != nil && !sakuraapi.NotDone(err) {
		// A 5xx, a timeout or a lost answer: the appliance may exist and
		// show up in listings only later. Keep its addresses and wait for
		// it (justCreated) rather than create a second one.
		grace := l.uncertainCreateGrace(ctx, svc, rec, err)
		r := ipam.Reservation{SwitchID: block.SwitchID, IPs: ips, VRID: vrid, Uncertain: true, Grace: grace}
		l.mem.reserve(string(svc.UID), r)
		if key := p.opts.SharingKey; key != "" {
			l.mem.reserve(sharedOwner(key), ipam.Reservation{SwitchID: block.SwitchID, Uncertain: true, Grace: grace})
		}
		_ = l.fail(svc, ReasonAPIError, err) // reported now: the reconcile returns a RetryError
		return nil, api.NewRetryError(fmt.Sprintf("creating the load balancer failed (%v); looking for it by its tags before trying again", err), min(BootRetryAfter, graceOf(r)))
	}
	if err != nil {
		// Refused: perhaps an address or VRID taken outside the controller
		// since the inventory was read. The next try reads it afresh.
		l.forgetInventoryIfRefused(block.SwitchID, err)
		return nil, orReason(ReasonAPIError, err)
	}
	l.mem.reserve(string(svc.UID), ipam.Reservation{SwitchID: block.SwitchID, IPs: ips, VRID: vrid, ApplianceID: lb.ID})
	l.recordID(ctx, svc, lb.ID)
	if key := p.opts.SharingKey; key != "" {
		// Other members find it by this until the API lists it.
		l.mem.reserve(sharedOwner(key), ipam.Reservation{SwitchID: block.SwitchID, ApplianceID: lb.ID})
	}
	l.mem.waitForBoot(string(svc.UID), lb.ID, true)
	l.event(svc, false, ReasonCreated, "created load balancer %s (%s) on %s with VIP %s, %d real servers; it is booting", lb.Name, lb.ID, block, res.VIP, len(backends.Selected))
	return nil, api.NewRetryError(fmt.Sprintf("load balancer %s created, waiting for it to boot", lb.ID), l.nextBootLook(0))
}

// allocateOn takes the Service's addresses from block: its pinned VIP, else
// the address its status already shows when that is still free (an
// appliance re-created after it was deleted outside the controller keeps the
// address clients use), else the lowest free one.
func allocateOn(block ipam.Block, usage *ipam.Usage, reserved []ipam.Range, svc *v1.Service, opts annotations.Options, appliance int) (ipam.Result, error) {
	if opts.IP == "" {
		if shown := statusIP(svc); shown != "" {
			if res, err := ipam.Allocate(block, usage, reserved, ipam.Request{PinnedVIP: shown, Appliance: appliance}); err == nil {
				return res, nil
			}
		}
	}
	return ipam.Allocate(block, usage, reserved, ipam.Request{PinnedVIP: opts.IP, Appliance: appliance})
}

// vipOwner is the allocator key of a VIP being written to an existing
// appliance for the Service uid (a join, a pinned VIP, entries restored).
// It is held from before the write until a listing shows it: a write
// answered 5xx may have been carried out all the same.
func vipOwner(uid string) string { return "vip/" + uid }

// switchLock is the lock key of allocation on one switch: the inventory,
// the choice of addresses and the create or write that takes them happen
// under it, so two Services never get one address, while Services on other
// switches do not wait.
func switchLock(id types.ID) string { return "switch/" + id.String() }
