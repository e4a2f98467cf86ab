package decide

// The branching of one reconcile: who asks (Trigger), where the locator
// found the Service's appliance (Found) and how that appliance stands
// (State) decide the next step; for an appliance that serves, ServePlan
// decides what is written and reported. The engine observes the facts,
// calls these and acts; it chooses nothing itself.

// Trigger is who asks for a reconcile. It decides whether an appliance may
// be made and whose node list is used.
type Trigger int

const (
	// ByServiceController is UpdateLoadBalancer: the nodes passed are the
	// newest node set; they are remembered for the other loops.
	ByServiceController Trigger = iota
	// ByEnsure is EnsureLoadBalancer: may create; remembers the nodes.
	ByEnsure
	// ByFollower is the endpoint follower: it uses the node set the
	// service controller passed last and never stores one of its own.
	ByFollower
	// ByRepair is the repair pass: like the follower, with the appliance as
	// its listing saw it; it may create or boot again after a fresh read of
	// the Service confirms it is still wanted.
	ByRepair
)

func (t Trigger) String() string {
	switch t {
	case ByServiceController:
		return "service-controller"
	case ByEnsure:
		return "ensure"
	case ByFollower:
		return "follower"
	case ByRepair:
		return "repair"
	}
	return "unknown"
}

// MayCreate: the trigger may make (or re-make) an appliance.
func (t Trigger) MayCreate() bool { return t == ByEnsure || t == ByRepair }

// UsesRememberedNodes: the trigger carries no node set of its own and uses
// the one the service controller passed last.
func (t Trigger) UsesRememberedNodes() bool { return t == ByFollower || t == ByRepair }

// RemembersNodes: the node set the trigger carries is the newest.
func (t Trigger) RemembersNodes() bool { return t == ByServiceController || t == ByEnsure }

// ReadsRecord: with no appliance listed, the locator also reads the
// Service's recorded appliance ID and create record (one read). Only a
// trigger that could otherwise create needs it: for the others "none" is
// harmless, they never make one.
func (t Trigger) ReadsRecord() bool { return t.MayCreate() }

// Found is the locator's one answer to "where is this Service's appliance".
type Found int

const (
	// FoundNone: no listing, no recorded ID and no create in flight shows one.
	FoundNone Found = iota
	// FoundListed: a listing shows it by its ownership tags.
	FoundListed
	// FoundUnlisted: a read by the recorded (or just-created) ID shows it
	// while listings do not yet.
	FoundUnlisted
	// FoundPending: a create is, or may be, in flight and its appliance is
	// not readable yet: wait rather than make a second one.
	FoundPending
	// FoundAdoptable: the Service has no appliance of this controller, but
	// one it may adopt (AdoptEarlier, AdoptByID): the earlier controller's,
	// or the one it names by ID.
	FoundAdoptable
	// FoundAdoptRefused: an appliance was proposed for adoption but may
	// not be taken (ambiguous, another owner, another switch); nothing is
	// created in its place either, since keeping an address was asked for.
	FoundAdoptRefused
)

// Step is what a reconcile does next.
type Step int

const (
	// StepNone: nothing to do and no status (no appliance, and this
	// trigger may not make one; or the Service is being deleted).
	StepNone Step = iota
	// StepWaitCreate: a create may be in flight; retry later.
	StepWaitCreate
	// StepCreate: make an appliance (or join the sharing key's one).
	StepCreate
	// StepFailed: SAKURA failed to create the appliance; a person must act.
	StepFailed
	// StepBoot: the appliance is off though its Service is live: boot it
	// (after a fresh read confirms the Service is still wanted).
	StepBoot
	// StepStayOff: the appliance is off and the Service opts out of
	// repair: say so, boot nothing.
	StepStayOff
	// StepWaitBoot: the appliance is in transition; look again later.
	StepWaitBoot
	// StepHandsOff: the Service opts out of repair and the repair pass
	// asks: report the status, change nothing.
	StepHandsOff
	// StepServe: the appliance is up: bring it in line (ServePlan).
	StepServe
	// StepAdopt: write this controller's ownership tags to the adoptable
	// appliance (after a fresh read re-checks it), then serve it.
	StepAdopt
	// StepRefuseAdopt: report why the proposed appliance is not adopted;
	// write and create nothing.
	StepRefuseAdopt
	// StepWaitLeaving: the sharing key's appliance is off and every
	// Service on it is being deleted: wait for that deletion (which
	// removes the appliance) rather than boot it; then make a new one.
	StepWaitLeaving
)

// Facts is what a reconcile observed, reduced to what the step depends on.
type Facts struct {
	Trigger Trigger
	// Deleting: this process began deleting the Service and no
	// EnsureLoadBalancer has asked for it since.
	Deleting bool
	Found    Found
	// State of the found appliance (Missing when none).
	State State
	// NoRepair: the Service opts out of repair (annotation).
	NoRepair bool
	// ServiceDeleting: the Service copy at hand has a deletion timestamp.
	ServiceDeleting bool
}

// Admit says whether a reconcile goes ahead at all: a Service whose
// deletion this process began is left alone by every trigger but a new
// EnsureLoadBalancer (the service controller wants it again). The engine
// asks before it reads anything.
func Admit(t Trigger, deleting bool) bool { return !deleting || t == ByEnsure }

// Next is the step a reconcile takes.
func Next(f Facts) Step {
	if !Admit(f.Trigger, f.Deleting) {
		return StepNone // being deleted: nothing may bring it back
	}
	switch f.Found {
	case FoundPending:
		return StepWaitCreate
	case FoundAdoptable, FoundAdoptRefused:
		// Adopting makes an appliance the Service's as a create would: only
		// a trigger that may create does it, never for a Service on its way
		// out (its deletion would then delete an appliance it never had).
		if !f.Trigger.MayCreate() || (f.Trigger == ByRepair && f.NoRepair) || f.ServiceDeleting {
			return StepNone
		}
		if f.Found == FoundAdoptable {
			return StepAdopt
		}
		return StepRefuseAdopt
	case FoundNone:
		if !f.Trigger.MayCreate() || (f.Trigger == ByRepair && f.NoRepair) {
			return StepNone
		}
		return StepCreate
	}
	if step, settled := notUp(f.State, f.NoRepair, f.ServiceDeleting); settled {
		return step
	}
	if f.NoRepair && f.Trigger == ByRepair {
		return StepHandsOff
	}
	return StepServe
}

// notUp is the step for an appliance that is not up (settled false: it is
// up, and the caller decides).
func notUp(state State, noRepair, serviceDeleting bool) (step Step, settled bool) {
	switch state {
	case Failed:
		return StepFailed, true
	case Stopped:
		switch {
		case noRepair:
			return StepStayOff, true
		case serviceDeleting:
			return StepNone, true // whoever asks: the deletion's shutdown stands
		}
		return StepBoot, true
	case Booting, Missing:
		return StepWaitBoot, true
	}
	return StepServe, false
}

// JoinStep is the step of a Service about to join its sharing key's
// appliance, in state: join it when up; boot it when it is off, as its
// members would, since a member already served need not sync again and
// the joining Service would wait for ever. But when the appliance's
// members are leaving (Leaving), the last one's deletion removes the
// appliance, tags and all: a boot would race it (seed 300526), so the
// joining Service waits and makes a new one once it is gone. Joining one
// that is up needs no wait: the join writes this Service's tag under the
// key's lock, and the deletion then keeps the appliance for it.
func JoinStep(state State, noRepair, serviceDeleting, membersLeaving bool) Step {
	step, _ := notUp(state, noRepair, serviceDeleting)
	if step == StepBoot && membersLeaving {
		return StepWaitLeaving
	}
	return step
}

// Member is what a member UID's Service is, as the Service cache shows it.
type Member int

const (
	MemberLive Member = iota // a LoadBalancer Service served here, not being deleted
	// MemberDeleting: being deleted, or no longer a LoadBalancer Service
	// served here: its clean-up takes its part off the appliance.
	MemberDeleting
	MemberGone // no such Service
)

// MemberOf classifies a member UID's Service: exists (in the Service
// cache), deleting (its deletion timestamp is set), served (a
// LoadBalancer Service this controller serves).
func MemberOf(exists, deleting, served bool) Member {
	switch {
	case !exists:
		return MemberGone
	case deleting || !served:
		return MemberDeleting
	}
	return MemberLive
}

// Leaving: no member of the appliance is a live Service and at least one
// is being deleted. Members whose Services are all gone make an orphan of
// it, which the joining Service may take over (nothing else will delete
// it while the sweep only reports).
func Leaving(members []Member) bool {
	deleting := false
	for _, m := range members {
		switch m {
		case MemberLive:
			return false
		case MemberDeleting:
			deleting = true
		}
	}
	return deleting
}

// ServeFacts is what a reconcile observed of an appliance that is up.
type ServeFacts struct {
	Trigger Trigger
	// ConfigPending: settings were saved and may not have been applied
	// (a Config failed, or is suspected or marked in the description).
	ConfigPending bool
	// Shared: the appliance carries a sharing-key tag; SameKey: the
	// Service asks for that key; HasEntries: the Service has entries on it.
	Shared, SameKey, HasEntries bool
	// Drift: fixed settings (type, switch, network, plan, HA, key) differ.
	Drift bool
	// PinDiffers: the Service pins a VIP other than the one it has.
	PinDiffers bool
}

// DriftReport is which Warning a drift calls for.
type DriftReport int

const (
	NoDriftReport DriftReport = iota
	// ReportSharingConflict: a member disagrees with its shared appliance.
	ReportSharingConflict
	// ReportNeedsNewAppliance: the change cannot be made in place.
	ReportNeedsNewAppliance
)

// ServePlan is what a reconcile of an appliance that is up does, in order.
type ServePlan struct {
	// ApplyConfigFirst: apply saved settings before anything else; a plan
	// over the saved settings would find nothing to change.
	ApplyConfigFirst bool
	// Rejoin: the Service is a member without entries (removed by hand or
	// by a sweep, or a join interrupted between write and read): join
	// again, writing only its own entries, on the address it shows when
	// its pinned VIP is refused (as a member with entries keeps its VIP).
	// Nothing below applies.
	Rejoin bool
	// CheckPin: check the pinned VIP on a fresh inventory before using it.
	CheckPin bool
	// WriteEntries: write the planned settings when they differ. A member
	// in conflict leaves the shared appliance exactly as it is.
	WriteEntries bool
	// AsRepair: a write is reported as a repair (the repair pass found it).
	AsRepair bool
	Drift    DriftReport
}

// Serve plans the reconcile of an appliance that is up.
func Serve(f ServeFacts) ServePlan {
	p := ServePlan{ApplyConfigFirst: f.ConfigPending}
	if f.Shared && f.SameKey && !f.HasEntries {
		p.Rejoin = true
		return p
	}
	p.CheckPin = f.PinDiffers
	p.WriteEntries = !(f.Shared && f.Drift)
	p.AsRepair = f.Trigger == ByRepair
	switch {
	case f.Drift && f.Shared:
		p.Drift = ReportSharingConflict
	case f.Drift:
		p.Drift = ReportNeedsNewAppliance
	}
	return p
}

// KeyStep is what a Service of a sharing key does when it has no appliance.
type KeyStep int

const (
	// KeyJoin: join the key's appliance.
	KeyJoin KeyStep = iota
	// KeyWait: the key's appliance is being created (by this process, or by
	// another member before a restart): wait rather than make a second one.
	KeyWait
	// KeyCreate: the key has no appliance: make it.
	KeyCreate
)

// KeyAppliance decides between joining, waiting and creating: found is
// where the key's appliance was found (listed, unlisted by the ID this
// process created, a create of this process pending, none), and
// recordInFlight says another member's create record is young enough that
// its appliance may not be listed yet.
func KeyAppliance(found Found, recordInFlight bool) KeyStep {
	switch {
	case found == FoundListed || found == FoundUnlisted:
		return KeyJoin
	case found == FoundPending || recordInFlight:
		return KeyWait
	}
	return KeyCreate
}
