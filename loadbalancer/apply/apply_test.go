package apply

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/fake"
	"github.com/sacloud/iaas-api-go/helper/api"
	"github.com/sacloud/iaas-api-go/types"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/sakuraapi"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/desired"
	clocktesting "k8s.io/utils/clock/testing"
)

func setup(t *testing.T) (*Executor, context.Context) {
	fake.SwitchFactoryFuncToFake()
	api.SetupFakeDefaults()
	fake.DataStore = fake.NewInMemoryStore()
	return &Executor{Client: sakuraapi.NewFromCaller(nil, "is1a", sakuraapi.Limits{}), ClusterID: "c1"}, context.Background()
}

func put(id types.ID, tags ...string) *iaas.LoadBalancer {
	lb := &iaas.LoadBalancer{ID: id, Name: "lb", Class: "loadbalancer", Tags: tags,
		Availability: types.Availabilities.Available, InstanceStatus: types.ServerInstanceStatuses.Up}
	fake.DataStore.Put(fake.ResourceLoadBalancer, "is1a", id, lb)
	return lb
}

// FindCluster keeps only appliances that carry this cluster's tag exactly,
// oldest first: another cluster's, or one tagged only by Service, is not
// this cluster's.
func TestFindClusterRequiresTheClusterTag(t *testing.T) {
	e, ctx := setup(t)
	put(11, desired.ClusterTag(e.ClusterID), desired.ServiceTag("u1"))
	put(10, desired.ClusterTag(e.ClusterID), desired.ServiceTag("u1"), "extra")
	put(12, desired.ClusterTag(e.ClusterID+"2"), desired.ServiceTag("u1"))
	put(13, desired.ServiceTag("u1"))
	put(14, desired.ClusterTag(e.ClusterID), desired.ServiceTag("u2"))
	got, err := e.FindCluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].ID != 10 || got[1].ID != 11 || got[2].ID != 14 {
		t.Fatalf("got %v", got)
	}
}

func TestWritesRefuseForeignAppliances(t *testing.T) {
	e, ctx := setup(t)
	foreign := put(20, desired.ClusterTag("other"), desired.ServiceTag("u1"))
	if _, err := e.Delete(ctx, foreign, []string{"u1"}, true); !errors.Is(err, ErrNotOwned) {
		t.Fatalf("delete: %v", err)
	}
	if err := e.UpdateSettings(ctx, foreign, nil); !errors.Is(err, ErrNotOwned) {
		t.Fatalf("update: %v", err)
	}
	for k, v := range e.Client.Stats().Snapshot() {
		if sakuraapi.IsWrite(k.Op) && v > 0 {
			t.Fatalf("wrote %s to a foreign appliance", k.Op)
		}
	}
}

func TestDeleteToleratesAlreadyGone(t *testing.T) {
	e, ctx := setup(t)
	gone := &iaas.LoadBalancer{ID: 30, Tags: types.Tags{desired.ClusterTag("c1")}}
	step, err := e.Delete(ctx, gone, nil, false)
	if err != nil || step != Deleted {
		t.Fatalf("step %v err %v", step, err)
	}
}

func TestFindClusterExactTag(t *testing.T) {
	e, ctx := setup(t)
	put(11, desired.ClusterTag("c1"), desired.ServiceTag("u1"))
	put(10, desired.ClusterTag("c1"))
	put(12, desired.ClusterTag("c10"), desired.ServiceTag("u1"))
	put(13, desired.ClusterTag("c2"))
	put(14, desired.ServiceTag("u1"))
	got, err := e.FindCluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != 10 || got[1].ID != 11 {
		t.Fatalf("got %v, want 10 and 11", got)
	}
	if _, err := (&Executor{Client: e.Client}).FindCluster(ctx); err == nil {
		t.Error("an empty cluster ID listed appliances")
	}
}

// An appliance found as ours but re-tagged since (say, adopted by hand by
// another cluster) is not shut down on the strength of the stale copy.
func TestDeleteRechecksOwnershipOnTheFreshRead(t *testing.T) {
	e, ctx := setup(t)
	stale := put(40, desired.ClusterTag("c1"), desired.ServiceTag("u1"))
	put(40, desired.ClusterTag("other"), desired.ServiceTag("u1"))
	if _, err := e.Delete(ctx, stale, []string{"u1"}, false); !errors.Is(err, ErrNotOwned) {
		t.Fatalf("delete of a re-tagged appliance: %v", err)
	}
	for k, v := range e.Client.Stats().Snapshot() {
		if sakuraapi.IsWrite(k.Op) && v > 0 {
			t.Fatalf("wrote %s to an appliance that is no longer ours", k.Op)
		}
	}
}

// The sweep decided to delete an orphan whose only member was u1; a Service
// u2 joined before the fresh read. The shutdown is refused.
func TestDeleteRefusesAnApplianceThatGainedAMember(t *testing.T) {
	e, ctx := setup(t)
	stale := put(50, desired.ClusterTag("c1"), desired.SharingTag("k"), desired.ServiceTag("u1"))
	put(50, desired.ClusterTag("c1"), desired.SharingTag("k"), desired.ServiceTag("u1"), desired.ServiceTag("u2"))
	if _, err := e.Delete(ctx, stale, []string{"u1"}, false); !errors.Is(err, ErrMembersChanged) {
		t.Fatalf("delete of an appliance with a new member: %v", err)
	}
	for k, v := range e.Client.Stats().Snapshot() {
		if sakuraapi.IsWrite(k.Op) && v > 0 {
			t.Fatalf("wrote %s to an appliance that gained a member", k.Op)
		}
	}
}

// failingConfig answers Config with an error: the settings stay saved but
// unapplied, as after a timeout or a 409 between UpdateSettings and Config.
type failingConfig struct {
	sakuraapi.LoadBalancerAPI
	fail bool
}

func (f *failingConfig) Config(ctx context.Context, zone string, id types.ID) error {
	if f.fail {
		return errors.New("timeout")
	}
	return f.LoadBalancerAPI.Config(ctx, zone, id)
}

// A Config that fails after any write (a member joining or leaving, the
// sweep's prune, an update) is remembered by the executor that every writer
// shares, until a Config succeeds: the seed-628 race of the torture test,
// where a join's Config failed on a stopped appliance and nothing applied
// the saved entries after it was booted again.
func TestUnappliedIsRememberedUntilConfigSucceeds(t *testing.T) {
	e, ctx := setup(t)
	lb := put(60, desired.ClusterTag("c1"), desired.SharingTag("k"), desired.ServiceTag("u1"))
	fc := &failingConfig{LoadBalancerAPI: e.Client.LoadBalancers, fail: true}
	e.Client.LoadBalancers = fc
	err := e.UpdateMembers(ctx, lb, lb.VirtualIPAddresses, append([]string(nil), lb.Tags...))
	if !errors.Is(err, ErrNotApplied) || !e.Unapplied(60) {
		t.Fatalf("after a failed Config: err=%v unapplied=%v", err, e.Unapplied(60))
	}
	fc.fail = false
	if err := e.Config(ctx, lb); err != nil || e.Unapplied(60) {
		t.Fatalf("after a Config: err=%v unapplied=%v", err, e.Unapplied(60))
	}
}

// conflictingShutdown answers Shutdown with 409 while conflict is set.
type conflictingShutdown struct {
	sakuraapi.LoadBalancerAPI
	conflict bool
	calls    int
}

func (c *conflictingShutdown) Shutdown(ctx context.Context, zone string, id types.ID, opt *iaas.ShutdownOption) error {
	c.calls++
	if c.conflict {
		return iaas.NewAPIError("DELETE", nil, http.StatusConflict, &iaas.APIErrorResponse{ErrorCode: "still_processing"})
	}
	return c.LoadBalancerAPI.Shutdown(ctx, zone, id, opt)
}

// A shutdown answered 409 (the appliance busy, or a shutdown already under
// way) is not trusted for ShutdownGrace: the deletion asks again after
// ShutdownConflictWait, not two minutes later (torture seed 142).
func TestShutdownConflictIsRetriedSoon(t *testing.T) {
	e, ctx := setup(t)
	clk := clocktesting.NewFakePassiveClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	e.Clock = clk
	lb := put(70, desired.ClusterTag("c1"), desired.ServiceTag("u1"))
	cs := &conflictingShutdown{LoadBalancerAPI: e.Client.LoadBalancers, conflict: true}
	e.Client.LoadBalancers = cs
	step, err := e.Delete(ctx, lb, []string{"u1"}, true)
	if err != nil || step != ShuttingDown {
		t.Fatalf("Delete after a 409: step %v err %v, want ShuttingDown and no error", step, err)
	}
	if until := e.shutdownUntil[70].Sub(clk.Now()); until != ShutdownConflictWait {
		t.Fatalf("after a 409 the shutdown is trusted for %v, want at most %v", until, ShutdownConflictWait)
	}
	// Within the wait nothing is sent; after it, the shutdown is sent again.
	if _, err := e.Delete(ctx, lb, []string{"u1"}, true); err != nil || cs.calls != 1 {
		t.Fatalf("within the wait: %d shutdowns sent (err %v), want 1", cs.calls, err)
	}
	clk.SetTime(clk.Now().Add(ShutdownConflictWait - time.Nanosecond))
	if _, err := e.Delete(ctx, lb, []string{"u1"}, true); err != nil || cs.calls != 1 {
		t.Fatalf("a nanosecond before the wait ends: %d shutdowns sent (err %v), want 1", cs.calls, err)
	}
	clk.SetTime(clk.Now().Add(time.Nanosecond))
	cs.conflict = false
	step, err = e.Delete(ctx, lb, []string{"u1"}, true)
	if err != nil || step != ShutdownSent || cs.calls != 2 {
		t.Fatalf("after the wait: step %v err %v, %d shutdowns, want ShutdownSent after 2", step, err, cs.calls)
	}
	if until := e.shutdownUntil[70].Sub(clk.Now()); until != ShutdownGrace {
		t.Fatalf("a shutdown sent is trusted for %v, want ShutdownGrace", until)
	}
}

// ForgetExcept drops the unapplied mark of an appliance not kept at once,
// but its shutdown only once the shutdown's wait has passed.
func TestForgetExceptKeepsShutdownsUntilTheirWaitPassed(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	e := &Executor{Clock: clk}
	e.markShutdown(70, ShutdownGrace)
	e.setUnapplied(70, true)
	e.ForgetExcept(nil)
	if !e.shutdownRecently(70) || e.Unapplied(70) {
		t.Fatalf("after ForgetExcept: shutdown remembered %v (want true), unapplied %v (want false)", e.shutdownRecently(70), e.Unapplied(70))
	}
	clk.SetTime(clk.Now().Add(ShutdownGrace + time.Nanosecond))
	e.ForgetExcept(nil)
	if _, ok := e.shutdownUntil[70]; ok {
		t.Fatal("an expired shutdown of a vanished appliance is still remembered")
	}
}

// failingSettings answers UpdateSettings with code, after saving the
// settings when saved is set (the answer lost after the work).
type failingSettings struct {
	sakuraapi.LoadBalancerAPI
	code  int
	saved bool
}

func (f *failingSettings) UpdateSettings(ctx context.Context, zone string, id types.ID, req *iaas.LoadBalancerUpdateSettingsRequest) (*iaas.LoadBalancer, error) {
	if f.saved {
		if _, err := f.LoadBalancerAPI.UpdateSettings(ctx, zone, id, req); err != nil {
			return nil, err
		}
	}
	return nil, iaas.NewAPIError("PUT", nil, f.code, &iaas.APIErrorResponse{ErrorCode: "fault"})
}

// Update fails the same way: a write that marks the appliance (see
// decide.MarkUnapplied) goes through it.
func (f *failingSettings) Update(ctx context.Context, zone string, id types.ID, req *iaas.LoadBalancerUpdateRequest) (*iaas.LoadBalancer, error) {
	if f.saved {
		if _, err := f.LoadBalancerAPI.Update(ctx, zone, id, req); err != nil {
			return nil, err
		}
	}
	return nil, iaas.NewAPIError("PUT", nil, f.code, &iaas.APIErrorResponse{ErrorCode: "fault"})
}

// A settings write whose answer is uncertain (5xx, lost) may have saved the
// settings; a later plan over them would find nothing to change, so the
// appliance is marked for Config (torture seed 7557). A refusal (4xx) saved
// nothing and marks nothing.
func TestUncertainSettingsWriteIsAppliedLater(t *testing.T) {
	for _, c := range []struct {
		name  string
		code  int
		saved bool
		want  bool
	}{
		{"500 after saving", http.StatusInternalServerError, true, true},
		{"500 before saving", http.StatusInternalServerError, false, true},
		{"409 refused", http.StatusConflict, false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			e, ctx := setup(t)
			lb := put(80, desired.ClusterTag("c1"), desired.ServiceTag("u1"))
			e.Client.LoadBalancers = &failingSettings{LoadBalancerAPI: e.Client.LoadBalancers, code: c.code, saved: c.saved}
			if err := e.UpdateSettings(ctx, lb, lb.VirtualIPAddresses); err == nil {
				t.Fatal("no error from a failed write")
			}
			if got := e.Unapplied(80); got != c.want {
				t.Errorf("Unapplied = %v, want %v", got, c.want)
			}
		})
	}
}

// A full Update writes tags, and SAKURA guards it by the settings hash
// only: a copy older than a member's leave must not write the departed
// member's tag back (torture seed 100376). The write is refused and the
// stored tags stay as they are.
func TestStaleTagsAreNeverWrittenBack(t *testing.T) {
	e, ctx := setup(t)
	vip := &iaas.LoadBalancerVirtualIPAddress{VirtualIPAddress: "192.0.2.10", Port: 80, DelayLoop: 10}
	stale := put(40, desired.ClusterTag("c1"), desired.ServiceTag("a"), desired.ServiceTag("b"), desired.SharingTag("k"))
	stale.VirtualIPAddresses = iaas.LoadBalancerVirtualIPAddresses{vip}
	copyOf := *stale
	// Member a leaves (its entries were already gone: the settings stay).
	left := copyOf
	left.Tags = types.Tags{desired.ClusterTag("c1"), desired.ServiceTag("b"), desired.SharingTag("k")}
	fake.DataStore.Put(fake.ResourceLoadBalancer, "is1a", left.ID, &left)

	// A settings change whose write needs the full Update (a delay loop:
	// Status cannot show it, so the description is marked).
	changed := *vip
	changed.DelayLoop = 30
	err := e.UpdateSettings(ctx, &copyOf, iaas.LoadBalancerVirtualIPAddresses{&changed})
	if !errors.Is(err, ErrTagsChanged) {
		t.Fatalf("a write decided on a copy with other tags: %v, want ErrTagsChanged", err)
	}
	got, err := e.Client.LoadBalancers.Read(ctx, "is1a", 40)
	if err != nil {
		t.Fatal(err)
	}
	if desired.HasTags(got.Tags, desired.ServiceTag("a")) {
		t.Fatalf("the departed member's tag was written back: %v", got.Tags)
	}

	// On a copy with the current tags the write goes through.
	fresh := *got
	if err := e.UpdateSettings(ctx, &fresh, iaas.LoadBalancerVirtualIPAddresses{&changed}); err != nil {
		t.Fatalf("a write on a fresh copy: %v", err)
	}
}

// An appliance of another zone is found by the cluster's listing of every
// zone, read where it lives when only its ID is known (after a restart:
// an empty book, even when is1b is no longer listed), and shut down and
// deleted there: a call sent to the
// client's zone would answer 404, which a deletion must never take for
// "gone".
func TestAppliancesOfAnotherZone(t *testing.T) {
	e, ctx := setup(t)
	e.Zones = sakuraapi.NewZoneBook("is1a", []string{"is1b"}, nil)
	lb := &iaas.LoadBalancer{ID: 31, Name: "lb", Class: "loadbalancer", Tags: []string{desired.ClusterTag(e.ClusterID), desired.ServiceTag("u1")},
		Availability: types.Availabilities.Available, InstanceStatus: types.ServerInstanceStatuses.Up}
	fake.DataStore.Put(fake.ResourceLoadBalancer, "is1b", lb.ID, lb)
	put(11, desired.ClusterTag(e.ClusterID), desired.ServiceTag("u2"))

	got, err := e.FindCluster(ctx)
	if err != nil || len(got) != 2 || got[0].ID != 11 || got[1].ID != 31 {
		t.Fatalf("FindCluster over is1a and is1b: %v, %v", got, err)
	}
	if z := e.ZoneOf(31); z != "is1b" {
		t.Fatalf("listed in is1b, but the book says %s", z)
	}

	// is1b no longer among the zones appliances are made in: still found
	// by ID among the cluster's zones.
	restarted := &Executor{Client: e.Client, ClusterID: e.ClusterID, Zones: sakuraapi.NewZoneBook("is1a", nil, []string{"is1b"})}
	read, err := restarted.Read(ctx, 31)
	if err != nil || read.ID != 31 {
		t.Fatalf("read by ID with an empty book: %v, %v", read, err)
	}
	step, err := restarted.Delete(ctx, read, []string{"u1"}, true)
	if err != nil || step != ShutdownSent {
		t.Fatalf("delete of an up appliance: %v, %v; want ShutdownSent", step, err)
	}
	down := fake.DataStore.Get(fake.ResourceLoadBalancer, "is1b", 31).(*iaas.LoadBalancer)
	down.InstanceStatus = types.ServerInstanceStatuses.Down
	step, err = restarted.Delete(ctx, down, []string{"u1"}, true)
	if err != nil || step != Deleted {
		t.Fatalf("delete of a stopped appliance: %v, %v; want Deleted", step, err)
	}
	if v := fake.DataStore.Get(fake.ResourceLoadBalancer, "is1b", 31); v != nil {
		t.Fatalf("the is1b appliance is still there: %v", v)
	}
	if _, err := restarted.Read(ctx, 31); !sakuraapi.IsNotFound(err) {
		t.Fatalf("read after the delete: %v, want not found", err)
	}
}
