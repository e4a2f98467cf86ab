// Package apply turns plan actions into API calls. It is the only place in
// the load balancer controller that writes to the API, and it only ever
// writes to appliances that carry this cluster's ownership tags.
package apply

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/search"
	"github.com/sacloud/iaas-api-go/types"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/sakuraapi"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/decide"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/desired"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/ipam"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/plan"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

// ShutdownGrace is how long a requested shutdown is trusted to be under way
// before it is requested again: the status can still read "up" for a while.
const ShutdownGrace = 2 * time.Minute

// ShutdownConflictWait is how long a shutdown refused with 409 waits before
// it is sent again. A 409 may mean a shutdown is under way (sent before a
// restart) or only that the appliance is busy with another operation (a
// Config, say): trusting it for ShutdownGrace would stall the deletion for
// two minutes in the second case.
const ShutdownConflictWait = 5 * time.Second

// Executor performs actions with one client.
type Executor struct {
	Client    *sakuraapi.Client
	ClusterID string
	// StatusPolled: the health poll compares running Status with saved
	// settings (see decide.MarkUnapplied).
	StatusPolled bool
	// Clock times the shutdown waits; nil is the real clock. Tests step a
	// fake one instead of sleeping through ShutdownConflictWait.
	Clock clock.PassiveClock
	// Zones says where each appliance lives and which zones appliances may
	// live in; nil: the client's zone alone.
	Zones *sakuraapi.ZoneBook

	mu sync.Mutex
	// shutdownUntil: a shutdown was requested; not again before this time.
	shutdownUntil map[types.ID]time.Time
	// unapplied are appliances whose settings a write saved but whose
	// Config failed; every writer (adapter, sweep) shares the executor, so
	// whichever next reconciles the appliance applies them.
	unapplied map[types.ID]bool
}

func (e *Executor) now() time.Time {
	if e.Clock == nil {
		return clock.RealClock{}.Now()
	}
	return e.Clock.Now()
}

// shutdownRecently reports whether a shutdown was requested too recently
// to request it again.
func (e *Executor) shutdownRecently(id types.ID) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.now().Before(e.shutdownUntil[id])
}

// markShutdown records a shutdown request, trusted for wait (0: forget it).
func (e *Executor) markShutdown(id types.ID, wait time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.shutdownUntil == nil {
		e.shutdownUntil = map[types.ID]time.Time{}
	}
	if wait > 0 {
		e.shutdownUntil[id] = e.now().Add(wait)
	} else {
		delete(e.shutdownUntil, id)
	}
}

// Owned reports whether lb carries every tag in tags.
func Owned(lb *iaas.LoadBalancer, tags ...string) bool { return desired.HasTags(lb.Tags, tags...) }

// FindCluster returns every appliance tagged for this cluster, oldest first
// (the sweep decides which of them lost their Service; the repair pass and
// the health poll go through them). The tag filter is re-checked locally:
// the API's filter is a search, not a guarantee.
func (e *Executor) FindCluster(ctx context.Context) ([]*iaas.LoadBalancer, error) {
	if e.ClusterID == "" {
		// An empty cluster ID would match the bare "cluster=" tag prefix only,
		// but never search with it: it names no cluster.
		return nil, errors.New("no cluster ID configured")
	}
	out, err := e.findTagged(ctx, desired.ClusterTag(e.ClusterID))
	if err != nil {
		return nil, fmt.Errorf("listing this cluster's load balancers: %w", err)
	}
	return out, nil
}

func (e *Executor) findTagged(ctx context.Context, tags ...string) ([]*iaas.LoadBalancer, error) {
	cond := &iaas.FindCondition{Filter: search.Filter{search.Key("Tags.Name"): search.TagsAndEqual(tags...)}}
	var out []*iaas.LoadBalancer
	// Every zone must answer: a zone left out would hide its appliances
	// from the sweep and the repair pass, which is safe, but also from a
	// caller that reads "none" as "none anywhere".
	for _, zone := range e.zones() {
		all, err := ipam.FindAll(ctx, func(ctx context.Context, c *iaas.FindCondition) ([]*iaas.LoadBalancer, int, error) {
			r, err := e.Client.LoadBalancers.Find(ctx, zone, c)
			if err != nil {
				return nil, 0, err
			}
			return r.LoadBalancers, r.Total, nil
		}, cond)
		if err != nil {
			return nil, fmt.Errorf("zone %s: %w", zone, err)
		}
		for _, lb := range all {
			if lb != nil && Owned(lb, tags...) {
				e.Zones.Note(lb.ID, zone)
				out = append(out, lb)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// zones are the zones appliances may live in, the client's first.
func (e *Executor) zones() []string {
	if e.Zones == nil || len(e.Zones.Zones) == 0 {
		return []string{e.Client.Zone}
	}
	return e.Zones.Zones
}

// ZoneOf is the zone appliance id lives in (the client's when unknown:
// every appliance this process writes to was listed, read or created by
// it first, which notes its zone).
func (e *Executor) ZoneOf(id types.ID) string {
	return e.Zones.ZoneOr(id, e.Client.Zone)
}

// read reads appliance id in its zone, or, when the book does not know
// it, in each zone in turn: "not found" only when no zone has it (a
// deletion that trusted one zone's 404 would let the Service go and leave
// the appliance of another zone behind).
func (e *Executor) read(ctx context.Context, id types.ID) (*iaas.LoadBalancer, error) {
	var lb *iaas.LoadBalancer
	var err error
	for _, zone := range e.Zones.Candidates(id, e.Client.Zone) {
		lb, err = e.Client.LoadBalancers.Read(ctx, zone, id)
		if err == nil {
			e.Zones.Note(id, zone)
			return lb, nil
		}
		if !sakuraapi.IsNotFound(err) {
			return nil, err
		}
	}
	return nil, err
}

// Create makes the appliance. The block gives mask and default route.
func (e *Executor) Create(ctx context.Context, want *desired.Appliance, block ipam.Block, ips []netip.Addr, vrid int) (*iaas.LoadBalancer, error) {
	req := &iaas.LoadBalancerCreateRequest{
		SwitchID:           want.SwitchID,
		PlanID:             want.PlanID,
		VRID:               vrid,
		NetworkMaskLen:     block.Prefix.Bits(),
		Name:               want.Name,
		Description:        want.Description,
		Tags:               types.Tags(append([]string(nil), want.Tags...)),
		VirtualIPAddresses: plan.ToAPI(want.VIPs),
	}
	if block.Gateway.IsValid() { // a plain switch may have no default route
		req.DefaultRoute = block.Gateway.String()
	}
	for _, ip := range ips {
		req.IPAddresses = append(req.IPAddresses, ip.String())
	}
	zone := cmp.Or(block.Zone, e.Client.Zone)
	lb, err := e.Client.LoadBalancers.Create(ctx, zone, req)
	if err != nil {
		return nil, fmt.Errorf("creating load balancer %s in zone %s: %w", want.Name, zone, err)
	}
	e.Zones.Note(lb.ID, zone)
	return lb, nil
}

// ErrNotOwned guards every write against touching someone else's appliance.
var ErrNotOwned = errors.New("load balancer is not owned by this cluster")

// UpdateSettings replaces the VIP entries of lb, as the caller read it just
// before planning: its SettingsHash makes the write fail if anyone changed
// the settings since (the caller then plans again on a fresh read) instead
// of overwriting their change. Then it applies the settings with Config.
func (e *Executor) UpdateSettings(ctx context.Context, lb *iaas.LoadBalancer, vips iaas.LoadBalancerVirtualIPAddresses) error {
	return e.update(ctx, lb, vips, nil)
}

// UpdateMembers is UpdateSettings that also replaces the tags of a shared
// appliance: a Service joins or leaves with its service-uid tag and its VIP
// entries in one write, so no reader sees a member without its entries.
func (e *Executor) UpdateMembers(ctx context.Context, lb *iaas.LoadBalancer, vips iaas.LoadBalancerVirtualIPAddresses, tags []string) error {
	if tags == nil {
		tags = []string{}
	}
	return e.update(ctx, lb, vips, tags)
}

// update writes VIP entries, and tags when tags is non-nil, to lb after
// checking lb's ownership tags. A tag change needs the full Update, which
// also carries name, description and icon: they are written back as read.
func (e *Executor) update(ctx context.Context, lb *iaas.LoadBalancer, vips iaas.LoadBalancerVirtualIPAddresses, tags []string) error {
	if !Owned(lb, desired.ClusterTag(e.ClusterID)) {
		return fmt.Errorf("load balancer %s: %w", lb.ID, ErrNotOwned)
	}
	if tags != nil {
		if key := desired.SharingKeyOf(lb.Tags); key == "" || desired.SharingKeyOf(tags) != key {
			return fmt.Errorf("load balancer %s is not shared by this key: %w", lb.ID, ErrNotOwned)
		}
	}
	mark := decide.MarkUnapplied(lb.VirtualIPAddresses, vips, e.StatusPolled)
	var saved *iaas.LoadBalancer
	var err error
	if tags == nil && !mark {
		saved, err = e.Client.LoadBalancers.UpdateSettings(ctx, e.ZoneOf(lb.ID), lb.ID, &iaas.LoadBalancerUpdateSettingsRequest{
			VirtualIPAddresses: vips,
			SettingsHash:       lb.SettingsHash,
		})
	} else {
		// The full Update writes the tags too, and SAKURA checks only the
		// settings hash: a copy older than a member's leave (whose entries
		// were already gone, so the settings did not change) would write
		// the departed member's tag back, and the appliance would outlive
		// its last Service (torture seed 100376). So the tags must still
		// be the copy's on a fresh read; every writer of a shared
		// appliance's tags holds its sharing key's lock meanwhile.
		fresh, rerr := e.read(ctx, lb.ID)
		if rerr != nil {
			return fmt.Errorf("reading load balancer %s before writing its tags: %w", lb.ID, rerr)
		}
		if !decide.SameTags(fresh.Tags, lb.Tags) {
			return fmt.Errorf("load balancer %s: %w (now %v, decided on %v)", lb.ID, ErrTagsChanged, []string(fresh.Tags), []string(lb.Tags))
		}
		if tags == nil {
			tags = lb.Tags
		}
		desc := lb.Description
		if mark {
			desc = desired.MarkConfigPending(desc)
		}
		saved, err = e.Client.LoadBalancers.Update(ctx, e.ZoneOf(lb.ID), lb.ID, &iaas.LoadBalancerUpdateRequest{
			Name:               lb.Name,
			Description:        desc,
			Tags:               types.Tags(append([]string(nil), tags...)),
			IconID:             lb.IconID,
			VirtualIPAddresses: vips,
			SettingsHash:       lb.SettingsHash,
		})
	}
	if err != nil {
		if !sakuraapi.NotDone(err) {
			// A 5xx, a timeout or a lost answer: the settings may be saved
			// all the same, and a later plan over them would find nothing
			// to change and never apply them (torture seed 7557). Config
			// first on the next pass; it is harmless if nothing was saved.
			e.setUnapplied(lb.ID, true)
		}
		return fmt.Errorf("updating settings of load balancer %s: %w", lb.ID, err)
	}
	if saved == nil || saved.ID != lb.ID {
		saved = lb // an answer without the appliance: the mark stays until the next pass
	}
	return e.Config(ctx, saved)
}

// ErrNotApplied marks settings that were saved but whose Config failed: the
// appliance still runs the previous ones until Config succeeds. The caller
// must call Config again before anything else, even when a later plan finds
// nothing to change in the saved settings.
var ErrNotApplied = errors.New("settings saved but not applied")

// Config applies lb's saved settings to the running appliance.
func (e *Executor) Config(ctx context.Context, lb *iaas.LoadBalancer) error {
	if !Owned(lb, desired.ClusterTag(e.ClusterID)) {
		return fmt.Errorf("load balancer %s: %w", lb.ID, ErrNotOwned)
	}
	if err := e.Client.LoadBalancers.Config(ctx, e.ZoneOf(lb.ID), lb.ID); err != nil {
		e.setUnapplied(lb.ID, true)
		return fmt.Errorf("applying settings of load balancer %s: %w: %w", lb.ID, ErrNotApplied, err)
	}
	e.setUnapplied(lb.ID, false)
	e.unmark(ctx, lb)
	return nil
}

// unmark takes ConfigPendingMark off lb once its Config succeeded. The
// full Update writes tags too, so it goes by a fresh read, not by lb (a
// listing's copy may predate a member's leave; see update): the mark comes
// off only while the settings are still the ones just applied. A failure
// only leaves the mark: the next pass applies the settings again, which is
// harmless, and tries once more.
func (e *Executor) unmark(ctx context.Context, lb *iaas.LoadBalancer) {
	if !desired.ConfigPending(lb.Description) {
		return
	}
	cur, err := e.read(ctx, lb.ID)
	if err != nil || !desired.ConfigPending(cur.Description) || cur.SettingsHash != lb.SettingsHash {
		return
	}
	err = e.retag(ctx, cur, cur.Tags, desired.UnmarkConfigPending(cur.Description))
	if err != nil {
		klog.V(2).InfoS("Could not clear the load balancer's settings-pending mark; the next pass applies its settings again", "loadBalancer", lb.ID, "err", err)
	}
}

// Unapplied reports whether a write saved settings of appliance id whose
// Config has not succeeded since.
func (e *Executor) Unapplied(id types.ID) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.unapplied[id]
}

// ForgetExcept drops what the executor remembers of appliances not in
// keep (deleted ones), so its memory follows the appliances that exist.
func (e *Executor) ForgetExcept(keep map[types.ID]bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for id := range e.unapplied {
		if !keep[id] {
			delete(e.unapplied, id)
		}
	}
	now := e.now()
	for id, until := range e.shutdownUntil {
		if !keep[id] && now.After(until) {
			delete(e.shutdownUntil, id)
		}
	}
}

func (e *Executor) setUnapplied(id types.ID, on bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.unapplied == nil {
		e.unapplied = map[types.ID]bool{}
	}
	if on {
		e.unapplied[id] = true
	} else {
		delete(e.unapplied, id)
	}
}

// Boot powers on lb, stopped outside the controller, after checking on a
// fresh read that it is still ours, still down, and has no member the
// decision did not know of.
func (e *Executor) Boot(ctx context.Context, lb *iaas.LoadBalancer, members []string) (bool, error) {
	cur, err := e.Read(ctx, lb.ID)
	if err != nil {
		return false, err
	}
	if !Owned(cur, desired.ClusterTag(e.ClusterID)) {
		return false, fmt.Errorf("load balancer %s: %w", lb.ID, ErrNotOwned)
	}
	if !decide.MembersUnchanged(cur, members) {
		return false, fmt.Errorf("load balancer %s: %w", lb.ID, ErrMembersChanged)
	}
	if !cur.InstanceStatus.IsDown() || cur.Availability.IsMigrating() {
		return false, nil // booting or up already
	}
	err = e.Client.LoadBalancers.Boot(ctx, e.ZoneOf(lb.ID), lb.ID)
	// 409: a boot is already under way.
	if err != nil && sakuraapi.StatusCode(err) != http.StatusConflict {
		return false, fmt.Errorf("booting load balancer %s: %w", lb.ID, err)
	}
	return true, nil
}

// DeleteStep says where a deletion stands.
type DeleteStep int

const (
	// Deleted: the appliance is gone (or was never there).
	Deleted DeleteStep = iota
	// ShuttingDown: a shutdown is in progress; come back later.
	ShuttingDown
	// ShutdownSent: this call asked for the shutdown; come back later.
	ShutdownSent
)

// ErrTagsChanged refuses a write of tags decided on a copy whose tags a
// fresh read contradicts (a member joined or left since); the next
// reconcile decides again on a fresh listing.
var ErrTagsChanged = errors.New("its tags changed since the write was decided")

// ErrMembersChanged refuses a deletion decided on a copy that a fresh read
// contradicts: the appliance gained a member (a Service joined it) since.
var ErrMembersChanged = errors.New("load balancer gained a member since the deletion was decided")

// Delete advances deletion of lb by one non-blocking step: shut it down if
// it runs, delete it once it is down. Already-gone counts as deleted.
//
// members is the precondition: the member UIDs the deletion was decided
// for; an appliance that now carries any other member is refused with
// ErrMembersChanged. fresh says lb was read just now, under the lock that
// keeps this controller's own members from joining: then it is not read
// again before the shutdown (the sweep's listing is older and is re-read).
func (e *Executor) Delete(ctx context.Context, lb *iaas.LoadBalancer, members []string, fresh bool) (DeleteStep, error) {
	if !Owned(lb, desired.ClusterTag(e.ClusterID)) {
		return 0, fmt.Errorf("load balancer %s: %w", lb.ID, ErrNotOwned)
	}
	cur := lb
	if !fresh {
		var err error
		cur, err = e.read(ctx, lb.ID)
		if sakuraapi.IsNotFound(err) {
			return Deleted, nil
		}
		if sakuraapi.IsStillCreating(err) {
			return ShuttingDown, nil // cannot shut down what is still being created; wait
		}
		if err != nil {
			return 0, fmt.Errorf("reading load balancer %s: %w", lb.ID, err)
		}
	}
	// The decision may rest on a stale copy: act only if the appliance is
	// still ours, with no member the decision did not know of.
	if !Owned(cur, desired.ClusterTag(e.ClusterID)) {
		return 0, fmt.Errorf("load balancer %s no longer carries this cluster's tag: %w", lb.ID, ErrNotOwned)
	}
	if !decide.MembersUnchanged(cur, members) {
		return 0, fmt.Errorf("load balancer %s now has members %v, the deletion was decided for %v: %w", lb.ID, desired.MemberUIDs(cur.Tags), members, ErrMembersChanged)
	}
	switch {
	case cur.InstanceStatus.IsUp():
		if e.shutdownRecently(lb.ID) {
			return ShuttingDown, nil
		}
		if err := e.unshare(ctx, cur); err != nil {
			return 0, err
		}
		err := e.Client.LoadBalancers.Shutdown(ctx, e.ZoneOf(lb.ID), lb.ID, &iaas.ShutdownOption{Force: true})
		if sakuraapi.StatusCode(err) == http.StatusConflict {
			// A shutdown under way, or the appliance busy: look again soon.
			e.markShutdown(lb.ID, ShutdownConflictWait)
			return ShuttingDown, nil
		}
		if err != nil && !sakuraapi.IsNotFound(err) {
			return 0, fmt.Errorf("shutting down load balancer %s: %w", lb.ID, err)
		}
		e.markShutdown(lb.ID, ShutdownGrace)
		return ShutdownSent, nil
	case cur.Availability.IsFailed() || (cur.InstanceStatus.IsDown() && !cur.Availability.IsMigrating()):
		err := e.Client.LoadBalancers.Delete(ctx, e.ZoneOf(lb.ID), lb.ID)
		if err != nil && !sakuraapi.IsNotFound(err) {
			return 0, fmt.Errorf("deleting load balancer %s: %w", lb.ID, err)
		}
		e.markShutdown(lb.ID, 0)
		return Deleted, nil
	default:
		// Booting, cleaning or still being created: wait for a stable state.
		return ShuttingDown, nil
	}
}

// unshare takes the sharing-key tag off a shared appliance that is about to
// be shut down for good, so that no Service of the key joins it any more:
// an appliance still reads "up" for a while after its shutdown, and a join
// in that moment would be powered off under the new member (issue #18,
// defect 4). The tag lives in the cloud, so this holds across restarts;
// the member tags stay, and the deletion still finds the appliance by them.
// The caller holds the sharing key's lock, which joins take too.
func (e *Executor) unshare(ctx context.Context, lb *iaas.LoadBalancer) error {
	key := desired.SharingKeyOf(lb.Tags)
	if key == "" {
		return nil
	}
	tags := decide.Unshared(lb.Tags)
	err := e.retag(ctx, lb, tags, lb.Description)
	if err != nil {
		return fmt.Errorf("taking load balancer %s off sharing key %s before its shutdown: %w", lb.ID, key, err)
	}
	lb.Tags = tags
	return nil
}

// Reshare writes the sharing-key tag of key back on lb (decide.Reshare), on
// a fresh read that must still show uid as its only member and no key.
func (e *Executor) Reshare(ctx context.Context, lb *iaas.LoadBalancer, uid, key string) error {
	cur, err := e.Read(ctx, lb.ID)
	if err != nil {
		return err
	}
	if !decide.Reshare(cur.Name, cur.Tags, uid, key, cur.Name) || !Owned(cur, desired.ClusterTag(e.ClusterID)) {
		return fmt.Errorf("load balancer %s: %w (now %v)", lb.ID, ErrTagsChanged, []string(cur.Tags))
	}
	tags := append(slices.Clone([]string(cur.Tags)), desired.SharingTag(key))
	if err := e.retag(ctx, cur, tags, cur.Description); err != nil {
		return fmt.Errorf("writing sharing key %s back on load balancer %s: %w", key, lb.ID, err)
	}
	lb.Tags = tags
	return nil
}

// retag writes tags and desc on lb and keeps everything else as read (the
// full Update carries name, icon and entries too, guarded by lb's settings
// hash). Callers decide on a fresh read.
func (e *Executor) retag(ctx context.Context, lb *iaas.LoadBalancer, tags []string, desc string) error {
	_, err := e.Client.LoadBalancers.Update(ctx, e.ZoneOf(lb.ID), lb.ID, &iaas.LoadBalancerUpdateRequest{
		Name:               lb.Name,
		Description:        desc,
		Tags:               types.Tags(slices.Clone(tags)),
		IconID:             lb.IconID,
		VirtualIPAddresses: lb.VirtualIPAddresses,
		SettingsHash:       lb.SettingsHash,
	})
	return err
}

// Read reads one appliance afresh.
func (e *Executor) Read(ctx context.Context, id types.ID) (*iaas.LoadBalancer, error) {
	lb, err := e.read(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("reading load balancer %s: %w", id, err)
	}
	return lb, nil
}

// ErrAdoptChanged refuses an adoption decided on a copy that a fresh read
// contradicts (its tags, switch or settings changed: someone took it), or
// whose write another writer overwrote at once.
var ErrAdoptChanged = errors.New("load balancer changed since its adoption was decided")

// Adopt is the one write to an appliance this cluster does not own yet:
// tags (decide.AdoptEarlier / AdoptByID: every tag it had plus this
// cluster's and the Service's) written with the settings hash of a fresh
// read on which the decision's facts still hold (decide.StillAdoptable).
// VIP, entries, name and description stay as they are. A read after the
// write confirms the tags are exactly those written: another cluster whose
// own check came before this write would show there, and the adoption is
// then refused rather than shared. It returns that read.
func (e *Executor) Adopt(ctx context.Context, decidedOn *iaas.LoadBalancer, tags []string) (*iaas.LoadBalancer, error) {
	if e.ClusterID == "" || !desired.HasTags(tags, desired.ClusterTag(e.ClusterID)) {
		return nil, fmt.Errorf("load balancer %s: adopting without this cluster's tag: %w", decidedOn.ID, ErrNotOwned)
	}
	cur, err := e.Read(ctx, decidedOn.ID)
	if err != nil {
		return nil, err
	}
	if !decide.StillAdoptable(decidedOn, cur) {
		return nil, fmt.Errorf("load balancer %s (tags %v): %w", decidedOn.ID, []string(cur.Tags), ErrAdoptChanged)
	}
	err = e.retag(ctx, cur, tags, cur.Description)
	if err != nil {
		return nil, fmt.Errorf("adopting load balancer %s: %w", cur.ID, err)
	}
	after, err := e.Read(ctx, cur.ID)
	if err != nil {
		return nil, err
	}
	if !decide.Adopted(after, tags) {
		return nil, fmt.Errorf("load balancer %s was retagged (%v) right after its adoption: %w", cur.ID, []string(after.Tags), ErrAdoptChanged)
	}
	return after, nil
}

// Release takes this controller's ownership tags off lb (a preserved
// appliance: decide.LeaveOrPreserve), on a fresh read that must still be
// this cluster's with no member the decision did not know of. The appliance
// keeps running with its VIP and entries; nothing of this cluster finds it
// any more (sweep and repair list by the cluster tag). Gone already: nil.
func (e *Executor) Release(ctx context.Context, lb *iaas.LoadBalancer, members []string) (*iaas.LoadBalancer, error) {
	cur, err := e.read(ctx, lb.ID)
	if sakuraapi.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading load balancer %s: %w", lb.ID, err)
	}
	if !Owned(cur, desired.ClusterTag(e.ClusterID)) {
		return nil, fmt.Errorf("load balancer %s: %w", lb.ID, ErrNotOwned)
	}
	if !decide.MembersUnchanged(cur, members) {
		return nil, fmt.Errorf("load balancer %s now has members %v, preserving it was decided for %v: %w", lb.ID, desired.MemberUIDs(cur.Tags), members, ErrMembersChanged)
	}
	tags := decide.Released(cur.Tags)
	if err := e.retag(ctx, cur, tags, cur.Description); err != nil {
		return nil, fmt.Errorf("removing this cluster's tags from load balancer %s to preserve it: %w", lb.ID, err)
	}
	cur.Tags = tags
	return cur, nil
}
