package decide

import (
	"fmt"
	"slices"
	"strings"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/types"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/desired"
)

// Adopting an appliance this controller did not make: the earlier SAKURA
// controller's (found by its name and tags) or one the Service names by ID,
// and preserving one when its Service goes. Every check is here; the engine
// observes and apply re-checks on a fresh read before its one write.

// How the earlier controller (sacloud/sakura-cloud-controller-manager
// 0.4.3) named and tagged its appliances, as facts read from its source:
//   - sakura/cloud.go:21,24: marker tag "@k8s", cluster tag key "@k8s.ClusterID";
//   - sakura/loadbalancers.go:18: Service tag key "@k8s.Service";
//   - sakura/loadbalancers.go:138-140: the name is
//     cloudprovider.DefaultLoadBalancerName(service) ("a" + the UID without
//     dashes, at most 32 characters);
//   - sakura/loadbalancers.go:289-299: tags "@k8s", then
//     "@k8s.ClusterID=<clusterID>" only when a clusterID was configured,
//     then "@k8s.Service=" + k8s.io/utils/strings.ShortenString(name, 18)
//     (the first 18 bytes of the Service's name);
//   - sakura/loadbalancers.go:249-256: a failed appliance was never its own.
const (
	EarlierMarkerTag      = "@k8s"
	EarlierClusterTagKey  = "@k8s.ClusterID="
	EarlierServiceTagKey  = "@k8s.Service="
	EarlierServiceNameLen = 18
)

// EarlierServiceTag is the earlier controller's Service tag for a Service
// named name.
func EarlierServiceTag(name string) string {
	if len(name) > EarlierServiceNameLen {
		name = name[:EarlierServiceNameLen]
	}
	return EarlierServiceTagKey + name
}

// AdoptKind is the adoption decision.
type AdoptKind int

const (
	// AdoptNone: nothing to adopt; the usual create applies.
	AdoptNone AdoptKind = iota
	// AdoptIt: write Tags to LB (its VIP and entries stay), then serve it.
	AdoptIt
	// AdoptRefused: something matches but may not be taken; nothing is
	// written (nor created: a new address is not what was asked for) and a
	// Warning names Why and IDs.
	AdoptRefused
)

// Adoption is the decision for one Service.
type Adoption struct {
	Kind AdoptKind
	// LB is the appliance to adopt (AdoptIt), as decided on.
	LB *iaas.LoadBalancer
	// Tags are LB's tags after the adopt write: every tag it had (a
	// rollback to the earlier controller still finds it) plus this
	// cluster's and this Service's ownership tags.
	Tags []string
	// IDs are the appliances concerned (AdoptRefused: every match).
	IDs []string
	// Why says why an adoption was refused, for the Warning.
	Why string
}

// AdoptTarget is what an adoption must fit, whatever proposes it.
type AdoptTarget struct {
	// ClusterID and UID are this cluster's and the Service's.
	ClusterID, UID string
	// Switches are the switches the Service may use (its block or plain
	// switch, chosen as for a create; every configured block when the
	// cloud-config lists several); SwitchErr says why none could be chosen.
	Switches  []types.ID
	SwitchErr string
	// Ports is how many VIP entries the Service needs.
	Ports int
	// ShownBy maps an address to the other Service ("namespace/name")
	// whose status shows it: adopting an appliance whose VIP another
	// Service still shows would put one address on two Services.
	ShownBy map[string]string
	// RecordedID is the appliance ID the Service records as its own
	// (annotation load-balancer-id): the one it adopted or had made; ""
	// before it ever had one.
	RecordedID string
}

// EarlierFacts is what the earlier controller's appliance is looked for by.
type EarlierFacts struct {
	// Enabled: the cloud-config allows adopting them.
	Enabled bool
	// Name is cloudprovider.DefaultLoadBalancerName(service); ServiceName
	// the Service's name.
	Name, ServiceName string
	// ClusterID is the configured clusterID ("" when none): the earlier
	// controller tagged with the same configuration key.
	ClusterID string
	// LoadBalancers is the zone's listing.
	LoadBalancers []*iaas.LoadBalancer
}

// EarlierMatches are the load balancers of the listing named and tagged
// the way the earlier controller named and tagged the Service's, oldest
// first; failed ones are left out, as the earlier controller did.
func EarlierMatches(f EarlierFacts) []*iaas.LoadBalancer {
	var out []*iaas.LoadBalancer
	if !f.Enabled || f.Name == "" {
		return nil
	}
	for _, lb := range f.LoadBalancers {
		if lb == nil || lb.Name != f.Name || lb.Availability.IsFailed() {
			continue
		}
		if desired.HasTags(lb.Tags, EarlierMarkerTag, EarlierServiceTag(f.ServiceName)) {
			out = append(out, lb)
		}
	}
	return out
}

// AdoptEarlier decides whether the Service adopts the earlier controller's
// appliance: exactly one match, tagged for this cluster's configured ID
// when it carries a cluster ID at all, and fit for the Service (AdoptTarget).
func AdoptEarlier(f EarlierFacts, t AdoptTarget) Adoption {
	matches := EarlierMatches(f)
	switch len(matches) {
	case 0:
		return Adoption{Kind: AdoptNone}
	case 1:
	default:
		return Adoption{Kind: AdoptRefused, IDs: idsOf(matches),
			Why: fmt.Sprintf("%d load balancers are named %s and tagged %s as the earlier controller's for this Service; which one serves it is not clear", len(matches), f.Name, EarlierServiceTag(f.ServiceName))}
	}
	lb := matches[0]
	if id, ok := earlierClusterOf(lb.Tags); ok && id != f.ClusterID {
		return refused(lb, fmt.Sprintf("it is tagged %s%s but this cluster's configured clusterID is %q", EarlierClusterTagKey, id, f.ClusterID))
	}
	return fit(lb, t)
}

// AdoptByID decides whether the Service adopts the appliance id it names
// (lb: a fresh read of it, nil when it does not exist).
func AdoptByID(id string, lb *iaas.LoadBalancer, t AdoptTarget) Adoption {
	switch {
	case lb == nil && t.RecordedID != "":
		// The Service has had an appliance of its own (this one, adopted,
		// or one made since) and it was deleted outside the controller:
		// the annotation has done its job, and the Service is brought back
		// like any whose appliance was deleted (on the address it shows
		// when still free). Refusing would leave it without one for good
		// (torture seed 101251).
		return Adoption{Kind: AdoptNone}
	case lb == nil:
		return Adoption{Kind: AdoptRefused, IDs: []string{id}, Why: "no load balancer with this ID exists in the zone"}
	case lb.Availability.IsFailed():
		return refused(lb, "SAKURA Cloud failed to create it")
	}
	return fit(lb, t)
}

// fit checks what every adoption needs: not owned by anyone (another
// cluster, another Service, a sharing key), on the Service's switch, room
// for the Service's entries and the two ownership tags, and a VIP no other
// Service shows.
func fit(lb *iaas.LoadBalancer, t AdoptTarget) Adoption {
	if why := ForeignOwner(lb.Tags, t.ClusterID, t.UID); why != "" {
		return refused(lb, why)
	}
	if t.SwitchErr != "" {
		return refused(lb, "no switch could be chosen for the Service to check it against: "+t.SwitchErr)
	}
	if !slices.Contains(t.Switches, lb.SwitchID) {
		return refused(lb, fmt.Sprintf("it sits on switch %s, but this Service may only use %s", lb.SwitchID, switchList(t.Switches)))
	}
	if t.Ports > desired.MaxVIPEntries {
		return refused(lb, fmt.Sprintf("the Service has %d ports and a load balancer carries at most %d entries", t.Ports, desired.MaxVIPEntries))
	}
	tags := slices.Clone([]string(lb.Tags))
	tags = append(tags, desired.ClusterTag(t.ClusterID), desired.ServiceTag(t.UID))
	if len(tags) > desired.MaxTags {
		return refused(lb, fmt.Sprintf("it carries %d tags and SAKURA allows %d, so the two ownership tags do not fit; remove some", len(lb.Tags), desired.MaxTags))
	}
	for _, v := range lb.VirtualIPAddresses {
		if v == nil {
			continue
		}
		if other, ok := t.ShownBy[v.VirtualIPAddress]; ok {
			return refused(lb, fmt.Sprintf("its VIP %s is shown by Service %s", v.VirtualIPAddress, other))
		}
	}
	return Adoption{Kind: AdoptIt, LB: lb, Tags: tags, IDs: []string{lb.ID.String()}}
}

// ForeignOwner says who, other than nobody, owns an appliance by this
// controller's tags ("" when no one does). An appliance of this very
// Service is never proposed: the locator finds it by its tags first.
func ForeignOwner(tags []string, clusterID, uid string) string {
	var clusters, services []string
	mine := false
	for _, t := range tags {
		if c, ok := strings.CutPrefix(t, desired.ClusterTagKey); ok {
			clusters = append(clusters, c)
		}
		if u, ok := strings.CutPrefix(t, desired.ServiceTagKey); ok {
			if u == uid {
				mine = true
			} else {
				services = append(services, u)
			}
		}
	}
	for _, c := range clusters {
		if c != clusterID {
			return fmt.Sprintf("it belongs to another cluster (%s%s)", desired.ClusterTagKey, c)
		}
	}
	switch {
	case len(services) > 0:
		return fmt.Sprintf("it belongs to another Service (%s%s)", desired.ServiceTagKey, strings.Join(services, ","))
	case desired.SharingKeyOf(tags) != "":
		return fmt.Sprintf("it is shared by key %s", desired.SharingKeyOf(tags))
	case len(clusters) > 0 && !mine:
		return "it carries this cluster's tag without a Service's: it is being deleted or made by hand"
	}
	return ""
}

// StillAdoptable is apply's precondition for the adopt write, on a fresh
// read: the appliance the decision was made on, unchanged in what it
// rested on (switch, tags, settings), so no one took it meanwhile.
func StillAdoptable(decidedOn, fresh *iaas.LoadBalancer) bool {
	return fresh.ID == decidedOn.ID && fresh.SwitchID == decidedOn.SwitchID &&
		fresh.SettingsHash == decidedOn.SettingsHash && sameTags(fresh.Tags, decidedOn.Tags)
}

// Adopted is the check after the adopt write: the appliance carries
// exactly the tags written. Another writer that raced the write (another
// cluster, whose precondition read came first) shows here.
func Adopted(fresh *iaas.LoadBalancer, written []string) bool {
	return sameTags(fresh.Tags, written)
}

// SameTags: a and b hold the same tags, in any order.
func SameTags(a, b []string) bool { return sameTags(a, b) }

func sameTags(a, b []string) bool {
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}

func earlierClusterOf(tags []string) (string, bool) {
	for _, t := range tags {
		if c, ok := strings.CutPrefix(t, EarlierClusterTagKey); ok {
			return c, true
		}
	}
	return "", false
}

func refused(lb *iaas.LoadBalancer, why string) Adoption {
	return Adoption{Kind: AdoptRefused, IDs: []string{lb.ID.String()}, Why: why}
}

func idsOf(lbs []*iaas.LoadBalancer) []string {
	out := make([]string, 0, len(lbs))
	for _, lb := range lbs {
		out = append(out, lb.ID.String())
	}
	return out
}

// Released are an appliance's tags without this controller's ownership
// tags (cluster, every service-uid, sharing key): what a preserved
// appliance keeps. Other tags, the earlier controller's included, stay.
func Released(tags []string) []string {
	out := []string{}
	for _, t := range tags {
		if strings.HasPrefix(t, desired.ClusterTagKey) || strings.HasPrefix(t, desired.ServiceTagKey) || strings.HasPrefix(t, desired.SharingTagKey) {
			continue
		}
		out = append(out, t)
	}
	return out
}

func switchList(ids []types.ID) string {
	if len(ids) == 1 {
		return "switch " + ids[0].String()
	}
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = id.String()
	}
	return "one of the switches " + strings.Join(parts, ", ")
}

// ELBAdoption is the adoption decision for an Enhanced Load Balancer.
type ELBAdoption struct {
	Kind AdoptKind
	ELB  *iaas.ProxyLB // AdoptIt: as decided on
	Tags []string      // AdoptIt: its tags after the write
	ID   string
	Why  string // AdoptRefused
}

// ELBAdoptTarget is what an adopted ELB must fit.
type ELBAdoptTarget struct {
	ClusterID, UID string
	// Region is the region the Service asks for: an ELB cannot move, so
	// one elsewhere would be reported as drift for ever.
	Region types.EProxyLBRegion
	// ShownBy maps an address to the other Service showing it.
	ShownBy map[string]string
	// RecordedID is the ELB the Service records as its own (elb-id).
	RecordedID string
}

// AdoptELBByID decides whether the Service adopts the ELB id it names
// (elb: a fresh read, nil when it does not exist), by the rules of
// AdoptByID: not owned by anyone, not failed, room for the two ownership
// tags, a VIP no other Service shows, and the Service's region.
func AdoptELBByID(id string, elb *iaas.ProxyLB, t ELBAdoptTarget) ELBAdoption {
	refuse := func(why string) ELBAdoption { return ELBAdoption{Kind: AdoptRefused, ID: id, Why: why} }
	switch {
	case elb == nil && t.RecordedID != "":
		// It was the Service's and was deleted since: create a new one
		// like for any Service whose ELB is gone.
		return ELBAdoption{Kind: AdoptNone}
	case elb == nil:
		return refuse("no enhanced load balancer with this ID exists")
	case elb.Availability.IsFailed():
		return refuse("SAKURA Cloud failed to create it")
	}
	if why := ForeignOwner(elb.Tags, t.ClusterID, t.UID); why != "" {
		return refuse(why)
	}
	if elb.Region != t.Region {
		return refuse(fmt.Sprintf("it is in region %s and the Service asks for %s, which cannot change in place", elb.Region, t.Region))
	}
	if other, ok := t.ShownBy[elb.VirtualIPAddress]; ok && elb.VirtualIPAddress != "" {
		return refuse(fmt.Sprintf("its VIP %s is shown by Service %s", elb.VirtualIPAddress, other))
	}
	tags := append(slices.Clone([]string(elb.Tags)), desired.ClusterTag(t.ClusterID), desired.ServiceTag(t.UID))
	if len(tags) > desired.MaxTags {
		return refuse(fmt.Sprintf("it carries %d tags and SAKURA allows %d, so the two ownership tags do not fit; remove some", len(elb.Tags), desired.MaxTags))
	}
	return ELBAdoption{Kind: AdoptIt, ELB: elb, Tags: tags, ID: id}
}

// StillAdoptableELB is the precondition of the adopt write on a fresh
// read: the ELB decided on, with the tags and settings it was decided on.
func StillAdoptableELB(decidedOn, fresh *iaas.ProxyLB) bool {
	return fresh.ID == decidedOn.ID && fresh.SettingsHash == decidedOn.SettingsHash && sameTags(fresh.Tags, decidedOn.Tags)
}
