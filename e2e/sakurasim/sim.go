// Package sakurasim is an HTTP simulator of the parts of the SAKURA Cloud IaaS
// API that the cloud-controller-manager uses. The unmodified iaas-api-go client
// talks to it through its APIRootURL override. See docs/simulator.md.
package sakurasim

import (
	"cmp"
	"fmt"
	"math/rand"
	"net/http"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sacloud/iaas-api-go/naked"
	"github.com/sacloud/iaas-api-go/types"
)

// Options tune the simulator.
type Options struct {
	Token  string // Basic-auth user (access token); empty disables auth
	Secret string // Basic-auth password (access token secret)
	// BootDelay is how long a new load balancer stays "migrating" before it is
	// available and up. Boot after shutdown takes the same time; shutdown half of it.
	BootDelay time.Duration
	// ReadNotFoundWindow: for this long after Create, reads of the new load
	// balancer answer 404 and finds omit it (the real API does this briefly).
	ReadNotFoundWindow time.Duration
	Seed               int64 // seed for fault-injection randomness
	// DefaultPageSize is the page size used when a find asks Count 0 (default 20).
	DefaultPageSize int
	// Now overrides the clock (tests); default time.Now.
	Now func() time.Time
	// AcceptConflicts makes load balancer writes accept the conflicts
	// SAKURA's API is not known to refuse, and store them: an appliance IP
	// or VIP already used on the switch (by a server NIC, another load
	// balancer, a VPC router, or the appliance's own address as a VIP).
	// Off (the zero value), they are refused with 409 as before. Every
	// conflict accepted is recorded (Conflicts, "acceptedConflicts" in the
	// admin state). A duplicate tag is stored as sent in both modes.
	// See docs/simulator.md.
	AcceptConflicts bool
}

// ID space: 12 digits, increasing, deterministic.
const firstID = 113100000001

type server struct {
	ID              types.ID
	Zone            string
	Name            string
	Tags            []string
	CPU, MemoryMB   int
	GPU             int
	NICs            []*nic
	Up              bool
	CreatedAt       time.Time
	StatusChangedAt time.Time
}

type nic struct {
	ID       types.ID
	Shared   bool
	SwitchID types.ID
	IP       string
	MAC      string
}

type switchRes struct {
	ID           types.ID
	Zone         string
	Name         string
	Tags         []string
	Prefix       netip.Prefix
	DefaultRoute netip.Addr // zero when none
	RouterID     types.ID   // router+switch when set
	SubnetID     types.ID
	BridgeID     types.ID // 0 when not connected to a bridge
	CreatedAt    time.Time
}

// bridge is global: every served zone's path lists and reads it; what it
// shows of its switches depends on the zone asked (see nakedBridge).
type bridge struct {
	ID          types.ID
	Name        string
	Description string
	CreatedAt   time.Time
}

type router struct {
	ID        types.ID
	Zone      string
	Name      string
	Tags      []string
	SwitchID  types.ID
	BandWidth int
	CreatedAt time.Time
}

type loadBalancer struct {
	ID           types.ID
	Name         string
	Description  string
	Tags         []string
	SwitchID     types.ID
	PlanID       types.ID
	VRID         int
	IPs          []string
	MaskLen      int
	DefaultRoute string
	// Settings are the saved settings: what Create, Update and
	// UpdateSettings wrote and what Read and Find return.
	Settings []*naked.LoadBalancerSetting
	Hash     string
	// Applied is the configuration the appliance runs: a copy of the
	// settings taken at Create (or from the topology) and by every
	// successful Config. Status and real-server health follow it.
	Applied      []*naked.LoadBalancerSetting
	AppliedHash  string
	CreatedAt    time.Time
	ModifiedAt   time.Time
	Availability types.EAvailability
	Status       types.EServerInstanceStatus
	StatusAt     time.Time
	// pending transition (boot/shutdown) applied lazily by settle
	PendingTo types.EServerInstanceStatus
	PendingAt time.Time
	NICIDs    []types.ID
	// created is true for appliances made through the API; only those go
	// through the brief window in which reads may 404 (seeded ones are old).
	created bool
}

// apply makes the saved settings the running configuration.
func (lb *loadBalancer) apply() {
	lb.Applied = cloneSettings(lb.Settings)
	lb.AppliedHash = lb.Hash
}

// pendingConfig reports saved settings that Config has not applied yet.
func (lb *loadBalancer) pendingConfig() bool { return lb.Hash != lb.AppliedHash }

// running reports an appliance that is up with no power transition under way.
func (lb *loadBalancer) running() bool {
	return lb.Status == types.ServerInstanceStatuses.Up && lb.PendingTo == "" &&
		lb.Availability != types.Availabilities.Migrating
}

type vpcRouter struct {
	ID             types.ID
	Name           string
	Tags           []string
	SwitchID       types.ID
	InterfaceIndex int
	IPs            []string
	VIP            string
	VRID           int
	CreatedAt      time.Time
}

// Simulator is the in-memory SAKURA Cloud zone plus its HTTP front end.
type Simulator struct {
	mu   sync.Mutex
	opts Options
	zone string
	// zones are every zone served, the main one (zone) first.
	zones []string
	now   func() time.Time

	nextID        int64
	sharedSwitch  types.ID
	servers       []*server // ordered by ID
	switches      []*switchRes
	bridges       []*bridge
	routers       []*router
	lbs           []*loadBalancer
	vpcRouters    []*vpcRouter
	bootDelay     time.Duration
	notFoundAfter time.Duration
	// acceptConflicts: Options.AcceptConflicts, changeable at run time
	// (SetAcceptConflicts, POST /_admin/conflicts).
	acceptConflicts bool
	conflicts       []Conflict

	// proxyLBs are the Enhanced Load Balancers: global, so in no zone's
	// lists; proxyLBVIPs counts the VIPs handed out.
	proxyLBs           []*proxyLB
	proxyLBVIPs        int
	proxyLBPlanChanges []ProxyLBPlanChange

	rng      *rand.Rand
	faults   []FaultRule
	requests map[string]map[string]int
	serial   int64
	// rsDown holds admin health overrides: real servers forced DOWN by
	// address, on one port or (Port 0) on every port.
	rsDown map[RealServerOverride]bool
}

// New builds a simulator from a topology. It panics on an invalid topology;
// use Build to get the error instead.
func New(topology *Topology, opts Options) *Simulator {
	s, err := Build(topology, opts)
	if err != nil {
		panic(err)
	}
	return s
}

// Build builds a simulator from a topology, validating it.
func Build(topology *Topology, opts Options) (*Simulator, error) {
	if topology == nil {
		topology = &Topology{}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.DefaultPageSize <= 0 {
		opts.DefaultPageSize = 20
	}
	zone := topology.Zone
	if zone == "" {
		zone = "is1a"
	}
	zones := []string{zone}
	for _, z := range topology.Zones {
		if _, known := zoneIDs[z]; !known {
			return nil, fmt.Errorf("zones: unknown zone %q", z)
		}
		if !slices.Contains(zones, z) {
			zones = append(zones, z)
		}
	}
	s := &Simulator{
		opts:            opts,
		zone:            zone,
		zones:           zones,
		now:             opts.Now,
		nextID:          firstID,
		bootDelay:       opts.BootDelay,
		notFoundAfter:   opts.ReadNotFoundWindow,
		acceptConflicts: opts.AcceptConflicts,
		rng:             rand.New(rand.NewSource(opts.Seed)),
		requests:        map[string]map[string]int{},
		rsDown:          map[RealServerOverride]bool{},
	}
	s.sharedSwitch = s.newID()
	if err := s.load(topology); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Simulator) newID() types.ID {
	id := s.nextID
	s.nextID++
	return types.ID(id)
}

func (s *Simulator) load(t *Topology) error {
	now := s.now()
	for _, b := range t.Bridges {
		if b.Name == "" || s.bridgeByName(b.Name) != nil {
			return fmt.Errorf("bridge name %q empty or duplicate", b.Name)
		}
		s.bridges = append(s.bridges, &bridge{ID: s.newID(), Name: b.Name, Description: b.Description, CreatedAt: now})
	}
	for _, r := range t.Routers {
		prefix, err := parsePrefix(r.Switch.Network, r.Switch.MaskLen)
		if err != nil {
			return fmt.Errorf("router %q: %w", r.Name, err)
		}
		if prefix.Bits() > 28 || prefix.Bits() < 24 {
			return fmt.Errorf("router %q: mask length must be 24..28 (got %d)", r.Name, prefix.Bits())
		}
		if s.switchByName(r.Switch.Name) != nil || r.Switch.Name == "" {
			return fmt.Errorf("router %q: switch name %q empty or duplicate", r.Name, r.Switch.Name)
		}
		zone := cmp.Or(r.Zone, s.zone)
		if !slices.Contains(s.zones, zone) {
			return fmt.Errorf("router %q: zone %q is not served (zones: %s)", r.Name, zone, strings.Join(s.zones, ", "))
		}
		rt := &router{ID: s.newID(), Zone: zone, Name: r.Name, Tags: r.Tags, BandWidth: r.BandWidthMbps, CreatedAt: now}
		if rt.BandWidth == 0 {
			rt.BandWidth = 100
		}
		sw := &switchRes{ID: s.newID(), Zone: zone, Name: r.Switch.Name, Tags: r.Switch.Tags, Prefix: prefix,
			DefaultRoute: prefix.Addr().Next(), RouterID: rt.ID, SubnetID: s.newID(), CreatedAt: now}
		rt.SwitchID = sw.ID
		if err := s.connectNamed(sw, r.Switch.Bridge); err != nil {
			return err
		}
		s.routers = append(s.routers, rt)
		s.switches = append(s.switches, sw)
	}
	for _, w := range t.Switches {
		prefix, err := parsePrefix(w.Network, w.MaskLen)
		if err != nil {
			return fmt.Errorf("switch %q: %w", w.Name, err)
		}
		if s.switchByName(w.Name) != nil || w.Name == "" {
			return fmt.Errorf("switch name %q empty or duplicate", w.Name)
		}
		zone := w.Zone
		if zone == "" {
			zone = s.zone
		}
		if !slices.Contains(s.zones, zone) {
			return fmt.Errorf("switch %q: zone %q is not served (zones: %s)", w.Name, zone, strings.Join(s.zones, ", "))
		}
		sw := &switchRes{ID: s.newID(), Zone: zone, Name: w.Name, Tags: w.Tags, Prefix: prefix, CreatedAt: now}
		if err := s.connectNamed(sw, w.Bridge); err != nil {
			return err
		}
		if w.DefaultRoute != "" {
			a, err := netip.ParseAddr(w.DefaultRoute)
			if err != nil || !prefix.Contains(a) {
				return fmt.Errorf("switch %q: defaultRoute %q not in %s", w.Name, w.DefaultRoute, prefix)
			}
			sw.DefaultRoute = a
		}
		s.switches = append(s.switches, sw)
	}
	for _, sp := range t.Servers {
		if _, err := s.addServerLocked(sp, nil); err != nil {
			return err
		}
	}
	for _, l := range t.LoadBalancers {
		sw := s.switchByName(l.Switch)
		if sw == nil {
			return fmt.Errorf("load balancer %q: unknown switch %q", l.Name, l.Switch)
		}
		lb := &loadBalancer{ID: s.newID(), Name: l.Name, Tags: l.Tags, SwitchID: sw.ID, PlanID: types.ID(l.PlanID),
			VRID: l.VRID, IPs: l.IPAddresses, MaskLen: sw.Prefix.Bits(), CreatedAt: now, ModifiedAt: now,
			Availability: types.Availabilities.Available, Status: types.ServerInstanceStatuses.Up, StatusAt: now}
		if sw.DefaultRoute.IsValid() {
			lb.DefaultRoute = sw.DefaultRoute.String()
		}
		if lb.PlanID == 0 {
			lb.PlanID = 1
		}
		for _, v := range l.VIPs {
			set := &naked.LoadBalancerSetting{VirtualIPAddress: v.Address, Port: types.StringNumber(v.Port), DelayLoop: 10}
			for _, ip := range v.Servers {
				set.Servers = append(set.Servers, &naked.LoadBalancerDestinationServer{IPAddress: ip, Port: types.StringNumber(v.Port),
					Enabled: types.StringTrue, HealthCheck: &naked.LoadBalancerHealthCheck{Protocol: "ping"}})
			}
			lb.Settings = append(lb.Settings, set)
		}
		if err := s.validateNewLB(lb, sw.Zone, nil, nil); err != nil {
			return fmt.Errorf("load balancer %q: %s", l.Name, err.msg)
		}
		lb.Hash = settingsHash(lb.Settings)
		lb.apply() // a seeded appliance runs what it has saved
		for range lb.IPs {
			lb.NICIDs = append(lb.NICIDs, s.newID())
		}
		s.lbs = append(s.lbs, lb)
	}
	for _, v := range t.VPCRouters {
		sw := s.switchByName(v.Switch)
		if sw == nil {
			return fmt.Errorf("vpc router %q: unknown switch %q", v.Name, v.Switch)
		}
		vr := &vpcRouter{ID: s.newID(), Name: v.Name, Tags: v.Tags, SwitchID: sw.ID, InterfaceIndex: v.InterfaceIndex,
			IPs: v.IPAddresses, VIP: v.VirtualIPAddress, VRID: v.VRID, CreatedAt: now}
		if vr.InterfaceIndex == 0 && sw.RouterID == 0 {
			vr.InterfaceIndex = 1
		}
		if v.VRID < 1 || v.VRID > 255 {
			return fmt.Errorf("vpc router %q: vrid must be 1..255", v.Name)
		}
		if owner := s.vridOwner(sw.ID, v.VRID, 0); owner != "" {
			return fmt.Errorf("vpc router %q: vrid %d already used by %s", v.Name, v.VRID, owner)
		}
		addrs := append(append([]string{}, v.IPAddresses...), v.VirtualIPAddress)
		for _, ip := range addrs {
			// the VPC router may be the switch's gateway (its VIP is the default route)
			if ip == "" || (sw.DefaultRoute.IsValid() && ip == sw.DefaultRoute.String()) {
				continue
			}
			if e := s.checkAddr(sw, ip, "ipAddresses", 0); e != nil {
				return fmt.Errorf("vpc router %q: %s", v.Name, e.msg)
			}
		}
		s.vpcRouters = append(s.vpcRouters, vr)
	}
	return nil
}

func parsePrefix(network string, maskLen int) (netip.Prefix, error) {
	a, err := netip.ParseAddr(network)
	if err != nil || !a.Is4() {
		return netip.Prefix{}, fmt.Errorf("network %q is not an IPv4 address", network)
	}
	p, err := a.Prefix(maskLen)
	if err != nil || maskLen < 8 || maskLen > 30 {
		return netip.Prefix{}, fmt.Errorf("mask length %d invalid", maskLen)
	}
	if p.Addr() != a {
		return netip.Prefix{}, fmt.Errorf("%s is not the network address of /%d (want %s)", network, maskLen, p.Addr())
	}
	return p, nil
}

// first returns the first item that matches, or nil.
func first[T any](items []*T, match func(*T) bool) *T {
	if i := slices.IndexFunc(items, match); i >= 0 {
		return items[i]
	}
	return nil
}

func (s *Simulator) switchByName(name string) *switchRes {
	return first(s.switches, func(sw *switchRes) bool { return sw.Name == name })
}

func (s *Simulator) switchByID(id types.ID) *switchRes {
	return first(s.switches, func(sw *switchRes) bool { return sw.ID == id })
}

func (s *Simulator) bridgeByName(name string) *bridge {
	return first(s.bridges, func(b *bridge) bool { return b.Name == name })
}

func (s *Simulator) bridgeByID(id types.ID) *bridge {
	return first(s.bridges, func(b *bridge) bool { return b.ID == id })
}

// connectNamed connects sw to the topology's bridge named name, if any.
func (s *Simulator) connectNamed(sw *switchRes, name string) error {
	if name == "" {
		return nil
	}
	b := s.bridgeByName(name)
	if b == nil {
		return fmt.Errorf("switch %q: unknown bridge %q", sw.Name, name)
	}
	if e := s.connectLocked(sw, b); e != nil {
		return fmt.Errorf("switch %q: %s", sw.Name, e.msg)
	}
	return nil
}

// connectLocked connects sw to b. A bridge takes one switch per zone: a
// second one in the same zone is refused with 409, as iaas-api-go's fake
// driver refuses it (fake/ops_switch.go, ConnectToBridge).
func (s *Simulator) connectLocked(sw *switchRes, b *bridge) *apiErr {
	if sw.BridgeID != 0 {
		return conflict(fmt.Sprintf("switch %s is already connected to bridge %s", sw.ID, sw.BridgeID))
	}
	if other := first(s.switches, func(o *switchRes) bool { return o.BridgeID == b.ID && o.Zone == sw.Zone }); other != nil {
		return conflict(fmt.Sprintf("bridge %q already has switch %q in zone %s", b.Name, other.Name, sw.Zone))
	}
	sw.BridgeID = b.ID
	return nil
}

func (s *Simulator) routerByID(id types.ID) *router {
	return first(s.routers, func(r *router) bool { return r.ID == id })
}

func (s *Simulator) serverByID(id types.ID) *server {
	return first(s.servers, func(sv *server) bool { return sv.ID == id })
}

func (s *Simulator) lbByID(id types.ID) *loadBalancer {
	return first(s.lbs, func(lb *loadBalancer) bool { return lb.ID == id })
}

func (s *Simulator) vpcRouterByID(id types.ID) *vpcRouter {
	return first(s.vpcRouters, func(v *vpcRouter) bool { return v.ID == id })
}

// addServerLocked validates and adds a server; tags may be extended by the caller.
func (s *Simulator) addServerLocked(sp ServerSpec, extraTags []string) (*server, *apiErr) {
	if sp.Name == "" {
		return nil, badRequest("server name is required")
	}
	zone := sp.Zone
	if zone == "" {
		zone = s.zone
	}
	if !slices.Contains(s.zones, zone) {
		return nil, badRequest(fmt.Sprintf("server %q: zone %q is not served (zones: %s)", sp.Name, zone, strings.Join(s.zones, ", ")))
	}
	now := s.now()
	sv := &server{ID: s.newID(), Zone: zone, Name: sp.Name, Tags: append(append([]string{}, sp.Tags...), extraTags...),
		CPU: sp.CPU, MemoryMB: sp.MemoryGB * 1024, GPU: sp.GPU, CreatedAt: now, StatusChangedAt: now}
	if sv.CPU == 0 {
		sv.CPU = 2
	}
	if sv.MemoryMB == 0 {
		sv.MemoryMB = 4 * 1024
	}
	switch sp.Status {
	case "", "up":
		sv.Up = true
	case "down":
	default:
		return nil, badRequest(fmt.Sprintf("server %q: status must be up or down", sp.Name))
	}
	if len(sv.Tags) > maxTags {
		return nil, badRequest(fmt.Sprintf("server %q: at most %d tags", sp.Name, maxTags))
	}
	for i, n := range sp.NICs {
		nn := &nic{ID: s.newID()}
		if n.Shared {
			a, err := netip.ParseAddr(n.IPAddress)
			if err != nil || !a.Is4() {
				return nil, badRequest(fmt.Sprintf("server %q nic %d: ipAddress %q invalid", sp.Name, i, n.IPAddress))
			}
			for _, o := range s.servers {
				for _, on := range o.NICs {
					if on.Shared && on.IP == n.IPAddress {
						return nil, conflict(fmt.Sprintf("server %q nic %d: %s already used by server %s", sp.Name, i, n.IPAddress, o.Name))
					}
				}
			}
			nn.Shared, nn.SwitchID, nn.IP = true, s.sharedSwitch, n.IPAddress
		} else {
			sw := s.switchByName(n.Switch)
			if sw == nil {
				return nil, badRequest(fmt.Sprintf("server %q nic %d: unknown switch %q", sp.Name, i, n.Switch))
			}
			if zone != sw.Zone {
				// Switches are zonal: another zone's switch is reached only through a bridge.
				return nil, badRequest(fmt.Sprintf("server %q nic %d: switch %q is in zone %s, the server in %s", sp.Name, i, n.Switch, sw.Zone, zone))
			}
			if n.UserIPAddress != "" {
				if e := s.checkAddr(sw, n.UserIPAddress, "userIPAddress", 0); e != nil {
					return nil, e
				}
			}
			nn.SwitchID, nn.IP = sw.ID, n.UserIPAddress
		}
		nn.MAC = fmt.Sprintf("9c:a3:ba:%02x:%02x:%02x", (int64(nn.ID)>>16)&0xff, (int64(nn.ID)>>8)&0xff, int64(nn.ID)&0xff)
		sv.NICs = append(sv.NICs, nn)
	}
	s.servers = append(s.servers, sv)
	return sv, nil
}

// settle applies due boot/shutdown transitions. Call with mu held.
func (s *Simulator) settle() {
	now := s.now()
	for _, lb := range s.lbs {
		if lb.PendingTo != "" && !now.Before(lb.PendingAt) {
			lb.Status = lb.PendingTo
			lb.StatusAt = lb.PendingAt
			lb.Availability = types.Availabilities.Available
			lb.PendingTo = ""
		}
	}
}

// SetBootDelay changes the boot delay for later transitions.
func (s *Simulator) SetBootDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bootDelay = d
}

// SetReadNotFoundWindow changes the read-not-found window for later creates
// (the Go form of POST /_admin/boot-delay {"readNotFoundWindow": ...}).
func (s *Simulator) SetReadNotFoundWindow(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.notFoundAfter = d
}

// Handler returns the simulator's HTTP handler (API and admin).
func (s *Simulator) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

func sortedTags(t []string) types.Tags {
	out := append(types.Tags{}, t...)
	sort.Strings(out)
	return out
}

// hiddenByCreateWindow reports whether lb was created through the API so
// recently that reads still answer 404, as the real API briefly does.
func (s *Simulator) hiddenByCreateWindow(lb *loadBalancer) bool {
	return lb.created && s.notFoundAfter > 0 && s.now().Before(lb.CreatedAt.Add(s.notFoundAfter))
}
