// Package sweep finds load balancer appliances that this cluster made for
// Services that no longer exist (deleted while the controller was down, or
// deleted after someone removed the Service's finalizer) and removes them.
//
// Decide is pure and table-tested; Runner does the listing, the non-blocking
// deletion through apply.Executor, the logging and the counting.
package sweep

import (
	"fmt"
	"sort"
	"strings"
	"time"

	servicehelpers "k8s.io/cloud-provider/service/helpers"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/types"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/desired"
	v1 "k8s.io/api/core/v1"
)

// Mode is what the sweep does with an orphan.
type Mode string

const (
	// ModeDelete shuts orphans down and deletes them.
	ModeDelete Mode = "delete"
	// ModeReport only logs and counts them.
	ModeReport Mode = "report"
)

// Modes lists the accepted values of loadBalancer.sweepMode.
var Modes = []Mode{ModeDelete, ModeReport}

// ParseMode accepts "" (= delete), delete and report.
func ParseMode(s string) (Mode, error) {
	switch Mode(strings.ToLower(strings.TrimSpace(s))) {
	case "", ModeDelete:
		return ModeDelete, nil
	case ModeReport:
		return ModeReport, nil
	}
	return "", fmt.Errorf("sweep mode %q is not one of %s, %s", s, ModeDelete, ModeReport)
}

// DefaultGrace is the minimum age of an appliance before the sweep may
// remove it. It matches the time a just-created appliance may take to show up
// in listings, so an appliance whose Service is being written concurrently is
// never taken for an orphan.
const DefaultGrace = 2 * time.Minute

// CleanupFinalizer is the service controller's finalizer on LoadBalancer
// Services; while a Service carries it, the service controller still owns
// the appliance's deletion.
const CleanupFinalizer = servicehelpers.LoadBalancerCleanupFinalizer

// Claims reports whether svc still owns its appliance: it is of type
// LoadBalancer, or it carries a cleanup finalizer, the upstream one or the
// class one (it changed type or is being deleted, and the loop that serves
// it will delete the appliance itself). A Service that is neither will never get its appliance deleted by
// the service controller, so for the sweep its appliance is an orphan.
func Claims(svc *v1.Service) bool {
	return svc.Spec.Type == v1.ServiceTypeLoadBalancer || desired.HasFinalizer(svc)
}

// Orphan is an appliance of this cluster whose Services are all gone.
type Orphan struct {
	LB *iaas.LoadBalancer
	// UIDs are the Service UIDs named by its service-uid tags.
	UIDs []string
	// FirstSeen is when a sweep first found it orphaned.
	FirstSeen time.Time
}

// Input is one sweep's view of the world.
type Input struct {
	ClusterID string
	// Appliances as listed by this cluster's tag (re-checked here).
	Appliances []*iaas.LoadBalancer
	// Claimed are the UIDs of Services that still own their appliance (see
	// Claims). It must come from a successful, complete listing taken after
	// Appliances was listed.
	Claimed map[string]bool
	// Refs name the claimed Services (UID -> "namespace/name"): a shared
	// appliance keeps the entries of these.
	Refs map[string]string
	// Seen are the orphans found by the previous sweep, with the time they
	// were first found.
	Seen map[types.ID]time.Time
	// SeenMembers are vanished members of shared appliances found by the
	// previous sweep ("applianceID/uid" -> first found).
	SeenMembers map[string]time.Time
	Now         time.Time
	// Grace is the minimum age (by the appliance's CreatedAt) of an orphan
	// before it is removed.
	Grace time.Duration
}

// Result says what to do.
type Result struct {
	// Managed counts the appliances carrying this cluster's tag.
	Managed int
	// Remove are orphans found by two consecutive sweeps and old enough.
	Remove []Orphan
	// Wait are orphans found for the first time or still too young.
	Wait []Orphan
	// Untagged carry this cluster's tag but no service-uid tag: the sweep
	// cannot tell whose they are and never touches them.
	Untagged []*iaas.LoadBalancer
	// Seen is the orphan state to pass to the next sweep.
	Seen map[types.ID]time.Time
	// Prune are shared appliances still in use whose other members are gone
	// (found by two consecutive sweeps, Grace apart).
	Prune []Departed
	// SeenMembers is the vanished-member state to pass to the next sweep.
	SeenMembers map[string]time.Time
}

// Departed names the vanished members of a shared appliance.
type Departed struct {
	LB *iaas.LoadBalancer
	// Gone are the UIDs to remove; Keep the "namespace/name" of the members
	// that stay (their entries are kept).
	Gone, Keep []string
}

// Decide sorts this cluster's appliances into kept, waiting and removable
// orphans. Appliances without this cluster's exact tag are ignored.
func Decide(in Input) Result {
	res := Result{Seen: map[types.ID]time.Time{}, SeenMembers: map[string]time.Time{}}
	if in.ClusterID == "" {
		return res
	}
	clusterTag := desired.ClusterTag(in.ClusterID)
	for _, lb := range in.Appliances {
		if lb == nil || !desired.HasTags(lb.Tags, clusterTag) {
			continue
		}
		res.Managed++
		uids := desired.MemberUIDs(lb.Tags)
		if len(uids) == 0 {
			res.Untagged = append(res.Untagged, lb)
			continue
		}
		claimed := false
		for _, u := range uids {
			if in.Claimed[u] {
				claimed = true
			}
		}
		if claimed {
			if desired.SharingKeyOf(lb.Tags) != "" {
				if d, ok := departed(in, lb, uids, &res); ok {
					res.Prune = append(res.Prune, d)
				}
			}
			continue
		}
		first, seenBefore := in.Seen[lb.ID]
		if !seenBefore {
			first = in.Now
		}
		res.Seen[lb.ID] = first
		o := Orphan{LB: lb, UIDs: uids, FirstSeen: first}
		oldEnough := lb.CreatedAt.IsZero() || in.Now.Sub(lb.CreatedAt) >= in.Grace
		if seenBefore && oldEnough {
			res.Remove = append(res.Remove, o)
		} else {
			res.Wait = append(res.Wait, o)
		}
	}
	byID := func(s []Orphan) {
		sort.Slice(s, func(i, j int) bool { return s[i].LB.ID < s[j].LB.ID })
	}
	byID(res.Remove)
	byID(res.Wait)
	return res
}

// departed finds the members of a shared appliance in use whose Services are
// gone. A member is removed only when the previous sweep also found it gone,
// at least Grace ago.
func departed(in Input, lb *iaas.LoadBalancer, uids []string, res *Result) (Departed, bool) {
	d := Departed{LB: lb}
	for _, u := range uids {
		if in.Claimed[u] {
			d.Keep = append(d.Keep, in.Refs[u])
			continue
		}
		key := lb.ID.String() + "/" + u
		first, seenBefore := in.SeenMembers[key]
		if !seenBefore {
			first = in.Now
		}
		res.SeenMembers[key] = first
		if seenBefore && in.Now.Sub(first) >= in.Grace {
			d.Gone = append(d.Gone, u)
		}
	}
	sort.Strings(d.Keep)
	return d, len(d.Gone) > 0
}
