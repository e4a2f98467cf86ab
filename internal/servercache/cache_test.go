package servercache

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/types"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/fakezone"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/sakuraapi"
)

const zone = "is1a"

type testClock struct{ *clocktesting.FakePassiveClock }

func (c testClock) advance(d time.Duration) { c.SetTime(c.Now().Add(d)) }

func newCache(t *testing.T) (*Cache, *sakuraapi.Client, *fakezone.PagedServerOp, *testClock) {
	t.Helper()
	client, op := fakezone.NewClient(zone)
	c := New(client, zone, time.Minute)
	clk := &testClock{clocktesting.NewFakePassiveClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))}
	c.SetClock(clk)
	return c, client, op, clk
}

func finds(client *sakuraapi.Client) int {
	return client.Stats().Total(func(op string) bool { return op == "Server.Find" })
}

func TestListPagesThroughAZoneOf250(t *testing.T) {
	c, client, _, _ := newCache(t)
	fakezone.PutMany(zone, "node", 113000000000, 250)
	servers, err := c.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(servers) != 250 {
		t.Fatalf("listed %d servers, want 250", len(servers))
	}
	ids := map[types.ID]bool{}
	for _, s := range servers {
		ids[s.ID] = true
	}
	if len(ids) != 250 {
		t.Fatalf("%d distinct IDs", len(ids))
	}
	if got := finds(client); got != 3 {
		t.Errorf("%d Server.Find calls for 250 servers, want 3 pages", got)
	}
	// The 250th server is reachable by ID and by name.
	last, err := c.ByID(context.Background(), 113000000249)
	if err != nil || last == nil || last.Name != "node-249" {
		t.Fatalf("ByID(last) = %v, %v", last, err)
	}
	byName, err := c.ByName(context.Background(), "node-249")
	if err != nil || len(byName) != 1 {
		t.Fatalf("ByName = %v, %v", byName, err)
	}
	if got := finds(client); got != 3 {
		t.Errorf("lookups within the TTL listed again: %d calls", got)
	}
}

func TestPagingStopsOnExactMultiple(t *testing.T) {
	c, client, _, _ := newCache(t)
	fakezone.PutMany(zone, "node", 1000, 200)
	servers, err := c.List(context.Background())
	if err != nil || len(servers) != 200 {
		t.Fatalf("%d servers, %v", len(servers), err)
	}
	if got := finds(client); got != 2 {
		t.Errorf("%d calls for 200 servers, want 2 (Total says when to stop)", got)
	}
}

// The library's own fake reports Total = page length and lists in map order;
// with one page it still works, and the loop stops on a short page.
func TestListOnLibraryFakeSinglePage(t *testing.T) {
	fakezone.Reset()
	limits := sakuraapi.DefaultLimits()
	limits.RequestsPerSecond = 0
	client := sakuraapi.NewFromCaller(nil, zone, limits)
	fakezone.PutMany(zone, "node", 5000, 42)
	servers, err := New(client, zone, time.Minute).List(context.Background())
	if err != nil || len(servers) != 42 {
		t.Fatalf("%d servers, %v", len(servers), err)
	}
	if got := finds(client); got != 1 {
		t.Errorf("%d calls", got)
	}
}

// scripted pages exactly as given, to pin the loop's reading of Total.
type scripted struct {
	iaas.ServerAPI
	pages []*iaas.ServerFindResult
	calls []iaas.FindCondition
}

func (s *scripted) Find(_ context.Context, _ string, cond *iaas.FindCondition) (*iaas.ServerFindResult, error) {
	s.calls = append(s.calls, *cond)
	if len(s.calls) > len(s.pages) {
		return &iaas.ServerFindResult{}, nil
	}
	return s.pages[len(s.calls)-1], nil
}

func page(total, from, n int) *iaas.ServerFindResult {
	r := &iaas.ServerFindResult{Total: total, From: from, Count: n}
	for i := 0; i < n; i++ {
		r.Servers = append(r.Servers, &iaas.Server{ID: types.ID(from + i + 1), Name: fmt.Sprint("s", from+i)})
	}
	return r
}

func TestPagingLoop(t *testing.T) {
	for _, tc := range []struct {
		name      string
		pages     []*iaas.ServerFindResult
		wantCalls int
		wantLen   int
	}{
		{"empty zone", []*iaas.ServerFindResult{page(0, 0, 0)}, 1, 0},
		{"one short page", []*iaas.ServerFindResult{page(7, 0, 7)}, 1, 7},
		{"three pages", []*iaas.ServerFindResult{page(250, 0, 100), page(250, 100, 100), page(250, 200, 50)}, 3, 250},
		{"API caps pages below Count", []*iaas.ServerFindResult{page(120, 0, 50), page(120, 50, 50), page(120, 100, 20)}, 3, 120},
		{"exactly one full page", []*iaas.ServerFindResult{page(100, 0, 100), page(100, 100, 0)}, 2, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client, _ := fakezone.NewClient(zone)
			s := &scripted{pages: tc.pages}
			client.UseServerOp(s)
			servers, err := New(client, zone, time.Minute).List(context.Background())
			if err != nil || len(servers) != tc.wantLen || len(s.calls) != tc.wantCalls {
				t.Fatalf("len=%d calls=%d err=%v, want len=%d calls=%d", len(servers), len(s.calls), err, tc.wantLen, tc.wantCalls)
			}
			from := 0
			for i, c := range s.calls {
				if c.Count != PageSize || c.From != from {
					t.Errorf("call %d: Count=%d From=%d, want %d/%d", i, c.Count, c.From, PageSize, from)
				}
				if i < len(tc.pages) {
					from += len(tc.pages[i].Servers)
				}
			}
		})
	}
}

func TestTTLRefresh(t *testing.T) {
	c, client, _, clk := newCache(t)
	fakezone.PutMany(zone, "node", 1, 3)
	ctx := context.Background()
	if _, err := c.List(ctx); err != nil {
		t.Fatal(err)
	}
	clk.advance(59 * time.Second)
	_, _ = c.List(ctx)
	if finds(client) != 1 {
		t.Fatalf("listed again within the TTL")
	}
	fakezone.PutMany(zone, "late", 100, 1)
	clk.advance(2 * time.Second)
	servers, _ := c.List(ctx)
	if finds(client) != 2 || len(servers) != 4 {
		t.Fatalf("after the TTL: calls=%d len=%d", finds(client), len(servers))
	}
	c.Invalidate()
	_, _ = c.List(ctx)
	if finds(client) != 3 {
		t.Fatalf("Invalidate did not force a list")
	}
}

func TestMissRefreshIsPaced(t *testing.T) {
	c, client, _, clk := newCache(t)
	ctx := context.Background()
	fakezone.PutMany(zone, "node", 1, 3)
	if _, err := c.List(ctx); err != nil {
		t.Fatal(err)
	}
	// A miss right after a list does not list again.
	if s, err := c.ByID(ctx, 999); s != nil || err != nil || finds(client) != 1 {
		t.Fatalf("miss within MinRefreshInterval: %v %v calls=%d", s, err, finds(client))
	}
	// Later, a miss lists once and finds a new server.
	fakezone.Put(zone, fakezone.Server{ID: 999, Name: "new"})
	clk.advance(MinRefreshInterval)
	if s, err := c.ByID(ctx, 999); s == nil || err != nil || finds(client) != 2 {
		t.Fatalf("miss after the interval: %v %v calls=%d", s, err, finds(client))
	}
	// Misses for something that does not exist: one list per interval at most.
	for i := 0; i < 50; i++ {
		if got, err := c.ByName(ctx, "ghost"); len(got) != 0 || err != nil {
			t.Fatal(got, err)
		}
	}
	if finds(client) != 2 {
		t.Errorf("50 misses caused %d lists", finds(client)-2)
	}
	clk.advance(MinRefreshInterval)
	_, _ = c.ByPreviousID(ctx, 424242)
	if finds(client) != 3 {
		t.Errorf("miss after the interval did not list: %d", finds(client))
	}
}

// gate blocks Find until released, to hold a refresh in flight.
type gate struct {
	iaas.ServerAPI
	mu      sync.Mutex
	calls   int
	release chan struct{}
	entered chan struct{}
}

func (g *gate) Find(ctx context.Context, zone string, cond *iaas.FindCondition) (*iaas.ServerFindResult, error) {
	g.mu.Lock()
	g.calls++
	g.mu.Unlock()
	select {
	case g.entered <- struct{}{}:
	default:
	}
	<-g.release
	return g.ServerAPI.Find(ctx, zone, cond)
}

func TestConcurrentMissesShareOneList(t *testing.T) {
	c, client, op, clk := newCache(t)
	fakezone.PutMany(zone, "node", 1, 10)
	ctx := context.Background()
	if _, err := c.List(ctx); err != nil {
		t.Fatal(err)
	}
	clk.advance(MinRefreshInterval)
	g := &gate{ServerAPI: op, release: make(chan struct{}), entered: make(chan struct{}, 1)}
	client.UseServerOp(g)
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	started := make(chan struct{}, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			started <- struct{}{}
			_, err := c.ByName(ctx, "missing")
			errs <- err
		}()
	}
	for i := 0; i < n; i++ {
		<-started
	}
	<-g.entered // one refresh is in flight; the others join it or see its result
	close(g.release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if g.calls != 1 {
		t.Errorf("%d concurrent misses caused %d lists, want 1", n, g.calls)
	}
}

func TestAPIErrorIsAnErrorAndIsPaced(t *testing.T) {
	c, client, op, clk := newCache(t)
	fakezone.PutMany(zone, "node", 1, 2)
	ctx := context.Background()
	op.SetFail(503)
	if _, err := c.ByID(ctx, 1); err == nil || sakuraapi.StatusCode(err) != 503 {
		t.Fatalf("want the 503 back, got %v", err)
	}
	for i := 0; i < 10; i++ {
		if s, err := c.ByID(ctx, 1); err == nil || s != nil {
			t.Fatalf("an outage must stay an error, got %v %v", s, err)
		}
	}
	if finds(client) != 1 {
		t.Errorf("an outage caused %d lists within the interval", finds(client))
	}
	op.SetFail(0)
	clk.advance(MinRefreshInterval)
	// The zone was failing: this lookup is answered from that state and
	// starts a list in the background, whose result serves the next one.
	if _, err := c.ByID(ctx, 1); err == nil {
		t.Fatal("the first lookup after the interval waited for a list of a failing zone")
	}
	c.Settle()
	if s, err := c.ByID(ctx, 1); err != nil || s == nil {
		t.Fatalf("after recovery: %v %v", s, err)
	}
	if finds(client) != 2 {
		t.Errorf("%d lists, want 2 (the failed one and the background one)", finds(client))
	}
}

// TestFailingZoneIsNeverWaitedOn: once a zone's list has failed, lookups
// return its error at once, also while the next list is in flight: a
// caller walking Nodes of every zone is not held by this one.
func TestFailingZoneIsNeverWaitedOn(t *testing.T) {
	c, client, op, clk := newCache(t)
	fakezone.PutMany(zone, "node", 1, 2)
	ctx := context.Background()
	if _, err := c.List(ctx); err != nil {
		t.Fatal(err)
	}
	op.SetFail(503)
	clk.advance(time.Minute)
	if _, err := c.ByName(ctx, "node-000"); sakuraapi.StatusCode(err) != 503 {
		t.Fatalf("outage: %v", err)
	}
	// The API now hangs: a lookup that waited for the list would never return.
	g := &gate{ServerAPI: op, release: make(chan struct{}), entered: make(chan struct{}, 1)}
	client.UseServerOp(g)
	clk.advance(MinRefreshInterval)
	for i := 0; i < 5; i++ {
		if _, err := c.ByName(ctx, "node-000"); sakuraapi.StatusCode(err) != 503 {
			t.Fatalf("lookup %d while the list hangs: %v", i, err)
		}
	}
	<-g.entered // the background list is under way
	if got, at, listed := c.LastListedByName("node-000"); !listed || len(got) != 1 || at.IsZero() {
		t.Errorf("last listed: %v %v %v", got, at, listed)
	}
	op.SetFail(0)
	close(g.release)
	c.Settle()
	if s, err := c.ByName(ctx, "node-000"); err != nil || len(s) != 1 {
		t.Fatalf("after the background list: %v %v", s, err)
	}
	if g.calls != 1 {
		t.Errorf("%d lists while the zone was failing, want 1", g.calls)
	}
}

// TestZonesShareOneClient: each zone lists only its own servers, and every
// list goes through the one client (one request budget, one set of counters).
func TestZonesShareOneClient(t *testing.T) {
	client, _ := fakezone.NewClient(zone)
	z := NewZones(client, []string{"is1a", "is1b", "is1a"}, time.Minute)
	if got := z.Names(); len(got) != 2 || got[0] != "is1a" || got[1] != "is1b" {
		t.Fatalf("zones %v", got)
	}
	fakezone.PutMany("is1a", "a", 100, 3)
	fakezone.PutMany("is1b", "b", 200, 2)
	ctx := context.Background()
	for name, want := range map[string]int{"is1a": 3, "is1b": 2} {
		servers, err := z.Zone(name).List(ctx)
		if err != nil || len(servers) != want {
			t.Errorf("%s: %d servers, %v; want %d", name, len(servers), err, want)
		}
	}
	if z.Zone("is1a").client != z.Zone("is1b").client {
		t.Error("zones do not share the client and its budget")
	}
	if finds(client) != 2 {
		t.Errorf("%d lists counted on the shared client, want 2", finds(client))
	}
	if z.Zone("tk1a") != nil {
		t.Error("a zone outside the cluster has a cache")
	}
}

func TestIndexes(t *testing.T) {
	c, _, _, _ := newCache(t)
	fakezone.Put(zone, fakezone.Server{ID: 10, Name: "dup"})
	fakezone.Put(zone, fakezone.Server{ID: 11, Name: "dup"})
	fakezone.Put(zone, fakezone.Server{ID: 12, Name: "dup-2"})
	fakezone.Put(zone, fakezone.Server{ID: 20, Name: "new", Tags: []string{"@k8s", "@previous-id=7"}})
	ctx := context.Background()
	dups, err := c.ByName(ctx, "dup")
	if err != nil || len(dups) != 2 {
		t.Fatalf("ByName(dup) = %v %v (exact names only)", dups, err)
	}
	ids := []int{int(dups[0].ID), int(dups[1].ID)}
	sort.Ints(ids)
	if ids[0] != 10 || ids[1] != 11 {
		t.Errorf("ids %v", ids)
	}
	prev, err := c.ByPreviousID(ctx, 7)
	if err != nil || len(prev) != 1 || prev[0].ID != 20 {
		t.Fatalf("ByPreviousID = %v %v", prev, err)
	}
	if got := PreviousIDs(&iaas.Server{Tags: []string{"@previous-id=abc", "@previous-id=", "x=1", "@previous-id=5"}}); len(got) != 1 || got[0] != 5 {
		t.Errorf("PreviousIDs = %v", got)
	}
}

// TestConcurrentUse runs lookups, lists and invalidations together (for -race).
func TestConcurrentUse(t *testing.T) {
	client, _ := fakezone.NewClient(zone)
	c := New(client, zone, time.Minute)
	fakezone.PutMany(zone, "node", 1, 20)
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				switch (g + i) % 4 {
				case 0:
					c.Invalidate()
				case 1:
					_, _ = c.ByID(ctx, types.ID(i%25+1))
				case 2:
					_, _ = c.ByName(ctx, fmt.Sprintf("node-%03d", i%25))
				default:
					_, _ = c.List(ctx)
				}
			}
		}(g)
	}
	wg.Wait()
	if servers, err := c.List(ctx); err != nil || len(servers) != 20 {
		t.Fatalf("%d %v", len(servers), err)
	}
}

// flaky fails its first Find with 503, then blocks until released.
type flaky struct {
	*fakezone.PagedServerOp
	mu      sync.Mutex
	calls   int
	second  chan struct{}
	release chan struct{}
}

func (f *flaky) Find(ctx context.Context, zone string, cond *iaas.FindCondition) (*iaas.ServerFindResult, error) {
	f.mu.Lock()
	f.calls++
	n := f.calls
	f.mu.Unlock()
	switch n {
	case 1:
		f.PagedServerOp.SetFail(503)
		defer f.PagedServerOp.SetFail(0)
	case 2:
		close(f.second)
		<-f.release
	}
	return f.PagedServerOp.Find(ctx, zone, cond)
}

// TestCallersDoNotWaitOutRetries: the client retries a failed list, but a
// lookup returns at the first failure; the retry goes on in the background
// and its list serves the lookups after it.
func TestCallersDoNotWaitOutRetries(t *testing.T) {
	fakezone.Reset()
	limits := sakuraapi.DefaultLimits()
	limits.RequestsPerSecond, limits.RetryMax, limits.RetryWaitMin, limits.RetryWaitMax = 0, 3, 0, 0
	client := sakuraapi.NewFromCaller(nil, zone, limits)
	op := &flaky{PagedServerOp: fakezone.NewPagedServerOp(), second: make(chan struct{}), release: make(chan struct{})}
	client.UseServerOp(op)
	fakezone.PutMany(zone, "node", 1, 2)
	c := New(client, zone, time.Minute)
	ctx := context.Background()
	// The retry blocks until released: a lookup that waited for it would hang.
	if _, err := c.ByName(ctx, "node-000"); sakuraapi.StatusCode(err) != 503 {
		t.Fatalf("first lookup: %v, want the 503 of the first attempt", err)
	}
	<-op.second
	if _, err := c.ByName(ctx, "node-001"); sakuraapi.StatusCode(err) != 503 {
		t.Fatalf("lookup during the retry: %v", err)
	}
	close(op.release)
	c.Settle()
	if s, err := c.ByName(ctx, "node-001"); err != nil || len(s) != 1 {
		t.Fatalf("after the retry succeeded: %v %v", s, err)
	}
	if op.calls != 2 {
		t.Errorf("%d list attempts, want 2 (one failure, one retry)", op.calls)
	}
}

// TestThrottledListIsWaitedFor: a 429 is the API asking to slow down, not
// an outage: the lookup waits for the client's retry and gets the list.
func TestThrottledListIsWaitedFor(t *testing.T) {
	fakezone.Reset()
	limits := sakuraapi.DefaultLimits()
	limits.RequestsPerSecond, limits.RetryMax, limits.RetryWaitMin, limits.RetryWaitMax = 0, 3, 0, 0
	client := sakuraapi.NewFromCaller(nil, zone, limits)
	op := &throttledOnce{PagedServerOp: fakezone.NewPagedServerOp()}
	client.UseServerOp(op)
	fakezone.PutMany(zone, "node", 1, 2)
	c := New(client, zone, time.Minute)
	if s, err := c.ByName(context.Background(), "node-001"); err != nil || len(s) != 1 {
		t.Fatalf("lookup over a throttled list: %v %v", s, err)
	}
}

// throttledOnce answers its first Find with 429.
type throttledOnce struct {
	*fakezone.PagedServerOp
	once sync.Once
}

func (o *throttledOnce) Find(ctx context.Context, zone string, cond *iaas.FindCondition) (*iaas.ServerFindResult, error) {
	first := false
	o.once.Do(func() { first = true })
	if first {
		o.PagedServerOp.SetFail(429)
		defer o.PagedServerOp.SetFail(0)
	}
	return o.PagedServerOp.Find(ctx, zone, cond)
}
