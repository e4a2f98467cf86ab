// Package decide holds the load balancer controller's decisions as pure
// functions of an observed snapshot: no API client, no Kubernetes client, no
// clock of its own. Each race the controller has to survive is a table test
// here over plain values (see decide_test.go); the callers observe, call a
// function here, and act with the preconditions it returns.
package decide

import (
	"slices"
	"strings"

	"github.com/sacloud/iaas-api-go"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/desired"
)

// LeaveKind says what a Service's deletion does to an appliance.
type LeaveKind int

const (
	// LeaveNothing: the appliance does not carry the Service (any more).
	LeaveNothing LeaveKind = iota
	// LeaveMember: other Services still use the shared appliance; write
	// Tags and VIPs (the leaving member's tag and entries removed).
	LeaveMember
	// LeaveDelete: the Service is the appliance's last member; delete the
	// appliance, provided it still has exactly Members.
	LeaveDelete
	// LeavePreserve: the Service is the last member and asks to keep the
	// appliance: write Tags (this controller's ownership tags removed),
	// provided it still has exactly Members; VIP and entries stay.
	LeavePreserve
)

// Leave is the decision for one appliance when a Service is deleted.
type Leave struct {
	Kind LeaveKind
	Tags []string
	VIPs iaas.LoadBalancerVirtualIPAddresses
	// Members is the precondition of LeaveDelete: the member UIDs the
	// appliance had when the decision was made.
	Members []string
	// Others counts the members that stay (LeaveMember).
	Others int
}

// LeaveAppliance decides, on a copy of lb read under the sharing key's
// lock, what deleting the Service uid (named ref in entry descriptions)
// does. Counting members on a copy read before the lock is the race that
// deleted a shared appliance under a Service that had just joined it: this
// function must only ever be given a fresh read.
func LeaveAppliance(lb *iaas.LoadBalancer, uid string, ref desired.ServiceRef) Leave {
	members := desired.MemberUIDs(lb.Tags)
	if !slices.Contains(members, uid) {
		return Leave{Kind: LeaveNothing}
	}
	if desired.SharingKeyOf(lb.Tags) == "" || len(members) == 1 {
		return Leave{Kind: LeaveDelete, Members: members}
	}
	keep := iaas.LoadBalancerVirtualIPAddresses{}
	mine := desired.VIP{Owner: ref}.Description()
	for _, v := range lb.VirtualIPAddresses {
		if v != nil && v.Description != mine {
			keep = append(keep, v)
		}
	}
	return Leave{Kind: LeaveMember, Tags: desired.WithoutMembers(lb.Tags, uid), VIPs: keep, Others: len(members) - 1}
}

// LeaveOrPreserve is LeaveAppliance for a Service that may ask to keep
// its appliance (preserve): only the last member can, since the others
// still use it; a member that is not the last leaves as usual and the
// appliance stays with the others (and is preserved only if the last of
// them asks so too).
func LeaveOrPreserve(lb *iaas.LoadBalancer, uid string, ref desired.ServiceRef, preserve bool) Leave {
	d := LeaveAppliance(lb, uid, ref)
	if preserve && d.Kind == LeaveDelete {
		return Leave{Kind: LeavePreserve, Tags: Released(lb.Tags), Members: d.Members}
	}
	return d
}

// MembersUnchanged is the precondition of a destructive action decided on
// an earlier copy: a fresh read must show no member that the decision did
// not know about. Fewer members is fine (they left on their own).
func MembersUnchanged(fresh *iaas.LoadBalancer, decidedOn []string) bool {
	for _, u := range desired.MemberUIDs(fresh.Tags) {
		if !slices.Contains(decidedOn, u) {
			return false
		}
	}
	return true
}

// Prune is what the sweep writes to a shared appliance whose members gone
// have vanished.
type Prune struct {
	Tags []string
	VIPs iaas.LoadBalancerVirtualIPAddresses
	// Removed are the member UIDs actually taken off.
	Removed []string
}

// PruneMembers decides, on a fresh read of lb and a listing of claimed
// Services (UID -> "namespace/name") taken after that read, which of the
// members gone (found vanished by two sweeps) to take off, and which entries
// to keep: exactly those of the members that stay. Both inputs must be
// fresh: with an older listing, a Service that joined after it kept its tag
// but lost its entries. Every member that the listing does not claim must
// be in gone (old enough to remove); otherwise the entries of a vanished
// member still in its grace period could not be told from a removable one's,
// and nothing is pruned this time.
func PruneMembers(lb *iaas.LoadBalancer, gone []string, claimed map[string]string) (Prune, bool) {
	members := desired.MemberUIDs(lb.Tags)
	var removed []string
	staying := map[string]bool{}
	for _, u := range members {
		if ref, ok := claimed[u]; ok {
			staying[desired.EntryDescriptionPrefix+ref] = true
			continue
		}
		if !slices.Contains(gone, u) {
			return Prune{}, false // vanished, but not long enough: wait
		}
		removed = append(removed, u)
	}
	if len(removed) == 0 || len(removed) == len(members) {
		// Nothing to do, or nobody would stay: that is the orphan path.
		return Prune{}, false
	}
	vips := iaas.LoadBalancerVirtualIPAddresses{}
	for _, v := range lb.VirtualIPAddresses {
		if v != nil && staying[v.Description] {
			vips = append(vips, v)
		}
	}
	return Prune{Tags: desired.WithoutMembers(lb.Tags, removed...), VIPs: vips, Removed: removed}, true
}

// Join is the decision for a Service joining a shared appliance.
type Join struct {
	// Fits: the appliance takes the Service's entries and one more member.
	Fits bool
	// Tags are the appliance's tags with the Service a member exactly once.
	Tags []string
	// Others and OtherEntries count the other members and their entries.
	Others, OtherEntries int
}

// JoinAppliance decides whether the Service uid (named ref in entry
// descriptions), needing ports entries, fits on the shared appliance lb.
// The Service's own tag and entries, left by an earlier join whose entries
// were wiped or whose write was interrupted, count as free: a re-join must
// neither tag the Service twice nor be refused as full.
func JoinAppliance(lb *iaas.LoadBalancer, uid string, ref desired.ServiceRef, ports int) Join {
	others := 0
	for _, u := range desired.MemberUIDs(lb.Tags) {
		if u != uid {
			others++
		}
	}
	mine := desired.VIP{Owner: ref}.Description()
	entries := 0
	for _, v := range lb.VirtualIPAddresses {
		if v != nil && v.Description != mine {
			entries++
		}
	}
	return Join{
		Fits:         entries+ports <= desired.MaxVIPEntries && others < desired.MaxSharedMembers,
		Tags:         desired.WithMember(lb.Tags, uid),
		Others:       others,
		OtherEntries: entries,
	}
}

// Unshared returns tags without the sharing-key tag: the tags of a shared
// appliance whose last member is deleting it (see apply's unshare).
func Unshared(tags []string) []string {
	out := make([]string, 0, len(tags))
	for _, t := range tags {
		if !strings.HasPrefix(t, desired.SharingTagKey) {
			out = append(out, t)
		}
	}
	return out
}

// Reshare says whether the Service uid, which asks for sharing key key,
// gets key's tag written back on its own appliance (named name): this
// Service's deletion took the tag off before the shutdown (Unshared), and
// the Service wants its load balancer again before the deletion finished.
// Without the tag no other member of the key could join it, and they would
// make a second appliance for the key. Only an appliance made for the key
// (its shared name) with this Service as its sole member qualifies: a
// Service given a key afterwards keeps the appliance it has (a drift).
func Reshare(name string, tags []string, uid, key, sharedName string) bool {
	return key != "" && desired.SharingKeyOf(tags) == "" && name == sharedName &&
		slices.Equal(desired.MemberUIDs(tags), []string{uid})
}
