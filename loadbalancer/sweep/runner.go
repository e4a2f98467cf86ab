package sweep

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/types"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/metrics"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/apply"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/decide"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/desired"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
)

// ServiceLister returns the Services that still claim their appliance (see
// Claims), as UID -> "namespace/name". An error means "unknown", never "none".
type ServiceLister interface {
	Claimed(ctx context.Context) (map[string]string, error)
}

// KubeServices lists every namespace's Services from the API server, page by
// page. A direct list (not an informer cache) is read after the appliances,
// so an appliance made for a brand-new Service always finds that Service.
type KubeServices struct {
	Client kubernetes.Interface
}

// Claimed implements ServiceLister.
func (k KubeServices) Claimed(ctx context.Context) (map[string]string, error) {
	out := map[string]string{}
	opts := metav1.ListOptions{Limit: 500}
	for {
		l, err := k.Client.CoreV1().Services(metav1.NamespaceAll).List(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("listing Services: %w", err)
		}
		for i := range l.Items {
			if Claims(&l.Items[i]) {
				out[string(l.Items[i].UID)] = l.Items[i].Namespace + "/" + l.Items[i].Name
			}
		}
		if l.Continue == "" {
			return out, nil
		}
		opts.Continue = l.Continue
	}
}

// Runner sweeps periodically. Build it with its exported fields; it keeps the
// orphans seen by the previous sweep in memory, so after a restart the first
// sweep only takes note and the second one acts.
type Runner struct {
	// Exec lists this cluster's appliances and deletes them; share the
	// adapter's executor so a shutdown in flight is not requested twice.
	Exec *apply.Executor
	// ELBs lists and deletes this cluster's Enhanced Load Balancers, which
	// are swept by the same rules (nil: none are swept).
	ELBs     *apply.ELBs
	Services ServiceLister
	Mode     Mode
	Interval time.Duration
	// Grace is the minimum age of an appliance before it may be removed.
	Grace time.Duration
	// OnDeleted is told the Service UIDs of each deleted appliance (the
	// adapter frees its address reservations). May be nil.
	OnDeleted func(uids []string)
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
	// LockKey takes the lock that joins of a sharing key take and returns
	// its unlock: a shared orphan is shut down, and a shared appliance
	// pruned, under it. Nil: no lock (tests without an adapter).
	LockKey func(key string) (unlock func())

	mu          sync.Mutex
	elbIDs      map[types.ID]bool // the ELBs of the sweep in progress
	seen        map[types.ID]time.Time
	seenMembers map[string]time.Time
	reported    map[string]bool // appliance ID, or appliance ID/member UID
}

// Summary is what one sweep found and did.
type Summary struct {
	// Managed counts this cluster's appliances before this sweep's deletions.
	Managed      int
	Orphans      int
	Untagged     int
	Deleted      []types.ID
	ShuttingDown []types.ID
	Reported     []types.ID
	Failed       []types.ID
	// Pruned are shared appliances that lost members' entries this sweep.
	Pruned []types.ID
}

// Run sweeps now and then every Interval until ctx ends.
func (r *Runner) Run(ctx context.Context) {
	klog.InfoS("Starting the load balancer sweep", "clusterID", r.Exec.ClusterID, "interval", r.Interval, "mode", r.Mode, "grace", r.Grace)
	wait.UntilWithContext(ctx, func(ctx context.Context) {
		if _, err := r.Sweep(ctx); err != nil {
			klog.ErrorS(err, "Load balancer sweep skipped; nothing was removed")
		}
	}, r.Interval)
}

// Sweep runs once. Any listing error ends it before anything is removed:
// an outage of the API server must never look like "no Services".
func (r *Runner) Sweep(ctx context.Context) (Summary, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	// Appliances first, Services second: a Service created in between has
	// its UID in the second list even if its appliance made the first.
	lbs, err := r.Exec.FindCluster(ctx)
	if err != nil {
		return Summary{}, err
	}
	elbs, err := r.listELBs(ctx)
	if err != nil {
		return Summary{}, err
	}
	lbs = append(lbs, elbViews(elbs)...)
	refs, err := r.Services.Claimed(ctx)
	if err != nil {
		return Summary{}, err
	}
	if refs == nil {
		return Summary{}, fmt.Errorf("listing Services returned no answer")
	}
	claimed := make(map[string]bool, len(refs))
	for uid := range refs {
		claimed[uid] = true
	}
	res := Decide(Input{ClusterID: r.Exec.ClusterID, Appliances: lbs, Claimed: claimed, Refs: refs,
		Seen: r.seen, SeenMembers: r.seenMembers, Now: now(), Grace: r.Grace})
	sum := Summary{Managed: res.Managed, Orphans: len(res.Remove) + len(res.Wait), Untagged: len(res.Untagged)}

	for _, o := range res.Wait {
		if _, known := r.seen[o.LB.ID]; !known {
			klog.InfoS("Found a load balancer whose Service is gone; the sweep acts on it once it is still orphaned at the next sweep and older than the grace period",
				logFields(o, "mode", r.Mode)...)
		}
	}
	if r.reported == nil {
		r.reported = map[string]bool{}
	}
	for _, o := range res.Remove {
		if r.Mode == ModeReport {
			if !r.reported[o.LB.ID.String()] {
				klog.InfoS("Orphaned load balancer left in place (loadBalancer.sweepMode is report); delete it by hand or set sweepMode: delete",
					logFields(o)...)
				metrics.CountSwept(metrics.SweepReported)
				r.reported[o.LB.ID.String()] = true
			}
			sum.Reported = append(sum.Reported, o.LB.ID)
			continue
		}
		var step apply.DeleteStep
		if r.isELB(o.LB) {
			step, err = r.deleteELB(ctx, o)
		} else {
			unlock := r.lockKeyOf(o.LB)
			step, err = r.Exec.Delete(ctx, o.LB, o.UIDs, false)
			unlock()
		}
		switch {
		case err != nil:
			klog.ErrorS(err, "Sweep could not remove an orphaned load balancer; retrying at the next sweep", logFields(o)...)
			sum.Failed = append(sum.Failed, o.LB.ID)
		case step == apply.Deleted:
			klog.InfoS("Sweep deleted an orphaned load balancer; its addresses are free again", logFields(o)...)
			metrics.CountSwept(metrics.SweepDeleted)
			sum.Deleted = append(sum.Deleted, o.LB.ID)
			delete(res.Seen, o.LB.ID)
			if r.OnDeleted != nil {
				r.OnDeleted(o.UIDs)
			}
		default:
			if step == apply.ShutdownSent {
				klog.InfoS("Sweep is shutting down an orphaned load balancer; it is deleted at a later sweep", logFields(o)...)
			}
			sum.ShuttingDown = append(sum.ShuttingDown, o.LB.ID)
		}
	}
	r.prune(ctx, res, &sum)
	for key := range r.reported {
		// Forget reports about what is no longer an orphan or a vanished
		// member, so it is reported again should it come back.
		_, member := res.SeenMembers[key]
		_, orphan := res.Seen[types.StringID(key)]
		if !member && !orphan {
			delete(r.reported, key)
		}
	}
	for _, lb := range res.Untagged {
		klog.V(4).InfoS("Load balancer carries the cluster tag but no service-uid tag; the sweep leaves it alone", "loadBalancer", lb.ID, "name", lb.Name)
	}
	r.seen = res.Seen
	r.seenMembers = res.SeenMembers
	// What is left after this sweep's deletions.
	metrics.SetManagedLoadBalancers(res.Managed - len(sum.Deleted))
	klog.V(2).InfoS("Load balancer sweep done", "managed", sum.Managed, "orphans", sum.Orphans,
		"deleted", len(sum.Deleted), "shuttingDown", len(sum.ShuttingDown), "reported", len(sum.Reported), "failed", len(sum.Failed))
	return sum, nil
}

// prune takes the entries and tags of vanished members off shared
// appliances that other Services still use (report mode: only logs).
func (r *Runner) prune(ctx context.Context, res Result, sum *Summary) {

	for _, d := range res.Prune {
		if r.isELB(d.LB) {
			continue // an ELB has no members to prune: it is never shared
		}
		fields := []any{"loadBalancer", d.LB.ID, "name", d.LB.Name, "goneServiceUID", d.Gone, "keptServices", d.Keep}
		if r.Mode == ModeReport {
			for _, uid := range d.Gone {
				if key := d.LB.ID.String() + "/" + uid; !r.reported[key] {
					klog.InfoS("Shared load balancer keeps the entries of a Service that is gone (loadBalancer.sweepMode is report)", fields...)
					metrics.CountSwept(metrics.SweepReported)
					r.reported[key] = true
				}
			}
			continue
		}
		// The listings may be a while old: decide the write on a fresh read
		// of the appliance and a listing of Services taken after it (a
		// Service that joined meanwhile is in both), with the read's tags
		// checked again and its settings hash guarding the write.
		if !r.pruneOne(ctx, d, fields, res, sum) {
			sum.Failed = append(sum.Failed, d.LB.ID)
		}
	}
}

// pruneOne writes one prune decision under the appliance's sharing key
// lock; false: it failed and is tried again at the next sweep.
func (r *Runner) pruneOne(ctx context.Context, d Departed, fields []any, res Result, sum *Summary) bool {
	defer r.lockKeyOf(d.LB)()
	lb, err := r.Exec.Read(ctx, d.LB.ID)
	if err != nil {
		klog.ErrorS(err, "Sweep could not read a shared load balancer to remove vanished members; retrying at the next sweep", fields...)
		return false
	}
	claimed, err := r.Services.Claimed(ctx)
	if err != nil || claimed == nil {
		klog.ErrorS(err, "Sweep could not list Services again before pruning; retrying at the next sweep", fields...)
		return false
	}
	p, ok := decide.PruneMembers(lb, d.Gone, claimed)
	if !ok {
		return true // a member came back, or another is still in its grace period
	}
	if err := r.Exec.UpdateMembers(ctx, lb, p.VIPs, p.Tags); err != nil {
		klog.ErrorS(err, "Sweep could not remove the entries of vanished Services from a shared load balancer; retrying at the next sweep", fields...)
		return false
	}
	klog.InfoS("Sweep removed the entries of vanished Services from a shared load balancer; their addresses are free again", fields...)
	metrics.CountSwept(metrics.SweepPruned)
	sum.Pruned = append(sum.Pruned, d.LB.ID)
	for _, uid := range p.Removed {
		delete(res.SeenMembers, d.LB.ID.String()+"/"+uid)
	}
	if r.OnDeleted != nil {
		r.OnDeleted(p.Removed)
	}
	return true
}

// lockKeyOf takes the sharing key lock of lb, if it is shared and the
// runner has locks; it returns the unlock.
func (r *Runner) lockKeyOf(lb *iaas.LoadBalancer) (unlock func()) {
	key := desired.SharingKeyOf(lb.Tags)
	if key == "" || r.LockKey == nil {
		return func() {}
	}
	return r.LockKey(key)
}

func logFields(o Orphan, extra ...any) []any {
	f := []any{"loadBalancer", o.LB.ID, "name", o.LB.Name, "serviceUID", o.UIDs, "vip", vips(o.LB), "firstSeen", o.FirstSeen.UTC().Format(time.RFC3339)}
	return append(f, extra...)
}

func vips(lb *iaas.LoadBalancer) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range lb.VirtualIPAddresses {
		if v != nil && v.VirtualIPAddress != "" && !seen[v.VirtualIPAddress] {
			seen[v.VirtualIPAddress] = true
			out = append(out, v.VirtualIPAddress)
		}
	}
	return out
}

// listELBs lists this cluster's ELBs (none when the runner has no ELB
// writer) and notes their IDs for this sweep. A failure ends the sweep
// before anything is removed, as for appliances.
func (r *Runner) listELBs(ctx context.Context) ([]*iaas.ProxyLB, error) {
	r.elbIDs = map[types.ID]bool{}
	if r.ELBs == nil {
		return nil, nil
	}
	found, err := r.ELBs.Find(ctx, desired.ClusterTag(r.ELBs.ClusterID))
	if err != nil {
		return nil, err
	}
	for _, e := range found {
		r.elbIDs[e.ID] = true
	}
	return found, nil
}

func (r *Runner) isELB(lb *iaas.LoadBalancer) bool { return r.elbIDs[lb.ID] }

// elbViews shows ELBs to Decide, which reads an appliance's ID, name, tags
// and age only: one rule decides both kinds. SAKURA's IDs are unique
// across resource kinds, so the orphan memory keyed by ID holds both.
func elbViews(elbs []*iaas.ProxyLB) []*iaas.LoadBalancer {
	out := make([]*iaas.LoadBalancer, 0, len(elbs))
	for _, e := range elbs {
		out = append(out, &iaas.LoadBalancer{ID: e.ID, Name: e.Name, Tags: e.Tags, CreatedAt: e.CreatedAt})
	}
	return out
}

// deleteELB deletes an orphaned ELB after a fresh read shows it still
// carries the cluster's tag and the orphan's Service tags.
func (r *Runner) deleteELB(ctx context.Context, o Orphan) (apply.DeleteStep, error) {
	tags := []string{desired.ClusterTag(r.ELBs.ClusterID)}
	for _, uid := range o.UIDs {
		tags = append(tags, desired.ServiceTag(uid))
	}
	if err := r.ELBs.Delete(ctx, o.LB.ID, tags...); err != nil {
		return 0, err
	}
	return apply.Deleted, nil
}
