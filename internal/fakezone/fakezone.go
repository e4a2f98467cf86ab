// Package fakezone sets up iaas-api-go's in-memory fake mode for unit tests
// and benchmarks of the node code: servers are put straight into the fake
// store, and Server.Find gets the honest paging the library's fake lacks.
// Only tests import it.
package fakezone

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"sync"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/fake"
	"github.com/sacloud/iaas-api-go/helper/api"
	"github.com/sacloud/iaas-api-go/types"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/sakuraapi"
)

var once sync.Once

// Reset switches the process to fake mode (once) and empties the fake store.
// The store is process-global: tests using it must not run in parallel.
func Reset() {
	once.Do(func() {
		fake.SwitchFactoryFuncToFake()
		api.SetupFakeDefaults()
	})
	fake.DataStore = fake.NewInMemoryStore()
}

// Server describes a test server.
type Server struct {
	ID       types.ID
	Name     string
	CPU      int
	MemoryGB int
	GPU      int
	Down     bool
	Tags     []string
	// NICs: one entry per NIC; shared-segment NICs carry the address in
	// IPAddress, switch NICs in UserIPAddress.
	NICs []NIC
}

// NIC is one network interface of a test server.
type NIC struct {
	IPAddress, UserIPAddress string
}

// Put stores s in zone and returns the stored value.
func Put(zone string, s Server) *iaas.Server {
	cpu, mem := s.CPU, s.MemoryGB
	if cpu == 0 {
		cpu = 2
	}
	if mem == 0 {
		mem = 4
	}
	status := types.ServerInstanceStatuses.Up
	if s.Down {
		status = types.ServerInstanceStatuses.Down
	}
	srv := &iaas.Server{
		ID: s.ID, Name: s.Name, HostName: s.Name, Tags: s.Tags,
		CPU: cpu, MemoryMB: mem * 1024, GPU: s.GPU,
		Availability: types.Availabilities.Available, InstanceStatus: status,
		Zone: &iaas.ZoneInfo{ID: 31002, Name: zone, Region: &iaas.Region{ID: 310, Name: "石狩"}},
	}
	for i, n := range s.NICs {
		srv.Interfaces = append(srv.Interfaces, &iaas.InterfaceView{
			ID: types.ID(int64(s.ID)*10 + int64(i)), IPAddress: n.IPAddress, UserIPAddress: n.UserIPAddress,
		})
	}
	fake.DataStore.Put(fake.ResourceServer, zone, srv.ID, srv)
	return srv
}

// Delete removes a server from the fake store.
func Delete(zone string, id types.ID) { fake.DataStore.Delete(fake.ResourceServer, zone, id) }

// PutMany stores n servers named prefix-000.. with IDs from firstID.
func PutMany(zone, prefix string, firstID int64, n int) {
	for i := 0; i < n; i++ {
		Put(zone, Server{ID: types.ID(firstID + int64(i)), Name: fmt.Sprintf("%s-%03d", prefix, i),
			NICs: []NIC{{IPAddress: fmt.Sprintf("203.0.113.%d", i%250+1)}}})
	}
}

// PagedServerOp is the fake's server API with Find paging like the real API:
// results sorted by ID, From/Count applied, Total = all matches. (The
// library's fake lists in map order and reports the page length as Total.)
type PagedServerOp struct {
	iaas.ServerAPI
	mu sync.Mutex
	// Fail, when non-zero, makes every call answer with that HTTP status;
	// FailRead does so for Read only.
	Fail, FailRead int
	// failZone makes every call to one zone answer with a status.
	failZone map[string]int
}

// SetFailZone makes later calls to zone fail with status code (0 = succeed),
// for tests of one zone's outage.
func (p *PagedServerOp) SetFailZone(zone string, code int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failZone == nil {
		p.failZone = map[string]int{}
	}
	p.failZone[zone] = code
}

// NewPagedServerOp wraps the fake's server operations.
func NewPagedServerOp() *PagedServerOp { return &PagedServerOp{ServerAPI: fake.NewServerOp()} }

// SetFail makes later calls fail with status code (0 = succeed).
func (p *PagedServerOp) SetFail(code int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.Fail = code
}

// SetFailRead makes later Reads fail with status code (0 = succeed).
func (p *PagedServerOp) SetFailRead(code int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.FailRead = code
}

func (p *PagedServerOp) failure(zone string, read bool) error {
	p.mu.Lock()
	code := p.Fail
	if read && p.FailRead != 0 {
		code = p.FailRead
	}
	if z := p.failZone[zone]; z != 0 {
		code = z
	}
	p.mu.Unlock()
	if code == 0 {
		return nil
	}
	u, _ := url.Parse("http://127.0.0.1/" + zone + "/api/cloud/1.1/server")
	return iaas.NewAPIError(http.MethodGet, u, code, &iaas.APIErrorResponse{
		Status: http.StatusText(code), ErrorCode: "fakezone", ErrorMessage: "injected failure",
	})
}

// Find lists every match, sorts by ID and returns the page asked for.
func (p *PagedServerOp) Find(ctx context.Context, zone string, cond *iaas.FindCondition) (*iaas.ServerFindResult, error) {
	if err := p.failure(zone, false); err != nil {
		return nil, err
	}
	var all iaas.FindCondition
	if cond != nil {
		all.Filter = cond.Filter
	}
	res, err := p.ServerAPI.Find(ctx, zone, &all)
	if err != nil {
		return nil, err
	}
	servers := res.Servers
	sort.Slice(servers, func(i, j int) bool { return servers[i].ID < servers[j].ID })
	from, count := 0, len(servers)
	if cond != nil {
		from = min(cond.From, len(servers))
		if cond.Count > 0 {
			count = cond.Count
		}
	}
	page := servers[from:min(from+count, len(servers))]
	return &iaas.ServerFindResult{Total: len(servers), From: from, Count: len(page), Servers: page}, nil
}

// Read reads one server (or fails like Find).
func (p *PagedServerOp) Read(ctx context.Context, zone string, id types.ID) (*iaas.Server, error) {
	if err := p.failure(zone, true); err != nil {
		return nil, err
	}
	return p.ServerAPI.Read(ctx, zone, id)
}

// NewClient resets the fake store and returns a client for zone without a
// request budget (tests should not wait) whose servers page honestly.
func NewClient(zone string) (*sakuraapi.Client, *PagedServerOp) {
	Reset()
	limits := sakuraapi.DefaultLimits()
	limits.RequestsPerSecond = 0
	limits.RetryMax = 0
	c := sakuraapi.NewFromCaller(nil, zone, limits)
	op := NewPagedServerOp()
	c.UseServerOp(op)
	return c, op
}
