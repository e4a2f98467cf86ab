package engine

import (
	"context"
	"fmt"
	"strings"
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
//     listing, the boot looks' shared listing, GetLoadBalancer's find just
//     before a delete, or a find now);
//  2. unlisted: a read by the ID the Service records, or by the ID this
//     process just created, shows it while listings do not yet;
//  3. pending: a create is or may be in flight (this process's reservation,
//     or a young create record on the Service, from before a restart):
//     wait rather than make a second appliance;
//  4. none.

// location is the locator's answer.
type location struct {
	found decide.Found
	// lbs: the appliances found (listed: oldest first; unlisted: one).
	lbs []*iaas.LoadBalancer
	// wait is the RetryError for decide.FoundPending.
	wait error
}

// locateFor says which listings the locator may use instead of a find.
type locateFor struct {
	// observed: the Service's appliances as a listing just saw them (the
	// repair pass); an empty observation is looked at again (it may be
	// older than a create by the service controller).
	observed []*iaas.LoadBalancer
	// shareBootListing: while a boot is awaited, answer from the boot
	// looks' shared listing.
	shareBootListing bool
	// reuseFound: GetLoadBalancer's find of a moment ago stands in (the
	// delete that follows it).
	reuseFound bool
	// rememberFound: keep this find for the delete that may follow.
	rememberFound bool
}

func (l *Engine) locate(ctx context.Context, exec *apply.Executor, svc *v1.Service, how locateFor) (location, error) {
	uid := string(svc.UID)
	listed := how.observed
	if len(listed) == 0 && how.reuseFound {
		listed, _ = l.mem.takeFound(uid)
	}
	if len(listed) == 0 && how.shareBootListing {
		listed, _ = l.bootingAppliances(ctx, exec, uid)
	}
	if len(listed) == 0 {
		var err error
		if listed, err = exec.FindOwned(ctx, uid); err != nil {
			return location{}, err
		}
		if how.rememberFound {
			l.mem.rememberFound(uid, listed)
		}
	}
	if len(listed) > 0 {
		// The API lists the appliance: its reservation is no longer needed.
		l.releaseListed(uid)
		return location{found: decide.FoundListed, lbs: listed}, nil
	}
	return l.unlisted(ctx, exec, svc)
}

// unlisted looks for svc's appliance where listings may not show it yet:
// by the ID the Service records or this process reserved, then by the
// create record on the Service.
func (l *Engine) unlisted(ctx context.Context, exec *apply.Executor, svc *v1.Service) (location, error) {
	uid := string(svc.UID)
	r, reserved := l.alloc.Get(uid)
	young := reserved && l.clock.Since(r.At) < graceOf(r)
	if reserved && r.Uncertain {
		// A create failed in a way that may hide a new appliance.
		if young {
			return pending("a failed create may have made a load balancer that is not listed yet; waiting for it before creating another", BootRetryAfter), nil
		}
		l.alloc.Release(uid)
		reserved = false
	}
	// This process's just-created appliance first (fresher than the
	// Service copy), then the ID the Service records.
	var ids []types.ID
	if reserved && !r.ApplianceID.IsEmpty() {
		ids = append(ids, r.ApplianceID)
	}
	if id := types.StringID(svc.Annotations[annotations.LoadBalancerID]); !id.IsEmpty() && (len(ids) == 0 || ids[0] != id) {
		ids = append(ids, id)
	}
	for _, id := range ids {
		lb, err := exec.Read(ctx, id)
		mine := reserved && id == r.ApplianceID
		switch {
		case err == nil && apply.Owned(lb, desired.ClusterTag(exec.ClusterID), desired.ServiceTag(uid)):
			return location{found: decide.FoundUnlisted, lbs: []*iaas.LoadBalancer{lb}}, nil
		case err != nil && !sakuraapi.IsNotFound(err) && !sakuraapi.IsStillCreating(err):
			return location{}, fmt.Errorf("reading load balancer %s: %w", id, err)
		case !mine:
		case err == nil || (sakuraapi.IsNotFound(err) && !young):
			l.alloc.Release(uid) // gone for good (or not ours): allow a new create
		default:
			return pending(fmt.Sprintf("load balancer %s was just created and is not visible yet", id), BootRetryAfter), nil
		}
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

func pending(msg string, after time.Duration) location {
	return location{found: decide.FoundPending, wait: api.NewRetryError(msg, after)}
}

// reportDuplicates warns that more than one appliance carries the
// Service's ownership tags; the oldest is managed.
func (l *Engine) reportDuplicates(svc *v1.Service, lbs []*iaas.LoadBalancer) {
	var ids []string
	for _, o := range lbs[1:] {
		ids = append(ids, o.ID.String())
	}
	l.warn(svc, ReasonDuplicate, fmt.Sprintf("more than one load balancer carries this Service's ownership tags; managing %s, leaving %s alone (delete them by hand if unused)", lbs[0].ID, strings.Join(ids, ", ")))
}
