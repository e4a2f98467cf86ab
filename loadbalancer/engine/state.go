package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
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
	"k8s.io/klog/v2"
)

// What the controller records and checks beyond one reconcile: stopped
// appliances, the Service's recorded appliance ID, deletions begun and
// Configs pending.

// recordCreate writes rec on the Service before its create is sent: a
// create the Service does not record could not be told apart, after a
// restart, from no create at all. The write names the Service's UID, so it
// is refused when the name now holds another Service (or none): the
// service controller may still ask for a Service that was deleted and
// re-created under its name (its in-memory cache, torture seed 110325),
// and an appliance made for it would belong to no Service. No Kubernetes
// client (unit tests): a no-op.
func (l *Engine) recordCreate(ctx context.Context, svc *v1.Service, rec annotations.CreateRecord) error {
	if l.kube == nil {
		return nil
	}
	if err := l.patchAnnotation(ctx, svc, annotations.LoadBalancerCreating, rec.Value()); err != nil {
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) || apierrors.IsInvalid(err) {
			return fmt.Errorf("the Service was deleted or replaced (its UID changed) before its load balancer was created; nothing was created: %w", err)
		}
		return fmt.Errorf("recording the create on the Service: %w", err)
	}
	return nil
}

// uncertainCreateGrace is how long a create that failed with err (not
// refused: it may have made something) is waited for: UnavailableCreateGrace
// after a 503, which SAKURA's front end answers before the request reaches
// the service, with the create record shortened to match; else the whole
// visibility grace (0).
func (l *Engine) uncertainCreateGrace(ctx context.Context, svc *v1.Service, rec annotations.CreateRecord, err error) time.Duration {
	if sakuraapi.StatusCode(err) != http.StatusServiceUnavailable {
		return 0
	}
	rec.GraceSec = int(max(UnavailableCreateGrace/time.Second, 1))
	if rerr := l.recordCreate(ctx, svc, rec); rerr != nil {
		klog.ErrorS(rerr, "Could not shorten the create record's wait; a restart would wait the whole visibility grace", "service", serviceKey(svc.Namespace, svc.Name))
	}
	return UnavailableCreateGrace
}

// patchAnnotation sets one annotation on svc, on the condition that the
// Service of that name is still svc (its UID).
func (l *Engine) patchAnnotation(ctx context.Context, svc *v1.Service, key, value string) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"uid": svc.UID, "annotations": map[string]string{key: value}}})
	if err != nil {
		return err
	}
	_, err = l.kube.CoreV1().Services(svc.Namespace).Patch(ctx, svc.Name, ktypes.MergePatchType, patch, metav1.PatchOptions{})
	return err
}

// recordsInFlight are the create records of Services other than self that
// may still be making an appliance: their addresses are in use, and a
// member of their sharing key must wait for them.
func (l *Engine) recordsInFlight(self string) ([]annotations.CreateRecord, error) {
	f := l.follower()
	if f == nil {
		return nil, nil
	}
	svcs, err := f.services.List(labels.Everything())
	if err != nil {
		return nil, fmt.Errorf("listing Services for their create records: %w", err)
	}
	var out []annotations.CreateRecord
	now := l.clock.Now()
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
func (l *Engine) recordID(ctx context.Context, svc *v1.Service, id types.ID) {
	if l.kube == nil || svc.Annotations[annotations.LoadBalancerID] == id.String() {
		return
	}
	if err := l.patchAnnotation(ctx, svc, annotations.LoadBalancerID, id.String()); err != nil {
		klog.ErrorS(err, "Could not record the load balancer's ID on the Service; it is still found by its tags", "service", serviceKey(svc.Namespace, svc.Name), "loadBalancer", id)
	}
}

// stillWanted re-reads svc from the API server: the repair pass acts on an
// informer's copy, which may not show yet that the Service is being deleted
// or no longer wants a load balancer.
func (l *Engine) stillWanted(ctx context.Context, svc *v1.Service) (bool, error) {
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
	return cur.UID == svc.UID && l.wantsRepair(cur), nil
}

// wantsRepair: svc is a LoadBalancer Service of this controller that its
// loop (the upstream service controller or the own one) has taken on (its
// finalizer) and that is not being deleted.
func (l *Engine) wantsRepair(svc *v1.Service) bool {
	return l.scope.Serves(svc) && svc.DeletionTimestamp == nil && slices.Contains(svc.Finalizers, desired.FinalizerOf(svc))
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

// pruneState prunes the memory against a complete listing of the cluster's
// appliances, and the executor's record of unapplied settings with it.
func (l *Engine) pruneState(exec *apply.Executor, listed []*iaas.LoadBalancer) {
	keep := make(map[types.ID]bool, len(listed))
	for _, lb := range listed {
		keep[lb.ID] = true
	}
	l.mem.prune(keep)
	exec.ForgetExcept(keep)
}
