package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/types"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/sakuraapi"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/annotations"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/apply"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/decide"
	v1 "k8s.io/api/core/v1"
	cloudprovider "k8s.io/cloud-provider"
	"k8s.io/cloud-provider/api"
	"k8s.io/klog/v2"
)

// Adoption: the locator's last question, asked only by a reconcile that
// may create. When the Service has no appliance of this controller, is
// there one it should take over instead of creating (the earlier
// controller's, or the one it names by ID)? decide.AdoptEarlier and
// decide.AdoptByID answer; apply.Adopt writes.

// adoptInputs is what the adoption check needs of the reconcile.
type adoptInputs struct {
	p     *prepared
	nodes []*v1.Node
}

// adoptable is the locator's answer for a Service with no appliance of
// this controller: FoundAdoptable, FoundAdoptRefused or FoundNone.
func (l *Engine) adoptable(ctx context.Context, exec *apply.Executor, svc *v1.Service, in *adoptInputs, since time.Time) (location, error) {
	none := location{found: decide.FoundNone}
	opts := in.p.opts
	var byID *iaas.LoadBalancer
	var earlier decide.EarlierFacts
	if opts.AdoptID != "" {
		lb, err := exec.Read(ctx, types.StringID(opts.AdoptID))
		switch {
		case err == nil:
			byID = lb
		case !sakuraapi.IsNotFound(err):
			return location{}, err
		}
	} else {
		if !l.cfg.AdoptEarlier {
			return none, nil
		}
		// The listing the locator just used (newer than the locks).
		snap, err := l.zoneSince(ctx, since)
		if err != nil {
			return location{}, err
		}
		earlier = decide.EarlierFacts{Enabled: true, Name: cloudprovider.DefaultLoadBalancerName(svc), ServiceName: svc.Name,
			ClusterID: exec.ClusterID, LoadBalancers: snap.LoadBalancers()}
		if len(decide.EarlierMatches(earlier)) == 0 {
			return none, nil // the usual case: no switch is resolved for it
		}
	}
	t, err := l.adoptTarget(ctx, exec, svc, in)
	if err != nil {
		return location{}, err
	}
	var a decide.Adoption
	if opts.AdoptID != "" {
		a = decide.AdoptByID(opts.AdoptID, byID, t)
	} else {
		a = decide.AdoptEarlier(earlier, t)
	}
	switch a.Kind {
	case decide.AdoptIt:
		return location{found: decide.FoundAdoptable, lbs: []*iaas.LoadBalancer{a.LB}, adoption: a}, nil
	case decide.AdoptRefused:
		return location{found: decide.FoundAdoptRefused, adoption: a}, nil
	}
	return none, nil
}

// adoptTarget observes what an adopted appliance must fit: the switch
// the Service may use (chosen as for a create), its ports, and the
// addresses other Services show.
func (l *Engine) adoptTarget(ctx context.Context, exec *apply.Executor, svc *v1.Service, in *adoptInputs) (decide.AdoptTarget, error) {
	t := decide.AdoptTarget{ClusterID: exec.ClusterID, UID: string(svc.UID), Ports: len(svc.Spec.Ports), ShownBy: map[string]string{},
		RecordedID: svc.Annotations[annotations.LoadBalancerID]}
	allowed, err := l.allowed(ctx, svc, in.p.opts, in.nodes, in.p.servers)
	var be *blockError
	switch {
	case err == nil:
		t.Switches = allowed.switches
	case errors.As(err, &be):
		t.SwitchErr = err.Error()
	default:
		return t, err
	}
	shown, err := l.shownByOthers(string(svc.UID))
	if err != nil {
		return t, err
	}
	t.ShownBy = shown
	return t, nil
}

// adopt makes the adoptable appliance the Service's (one tag write,
// re-checked on a fresh read), then serves it like any other.
func (a act) adopt(ctx context.Context, ad decide.Adoption) (*v1.LoadBalancerStatus, error) {
	l, svc := a.l, a.svc
	if a.trigger == decide.ByRepair {
		if ok, err := l.stillWanted(ctx, svc); !ok {
			return nil, err
		}
	}
	// Two Services of this process proposing one appliance (one by ID)
	// take turns; the second then finds it tagged and is refused.
	defer l.locks.lock("adopt/" + ad.LB.ID.String())()
	lb, err := a.exec.Adopt(ctx, ad.LB, ad.Tags)
	if err != nil {
		return nil, adoptFailed(err)
	}
	// Listings made before the write show it untagged: none may answer
	// for it any more.
	l.raiseZoneFloor()
	l.recordID(ctx, svc, lb.ID)
	vip := vipOf(lb)
	l.event(svc, false, ReasonAdopted, "adopted load balancer %s (%s) with VIP %s: it now carries this cluster's and this Service's ownership tags (its other tags are kept); its entries and real servers are brought in line with the Service", lb.Name, lb.ID, orNone(vip))
	state := decide.StateOf(lb, time.Time{}, l.clock.Now())
	l.recordState(string(svc.UID), lb, state)
	if state != decide.Up {
		// The next reconcile finds it by its tags and boots or waits.
		return nil, api.NewRetryError(fmt.Sprintf("adopted load balancer %s is not up (%s/%s)", lb.ID, lb.Availability, lb.InstanceStatus), BootRetryAfter)
	}
	return a.serve(ctx, lb)
}

// adoptFailed reports a failed adopt write of either kind: a refusal when
// the load balancer changed since the adoption was decided (someone took
// it meanwhile), else an API error.
func adoptFailed(err error) error {
	reason := ReasonAPIError
	if errors.Is(err, apply.ErrAdoptChanged) {
		reason = ReasonAdoptRefused
	}
	return reasoned(reason, fmt.Errorf("%w; nothing was adopted", err))
}

// refuseAdopt says why nothing is adopted, naming the appliances (the
// report edge turns it into the Warning).
func refuseAdopt(svc *v1.Service, ad decide.Adoption) error {
	how := "set " + annotations.AdoptID + " to the one to adopt, or delete the others"
	if svc.Annotations[annotations.AdoptID] != "" {
		how = "fix or remove " + annotations.AdoptID
	}
	return reasoned(ReasonAdoptRefused, fmt.Errorf("not adopting load balancer %s: %s; nothing was written or created (%s)", strings.Join(ad.IDs, ", "), ad.Why, how))
}

// preserved reports a preserved appliance: the Event and the log line
// both carry its ID, to adopt it again.
func (l *Engine) preserved(svc *v1.Service, lb *iaas.LoadBalancer) {
	vip := vipOf(lb)
	klog.InfoS("Preserved a load balancer: this cluster's tags are removed and it keeps running; adopt it again with the annotation "+annotations.AdoptID,
		"service", serviceKey(svc.Namespace, svc.Name), "loadBalancer", lb.ID.String(), "vip", vip)
	l.event(svc, false, ReasonPreserved, "preserved load balancer %s (%s) with VIP %s: it keeps running with its entries and no longer carries this cluster's tags; adopt it again with %s: \"%s\"", lb.Name, lb.ID, orNone(vip), annotations.AdoptID, lb.ID)
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
