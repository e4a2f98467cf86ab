// Package servercache keeps one shared, paged list of each zone's servers so
// that node work costs a few list calls per interval instead of one read per
// node per loop. Every zone has its own Cache (Zones holds them); all of them
// call the API through one sakuraapi.Client, so they share its request budget.
package servercache

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/types"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/sakuraapi"
)

const (
	// PageSize is the Count of one Server.Find page.
	PageSize = 100
	// MinRefreshInterval bounds refreshes caused by misses (and retries after a
	// failed list): a storm of lookups for unknown servers costs at most one
	// list per interval.
	MinRefreshInterval = 5 * time.Second
	// maxPages stops a misbehaving API (always a full page) from looping forever.
	maxPages = 1000
	// PreviousIDTag marks a server re-created by a plan change: "@previous-id=<old id>".
	PreviousIDTag = "@previous-id"
)

// Cache holds one zone's servers. It is safe for concurrent use.
type Cache struct {
	client *sakuraapi.Client
	zone   string
	ttl    time.Duration
	clock  clock.PassiveClock
	// background counts lists under way, for Settle.
	background sync.WaitGroup

	mu          sync.Mutex
	snap        *snapshot
	flight      *flight // the list under way, if any
	lastAttempt time.Time
	lastErr     error
}

type snapshot struct {
	at      time.Time
	servers []*iaas.Server
	byID    map[types.ID]*iaas.Server
	byName  map[string][]*iaas.Server
	byPrev  map[types.ID][]*iaas.Server
}

// New returns an empty cache of zone's servers, listed through client; ttl
// bounds staleness.
func New(client *sakuraapi.Client, zone string, ttl time.Duration) *Cache {
	return &Cache{client: client, zone: zone, ttl: ttl, clock: clock.RealClock{}}
}

// Zone is the zone whose servers the cache holds.
func (c *Cache) Zone() string { return c.zone }

// SetClock replaces the clock, for tests of TTL and miss pacing.
func (c *Cache) SetClock(clk clock.PassiveClock) { c.clock = clk }

// Invalidate makes the next lookup list again (still paced by MinRefreshInterval on misses).
func (c *Cache) Invalidate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.snap != nil {
		// Replace rather than modify: readers hold the old snapshot unlocked.
		stale := *c.snap
		stale.at = time.Time{}
		c.snap = &stale
	}
}

// List returns all servers of the zone, listing them if the copy is older than the TTL.
func (c *Cache) List(ctx context.Context) ([]*iaas.Server, error) {
	s, err := c.fresh(ctx)
	if err != nil {
		return nil, err
	}
	return s.servers, nil
}

// ByID returns the server with id, or (nil, nil) when it is absent from a list
// taken after the lookup missed (or within MinRefreshInterval before it).
func (c *Cache) ByID(ctx context.Context, id types.ID) (*iaas.Server, error) {
	s, err := c.lookup(ctx, func(s *snapshot) bool { return s.byID[id] != nil })
	if err != nil {
		return nil, err
	}
	return s.byID[id], nil
}

// ByName returns every server whose name is exactly name.
func (c *Cache) ByName(ctx context.Context, name string) ([]*iaas.Server, error) {
	s, err := c.lookup(ctx, func(s *snapshot) bool { return len(s.byName[name]) > 0 })
	if err != nil {
		return nil, err
	}
	return s.byName[name], nil
}

// ByPreviousID returns the servers tagged @previous-id=<id>, i.e. the
// server(s) that replaced id after a plan change.
func (c *Cache) ByPreviousID(ctx context.Context, id types.ID) ([]*iaas.Server, error) {
	s, err := c.lookup(ctx, func(s *snapshot) bool { return len(s.byPrev[id]) > 0 })
	if err != nil {
		return nil, err
	}
	return s.byPrev[id], nil
}

// lookup returns a snapshot within the TTL; if found reports a miss on it, one
// refresh is attempted unless the snapshot is younger than MinRefreshInterval.
func (c *Cache) lookup(ctx context.Context, found func(*snapshot) bool) (*snapshot, error) {
	s, err := c.fresh(ctx)
	if err != nil {
		return nil, err
	}
	if found(s) || c.clock.Since(s.at) < MinRefreshInterval {
		return s, nil
	}
	return c.refresh(ctx)
}

func (c *Cache) fresh(ctx context.Context) (*snapshot, error) {
	c.mu.Lock()
	s := c.snap
	c.mu.Unlock()
	if s != nil && c.clock.Since(s.at) < c.ttl {
		return s, nil
	}
	return c.refresh(ctx)
}

// refresh lists the zone once for all concurrent callers. After a failure the
// same error is returned, without calling the API, until MinRefreshInterval
// has passed, so an outage does not turn every lookup into a list.
//
// No caller waits out a failing zone: callers wait for a list only until it
// ends or its first attempt fails; the client's retries then go on in the
// background, and the zone counts as failing (its error returned at once)
// until a list succeeds. After the interval the next lookup starts a new
// list in the background and gets the error. The upstream node controllers
// walk Nodes with one worker, and a name is looked up in every zone, so a
// caller held by one zone's retries would hold up the Nodes of all zones.
func (c *Cache) refresh(ctx context.Context) (*snapshot, error) {
	c.mu.Lock()
	if err := c.lastErr; err != nil {
		if c.flight == nil && c.clock.Since(c.lastAttempt) >= MinRefreshInterval {
			c.startLocked(ctx)
		}
		c.mu.Unlock()
		return nil, err
	}
	// A caller that waited on the lock may find a list taken meanwhile.
	if s := c.snap; s != nil && c.clock.Since(s.at) < MinRefreshInterval {
		c.mu.Unlock()
		return s, nil
	}
	f := c.flight
	if f == nil {
		f = c.startLocked(ctx)
	}
	c.mu.Unlock()
	select {
	case <-f.done:
	case <-f.failed:
	}
	return f.result()
}

// flight is one list of the zone under way, shared by every caller.
type flight struct {
	done   chan struct{} // the list ended (snap or err set)
	failed chan struct{} // an attempt failed and is being retried (err set)
	once   sync.Once

	mu   sync.Mutex
	snap *snapshot
	err  error
}

func (f *flight) result() (*snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.snap, f.err
}

// startLocked starts a list; call with c.mu held.
func (c *Cache) startLocked(ctx context.Context) *flight {
	f := &flight{done: make(chan struct{}), failed: make(chan struct{})}
	c.flight = f
	c.background.Add(1)
	// Detach from the first caller's cancellation: others share this list.
	ctx = context.WithoutCancel(ctx)
	ctx = sakuraapi.WithRetryNotice(ctx, func(err error) {
		if sakuraapi.StatusCode(err) == http.StatusTooManyRequests {
			// Throttled: the API is up and asks us to slow down; waiting
			// for the retry is the request budget at work, not an outage.
			return
		}
		err = c.failed(err)
		f.once.Do(func() {
			f.mu.Lock()
			f.err = err
			f.mu.Unlock()
			close(f.failed)
		})
	})
	go func() {
		defer c.background.Done()
		snap, err := c.list(ctx)
		c.mu.Lock()
		c.flight = nil
		c.mu.Unlock()
		f.mu.Lock()
		if f.err == nil || err != nil {
			f.snap, f.err = snap, err
		}
		f.mu.Unlock()
		close(f.done)
	}()
	return f
}

// failed records a failed list attempt: the zone is failing from now on.
func (c *Cache) failed(err error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lastAttempt = c.clock.Now()
	c.lastErr = fmt.Errorf("listing servers of zone %s: %w", c.zone, err)
	return c.lastErr
}

// Settle waits for lists under way (tests).
func (c *Cache) Settle() { c.background.Wait() }

// list lists the zone and records the outcome.
func (c *Cache) list(ctx context.Context) (*snapshot, error) {
	servers, err := c.listAll(ctx)
	if err != nil {
		return nil, c.failed(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lastAttempt = c.clock.Now()
	c.lastErr = nil
	c.snap = index(servers, c.lastAttempt)
	return c.snap, nil
}

// LastListedByName returns the servers named name in the zone's last
// successful list, however old, without calling the API; listed is false
// when the zone was never listed. Name matching across zones reads it for
// a zone whose API is failing, to look for a second server of that name.
func (c *Cache) LastListedByName(name string) (servers []*iaas.Server, at time.Time, listed bool) {
	c.mu.Lock()
	s := c.snap
	c.mu.Unlock()
	if s == nil {
		return nil, time.Time{}, false
	}
	return s.byName[name], s.at, true
}

// listAll pages through Server.Find. It trusts Total when the API reports
// more than it returned, and otherwise stops on a short or empty page, which
// also copes with fakes that report the page length as Total.
func (c *Cache) listAll(ctx context.Context) ([]*iaas.Server, error) {
	var all []*iaas.Server
	seen := map[types.ID]bool{}
	from := 0
	for page := 0; page < maxPages; page++ {
		res, err := c.client.Servers.Find(ctx, c.zone, &iaas.FindCondition{Count: PageSize, From: from})
		if err != nil {
			return nil, err
		}
		for _, s := range res.Servers {
			if s != nil && !seen[s.ID] {
				seen[s.ID] = true
				all = append(all, s)
			}
		}
		n := len(res.Servers)
		from += n
		if n == 0 || (from >= res.Total && (res.Total > n || n < PageSize)) {
			klog.V(4).InfoS("Listed servers", "zone", c.zone, "count", len(all), "pages", page+1)
			return all, nil
		}
	}
	return nil, fmt.Errorf("server list did not end after %d pages of %d", maxPages, PageSize)
}

func index(servers []*iaas.Server, at time.Time) *snapshot {
	s := &snapshot{
		at:      at,
		servers: servers,
		byID:    make(map[types.ID]*iaas.Server, len(servers)),
		byName:  make(map[string][]*iaas.Server, len(servers)),
		byPrev:  map[types.ID][]*iaas.Server{},
	}
	for _, srv := range servers {
		s.byID[srv.ID] = srv
		s.byName[srv.Name] = append(s.byName[srv.Name], srv)
		for _, prev := range PreviousIDs(srv) {
			s.byPrev[prev] = append(s.byPrev[prev], srv)
		}
	}
	return s
}

// PreviousIDs returns the IDs named by the server's @previous-id tags.
func PreviousIDs(srv *iaas.Server) []types.ID {
	var out []types.ID
	for _, tag := range srv.Tags {
		v, ok := strings.CutPrefix(tag, PreviousIDTag+"=")
		if !ok {
			continue
		}
		if id := types.StringID(strings.TrimSpace(v)); !id.IsEmpty() {
			out = append(out, id)
		}
	}
	return out
}
