// Package servercache keeps one shared, paged list of each zone's servers so
// that node work costs a few list calls per interval instead of one read per
// node per loop. Every zone has its own Cache (Zones holds them); all of them
// call the API through one sakuraapi.Client, so they share its request budget.
package servercache

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/types"
	"golang.org/x/sync/singleflight"
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
	group  singleflight.Group
	// background counts lists started for a failing zone that no caller waits on.
	background sync.WaitGroup

	mu          sync.Mutex
	snap        *snapshot
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
// has passed, so an outage does not turn every lookup into a list. While
// the zone is failing no caller waits for a list either: the next one runs
// in the background and its result serves later lookups. The upstream node
// controllers walk Nodes with one worker, so a caller held by a failing
// zone's retries would hold up the Nodes of every zone behind it.
func (c *Cache) refresh(ctx context.Context) (*snapshot, error) {
	c.mu.Lock()
	if err := c.lastErr; err != nil {
		due := c.clock.Since(c.lastAttempt) >= MinRefreshInterval
		c.mu.Unlock()
		if due {
			c.background.Add(1)
			ch := c.group.DoChan("list", func() (any, error) { return c.list(ctx) })
			go func() {
				defer c.background.Done()
				<-ch
			}()
		}
		return nil, err
	}
	c.mu.Unlock()
	v, err, _ := c.group.Do("list", func() (any, error) { return c.list(ctx) })
	if err != nil {
		return nil, err
	}
	return v.(*snapshot), nil
}

// Settle waits for a background list to finish (tests).
func (c *Cache) Settle() { c.background.Wait() }

// list runs under the singleflight group: one list for every caller.
func (c *Cache) list(ctx context.Context) (*snapshot, error) {
	// A caller that waited on the lock above may find a list taken meanwhile.
	c.mu.Lock()
	if s := c.snap; s != nil && c.clock.Since(s.at) < MinRefreshInterval {
		c.mu.Unlock()
		return s, nil
	}
	c.mu.Unlock()
	// Detach from the first caller's cancellation: others share this list.
	servers, err := c.listAll(context.WithoutCancel(ctx))
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lastAttempt = c.clock.Now()
	if err != nil {
		c.lastErr = fmt.Errorf("listing servers of zone %s: %w", c.zone, err)
		return nil, c.lastErr
	}
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
