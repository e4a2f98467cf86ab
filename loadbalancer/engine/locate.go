package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/types"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/sakuraapi"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/annotations"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/apply"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/decide"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/desired"
	v1 "k8s.io/api/core/v1"
	"k8s.io/cloud-provider/api"
)

// The locator: the one answer to "where is this Service's appliance" that
// Status (GetLoadBalancer), Reconcile and Delete all use. In order:
//  1. listed: a listing shows it by its ownership tags (the repair pass's
//     listing, or the zone's listing at most zoneReuse old, made after the
//     Service's previous look while a boot is awaited);
//  2. unlisted: a read by the ID the Service records, or by the ID this
//     process just created, shows it while listings do not yet;
//  3. pending: a create is or may be in flight (this process's reservation,
//     or a young create record on the Service, from before a restart):
//     wait rather than make a second appliance;
//  4. adoptable (asked only by a reconcile that may create, see adopt.go):
//     an appliance this controller did not make, which the Service may
//     take over (or which was proposed and is refused);
//  5. none.

// location is the locator's answer.
type location struct {
	found decide.Found
	// lbs: the appliances found (listed: oldest first; unlisted: one).
	lbs []*iaas.LoadBalancer
	// wait is the RetryError for decide.FoundPending.
	wait error
	// at is when the listing that found them started (zero: not a listing
	// of the zone: the repair pass's, or a read).
	at time.Time
	// adoption is the decision behind FoundAdoptable / FoundAdoptRefused.
	adoption decide.Adoption
}

// locateFor says which listings the locator may use.
type locateFor struct {
	// observed: the Service's appliances as a listing just saw them (the
	// repair pass); an empty observation is looked at again (it may be
	// older than a create by the service controller).
	observed []*iaas.LoadBalancer
	// since: the zone's listing must have started at or after it; the
	// engine passes the moment it took the Service's (and sharing key's)
	// locks, so every write made under them before is seen, and reconciles
	// that run at once share one listing.
	since time.Time
	// recentIfShown: a listing up to zoneReuse old stands in when it shows
	// the appliance (the delete right after GetLoadBalancer); "none" is
	// looked at again, as it may be a create not listed yet.
	recentIfShown bool
	// adopt: with no appliance of this controller, ask whether one may be
	// adopted (nil: never; Status and Delete only look for their own).
	adopt *adoptInputs
}

func (l *Engine) locate(ctx context.Context, exec *apply.Executor, svc *v1.Service, how locateFor) (location, error) {
	uid := string(svc.UID)
	listed := how.observed
	var at time.Time
	if len(listed) == 0 {
		var err error
		if listed, at, err = l.listOwned(ctx, exec, uid, how); err != nil {
			return location{}, err
		}
	}
	if len(listed) > 0 {
		// The API lists the appliance: its reservation is no longer needed.
		l.releaseListed(uid)
		return location{found: decide.FoundListed, lbs: listed, at: at}, nil
	}
	loc, err := l.unlisted(ctx, exec, svc)
	if err != nil || loc.found != decide.FoundNone || how.adopt == nil {
		return loc, err
	}
	return l.adoptable(ctx, exec, svc, how.adopt, how.since)
}

// listOwned is uid's appliances in the zone's listing: while a boot is
// awaited, one at most bootListingMaxAge old and newer than uid's previous
// look, which a hundred booting Services share (about one listing a
// second); else one that started at or after how.since.
//
// A shared or recent listing must show the awaited appliance to stand in:
// it may be older than another Service's inventory, which, seeing the
// appliance listed, released its reservation; answering "none" from it
// would let the Service create a second appliance (torture seeds 11, 13
// and 20 found this). Then a listing since how.since is made.
func (l *Engine) listOwned(ctx context.Context, exec *apply.Executor, uid string, how locateFor) ([]*iaas.LoadBalancer, time.Time, error) {
	w, waiting := l.mem.bootWaitOf(uid)
	waiting = waiting && w.listed
	notBefore := how.since
	switch {
	case waiting:
		notBefore = l.clock.Now().Add(-bootListingMaxAge)
		if !w.looked.Before(notBefore) {
			notBefore = w.looked.Add(time.Nanosecond)
		}
	case how.recentIfShown:
		notBefore = l.clock.Now().Add(-min(zoneReuse, CreateVisibilityGrace/2))
	}
	snap, err := l.zoneSince(ctx, notBefore)
	if err != nil {
		return nil, time.Time{}, err
	}
	owned := ownedBy(snap, exec.ClusterID, uid)
	shown := len(owned) > 0
	if waiting {
		shown = false
		for _, lb := range owned {
			shown = shown || lb.ID == w.id
		}
	}
	if !shown && snap.At.Before(how.since) {
		if snap, err = l.zoneSince(ctx, how.since); err != nil {
			return nil, time.Time{}, err
		}
		owned = ownedBy(snap, exec.ClusterID, uid)
	}
	if len(owned) == 0 {
		// "None" from a listing that missed a zone is not an answer: the
		// appliance may be there.
		if err := snap.ProvesAbsence(); err != nil {
			return nil, time.Time{}, err
		}
	}
	return owned, snap.At, nil
}

// unlisted looks for svc's appliance where listings may not show it yet:
// by the ID the Service records or this process reserved, then by the
// create record on the Service.
func (l *Engine) unlisted(ctx context.Context, exec *apply.Executor, svc *v1.Service) (location, error) {
	uid := string(svc.UID)
	loc, err := l.inFlight(ctx, exec, uid, types.StringID(svc.Annotations[annotations.LoadBalancerID]),
		desired.ClusterTag(exec.ClusterID), desired.ServiceTag(uid))
	if err != nil || loc.found != decide.FoundNone {
		return loc, err
	}
	rec, has, err := annotations.CreateRecordOf(svc)
	if err != nil {
		return location{}, reasoned(ReasonInvalidAnnotation, fmt.Errorf("%w; nothing is created while a create may be in flight", err))
	}
	if wait := decide.CreateWait(rec, has, l.clock.Now(), CreateVisibilityGrace); wait > 0 {
		return pending(fmt.Sprintf("a create sent at %s may have made a load balancer that is not listed yet; waiting for it (up to %s more) before creating another",
			rec.At.UTC().Format(time.RFC3339), wait.Round(time.Second)), min(wait, BootRetryAfter)), nil
	}
	return location{found: decide.FoundNone}, nil
}

// inFlight answers for the create reserved under owner (a Service's, or a
// sharing key's: "share/<key>"): the appliance it made when a read by its
// ID (this process's reservation first, fresher than the Service copy,
// then recorded, the ID the Service records) shows it carrying tags;
// pending while the create may still show up; none otherwise.
func (l *Engine) inFlight(ctx context.Context, exec *apply.Executor, owner string, recorded types.ID, tags ...string) (location, error) {
	r, reserved := l.mem.reservation(owner)
	young := reserved && l.clock.Since(r.At) < graceOf(r)
	if reserved && r.Uncertain {
		// A create failed in a way that may hide a new appliance.
		if young {
			return pending("a failed create may have made a load balancer that is not listed yet; waiting for it before creating another", BootRetryAfter), nil
		}
		l.mem.release(owner)
		reserved = false
	}
	var ids []types.ID
	if reserved && !r.ApplianceID.IsEmpty() {
		ids = append(ids, r.ApplianceID)
	}
	if !recorded.IsEmpty() && (len(ids) == 0 || ids[0] != recorded) {
		ids = append(ids, recorded)
	}
	for _, id := range ids {
		lb, err := exec.Read(ctx, id)
		mine := reserved && id == r.ApplianceID
		switch {
		case err == nil && apply.Owned(lb, tags...):
			return location{found: decide.FoundUnlisted, lbs: []*iaas.LoadBalancer{lb}}, nil
		case err != nil && !sakuraapi.IsNotFound(err) && !sakuraapi.IsStillCreating(err):
			return location{}, fmt.Errorf("reading load balancer %s: %w", id, err)
		case !mine:
		case err == nil || (sakuraapi.IsNotFound(err) && !young):
			l.mem.release(owner) // gone for good (or not ours): allow a new create
		default:
			return pending(fmt.Sprintf("load balancer %s was just created and is not visible yet", id), BootRetryAfter), nil
		}
	}
	return location{found: decide.FoundNone}, nil
}

func pending(msg string, after time.Duration) location {
	return location{found: decide.FoundPending, wait: api.NewRetryError(msg, after)}
}
