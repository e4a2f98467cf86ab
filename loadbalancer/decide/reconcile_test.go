package decide

import "testing"

func TestNext(t *testing.T) {
	cases := []struct {
		name string
		f    Facts
		want Step
	}{
		{"deleting: a follower sync does nothing", Facts{Trigger: ByFollower, Deleting: true, Found: FoundListed, State: Up}, StepNone},
		{"deleting: the repair pass creates nothing", Facts{Trigger: ByRepair, Deleting: true}, StepNone},
		{"deleting: a node sync does nothing", Facts{Trigger: ByServiceController, Deleting: true, Found: FoundListed, State: Stopped}, StepNone},
		{"deleting: EnsureLoadBalancer wants it again", Facts{Trigger: ByEnsure, Deleting: true}, StepCreate},
		{"none: ensure creates", Facts{Trigger: ByEnsure}, StepCreate},
		{"none: repair creates again", Facts{Trigger: ByRepair}, StepCreate},
		{"none: repair of an opted-out Service does not", Facts{Trigger: ByRepair, NoRepair: true}, StepNone},
		{"none: ensure of an opted-out Service does", Facts{Trigger: ByEnsure, NoRepair: true}, StepCreate},
		{"none: a node sync never creates", Facts{Trigger: ByServiceController}, StepNone},
		{"none: the follower never creates", Facts{Trigger: ByFollower}, StepNone},
		{"pending create: wait, whoever asks", Facts{Trigger: ByServiceController, Found: FoundPending}, StepWaitCreate},
		{"pending create: ensure waits too", Facts{Trigger: ByEnsure, Found: FoundPending}, StepWaitCreate},
		{"failed", Facts{Trigger: ByEnsure, Found: FoundListed, State: Failed}, StepFailed},
		{"stopped: boot", Facts{Trigger: ByFollower, Found: FoundListed, State: Stopped}, StepBoot},
		{"stopped and unlisted: boot", Facts{Trigger: ByEnsure, Found: FoundUnlisted, State: Stopped}, StepBoot},
		{"stopped, opted out: stays off", Facts{Trigger: ByRepair, Found: FoundListed, State: Stopped, NoRepair: true}, StepStayOff},
		{"stopped, Service being deleted: no boot", Facts{Trigger: ByEnsure, Found: FoundListed, State: Stopped, ServiceDeleting: true}, StepNone},
		{"booting", Facts{Trigger: ByEnsure, Found: FoundUnlisted, State: Booting}, StepWaitBoot},
		{"up: serve", Facts{Trigger: ByServiceController, Found: FoundListed, State: Up}, StepServe},
		{"up, opted out, repair: hands off", Facts{Trigger: ByRepair, Found: FoundListed, State: Up, NoRepair: true}, StepHandsOff},
		{"adoptable: ensure adopts", Facts{Trigger: ByEnsure, Found: FoundAdoptable}, StepAdopt},
		{"adoptable: repair adopts", Facts{Trigger: ByRepair, Found: FoundAdoptable}, StepAdopt},
		{"adoptable: repair of an opted-out Service does not", Facts{Trigger: ByRepair, Found: FoundAdoptable, NoRepair: true}, StepNone},
		{"adoptable: a node sync never adopts", Facts{Trigger: ByServiceController, Found: FoundAdoptable}, StepNone},
		{"adoptable: the follower never adopts", Facts{Trigger: ByFollower, Found: FoundAdoptable}, StepNone},
		{"adoptable: not for a Service being deleted", Facts{Trigger: ByEnsure, Found: FoundAdoptable, ServiceDeleting: true}, StepNone},
		{"adoptable: not while this process deletes it", Facts{Trigger: ByRepair, Found: FoundAdoptable, Deleting: true}, StepNone},
		{"refused: ensure reports, creates nothing", Facts{Trigger: ByEnsure, Found: FoundAdoptRefused}, StepRefuseAdopt},
		{"refused: node sync says nothing", Facts{Trigger: ByServiceController, Found: FoundAdoptRefused}, StepNone},
		{"up, opted out, ensure: serve", Facts{Trigger: ByEnsure, Found: FoundListed, State: Up, NoRepair: true}, StepServe},
	}
	for _, c := range cases {
		if got := Next(c.f); got != c.want {
			t.Errorf("%s: Next(%+v) = %d, want %d", c.name, c.f, got, c.want)
		}
	}
}

func TestServe(t *testing.T) {
	cases := []struct {
		name string
		f    ServeFacts
		want ServePlan
	}{
		{"in line", ServeFacts{Trigger: ByServiceController}, ServePlan{WriteEntries: true}},
		{"config pending first", ServeFacts{Trigger: ByEnsure, ConfigPending: true}, ServePlan{ApplyConfigFirst: true, WriteEntries: true}},
		{"repair writes as a repair", ServeFacts{Trigger: ByRepair}, ServePlan{WriteEntries: true, AsRepair: true}},
		{"member without entries rejoins", ServeFacts{Trigger: ByFollower, Shared: true, SameKey: true, ConfigPending: true}, ServePlan{ApplyConfigFirst: true, Rejoin: true}},
		{"member of another key does not rejoin: conflict", ServeFacts{Trigger: ByEnsure, Shared: true, Drift: true}, ServePlan{Drift: ReportSharingConflict}},
		{"member with entries in conflict writes nothing", ServeFacts{Trigger: ByEnsure, Shared: true, SameKey: true, HasEntries: true, Drift: true, PinDiffers: true}, ServePlan{CheckPin: true, Drift: ReportSharingConflict}},
		{"unshared drift writes the rest and warns", ServeFacts{Trigger: ByEnsure, Drift: true}, ServePlan{WriteEntries: true, Drift: ReportNeedsNewAppliance}},
		{"pin differs", ServeFacts{Trigger: ByServiceController, PinDiffers: true}, ServePlan{CheckPin: true, WriteEntries: true}},
	}
	for _, c := range cases {
		if got := Serve(c.f); got != c.want {
			t.Errorf("%s: Serve(%+v) = %+v, want %+v", c.name, c.f, got, c.want)
		}
	}
}

func TestKeyAppliance(t *testing.T) {
	cases := []struct {
		found    Found
		inFlight bool
		want     KeyStep
	}{
		{FoundListed, false, KeyJoin},
		{FoundListed, true, KeyJoin}, // listed: the record's appliance is this one, or the next join finds it
		{FoundUnlisted, false, KeyJoin},
		{FoundPending, false, KeyWait},
		{FoundNone, true, KeyWait},
		{FoundNone, false, KeyCreate},
	}
	for _, c := range cases {
		if got := KeyAppliance(c.found, c.inFlight); got != c.want {
			t.Errorf("KeyAppliance(%d, %v) = %d, want %d", c.found, c.inFlight, got, c.want)
		}
	}
}

func TestAdmit(t *testing.T) {
	for _, tr := range []Trigger{ByServiceController, ByFollower, ByRepair} {
		if Admit(tr, true) || !Admit(tr, false) {
			t.Errorf("%s: a Service being deleted is admitted, or one not being deleted is not", tr)
		}
	}
	if !Admit(ByEnsure, true) {
		t.Error("EnsureLoadBalancer after a deletion began is not admitted")
	}
}

// A Service joining its sharing key's appliance boots it when it is off:
// the member already served may never sync again (engine test
// TestWantedAgainBeforeItsDeletionFinishedIsSharedAgain waited for ever
// when the shutdown of a deletion landed after that member was wanted
// again).
func TestJoinStep(t *testing.T) {
	for _, c := range []struct {
		name                        string
		state                       State
		noRepair, deleting, leaving bool
		want                        Step
	}{
		{"up: join", Up, false, false, false, StepServe},
		{"up, its members leaving: join (the tag keeps it)", Up, false, false, true, StepServe},
		{"off: boot it", Stopped, false, false, false, StepBoot},
		// Seed 300526: the only member was being deleted with its
		// appliance down (its Delete refused); the joiner booted it.
		{"off, its members leaving: wait for the deletion", Stopped, false, false, true, StepWaitLeaving},
		{"off, the joining Service opts out of repair: say so", Stopped, true, false, false, StepStayOff},
		{"off, the joining Service is being deleted: nothing", Stopped, false, true, false, StepNone},
		{"booting: wait", Booting, false, false, false, StepWaitBoot},
		{"not listed yet: wait", Missing, false, false, false, StepWaitBoot},
		{"failed: a person must act", Failed, false, false, false, StepFailed},
	} {
		if got := JoinStep(c.state, c.noRepair, c.deleting, c.leaving); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func TestLeaving(t *testing.T) {
	for _, c := range []struct {
		name    string
		members []Member
		want    bool
	}{
		{"no members", nil, false},
		{"the only member is being deleted", []Member{MemberDeleting}, true},
		{"one leaving, one live", []Member{MemberDeleting, MemberLive}, false},
		{"one leaving, one gone", []Member{MemberGone, MemberDeleting}, true},
		{"all gone: an orphan, not a deletion", []Member{MemberGone, MemberGone}, false},
		{"live", []Member{MemberLive}, false},
	} {
		if got := Leaving(c.members); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func TestMemberOf(t *testing.T) {
	for _, c := range []struct {
		name                     string
		exists, deleting, served bool
		want                     Member
	}{
		{"no such Service", false, false, false, MemberGone},
		{"served, not being deleted", true, false, true, MemberLive},
		{"being deleted", true, true, true, MemberDeleting},
		{"no longer a LoadBalancer Service served here", true, false, false, MemberDeleting},
	} {
		if got := MemberOf(c.exists, c.deleting, c.served); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
