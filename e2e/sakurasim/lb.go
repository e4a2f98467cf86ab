package sakurasim

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/sacloud/iaas-api-go/naked"
	"github.com/sacloud/iaas-api-go/types"
)

// Limits the real API enforces (manual; see docs/simulator.md).
const (
	maxVIPs           = 20
	maxServersPerVIP  = 40
	maxTags           = 10
	minRetry          = 1
	maxRetry          = 5
	minConnectTimeout = 1
	maxConnectTimeout = 30
)

type apiErr struct {
	status int
	code   string
	msg    string
}

func (e *apiErr) Error() string { return e.msg }

func badRequest(msg string) *apiErr { return &apiErr{http.StatusBadRequest, "bad_request", msg} }
func conflict(msg string) *apiErr   { return &apiErr{http.StatusConflict, "conflict", msg} }
func notFound(msg string) *apiErr   { return &apiErr{http.StatusNotFound, "not_found", msg} }
func stillCreating(msg string) *apiErr {
	return &apiErr{http.StatusConflict, "still_creating", msg}
}

// reserved reports why an address of the switch's subnet cannot be assigned.
func reserved(sw *switchRes, a netip.Addr) string {
	p := sw.Prefix
	if a == p.Addr() {
		return "network address"
	}
	if a == broadcast(p) {
		return "broadcast address"
	}
	if sw.DefaultRoute.IsValid() && a == sw.DefaultRoute {
		return "gateway (default route)"
	}
	if sw.RouterID != 0 {
		g := sw.DefaultRoute
		if a == g.Next() || a == g.Next().Next() {
			return "router's own address"
		}
	}
	return ""
}

func broadcast(p netip.Prefix) netip.Addr {
	b := p.Addr().As4()
	n := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	n |= (1 << (32 - p.Bits())) - 1
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
}

// assignedRange is the user-assignable range of a router+switch block.
func assignedRange(sw *switchRes) (netip.Addr, netip.Addr) {
	min := sw.DefaultRoute.Next().Next().Next()
	return min, broadcast(sw.Prefix).Prev()
}

// sameSegment: a and b are one switch, or two switches a bridge joins into
// one layer-2 segment (where an address is just as taken).
func (s *Simulator) sameSegment(a, b types.ID) bool {
	if a == b {
		return true
	}
	sa, sb := s.switchByID(a), s.switchByID(b)
	return sa != nil && sb != nil && sa.BridgeID != 0 && sa.BridgeID == sb.BridgeID
}

// owner returns who holds ip on the switch's layer-2 segment ("" when
// free). excludeLB skips one load balancer (the one being validated).
func (s *Simulator) owner(swID types.ID, ip string, excludeLB types.ID) string {
	for _, sv := range s.servers {
		for _, n := range sv.NICs {
			if !n.Shared && s.sameSegment(n.SwitchID, swID) && n.IP == ip {
				return "server " + sv.Name
			}
		}
	}
	for _, lb := range s.lbs {
		if lb.ID == excludeLB || !s.sameSegment(lb.SwitchID, swID) {
			continue
		}
		for _, a := range lb.IPs {
			if a == ip {
				return "load balancer " + lb.Name + " (appliance IP)"
			}
		}
		for _, v := range lb.Settings {
			if v.VirtualIPAddress == ip {
				return "load balancer " + lb.Name + " (VIP)"
			}
		}
	}
	for _, v := range s.vpcRouters {
		if !s.sameSegment(v.SwitchID, swID) {
			continue
		}
		if v.VIP == ip {
			return "vpc router " + v.Name + " (VIP)"
		}
		for _, a := range v.IPs {
			if a == ip {
				return "vpc router " + v.Name
			}
		}
	}
	return ""
}

// checkAddr: ip must be IPv4, inside the switch's subnet, not reserved (400) and free (409).
func (s *Simulator) checkAddr(sw *switchRes, ip, field string, excludeLB types.ID) *apiErr {
	a, err := netip.ParseAddr(ip)
	if err != nil || !a.Is4() {
		return badRequest(fmt.Sprintf("%s: %q is not an IPv4 address", field, ip))
	}
	if !sw.Prefix.Contains(a) {
		return badRequest(fmt.Sprintf("%s: %s is outside the switch's subnet %s", field, ip, sw.Prefix))
	}
	if why := reserved(sw, a); why != "" {
		return badRequest(fmt.Sprintf("%s: %s is reserved (%s)", field, ip, why))
	}
	if o := s.owner(sw.ID, ip, excludeLB); o != "" {
		return conflict(fmt.Sprintf("%s: %s is already in use by %s", field, ip, o))
	}
	return nil
}

func (s *Simulator) vridOwner(swID types.ID, vrid int, excludeLB types.ID) string {
	for _, lb := range s.lbs {
		if lb.ID != excludeLB && s.sameSegment(lb.SwitchID, swID) && lb.VRID == vrid {
			return "load balancer " + lb.Name
		}
	}
	for _, v := range s.vpcRouters {
		if s.sameSegment(v.SwitchID, swID) && v.VRID == vrid {
			return "vpc router " + v.Name
		}
	}
	return ""
}

// Conflict is a conflicting write the simulator accepted and stored: an
// address already in use, taken because Options.AcceptConflicts is on, or a
// duplicate tag, which is stored as sent in either mode. SAKURA's API is not
// known to refuse either (docs/simulator.md).
type Conflict struct {
	At        time.Time `json:"at"`
	Op        string    `json:"op"`        // LoadBalancer.Create, .Update or .UpdateSettings
	Appliance types.ID  `json:"appliance"` // the appliance written (its new ID for a create)
	Field     string    `json:"field"`
	Value     string    `json:"value"`  // the address or tag
	Holder    string    `json:"holder"` // who already held the address; "" for a duplicate tag
}

// conflicts collects the conflicts one write runs into: with accept, the
// address conflicts are kept (and the write goes on) instead of refused.
type conflicts struct {
	accept bool
	found  []Conflict
}

// address decides on ip, which holder already holds: nil when accepted.
func (c *conflicts) address(field, ip, holder string, refusal *apiErr) *apiErr {
	if c == nil || !c.accept {
		return refusal
	}
	c.found = append(c.found, Conflict{Field: field, Value: ip, Holder: holder})
	return nil
}

// tags notes every tag given more than once.
func (c *conflicts) tags(field string, tags []string) {
	if c == nil {
		return
	}
	seen := map[string]bool{}
	for _, t := range tags {
		if seen[t] {
			c.found = append(c.found, Conflict{Field: field, Value: t})
		}
		seen[t] = true
	}
}

// record keeps the conflicts of a write that succeeded. Call with mu held.
func (s *Simulator) record(c *conflicts, op string, id types.ID) {
	if c == nil {
		return
	}
	now := s.now()
	for _, x := range c.found {
		x.At, x.Op, x.Appliance = now, op, id
		s.conflicts = append(s.conflicts, x)
	}
}

// newConflicts starts the conflict record of one API write.
func (s *Simulator) newConflicts() *conflicts { return &conflicts{accept: s.acceptConflicts} }

// checkLBAddr is checkAddr for a load balancer's own write: an address in
// use is refused, or accepted and noted when c accepts conflicts.
func (s *Simulator) checkLBAddr(sw *switchRes, ip, field string, excludeLB types.ID, c *conflicts) *apiErr {
	e := s.checkAddr(sw, ip, field, excludeLB)
	if e == nil || e.status != http.StatusConflict {
		return e
	}
	return c.address(field, ip, s.owner(sw.ID, ip, excludeLB), e)
}

// validateNewLB checks the immutable part of a new load balancer in zone
// and its settings. raw is the request's Appliance JSON (nil for
// topology-made ones); c (nil for topology-made ones) decides on and
// records conflicts.
func (s *Simulator) validateNewLB(lb *loadBalancer, zone string, raw json.RawMessage, c *conflicts) *apiErr {
	sw := s.switchByID(lb.SwitchID)
	if sw == nil {
		return badRequest(fmt.Sprintf("Remark.Switch.ID: switch %s not found", lb.SwitchID))
	}
	if sw.Zone != zone {
		// An ID of another zone's switch is unknown here, as in the API.
		return badRequest(fmt.Sprintf("Remark.Switch.ID: switch %s not found in zone %s", lb.SwitchID, zone))
	}
	if lb.Name == "" {
		return badRequest("Name is required")
	}
	if len(lb.Tags) > maxTags {
		return badRequest(fmt.Sprintf("Tags: at most %d tags (got %d)", maxTags, len(lb.Tags)))
	}
	if lb.PlanID != 1 && lb.PlanID != 2 {
		return badRequest(fmt.Sprintf("Plan.ID: must be 1 (standard) or 2 (highspec), got %s", lb.PlanID))
	}
	if len(lb.IPs) != 1 && len(lb.IPs) != 2 {
		return badRequest(fmt.Sprintf("Remark.Servers: need 1 or 2 (HA) appliance IP addresses, got %d", len(lb.IPs)))
	}
	if lb.VRID < 1 || lb.VRID > 255 {
		return badRequest(fmt.Sprintf("Remark.VRRP.VRID: must be 1..255, got %d", lb.VRID))
	}
	if lb.MaskLen != sw.Prefix.Bits() {
		return badRequest(fmt.Sprintf("Remark.Network.NetworkMaskLen: must be the switch's mask length %d, got %d", sw.Prefix.Bits(), lb.MaskLen))
	}
	if lb.DefaultRoute != "" {
		a, err := netip.ParseAddr(lb.DefaultRoute)
		if err != nil || !sw.Prefix.Contains(a) {
			return badRequest(fmt.Sprintf("Remark.Network.DefaultRoute: %q is not in %s", lb.DefaultRoute, sw.Prefix))
		}
		if sw.RouterID != 0 && a != sw.DefaultRoute {
			return badRequest(fmt.Sprintf("Remark.Network.DefaultRoute: must be the router's gateway %s", sw.DefaultRoute))
		}
	}
	if len(lb.IPs) == 2 && lb.IPs[0] == lb.IPs[1] {
		return badRequest("Remark.Servers: the two appliance IP addresses must differ")
	}
	for _, ip := range lb.IPs {
		if e := s.checkLBAddr(sw, ip, "Remark.Servers.IPAddress", lb.ID, c); e != nil {
			return e
		}
	}
	c.tags("Tags", lb.Tags)
	if o := s.vridOwner(sw.ID, lb.VRID, lb.ID); o != "" {
		return conflict(fmt.Sprintf("Remark.VRRP.VRID: %d is already used on switch %s by %s", lb.VRID, sw.Name, o))
	}
	return s.validateSettings(lb, lb.Settings, raw, c)
}

// validateSettings checks VIP entries against limits and the switch's addresses.
func (s *Simulator) validateSettings(lb *loadBalancer, settings []*naked.LoadBalancerSetting, raw json.RawMessage, c *conflicts) *apiErr {
	sw := s.switchByID(lb.SwitchID)
	if len(settings) > maxVIPs {
		return badRequest(fmt.Sprintf("Settings.LoadBalancer: at most %d VIP entries per load balancer, got %d", maxVIPs, len(settings)))
	}
	if e := checkEnabledPresent(raw); e != nil {
		return e
	}
	seen := map[string]bool{}
	for i, v := range settings {
		if v == nil {
			return badRequest(fmt.Sprintf("Settings.LoadBalancer[%d]: null entry", i))
		}
		field := fmt.Sprintf("Settings.LoadBalancer[%d]", i)
		if v.Port < 1 || v.Port > 65535 {
			return badRequest(fmt.Sprintf("%s.Port: must be 1..65535, got %s", field, v.Port))
		}
		key := fmt.Sprintf("%s:%s", v.VirtualIPAddress, v.Port)
		if seen[key] {
			return badRequest(fmt.Sprintf("%s: duplicate VIP and port %s", field, key))
		}
		seen[key] = true
		own := false
		for _, a := range lb.IPs {
			own = own || a == v.VirtualIPAddress
		}
		if own {
			if e := c.address(field+".VirtualIPAddress", v.VirtualIPAddress, "the appliance's own address",
				conflict(fmt.Sprintf("%s.VirtualIPAddress: %s is the appliance's own address", field, v.VirtualIPAddress))); e != nil {
				return e
			}
		} else if e := s.checkLBAddr(sw, v.VirtualIPAddress, field+".VirtualIPAddress", lb.ID, c); e != nil {
			return e
		}
		if v.DelayLoop < 0 {
			return badRequest(fmt.Sprintf("%s.DelayLoop: must not be negative", field))
		}
		if len(v.Servers) > maxServersPerVIP {
			return badRequest(fmt.Sprintf("%s.Servers: at most %d real servers per VIP, got %d", field, maxServersPerVIP, len(v.Servers)))
		}
		seenSrv := map[string]bool{}
		for j, rs := range v.Servers {
			f := fmt.Sprintf("%s.Servers[%d]", field, j)
			if rs == nil {
				return badRequest(f + ": null entry")
			}
			a, err := netip.ParseAddr(rs.IPAddress)
			if err != nil || !a.Is4() {
				return badRequest(fmt.Sprintf("%s.IPAddress: %q is not an IPv4 address", f, rs.IPAddress))
			}
			if !sw.Prefix.Contains(a) {
				return badRequest(fmt.Sprintf("%s.IPAddress: %s is outside the switch's subnet %s", f, rs.IPAddress, sw.Prefix))
			}
			if seenSrv[rs.IPAddress] {
				return badRequest(fmt.Sprintf("%s.IPAddress: duplicate real server %s", f, rs.IPAddress))
			}
			seenSrv[rs.IPAddress] = true
			hc := rs.HealthCheck
			if hc == nil || hc.Protocol == "" {
				return badRequest(f + ".HealthCheck.Protocol: required (http, https, tcp or ping)")
			}
			switch strings.ToLower(string(hc.Protocol)) {
			case "http", "https":
				if hc.Path == "" {
					return badRequest(f + ".HealthCheck.Path: required for http/https checks")
				}
			case "tcp", "ping":
			default:
				return badRequest(fmt.Sprintf("%s.HealthCheck.Protocol: %q not allowed (http, https, tcp, ping)", f, hc.Protocol))
			}
			if hc.Retry != 0 && (hc.Retry < minRetry || hc.Retry > maxRetry) {
				return badRequest(fmt.Sprintf("%s.HealthCheck.Retry: must be %d..%d, got %s", f, minRetry, maxRetry, hc.Retry.String()))
			}
			if hc.ConnectTimeout != 0 && (hc.ConnectTimeout < minConnectTimeout || hc.ConnectTimeout > maxConnectTimeout) {
				return badRequest(fmt.Sprintf("%s.HealthCheck.ConnectTimeout: must be %d..%d, got %s", f, minConnectTimeout, maxConnectTimeout, hc.ConnectTimeout.String()))
			}
		}
	}
	return nil
}

// checkEnabledPresent requires every real server to carry Enabled "True" or
// "False": the API treats a missing flag as disabled, which is never intended.
func checkEnabledPresent(raw json.RawMessage) *apiErr {
	if len(raw) == 0 {
		return nil
	}
	var doc struct {
		Settings *struct {
			LoadBalancer []*struct {
				Servers []map[string]json.RawMessage
			}
		}
	}
	if err := json.Unmarshal(raw, &doc); err != nil || doc.Settings == nil {
		return nil
	}
	for i, v := range doc.Settings.LoadBalancer {
		if v == nil {
			continue
		}
		for j, rs := range v.Servers {
			val, ok := rs["Enabled"]
			s := strings.Trim(string(val), `"`)
			if !ok || (s != "True" && s != "False") {
				return badRequest(fmt.Sprintf(`Settings.LoadBalancer[%d].Servers[%d].Enabled: must be "True" or "False"`, i, j))
			}
		}
	}
	return nil
}

func settingsHash(settings []*naked.LoadBalancerSetting) string {
	data, _ := json.Marshal(&naked.LoadBalancerSettings{LoadBalancer: settings})
	sum := md5.Sum(data)
	return hex.EncodeToString(sum[:])
}

func cloneSettings(in []*naked.LoadBalancerSetting) []*naked.LoadBalancerSetting {
	if in == nil {
		return nil
	}
	data, _ := json.Marshal(in)
	var out []*naked.LoadBalancerSetting
	_ = json.Unmarshal(data, &out)
	return out
}

// serverUp reports whether some powered-on server holds ip on the switch
// (real servers must be in the load balancer's subnet, so its switch is where
// they live).
func (s *Simulator) serverUp(swID types.ID, ip string) bool {
	for _, sv := range s.servers {
		for _, n := range sv.NICs {
			if n.SwitchID == swID && n.IP == ip && sv.Up {
				return true
			}
		}
	}
	return false
}

// forcedDown reports an admin override marking ip:port DOWN.
func (s *Simulator) forcedDown(ip string, port int) bool {
	return s.rsDown[RealServerOverride{IP: ip}] || s.rsDown[RealServerOverride{IP: ip, Port: port}]
}
