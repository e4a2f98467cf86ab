package sakurasim

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sacloud/iaas-api-go/naked"
	"github.com/sacloud/iaas-api-go/types"
)

// FaultRule injects failures into API operations. Op (or its alias Route)
// matches an operation name exactly ("LoadBalancer.Create"), by resource
// ("LoadBalancer.*") or everything ("*"); Zone, when set, narrows it to
// requests for that zone (one zone's outage).
type FaultRule struct {
	Op     string  `json:"op,omitempty"`
	Route  string  `json:"route,omitempty"`
	Zone   string  `json:"zone,omitempty"`
	Status int     `json:"status,omitempty"` // e.g. 429, 503, 500; 0 = no error (latency only)
	Rate   float64 `json:"rate,omitempty"`   // 0..1; 0 means 1 (always)
	// Latency (a Go duration) is waited before the operation (with After:
	// after it), without holding the simulator's lock, and cut short when
	// the client goes away (counted as "canceled").
	Latency string `json:"latency,omitempty"`
	Drop    bool   `json:"drop,omitempty"`  // close the connection without an answer
	Times   int    `json:"times,omitempty"` // fire at most this many times (0 = unlimited)
	// After performs the operation first and then applies the rule: its
	// latency, then its error status or drop. The change happened but the
	// client never learns it (or learns it too late, after its timeout).
	After   bool `json:"after,omitempty"`
	Fired   int  `json:"fired"` // how often it fired (read only)
	latency time.Duration
}

func (f *FaultRule) matches(op, zone string) bool {
	if f.Zone != "" && f.Zone != zone {
		return false
	}
	pat := f.Op
	if pat == "" {
		pat = f.Route
	}
	switch {
	case pat == "*" || pat == op:
		return true
	case strings.HasSuffix(pat, ".*"):
		return strings.HasPrefix(op, strings.TrimSuffix(pat, "*"))
	}
	return false
}

var errorCodes = map[int]string{
	400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 409: "conflict",
	423: "locked", 429: "too_many_requests", 500: "internal_server_error", 502: "bad_gateway",
	503: "service_unavailable", 504: "gateway_timeout",
}

// injectFault rolls the first matching fault rule. It returns done when the
// request was answered (or dropped, or abandoned by its client) by the
// fault, or a rule to apply after the operation ran (After rules). Latency
// is waited out without holding the lock, and cut short when the client
// goes away (the request is then counted as "canceled").
func (s *Simulator) injectFault(w *statusWriter, req *request) (done bool, after *FaultRule) {
	s.mu.Lock()
	var rule *FaultRule
	for i := range s.faults {
		f := &s.faults[i]
		if !f.matches(req.op, req.zone) || (f.Times > 0 && f.Fired >= f.Times) {
			continue
		}
		rate := f.Rate
		if rate <= 0 {
			rate = 1
		}
		if s.rng.Float64() < rate {
			f.Fired++
			c := *f
			rule = &c
		}
		break
	}
	s.mu.Unlock()
	if rule == nil {
		return false, nil
	}
	if rule.After {
		return false, rule // latency, error or drop come after the operation
	}
	if rule.latency > 0 && !s.wait(req, rule.latency) {
		return true, nil // the client gave up first: the operation is not performed
	}
	return s.applyFault(w, req, rule), nil
}

// wait sleeps for d (no lock held). It returns false, and counts the
// request as "canceled", when the client's request context ends first.
func (s *Simulator) wait(req *request, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	ctx := req.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		s.countKey(req.op, "canceled")
		return false
	}
}

// applyFault answers the request as the rule says; false when the rule only adds latency.
func (s *Simulator) applyFault(w *statusWriter, req *request, rule *FaultRule) bool {
	if rule.Drop {
		s.count(req.op, 0)
		if hj, ok := w.ResponseWriter.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return true
			}
		}
		panic(http.ErrAbortHandler) // aborts the response without an answer
	}
	if rule.Status == 0 {
		return false
	}
	code := errorCodes[rule.Status]
	if code == "" {
		code = "injected_fault"
	}
	s.finish(w, req, &apiErr{rule.Status, code, fmt.Sprintf("injected fault (%d) for %s", rule.Status, req.op)})
	return true
}

// State is the JSON answer of GET /_admin/state.
type State struct {
	Zone string `json:"zone"`
	// Zones are every zone served, Zone first.
	Zones              []string        `json:"zones"`
	BootDelay          string          `json:"bootDelay"`
	ReadNotFoundWindow string          `json:"readNotFoundWindow"`
	Servers            []*naked.Server `json:"servers"`
	Switches           []*naked.Switch `json:"switches"`
	// Bridges as the main zone's path shows them: SwitchInZone is the
	// main zone's switch, Info.Switches those of the other zones.
	Bridges       []*naked.Bridge       `json:"bridges"`
	Routers       []*naked.Internet     `json:"routers"`
	LoadBalancers []*naked.LoadBalancer `json:"loadBalancers"`
	VPCRouters    []*naked.VPCRouter    `json:"vpcRouters"`
	// ProxyLBs are the Enhanced Load Balancers as the API shows them
	// (certificates: GET /_admin/proxylbs/{id}); ProxyLBPlanChanges the
	// plan changes so far, each with the old and the new ID.
	ProxyLBs           []*naked.ProxyLB    `json:"proxyLBs"`
	ProxyLBPlanChanges []ProxyLBPlanChange `json:"proxyLBPlanChanges"`
	Faults             []FaultRule         `json:"faults"`
	// RealServersDown are the admin health overrides (POST /_admin/realserver-health).
	RealServersDown []RealServerOverride `json:"realServersDown"`
	// AppliedSettings is, per load balancer ID, the configuration the
	// appliance runs (what the last successful Config applied; at Create the
	// created settings; for topology appliances their settings). Status
	// follows it. LoadBalancers[].Settings are the saved settings.
	AppliedSettings map[string][]*naked.LoadBalancerSetting `json:"appliedSettings"`
	// PendingConfig is, per load balancer ID, whether the saved settings
	// differ from the applied ones (an Update/UpdateSettings not yet Config'd).
	PendingConfig map[string]bool `json:"pendingConfig"`
	// AcceptConflicts says whether load balancer writes accept addresses
	// already in use (Options.AcceptConflicts, POST /_admin/conflicts).
	AcceptConflicts bool `json:"acceptConflicts"`
	// AcceptedConflicts are the conflicting writes accepted so far, oldest first.
	AcceptedConflicts []Conflict `json:"acceptedConflicts"`
}

// RequestStats is the JSON answer of GET /_admin/requests.
type RequestStats struct {
	Total      int                       `json:"total"`
	Operations map[string]OperationStats `json:"operations"`
}

// OperationStats counts one operation's requests by HTTP status ("dropped" for dropped ones).
type OperationStats struct {
	Total    int            `json:"total"`
	ByStatus map[string]int `json:"byStatus"`
}

// Snapshot returns the current state (same as GET /_admin/state).
func (s *Simulator) Snapshot() *State {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settle()
	st := &State{Zone: s.zone, Zones: append([]string{}, s.zones...), BootDelay: s.bootDelay.String(), ReadNotFoundWindow: s.notFoundAfter.String(),
		Servers: []*naked.Server{}, Switches: []*naked.Switch{}, Routers: []*naked.Internet{},
		LoadBalancers: []*naked.LoadBalancer{}, VPCRouters: []*naked.VPCRouter{}, Faults: append([]FaultRule{}, s.faults...),
		RealServersDown: s.realServersDownLocked(),
		AppliedSettings: map[string][]*naked.LoadBalancerSetting{}, PendingConfig: map[string]bool{},
		AcceptConflicts: s.acceptConflicts, AcceptedConflicts: append([]Conflict{}, s.conflicts...)}
	for _, sv := range s.servers {
		st.Servers = append(st.Servers, s.nakedServer(sv))
	}
	for _, sw := range s.switches {
		st.Switches = append(st.Switches, s.nakedSwitch(sw))
	}
	for _, r := range s.routers {
		st.Routers = append(st.Routers, s.nakedInternet(r))
	}
	st.Bridges = []*naked.Bridge{}
	for _, b := range s.bridges {
		st.Bridges = append(st.Bridges, s.nakedBridge(b, s.zone))
	}
	for _, lb := range s.lbs {
		st.LoadBalancers = append(st.LoadBalancers, s.nakedLB(lb))
		applied := cloneSettings(lb.Applied)
		if applied == nil {
			applied = []*naked.LoadBalancerSetting{}
		}
		st.AppliedSettings[lb.ID.String()] = applied
		st.PendingConfig[lb.ID.String()] = lb.pendingConfig()
	}
	for _, v := range s.vpcRouters {
		st.VPCRouters = append(st.VPCRouters, s.nakedVPCRouter(v))
	}
	st.ProxyLBs = []*naked.ProxyLB{}
	for _, p := range s.proxyLBs {
		st.ProxyLBs = append(st.ProxyLBs, s.nakedProxyLB(p))
	}
	st.ProxyLBPlanChanges = append([]ProxyLBPlanChange{}, s.proxyLBPlanChanges...)
	return st
}

// SetAcceptConflicts turns Options.AcceptConflicts on or off for later writes.
func (s *Simulator) SetAcceptConflicts(accept bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.acceptConflicts = accept
}

// Conflicts returns whether conflicts are accepted and the conflicting
// writes accepted so far, oldest first.
func (s *Simulator) Conflicts() (accept bool, accepted []Conflict) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.acceptConflicts, append([]Conflict{}, s.conflicts...)
}

// Applied returns the configuration load balancer id runs (a copy), whether
// its saved settings differ from it (pending: an Update or UpdateSettings
// that no Config has applied yet), and false when there is no such load
// balancer. The saved settings are in Snapshot().LoadBalancers[].Settings.LoadBalancer.
func (s *Simulator) Applied(id types.ID) (settings []*naked.LoadBalancerSetting, pending bool, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settle()
	lb := s.lbByID(id)
	if lb == nil {
		return nil, false, false
	}
	return cloneSettings(lb.Applied), lb.pendingConfig(), true
}

// LoadBalancerConfig is the answer of GET /_admin/load-balancers/{id}: one
// load balancer's saved and applied settings side by side.
type LoadBalancerConfig struct {
	ID          string                       `json:"id"`
	Name        string                       `json:"name"`
	Status      string                       `json:"status"` // instance status: up, down or "" (being created)
	Saved       []*naked.LoadBalancerSetting `json:"saved"`
	SavedHash   string                       `json:"savedHash"`
	Applied     []*naked.LoadBalancerSetting `json:"applied"`
	AppliedHash string                       `json:"appliedHash"`
	Pending     bool                         `json:"pending"`
}

func (s *Simulator) lbConfigState(id types.ID) (*LoadBalancerConfig, *apiErr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settle()
	lb := s.lbByID(id)
	if lb == nil {
		return nil, notFound(fmt.Sprintf("load balancer %s not found", id))
	}
	out := &LoadBalancerConfig{ID: lb.ID.String(), Name: lb.Name, Status: string(lb.Status),
		Saved: cloneSettings(lb.Settings), SavedHash: lb.Hash, Applied: cloneSettings(lb.Applied),
		AppliedHash: lb.AppliedHash, Pending: lb.pendingConfig()}
	if out.Saved == nil {
		out.Saved = []*naked.LoadBalancerSetting{}
	}
	if out.Applied == nil {
		out.Applied = []*naked.LoadBalancerSetting{}
	}
	return out, nil
}

// Requests returns the request counts (same as GET /_admin/requests).
func (s *Simulator) Requests() *RequestStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := &RequestStats{Operations: map[string]OperationStats{}}
	for op, m := range s.requests {
		os := OperationStats{ByStatus: map[string]int{}}
		for k, v := range m {
			os.ByStatus[k] = v
			os.Total += v
		}
		out.Total += os.Total
		out.Operations[op] = os
	}
	return out
}

// ResetRequests clears the request counts.
func (s *Simulator) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = map[string]map[string]int{}
}

// SetFaults replaces the fault rules (nil clears them).
func (s *Simulator) SetFaults(rules []FaultRule) error {
	if err := prepareFaults(rules); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = rules
	return nil
}

// AddFaults puts rules in front of the current ones (so they take
// precedence: the first matching rule decides), keeping the others.
func (s *Simulator) AddFaults(rules ...FaultRule) error {
	rules = append([]FaultRule{}, rules...)
	if err := prepareFaults(rules); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(rules, s.faults...)
	return nil
}

// ConfigFailure is the rule for "a fault between UpdateSettings and
// Config": the next LoadBalancer.Config answers status (0 means 500)
// without applying anything, once. The settings saved before stay pending
// until a later Config succeeds.
func ConfigFailure(status int) FaultRule {
	if status == 0 {
		status = http.StatusInternalServerError
	}
	return FaultRule{Op: "LoadBalancer.Config", Status: status, Times: 1}
}

// FailNextConfig adds ConfigFailure(status) in front of the current rules.
func (s *Simulator) FailNextConfig(status int) error {
	return s.AddFaults(ConfigFailure(status))
}

// prepareFaults validates rules and parses their latencies.
func prepareFaults(rules []FaultRule) error {
	for i := range rules {
		if rules[i].Op == "" && rules[i].Route == "" {
			return fmt.Errorf("rule %d: op is required (e.g. \"LoadBalancer.Create\", \"LoadBalancer.*\" or \"*\")", i)
		}
		if rules[i].Latency != "" {
			d, err := time.ParseDuration(rules[i].Latency)
			if err != nil || d < 0 {
				return fmt.Errorf("rule %d: latency %q is not a duration", i, rules[i].Latency)
			}
			rules[i].latency = d
		}
		if rules[i].Rate < 0 || rules[i].Rate > 1 {
			return fmt.Errorf("rule %d: rate must be 0..1", i)
		}
		if rules[i].Status != 0 && (rules[i].Status < 400 || rules[i].Status > 599) {
			return fmt.Errorf("rule %d: status must be 400..599", i)
		}
		if z := rules[i].Zone; z != "" {
			if _, known := zoneIDs[z]; !known {
				return fmt.Errorf("rule %d: unknown zone %q", i, z)
			}
		}
		rules[i].Fired = 0
	}
	return nil
}

// RealServerOverride forces a real server address DOWN in
// LoadBalancer.Status, on one port or (Port 0) on every port.
type RealServerOverride struct {
	IP   string `json:"ip"`
	Port int    `json:"port,omitempty"`
}

// SetRealServerHealth sets (up=false) or clears (up=true) the override for
// ip on port (0 = every port). Clearing without a port clears every override
// of ip; clearing with a port only that port's. An empty ip with up=true
// clears all overrides.
func (s *Simulator) SetRealServerHealth(ip string, port int, up bool) error {
	if port < 0 || port > 65535 {
		return badRequest(fmt.Sprintf("port: %d is not 0..65535", port))
	}
	if ip != "" || !up {
		a, err := netip.ParseAddr(ip)
		if err != nil || !a.Is4() {
			return badRequest(fmt.Sprintf("ip: %q is not an IPv4 address", ip))
		}
		ip = a.String()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	key := RealServerOverride{IP: ip, Port: port}
	switch {
	case !up:
		s.rsDown[key] = true
	case port != 0:
		delete(s.rsDown, key)
	default:
		for k := range s.rsDown {
			if ip == "" || k.IP == ip {
				delete(s.rsDown, k)
			}
		}
	}
	return nil
}

// RealServersDown returns the health overrides (as in GET /_admin/state).
func (s *Simulator) RealServersDown() []RealServerOverride {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.realServersDownLocked()
}

// realServersDownLocked lists the overrides in a stable order. Called with mu held.
func (s *Simulator) realServersDownLocked() []RealServerOverride {
	out := []RealServerOverride{}
	for k := range s.rsDown {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].IP != out[j].IP {
			return out[i].IP < out[j].IP
		}
		return out[i].Port < out[j].Port
	})
	return out
}

// AddServer adds a server as if a user created it.
func (s *Simulator) AddServer(spec ServerSpec) (*naked.Server, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sv, e := s.addServerLocked(spec, nil)
	if e != nil {
		return nil, e
	}
	return s.nakedServer(sv), nil
}

// findServer resolves a name or an ID; names must be unique.
func (s *Simulator) findServer(ref string) (*server, *apiErr) {
	if n, err := strconv.ParseInt(ref, 10, 64); err == nil {
		if sv := s.serverByID(types.ID(n)); sv != nil {
			return sv, nil
		}
	}
	var found []*server
	for _, sv := range s.servers {
		if sv.Name == ref {
			found = append(found, sv)
		}
	}
	switch len(found) {
	case 0:
		return nil, notFound("server " + ref + " not found")
	case 1:
		return found[0], nil
	}
	return nil, conflict(fmt.Sprintf("%d servers are named %s; use the ID", len(found), ref))
}

func (s *Simulator) removeServer(sv *server) {
	for i, x := range s.servers {
		if x == sv {
			s.servers = append(s.servers[:i], s.servers[i+1:]...)
			return
		}
	}
}

// DeleteServer removes a server by name or ID.
func (s *Simulator) DeleteServer(ref string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sv, e := s.findServer(ref)
	if e != nil {
		return e
	}
	s.removeServer(sv)
	return nil
}

// PowerServer turns a server on or off.
func (s *Simulator) PowerServer(ref string, on bool) (*naked.Server, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sv, e := s.findServer(ref)
	if e != nil {
		return nil, e
	}
	if sv.Up != on {
		sv.Up = on
		sv.StatusChangedAt = s.now()
	}
	return s.nakedServer(sv), nil
}

// ReplaceServer simulates a plan change: the server gets a new ID and the tag
// @previous-id=<old id>; NICs, name and power state are kept.
func (s *Simulator) ReplaceServer(ref string, cpu, memoryGB int) (*naked.Server, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, e := s.findServer(ref)
	if e != nil {
		return nil, e
	}
	spec := ServerSpec{Name: old.Name, Zone: old.Zone, CPU: old.CPU, MemoryGB: old.MemoryMB / 1024, GPU: old.GPU, Status: "down"}
	if old.Up {
		spec.Status = "up"
	}
	if cpu > 0 {
		spec.CPU = cpu
	}
	if memoryGB > 0 {
		spec.MemoryGB = memoryGB
	}
	for _, t := range old.Tags {
		if !strings.HasPrefix(t, "@previous-id=") {
			spec.Tags = append(spec.Tags, t)
		}
	}
	for _, n := range old.NICs {
		if n.Shared {
			spec.NICs = append(spec.NICs, NICSpec{Shared: true, IPAddress: n.IP})
		} else if sw := s.switchByID(n.SwitchID); sw != nil {
			spec.NICs = append(spec.NICs, NICSpec{Switch: sw.Name, UserIPAddress: n.IP})
		}
	}
	idx := -1
	for i, x := range s.servers {
		if x == old {
			idx = i
		}
	}
	s.removeServer(old)
	nsv, e := s.addServerLocked(spec, []string{"@previous-id=" + old.ID.String()})
	if e != nil {
		s.servers = append(s.servers[:idx], append([]*server{old}, s.servers[idx:]...)...)
		return nil, e
	}
	return s.nakedServer(nsv), nil
}

func adminJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func adminErr(w http.ResponseWriter, err error) {
	status := http.StatusBadRequest
	if e, ok := err.(*apiErr); ok {
		status = e.status
	}
	adminJSON(w, status, map[string]string{"error": err.Error()})
}

func decodeAdmin(r *http.Request, v any) error {
	data, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return err
	}
	if len(strings.TrimSpace(string(data))) == 0 {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func (s *Simulator) serveAdmin(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, "/_admin"), "/"), "/")
	m := r.Method
	switch {
	case len(parts) == 1 && parts[0] == "state" && m == http.MethodGet:
		adminJSON(w, http.StatusOK, s.Snapshot())
	case len(parts) == 1 && parts[0] == "servers" && m == http.MethodGet:
		adminJSON(w, http.StatusOK, s.Snapshot().Servers)
	case len(parts) == 1 && parts[0] == "servers" && m == http.MethodPost:
		var spec ServerSpec
		if err := decodeAdmin(r, &spec); err != nil {
			adminErr(w, err)
			return
		}
		sv, err := s.AddServer(spec)
		if err != nil {
			adminErr(w, err)
			return
		}
		adminJSON(w, http.StatusCreated, sv)
	case len(parts) == 2 && parts[0] == "servers" && m == http.MethodDelete:
		if err := s.DeleteServer(parts[1]); err != nil {
			adminErr(w, err)
			return
		}
		adminJSON(w, http.StatusOK, map[string]string{"deleted": parts[1]})
	case len(parts) == 3 && parts[0] == "servers" && parts[2] == "power" && m == http.MethodPost:
		var body struct {
			On *bool `json:"on"`
		}
		if err := decodeAdmin(r, &body); err != nil || body.On == nil {
			adminErr(w, fmt.Errorf(`body must be {"on": true|false}`))
			return
		}
		sv, err := s.PowerServer(parts[1], *body.On)
		if err != nil {
			adminErr(w, err)
			return
		}
		adminJSON(w, http.StatusOK, sv)
	case len(parts) == 3 && parts[0] == "servers" && parts[2] == "replace" && m == http.MethodPost:
		var body struct {
			CPU      int `json:"cpu"`
			MemoryGB int `json:"memoryGB"`
		}
		if err := decodeAdmin(r, &body); err != nil {
			adminErr(w, err)
			return
		}
		sv, err := s.ReplaceServer(parts[1], body.CPU, body.MemoryGB)
		if err != nil {
			adminErr(w, err)
			return
		}
		adminJSON(w, http.StatusOK, sv)
	case len(parts) == 1 && parts[0] == "faults" && m == http.MethodGet:
		adminJSON(w, http.StatusOK, map[string]any{"rules": s.Snapshot().Faults})
	case len(parts) == 1 && parts[0] == "faults" && m == http.MethodPost:
		var body struct {
			Rules []FaultRule `json:"rules"`
		}
		if err := decodeAdmin(r, &body); err != nil {
			adminErr(w, err)
			return
		}
		if err := s.SetFaults(body.Rules); err != nil {
			adminErr(w, err)
			return
		}
		adminJSON(w, http.StatusOK, map[string]any{"rules": s.Snapshot().Faults})
	case len(parts) == 2 && parts[0] == "faults" && parts[1] == "add" && m == http.MethodPost:
		var body struct {
			Rules []FaultRule `json:"rules"`
		}
		if err := decodeAdmin(r, &body); err != nil {
			adminErr(w, err)
			return
		}
		if err := s.AddFaults(body.Rules...); err != nil {
			adminErr(w, err)
			return
		}
		adminJSON(w, http.StatusOK, map[string]any{"rules": s.Snapshot().Faults})
	case len(parts) == 2 && parts[0] == "faults" && parts[1] == "fail-next-config" && m == http.MethodPost:
		var body struct {
			Status int `json:"status"`
		}
		if err := decodeAdmin(r, &body); err != nil {
			adminErr(w, err)
			return
		}
		if err := s.FailNextConfig(body.Status); err != nil {
			adminErr(w, err)
			return
		}
		adminJSON(w, http.StatusOK, map[string]any{"rules": s.Snapshot().Faults})
	case len(parts) == 2 && parts[0] == "load-balancers" && m == http.MethodGet:
		n, err := strconv.ParseInt(parts[1], 10, 64)
		if err != nil {
			adminErr(w, notFound("load balancer "+parts[1]+" not found"))
			return
		}
		cfg, e := s.lbConfigState(types.ID(n))
		if e != nil {
			adminErr(w, e)
			return
		}
		adminJSON(w, http.StatusOK, cfg)
	case len(parts) == 2 && parts[0] == "proxylbs" && m == http.MethodGet:
		n, _ := strconv.ParseInt(parts[1], 10, 64)
		info, found := s.ProxyLB(types.ID(n))
		if !found {
			adminErr(w, notFound("ELB "+parts[1]+" not found"))
			return
		}
		adminJSON(w, http.StatusOK, info)
	case len(parts) == 3 && parts[0] == "proxylbs" && parts[2] == "failover" && m == http.MethodPost:
		n, _ := strconv.ParseInt(parts[1], 10, 64)
		vip, err := s.FailoverProxyLBVIP(types.ID(n))
		if err != nil {
			adminErr(w, err)
			return
		}
		info, _ := s.ProxyLB(types.ID(n))
		adminJSON(w, http.StatusOK, map[string]string{"id": parts[1], "vip": vip, "fqdn": info.ProxyLB.Status.FQDN})
	case len(parts) == 1 && parts[0] == "faults" && m == http.MethodDelete:
		_ = s.SetFaults(nil)
		adminJSON(w, http.StatusOK, map[string]any{"rules": []FaultRule{}})
	case len(parts) == 1 && parts[0] == "boot-delay" && (m == http.MethodPost || m == http.MethodGet):
		if m == http.MethodPost {
			var body struct {
				BootDelay          string `json:"bootDelay"`
				ReadNotFoundWindow string `json:"readNotFoundWindow"`
			}
			if err := decodeAdmin(r, &body); err != nil {
				adminErr(w, err)
				return
			}
			var bd, nf time.Duration = -1, -1
			var err error
			if body.BootDelay != "" {
				if bd, err = time.ParseDuration(body.BootDelay); err != nil || bd < 0 {
					adminErr(w, fmt.Errorf("bootDelay %q is not a duration", body.BootDelay))
					return
				}
			}
			if body.ReadNotFoundWindow != "" {
				if nf, err = time.ParseDuration(body.ReadNotFoundWindow); err != nil || nf < 0 {
					adminErr(w, fmt.Errorf("readNotFoundWindow %q is not a duration", body.ReadNotFoundWindow))
					return
				}
			}
			s.mu.Lock()
			if bd >= 0 {
				s.bootDelay = bd
			}
			if nf >= 0 {
				s.notFoundAfter = nf
			}
			s.mu.Unlock()
		}
		st := s.Snapshot()
		adminJSON(w, http.StatusOK, map[string]string{"bootDelay": st.BootDelay, "readNotFoundWindow": st.ReadNotFoundWindow})
	case len(parts) == 1 && parts[0] == "conflicts" && (m == http.MethodPost || m == http.MethodGet):
		if m == http.MethodPost {
			var body struct {
				Accept *bool `json:"accept"`
			}
			if err := decodeAdmin(r, &body); err != nil || body.Accept == nil {
				adminErr(w, fmt.Errorf(`body must be {"accept": true|false}`))
				return
			}
			s.SetAcceptConflicts(*body.Accept)
		}
		accept, accepted := s.Conflicts()
		adminJSON(w, http.StatusOK, map[string]any{"accept": accept, "accepted": accepted})
	case len(parts) == 1 && parts[0] == "realserver-health" && (m == http.MethodGet || m == http.MethodPost || m == http.MethodDelete):
		if m != http.MethodGet {
			var body struct {
				IP   string `json:"ip"`
				Port int    `json:"port"`
				Up   *bool  `json:"up"`
			}
			if err := decodeAdmin(r, &body); err != nil || (m == http.MethodPost && (body.Up == nil || body.IP == "")) {
				adminErr(w, fmt.Errorf(`body must be {"ip": "192.168.0.11", "up": true|false, "port": 80 (optional)}`))
				return
			}
			up := m == http.MethodDelete || *body.Up
			if err := s.SetRealServerHealth(body.IP, body.Port, up); err != nil {
				adminErr(w, err)
				return
			}
		}
		adminJSON(w, http.StatusOK, map[string]any{"down": s.RealServersDown()})
	case len(parts) == 1 && parts[0] == "requests" && m == http.MethodGet:
		adminJSON(w, http.StatusOK, s.Requests())
	case len(parts) == 2 && parts[0] == "requests" && parts[1] == "reset" && m == http.MethodPost:
		s.ResetRequests()
		adminJSON(w, http.StatusOK, s.Requests())
	default:
		routes := []string{"GET /_admin/state", "GET|POST /_admin/servers", "DELETE /_admin/servers/{name-or-id}",
			"POST /_admin/servers/{name-or-id}/power", "POST /_admin/servers/{name-or-id}/replace",
			"GET|POST|DELETE /_admin/faults", "POST /_admin/faults/add", "POST /_admin/faults/fail-next-config",
			"GET /_admin/load-balancers/{id}", "GET|POST /_admin/boot-delay", "GET|POST /_admin/conflicts", "GET /_admin/requests", "POST /_admin/requests/reset",
			"GET|POST|DELETE /_admin/realserver-health", "GET /_admin/proxylbs/{id}", "POST /_admin/proxylbs/{id}/failover"}
		sort.Strings(routes)
		adminJSON(w, http.StatusNotFound, map[string]any{"error": "unknown admin route " + m + " " + r.URL.Path, "routes": routes})
	}
}
