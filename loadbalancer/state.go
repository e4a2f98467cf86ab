package loadbalancer

import (
	"context"
	"encoding/json"
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
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	ktypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/cloud-provider/api"
	servicehelpers "k8s.io/cloud-provider/service/helpers"
	"k8s.io/klog/v2"
)

// What the controller records and checks beyond one reconcile: stopped
// appliances, the Service's recorded appliance ID, deletions begun and
// Configs pending.

// unlisted looks for svc's appliance where listings may not show it yet:
// by the ID the Service records (annotation) or this process reserved. It
// reports pending when a create is (or may be) in flight and the appliance
// is not readable yet.
func (l *LoadBalancer) unlisted(ctx context.Context, exec *apply.Executor, svc *v1.Service) (*iaas.LoadBalancer, bool, error) {
	uid := string(svc.UID)
	r, reserved := l.alloc.Get(uid)
	young := reserved && time.Since(r.At) < graceOf(r)
	id := types.StringID(svc.Annotations[annotations.LoadBalancerID])
	if id.IsEmpty() {
		id = r.ApplianceID
	}
	if id.IsEmpty() {
		return nil, young && r.Uncertain, nil
	}
	lb, err := exec.Read(ctx, id)
	switch {
	case err == nil && apply.Owned(lb, desired.ClusterTag(exec.ClusterID), desired.ServiceTag(uid)):
		return lb, false, nil
	case err == nil, sakuraapi.IsNotFound(err), sakuraapi.IsStillCreating(err):
		return nil, young, nil
	}
	return nil, false, err
}

// recorded looks for svc's appliance where only the Service itself can
// tell after a restart or a leader change: the recorded ID (one read), and
// a create record young enough that its appliance may not be listed yet,
// which is waited for (a RetryError) instead of creating a second appliance
// (issue #18, defect 5). nil, nil: nothing recorded, a create may go ahead.
func (l *LoadBalancer) recorded(ctx context.Context, exec *apply.Executor, svc *v1.Service) (*iaas.LoadBalancer, error) {
	if id := types.StringID(svc.Annotations[annotations.LoadBalancerID]); !id.IsEmpty() {
		lb, err := exec.Read(ctx, id)
		switch {
		case err == nil && apply.Owned(lb, desired.ClusterTag(exec.ClusterID), desired.ServiceTag(string(svc.UID))):
			return lb, nil
		case err != nil && !sakuraapi.IsNotFound(err) && !sakuraapi.IsStillCreating(err):
			return nil, l.fail(svc, ReasonAPIError, err)
		}
	}
	rec, has, err := annotations.CreateRecordOf(svc)
	if err != nil {
		return nil, l.fail(svc, ReasonInvalidAnnotation, fmt.Errorf("%w; nothing is created while a create may be in flight", err))
	}
	if wait := decide.CreateWait(rec, has, time.Now(), CreateVisibilityGrace); wait > 0 {
		return nil, api.NewRetryError(fmt.Sprintf("a create sent at %s may have made a load balancer that is not listed yet; waiting for it (up to %s more) before creating another",
			rec.At.UTC().Format(time.RFC3339), wait.Round(time.Second)), min(wait, BootRetryAfter))
	}
	return nil, nil
}

// recordCreate writes rec on the Service before its create is sent: a
// create the Service does not record could not be told apart, after a
// restart, from no create at all. No Kubernetes client (unit tests): a
// no-op.
func (l *LoadBalancer) recordCreate(ctx context.Context, svc *v1.Service, rec annotations.CreateRecord) error {
	if l.kube == nil {
		return nil
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{annotations.LoadBalancerCreating: rec.Value()}}})
	if err != nil {
		return err
	}
	if _, err := l.kube.CoreV1().Services(svc.Namespace).Patch(ctx, svc.Name, ktypes.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("recording the create on the Service: %w", err)
	}
	return nil
}

// recordsInFlight are the create records of Services other than self that
// may still be making an appliance: their addresses are in use, and a
// member of their sharing key must wait for them.
func (l *LoadBalancer) recordsInFlight(self string) ([]annotations.CreateRecord, error) {
	f := l.follower()
	if f == nil {
		return nil, nil
	}
	svcs, err := f.services.List(labels.Everything())
	if err != nil {
		return nil, fmt.Errorf("listing Services for their create records: %w", err)
	}
	var out []annotations.CreateRecord
	now := time.Now()
	for _, other := range svcs {
		if string(other.UID) == self {
			continue
		}
		if rec, ok, _ := annotations.CreateRecordOf(other); ok && decide.InFlight(rec, now, CreateVisibilityGrace) {
			out = append(out, rec)
		}
	}
	return out, nil
}

// recordID writes the appliance's ID on the Service, so that it is found
// (and deleted) even while listings do not show it, after a restart or by a
// new leader. A failure is logged, not returned: the tags remain the truth.
func (l *LoadBalancer) recordID(ctx context.Context, svc *v1.Service, id types.ID) {
	if l.kube == nil || svc.Annotations[annotations.LoadBalancerID] == id.String() {
		return
	}
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, annotations.LoadBalancerID, id.String())
	if _, err := l.kube.CoreV1().Services(svc.Namespace).Patch(ctx, svc.Name, ktypes.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		klog.ErrorS(err, "Could not record the load balancer's ID on the Service; it is still found by its tags", "service", serviceKey(svc.Namespace, svc.Name), "loadBalancer", id)
	}
}

// bootStopped powers on an appliance found stopped: the controller never
// stops one of a live Service's appliances (deletion holds the Service's
// lock while it waits), so someone did so outside it. A deletion under way
// must not be undone.
func (l *LoadBalancer) bootStopped(ctx context.Context, exec *apply.Executor, svc *v1.Service, p *prepared, lb *iaas.LoadBalancer) error {
	if p.opts.NoRepair {
		return fmt.Errorf("load balancer %s is powered off and the Service opts out of repair (%s: \"false\"); boot it by hand or remove the annotation", lb.ID, annotations.Repair)
	}
	if svc.DeletionTimestamp != nil {
		return nil // whoever asks: the deletion's shutdown stands
	}
	// Every caller may act on a cached copy older than the Service's
	// deletion (a new leader's first pass, a node sync, the follower, the
	// repair pass, even EnsureLoadBalancer from a lagging informer): a boot
	// would undo the deletion's shutdown (issue #18, defect 6; torture seed
	// 10109), so the Service is read again first. Boots are rare; the read
	// goes to the API server, not to SAKURA.
	if ok, err := l.stillWanted(ctx, svc); !ok {
		return err
	}
	booted, err := exec.Boot(ctx, lb, desired.MemberUIDs(lb.Tags))
	if err != nil {
		return l.fail(svc, ReasonAPIError, err)
	}
	if booted {
		l.markBootSent(lb.ID)
		l.event(svc, false, ReasonRepaired, "load balancer %s (%s) was powered off outside the controller; booting it", lb.Name, lb.ID)
	}
	return api.NewRetryError(fmt.Sprintf("load balancer %s was powered off; booting it", lb.ID), BootRetryMin)
}

// stillWanted re-reads svc from the API server: the repair pass acts on an
// informer's copy, which may not show yet that the Service is being deleted
// or no longer wants a load balancer.
func (l *LoadBalancer) stillWanted(ctx context.Context, svc *v1.Service) (bool, error) {
	if l.kube == nil {
		return false, nil
	}
	cur, err := l.kube.CoreV1().Services(svc.Namespace).Get(ctx, svc.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("re-reading the Service before repairing its load balancer: %w", err)
	}
	return cur.UID == svc.UID && wantsRepair(cur), nil
}

// wantsRepair: svc is a LoadBalancer Service of this provider that the
// service controller has taken on (its finalizer) and that is not being
// deleted.
func wantsRepair(svc *v1.Service) bool {
	return svc.Spec.Type == v1.ServiceTypeLoadBalancer && svc.Spec.LoadBalancerClass == nil &&
		svc.DeletionTimestamp == nil && servicehelpers.HasLBFinalizer(svc)
}

func onAddress(svc *v1.Service) string {
	if ip := statusIP(svc); ip != "" {
		return " on " + ip + " if that address is still free"
	}
	return ""
}

// statusIP is the address svc shows in its status ("" if none).
func statusIP(svc *v1.Service) string {
	for _, in := range svc.Status.LoadBalancer.Ingress {
		if in.IP != "" {
			return in.IP
		}
	}
	return ""
}

// The deleting set and the pending Configs are per process: deletion holds
// the Service's finalizer until it is done, and a Config lost with a
// restart is found by the repair pass, which compares each appliance's
// Status (what it runs) with its saved settings.
func (l *LoadBalancer) setDeleting(uid string, on bool) {
	l.stateMu.Lock()
	defer l.stateMu.Unlock()
	if on {
		l.deleting[uid] = true
	} else {
		delete(l.deleting, uid)
	}
}

func (l *LoadBalancer) isDeleting(uid string) bool {
	l.stateMu.Lock()
	defer l.stateMu.Unlock()
	return l.deleting[uid]
}

func (l *LoadBalancer) setPending(id types.ID) {
	l.stateMu.Lock()
	defer l.stateMu.Unlock()
	l.pendingConfig[id] = true
}

// markBootSent remembers that this process booted appliance id: while it
// still reads down within decide.BootGrace, it is booting, not stopped.
func (l *LoadBalancer) markBootSent(id types.ID) {
	l.stateMu.Lock()
	defer l.stateMu.Unlock()
	l.bootSent[id] = time.Now()
}

func (l *LoadBalancer) forgetBoot(id types.ID) {
	l.stateMu.Lock()
	defer l.stateMu.Unlock()
	delete(l.bootSent, id)
}

func (l *LoadBalancer) bootSentAt(id types.ID) time.Time {
	l.stateMu.Lock()
	defer l.stateMu.Unlock()
	return l.bootSent[id]
}

// suspectUnapplied marks lb for Config unless its saved settings (by hash)
// were already applied after such a suspicion.
func (l *LoadBalancer) suspectUnapplied(lb *iaas.LoadBalancer) {
	l.stateMu.Lock()
	defer l.stateMu.Unlock()
	if l.reapplied[lb.ID] != lb.SettingsHash {
		l.pendingConfig[lb.ID] = true
		l.reapplied[lb.ID] = lb.SettingsHash
	}
}

// takePending reports and clears a pending Config of appliance id.
func (l *LoadBalancer) takePending(id types.ID) bool {
	l.stateMu.Lock()
	defer l.stateMu.Unlock()
	p := l.pendingConfig[id]
	delete(l.pendingConfig, id)
	return p
}

// pruneState drops what is remembered per appliance for appliances that a
// complete listing of the cluster (listed) no longer shows, and notices old
// enough to be repeated anyway: without it the maps grow with every
// appliance and Service the process has ever seen. A boot sent within
// decide.BootGrace stays (its appliance may be missing from the listing
// only for a moment).
func (l *LoadBalancer) pruneState(exec *apply.Executor, listed []*iaas.LoadBalancer) {
	keep := make(map[types.ID]bool, len(listed))
	for _, lb := range listed {
		keep[lb.ID] = true
	}
	l.stateMu.Lock()
	for id := range l.pendingConfig {
		if !keep[id] {
			delete(l.pendingConfig, id)
		}
	}
	for id := range l.reapplied {
		if !keep[id] {
			delete(l.reapplied, id)
		}
	}
	for id, at := range l.bootSent {
		if !keep[id] && time.Since(at) > decide.BootGrace {
			delete(l.bootSent, id)
		}
	}
	l.stateMu.Unlock()
	exec.ForgetExcept(keep)

	l.noticesMu.Lock()
	for k, n := range l.notices {
		if time.Since(n.at) > RepeatNoticeAfter {
			delete(l.notices, k)
		}
	}
	l.noticesMu.Unlock()
}

// foundReuse is how long GetLoadBalancer's find may stand in for the one
// EnsureLoadBalancerDeleted would make. The service controller asks
// GetLoadBalancer right before every delete; reusing its answer saves a
// call per delete. It is safe for so short a time: an appliance of one
// Service gains no members (joins go to shared appliances, which deleteFrom
// reads again under the sharing key's lock), and apply.Delete re-reads
// before it deletes.
const foundReuse = 2 * time.Second

type foundAt struct {
	lbs []*iaas.LoadBalancer
	at  time.Time
}

// rememberFound keeps what a find saw for uid, briefly. Only answers that
// found appliances are kept: "none" is looked at again (it may be a create
// not listed yet).
func (l *LoadBalancer) rememberFound(uid string, lbs []*iaas.LoadBalancer) {
	l.stateMu.Lock()
	defer l.stateMu.Unlock()
	for k, f := range l.found {
		if time.Since(f.at) > foundReuse {
			delete(l.found, k)
		}
	}
	if len(lbs) > 0 {
		l.found[uid] = foundAt{lbs: lbs, at: time.Now()}
	}
}

// takeFound returns (and forgets) a find of uid younger than foundReuse.
func (l *LoadBalancer) takeFound(uid string) ([]*iaas.LoadBalancer, bool) {
	l.stateMu.Lock()
	defer l.stateMu.Unlock()
	f, ok := l.found[uid]
	delete(l.found, uid)
	if !ok || time.Since(f.at) > foundReuse {
		return nil, false
	}
	return f.lbs, true
}
