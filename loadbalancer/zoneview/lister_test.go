package zoneview

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/types"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/sakuraapi"
	clocktesting "k8s.io/utils/clock/testing"
)

// countingAPI is an ApplianceAPI that counts its calls, holds each one
// until gate is closed (if set), fails the first failures calls and
// answers with the load balancers in lbs (one appliance per ID), paged.
type countingAPI struct {
	mu         sync.Mutex
	gate       chan struct{}
	entered    chan struct{} // receives once per call, if set
	failures   int
	lbs        int
	calls      int
	running    int
	maxRunning int
	conditions []iaas.FindCondition
}

func (a *countingAPI) Find(ctx context.Context, zone string, cond *iaas.FindCondition) (*sakuraapi.ApplianceFindResult, error) {
	a.mu.Lock()
	a.calls++
	a.running++
	a.maxRunning = max(a.maxRunning, a.running)
	a.conditions = append(a.conditions, *cond)
	gate, entered := a.gate, a.entered
	fail := a.failures > 0
	if fail {
		a.failures--
	}
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.running--
		a.mu.Unlock()
	}()
	if entered != nil {
		entered <- struct{}{}
	}
	if gate != nil {
		<-gate
	}
	if fail {
		return nil, errors.New("API unavailable")
	}
	r := &sakuraapi.ApplianceFindResult{Total: a.lbs, From: cond.From}
	for i := cond.From; i < min(cond.From+cond.Count, a.lbs); i++ {
		r.LoadBalancers = append(r.LoadBalancers, &iaas.LoadBalancer{ID: types.ID(1000 + i)})
	}
	r.Count = len(r.LoadBalancers)
	return r, nil
}

func (a *countingAPI) callCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls
}

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func TestConcurrentGetsShareOneListing(t *testing.T) {
	gate := make(chan struct{})
	api := &countingAPI{gate: gate, lbs: 3}
	clk := clocktesting.NewFakePassiveClock(t0)
	l := NewLister(api, "is1a", clk)

	const n = 20
	var wg sync.WaitGroup
	snaps := make([]*Snapshot, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			snaps[i], errs[i] = l.Get(context.Background(), clk.Now())
		}()
	}
	time.Sleep(20 * time.Millisecond) // let them queue behind the first
	close(gate)
	wg.Wait()
	for i := range n {
		if errs[i] != nil || snaps[i] != snaps[0] {
			t.Fatalf("Get %d: %v, snapshot %p, want the shared %p", i, errs[i], snaps[i], snaps[0])
		}
	}
	if api.callCount() != 1 {
		t.Errorf("%d concurrent Gets cost %d calls, want 1", n, api.callCount())
	}
	if !snaps[0].At.Equal(t0) || len(snaps[0].LoadBalancers()) != 3 {
		t.Errorf("snapshot at %v with %d load balancers", snaps[0].At, len(snaps[0].LoadBalancers()))
	}
}

func TestGetListsAgainOnlyWhenTheLastListingIsTooOld(t *testing.T) {
	api := &countingAPI{lbs: 1}
	clk := clocktesting.NewFakePassiveClock(t0)
	l := NewLister(api, "is1a", clk)
	ctx := context.Background()

	first, err := l.Get(ctx, t0)
	if err != nil {
		t.Fatal(err)
	}
	clk.SetTime(t0.Add(3 * time.Second))
	if again, err := l.Get(ctx, t0); err != nil || again != first || api.callCount() != 1 {
		t.Fatalf("a Get the last listing satisfies: %v, same %v, %d calls", err, again == first, api.callCount())
	}
	newer, err := l.Get(ctx, t0.Add(time.Second))
	if err != nil || newer == first || !newer.At.Equal(t0.Add(3*time.Second)) || api.callCount() != 2 {
		t.Fatalf("a Get after the last listing's start: %v, at %v, %d calls", err, newer.At, api.callCount())
	}
	if l.Last() != newer {
		t.Error("Last is not the newest listing")
	}
	// A notBefore in the future asks for a listing from now on, once.
	clk.SetTime(t0.Add(4 * time.Second))
	if _, err := l.Get(ctx, t0.Add(time.Hour)); err != nil || api.callCount() != 3 {
		t.Fatalf("a future notBefore: %v, %d calls", err, api.callCount())
	}
	if _, err := l.Get(ctx, t0.Add(time.Hour)); err != nil || api.callCount() != 3 {
		t.Fatalf("the same future notBefore again: %v, %d calls", err, api.callCount())
	}
}

func TestErrorsAreNotCached(t *testing.T) {
	api := &countingAPI{failures: 1, lbs: 1}
	clk := clocktesting.NewFakePassiveClock(t0)
	l := NewLister(api, "is1a", clk)
	ctx := context.Background()

	if _, err := l.Get(ctx, t0); err == nil {
		t.Fatal("a failed listing reported no error")
	}
	if l.Last() != nil {
		t.Error("a failed listing was kept")
	}
	snap, err := l.Get(ctx, t0)
	if err != nil || len(snap.LoadBalancers()) != 1 || api.callCount() != 2 {
		t.Fatalf("after a failure: %v, %d calls, want a new listing", err, api.callCount())
	}
}

// A listing under way that started too early for a caller is waited for,
// not run beside; the callers it did not satisfy then share one more.
func TestAtMostOneListingAtATime(t *testing.T) {
	gate := make(chan struct{})
	entered := make(chan struct{}, 10)
	api := &countingAPI{gate: gate, entered: entered, lbs: 1}
	clk := clocktesting.NewFakePassiveClock(t0)
	l := NewLister(api, "is1a", clk)
	ctx := context.Background()

	early := make(chan *Snapshot, 1)
	go func() {
		s, _ := l.Get(ctx, t0)
		early <- s
	}()
	<-entered // the first listing is under way, started at t0
	clk.SetTime(t0.Add(time.Second))
	late := make(chan *Snapshot, 3)
	for range 3 {
		go func() {
			s, _ := l.Get(ctx, t0.Add(time.Second))
			late <- s
		}()
	}
	time.Sleep(20 * time.Millisecond)
	if n := api.callCount(); n != 1 {
		t.Fatalf("%d calls while the first listing was under way, want 1", n)
	}
	close(gate)
	first := <-early
	var second *Snapshot
	for range 3 {
		s := <-late
		if s == nil || !s.At.Equal(t0.Add(time.Second)) || (second != nil && s != second) {
			t.Fatalf("late caller got %+v, want the one listing started at t0+1s", s)
		}
		second = s
	}
	if first == nil || !first.At.Equal(t0) || api.callCount() != 2 || api.maxRunning != 1 {
		t.Errorf("first at %v; %d calls, at most %d at once; want 2 calls, 1 at once", first.At, api.callCount(), api.maxRunning)
	}
}

// A caller that gives up stops waiting; the listing goes on for the others
// and is kept.
func TestGiveUpWhileWaiting(t *testing.T) {
	gate := make(chan struct{})
	entered := make(chan struct{}, 1)
	api := &countingAPI{gate: gate, entered: entered, lbs: 1}
	clk := clocktesting.NewFakePassiveClock(t0)
	l := NewLister(api, "is1a", clk)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := l.Get(ctx, t0)
		done <- err
	}()
	<-entered
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled Get returned %v", err)
	}
	close(gate)
	snap, err := l.Get(context.Background(), t0)
	if err != nil || len(snap.LoadBalancers()) != 1 || api.callCount() != 1 {
		t.Fatalf("after the give-up: %v, %d calls, want the listing that went on", err, api.callCount())
	}
}

func TestListingIsPagedInIDOrder(t *testing.T) {
	api := &countingAPI{lbs: 250}
	l := NewLister(api, "is1a", clocktesting.NewFakePassiveClock(t0))
	snap, err := l.Get(context.Background(), t0)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(snap.LoadBalancers()); got != 250 || api.callCount() != 3 {
		t.Fatalf("%d load balancers in %d calls, want 250 in 3", got, api.callCount())
	}
	for i, c := range api.conditions {
		if c.From != i*100 || c.Count != 100 || len(c.Sort) != 1 || c.Sort[0].Key != "ID" {
			t.Errorf("page %d asked %+v", i, c)
		}
		if c.Filter != nil {
			t.Errorf("page %d filtered %v: the listing is of every appliance", i, c.Filter)
		}
	}
}
