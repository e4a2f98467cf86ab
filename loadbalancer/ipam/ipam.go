// Package ipam finds free addresses and VRIDs on a router+switch block, or
// on a plain switch within the operator's assign range (PlainBlock).
//
// "Free" is judged against every consumer on the switch (servers, load
// balancers ours or not, VPC routers, databases, NFS, mobile gateways,
// next hops), the operator's reserved ranges, and the block's own network,
// gateway, router and broadcast addresses. Everything here is pure and
// table-tested: Block, Usage (gathered from one appliance listing and the
// switch's servers), Allocate, CheckVIP, PickVRID, and Reservations.Merge,
// which decides which in-flight reservations (kept by the caller) still
// hold their addresses. No API call, no clock, no lock.
package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/types"
	"go4.org/netipx"
)

// MaxVRID bounds VRRP router IDs.
const MaxVRID = 255

// MinAssignBits bounds an assign range to /16 (65536 addresses): the search
// lists the candidates, and no Service needs more.
const MinAssignBits = 16

// Block is a router+switch's global address block.
type Block struct {
	SwitchID types.ID
	RouterID types.ID
	Prefix   netip.Prefix
	Gateway  netip.Addr
	// Min/Max bound the range the user may assign (from the API); invalid
	// when the API did not say, then the whole prefix minus reserved is used.
	Min, Max netip.Addr
	// Plain marks a switch without a router (load-balancer-type switch):
	// no router addresses to reserve, Gateway is optional, and Assign (=
	// Min..Max) is the operator's assign range.
	Plain  bool
	Assign netip.Prefix
	// Zone is the zone of the switch: the appliance is made there.
	Zone string
}

// String names the block for messages.
func (b Block) String() string {
	if b.Plain {
		return fmt.Sprintf("%s (plain switch %s, assign range %s)", b.Prefix, b.SwitchID, b.Assign)
	}
	return fmt.Sprintf("%s (switch %s)", b.Prefix, b.SwitchID)
}

// ErrHasRouter marks a switch that is a router+switch where a plain switch is needed.
var ErrHasRouter = errors.New("the switch is a router+switch")

// PlainBlock describes a plain switch (no router) for private addresses.
// The API knows no subnet for such a switch, so the network comes from the
// operator: network (ip-range), assign (inside network) and an optional
// gateway. A switch with a router is refused: its addresses are global and
// the router's own addresses would not be reserved.
func PlainBlock(sw *iaas.Switch, network, assign netip.Prefix, gateway netip.Addr) (Block, error) {
	if sw == nil {
		return Block{}, errors.New("no switch")
	}
	if len(sw.Subnets) > 0 {
		return Block{}, fmt.Errorf("switch %s (%s): %w; load-balancer-type switch needs a plain switch", sw.Name, sw.ID, ErrHasRouter)
	}
	network, assign = network.Masked(), assign.Masked()
	if !network.IsValid() || !network.Addr().Is4() || network.Bits() < 8 || network.Bits() > 30 {
		return Block{}, fmt.Errorf("ip-range %s is not a usable IPv4 network", network)
	}
	if !assign.IsValid() || assign.Bits() < network.Bits() || !network.Contains(assign.Addr()) {
		return Block{}, fmt.Errorf("assign range %s is not inside ip-range %s", assign, network)
	}
	if assign.Bits() < MinAssignBits {
		return Block{}, fmt.Errorf("assign range %s is larger than /%d", assign, MinAssignBits)
	}
	b := Block{SwitchID: sw.ID, Prefix: network, Plain: true, Assign: assign, Gateway: gateway,
		Min: assign.Addr(), Max: netipx.PrefixLastIP(assign)}
	if gateway.IsValid() && !network.Contains(gateway) {
		return Block{}, fmt.Errorf("gateway %s is not inside ip-range %s", gateway, network)
	}
	return b, nil
}

// IsRouterSwitch reports whether sw has a router (a global subnet).
func IsRouterSwitch(sw *iaas.Switch) bool { return sw != nil && len(sw.Subnets) > 0 }

// BlockFromSwitch reads the router+switch block of sw (its first subnet).
func BlockFromSwitch(sw *iaas.Switch) (Block, error) {
	if sw == nil || len(sw.Subnets) == 0 || sw.Subnets[0] == nil {
		return Block{}, fmt.Errorf("switch %s is not a router+switch (it has no global subnet)", idOf(sw))
	}
	s := sw.Subnets[0]
	addr, err := netip.ParseAddr(s.NetworkAddress)
	if err != nil || !addr.Is4() || s.NetworkMaskLen < 8 || s.NetworkMaskLen > 30 {
		return Block{}, fmt.Errorf("switch %s: subnet %s/%d is not a usable IPv4 block", sw.ID, s.NetworkAddress, s.NetworkMaskLen)
	}
	b := Block{SwitchID: sw.ID, Prefix: netip.PrefixFrom(addr, s.NetworkMaskLen).Masked()}
	if s.Internet != nil {
		b.RouterID = s.Internet.ID
	}
	if gw, err := netip.ParseAddr(s.DefaultRoute); err == nil {
		b.Gateway = gw
	} else {
		b.Gateway = b.Prefix.Addr().Next()
	}
	// Min == Max is a legal one-address range; we compute ranges ourselves
	// (Subnet.GetAssignedIPAddresses loops forever on it).
	if lo, err := netip.ParseAddr(s.AssignedIPAddressMin); err == nil {
		if hi, err := netip.ParseAddr(s.AssignedIPAddressMax); err == nil && b.Prefix.Contains(lo) && b.Prefix.Contains(hi) && !hi.Less(lo) {
			b.Min, b.Max = lo, hi
		}
	}
	return b, nil
}

func idOf(sw *iaas.Switch) string {
	if sw == nil {
		return "<nil>"
	}
	return sw.ID.String()
}

// Reserved lists the block's own addresses: network, gateway, the router's
// two addresses after it, and broadcast. A plain switch has no router: its
// network, broadcast and (if given) gateway.
func (b Block) Reserved() []netip.Addr {
	last := netipx.PrefixLastIP(b.Prefix)
	if b.Plain {
		out := []netip.Addr{b.Prefix.Addr(), last}
		if b.Gateway.IsValid() {
			out = append(out, b.Gateway)
		}
		return out
	}
	return []netip.Addr{b.Prefix.Addr(), b.Gateway, b.Gateway.Next(), b.Gateway.Next().Next(), last}
}

// bounds is the part of the prefix searched: Min..Max when the API (or the
// assign range) gives them, so a big network with a small assign range
// stays cheap. It is invalid, i.e. empty, when they lie outside the prefix.
func (b Block) bounds() netipx.IPRange {
	r := netipx.RangeOfPrefix(b.Prefix)
	from, to := r.From(), r.To()
	if b.Min.IsValid() && from.Less(b.Min) {
		from = b.Min
	}
	if b.Max.IsValid() && b.Max.Less(to) {
		to = b.Max
	}
	return netipx.IPRangeFrom(from, to)
}

// usable is the set of addresses a VIP or appliance may ever take, as a
// builder so that callers can take more away.
func (b Block) usable() *netipx.IPSetBuilder {
	var s netipx.IPSetBuilder
	s.AddRange(b.bounds())
	for _, a := range b.Reserved() {
		s.Remove(a)
	}
	return &s
}

// isUsable reports whether a VIP or appliance may take a.
func (b Block) isUsable(a netip.Addr) bool {
	return b.bounds().Contains(a) && !slices.Contains(b.Reserved(), a)
}

// Usable lists, ascending, the addresses a VIP or appliance may ever take.
func (b Block) Usable() []netip.Addr { return list(b.usable(), -1) }

// list returns the first n addresses of s (all when n < 0), ascending.
func list(s *netipx.IPSetBuilder, n int) []netip.Addr {
	// The builder only reports inputs it ignored (an invalid range: empty
	// bounds, an absent gateway), which hold no address anyway.
	set, _ := s.IPSet()
	var out []netip.Addr
	for _, r := range set.Ranges() {
		for a := r.From(); n < 0 || len(out) < n; a = a.Next() {
			out = append(out, a)
			if a == r.To() {
				break
			}
		}
	}
	return out
}

// Range is an inclusive address range the operator keeps for other uses.
type Range struct{ From, To netip.Addr }

func (r Range) ipRange() netipx.IPRange { return netipx.IPRangeFrom(r.From, r.To) }

// Contains reports whether a is in r.
func (r Range) Contains(a netip.Addr) bool { return r.ipRange().Contains(a) }

// ParseRanges reads "a.b.c.d", "a.b.c.d-e.f.g.h" and CIDR entries.
func ParseRanges(in []string) ([]Range, error) {
	var out []Range
	for _, s := range in {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			r := netipx.RangeOfPrefix(p)
			out = append(out, Range{r.From(), r.To()})
			continue
		}
		// Not netipx.ParseIPRange: it refuses the spaces around "-" that
		// the cloud-config has always allowed.
		if lo, hi, ok := strings.Cut(s, "-"); ok {
			a, err1 := netip.ParseAddr(strings.TrimSpace(lo))
			b, err2 := netip.ParseAddr(strings.TrimSpace(hi))
			if err1 != nil || err2 != nil || !netipx.IPRangeFrom(a, b).IsValid() {
				return nil, fmt.Errorf("reserved range %q: want a.b.c.d-e.f.g.h with the first address not above the second", s)
			}
			out = append(out, Range{a, b})
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("reserved range %q: want an address, a range a-b or a CIDR", s)
		}
		out = append(out, Range{a, a})
	}
	return out, nil
}

// Usage records who holds which address and VRID on one switch.
type Usage struct {
	IPs   map[netip.Addr]string
	VRIDs map[int]string
	// Appliances are the load balancers the inventory listed on the switch.
	Appliances map[types.ID]bool
}

// NewUsage returns an empty Usage.
func NewUsage() *Usage {
	return &Usage{IPs: map[netip.Addr]string{}, VRIDs: map[int]string{}, Appliances: map[types.ID]bool{}}
}

// AddIP records s (ignored when not an address) as held by who.
func (u *Usage) AddIP(s, who string) {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '/'); i >= 0 { // some fields carry a prefix length
		s = s[:i]
	}
	if a, err := netip.ParseAddr(s); err == nil {
		if _, ok := u.IPs[a]; !ok {
			u.IPs[a] = who
		}
	}
}

// AddVRID records a VRID held by who.
func (u *Usage) AddVRID(v int, who string) {
	if v > 0 {
		if _, ok := u.VRIDs[v]; !ok {
			u.VRIDs[v] = who
		}
	}
}

// ExhaustedError says the block has too few free addresses.
type ExhaustedError struct {
	Block  Block
	Usable int
	InUse  int
	Need   int
}

func (e *ExhaustedError) Error() string {
	fix := "free addresses, or choose another router+switch"
	if e.Block.Plain {
		fix = "free addresses, or widen load-balancer-assign-ip-range"
	}
	return fmt.Sprintf("address block %s is exhausted: %d usable addresses, %d in use or reserved, %d more needed; %s", e.Block, e.Usable, e.InUse, e.Need, fix)
}

// ErrPinnedUnavailable marks a requested address that cannot be used.
var ErrPinnedUnavailable = errors.New("requested load balancer IP unavailable")

// Request asks for a VIP (pinned or any) and n appliance addresses.
type Request struct {
	PinnedVIP string // "" = any free address
	Appliance int    // 1, or 2 for HA
}

// Result is what Allocate hands out.
type Result struct {
	VIP       netip.Addr
	Appliance []netip.Addr
}

// taken tells who holds a, if anyone: a consumer on the switch or the
// operator's reserved ranges.
func taken(u *Usage, reserved []Range, a netip.Addr) (string, bool) {
	if who, ok := u.IPs[a]; ok {
		return who, true
	}
	for _, r := range reserved {
		if r.Contains(a) {
			return "the operator's reserved ranges", true
		}
	}
	return "", false
}

// free is the set of the block's usable addresses that nothing holds.
func free(b Block, u *Usage, reserved []Range) *netipx.IPSetBuilder {
	s := b.usable()
	for a := range u.IPs {
		s.Remove(a)
	}
	for _, r := range reserved {
		s.RemoveRange(r.ipRange())
	}
	return s
}

// Free lists the block's usable addresses that nothing holds, lowest first.
func Free(b Block, u *Usage, reserved []Range) []netip.Addr { return list(free(b, u, reserved), -1) }

// Allocate picks addresses from the block, lowest first, skipping everything
// in use or reserved.
func Allocate(b Block, u *Usage, reserved []Range, req Request) (Result, error) {
	avail := free(b, u, reserved)
	var res Result
	if req.PinnedVIP != "" {
		pin, err := netip.ParseAddr(req.PinnedVIP)
		if err != nil {
			return res, fmt.Errorf("%w: %q is not an IPv4 address", ErrPinnedUnavailable, req.PinnedVIP)
		}
		if !b.isUsable(pin) {
			return res, fmt.Errorf("%w: %s is not a usable address of block %s", ErrPinnedUnavailable, pin, b)
		}
		if who, t := taken(u, reserved, pin); t {
			return res, fmt.Errorf("%w: %s is already used by %s", ErrPinnedUnavailable, pin, who)
		}
		res.VIP = pin
		avail.Remove(pin)
	}
	need := req.Appliance
	if !res.VIP.IsValid() {
		need++
	}
	// Only the addresses handed out are listed: a /16 assign range is
	// enumerated only to count it for the error.
	got := list(avail, need)
	if len(got) < need {
		usable := len(b.Usable())
		return Result{}, &ExhaustedError{Block: b, Usable: usable, InUse: usable - len(got), Need: need - len(got)}
	}
	if !res.VIP.IsValid() {
		res.VIP, got = got[0], got[1:]
	}
	res.Appliance = got
	return res, nil
}

// CheckVIP validates a new address for an existing appliance (a pinned VIP
// changed) against the block and usage. Whoever holds it, the appliance
// itself included, makes it unavailable: a shared appliance holds the other
// members' VIPs, and a VIP differs from the appliance's own addresses.
func CheckVIP(b Block, u *Usage, reserved []Range, vip string) error {
	a, err := netip.ParseAddr(vip)
	if err != nil {
		return fmt.Errorf("%w: %q is not an IPv4 address", ErrPinnedUnavailable, vip)
	}
	if !b.isUsable(a) {
		return fmt.Errorf("%w: %s is not a usable address of block %s", ErrPinnedUnavailable, a, b)
	}
	if who, ok := u.IPs[a]; ok {
		return fmt.Errorf("%w: %s is already used by %s", ErrPinnedUnavailable, a, who)
	}
	for _, r := range reserved {
		if r.Contains(a) {
			return fmt.Errorf("%w: %s is in the operator's reserved ranges", ErrPinnedUnavailable, a)
		}
	}
	return nil
}

// PickVRID returns the lowest VRID nobody on the switch uses.
func PickVRID(u *Usage) (int, error) {
	for v := 1; v <= MaxVRID; v++ {
		if _, ok := u.VRIDs[v]; !ok {
			return v, nil
		}
	}
	return 0, fmt.Errorf("every VRID 1-%d is in use on the switch", MaxVRID)
}

// Reservation is what an in-flight create holds.
type Reservation struct {
	SwitchID types.ID
	IPs      []netip.Addr
	VRID     int
	// ApplianceID is the appliance created with these addresses (0: none yet).
	ApplianceID types.ID
	// At is when the reservation was made.
	At time.Time
	// Uncertain marks the addresses of a create that failed in a way that
	// may hide a new appliance (a 5xx or lost answer): held until the
	// appliance shows or the visibility grace has passed.
	Uncertain bool
	// Grace, when set, is how long this uncertain create is waited for
	// (shorter than the visibility grace for answers that come before the
	// API did anything).
	Grace time.Duration
}

// Reservations are the addresses of creates and writes in flight, by
// owner, until an inventory shows them. It is a plain value: the caller
// keeps it (the engine's memory, under its lock) and serializes the
// inventory, the choice and the write per switch.
type Reservations map[string]Reservation

// Merge adds still-invisible reservations on switchID to u, and drops those
// the inventory already shows. A reservation made for an appliance is
// visible once that appliance is listed (u.Appliances) with every address
// the reservation holds: a sharing-key reservation holds none and must stay
// until the appliance is listed, or a second member would create a second
// appliance; a join's new VIP must stay until a listing shows it. One
// without an appliance (a pinned VIP being written) is visible once all its
// addresses are.
//
// A reservation older than maxAge at now (the visibility grace, > 0) is
// dropped too: an appliance made by then is listed, and its addresses come
// from the listing. Without this, the addresses of a create whose answer
// was lost would stay held for good when its Service is deleted before any
// sync looks again (nothing else releases them).
func (rs Reservations) Merge(u *Usage, switchID types.ID, now time.Time, maxAge time.Duration) {
	for owner, r := range rs {
		if r.SwitchID != switchID {
			continue
		}
		if r.visibleIn(u) || (maxAge > 0 && now.Sub(r.At) > maxAge) {
			delete(rs, owner)
			continue
		}
		for _, ip := range r.IPs {
			u.AddIP(ip.String(), "a load balancer being created for "+owner)
		}
		u.AddVRID(r.VRID, "a load balancer being created for "+owner)
	}
}

// On is a copy of the reservations on switchID.
func (rs Reservations) On(switchID types.ID) Reservations {
	out := Reservations{}
	for owner, r := range rs {
		if r.SwitchID == switchID {
			out[owner] = r
		}
	}
	return out
}

// Hold adds to u what the reservations on switchID younger than maxAge at
// now hold, whatever u shows: a copy taken before the inventory's listing
// was fetched holds what creates had taken by then, and one of them may
// have been released since (a newer listing showed its appliance) while
// the inventory's listing is older than that one and does not show it
// (TestBlocksAcrossZonesUnderConcurrency found the address given twice).
func (rs Reservations) Hold(u *Usage, switchID types.ID, now time.Time, maxAge time.Duration) {
	for owner, r := range rs {
		if r.SwitchID != switchID || (maxAge > 0 && now.Sub(r.At) > maxAge) {
			continue
		}
		for _, ip := range r.IPs {
			u.AddIP(ip.String(), "a load balancer being created for "+owner)
		}
		u.AddVRID(r.VRID, "a load balancer being created for "+owner)
	}
}

// visibleIn: the inventory shows everything r holds. An appliance listed
// without r's addresses is not enough: a member joining a shared appliance
// reserves its new VIP under the appliance's ID, and a listing made before
// that VIP was written shows the appliance but not the VIP; dropping the
// reservation then would hand the VIP to the next allocation (issue #18,
// defect 1).
func (r Reservation) visibleIn(u *Usage) bool {
	if !r.ApplianceID.IsEmpty() && !u.Appliances[r.ApplianceID] {
		return false
	}
	if len(r.IPs) == 0 {
		return !r.ApplianceID.IsEmpty()
	}
	for _, ip := range r.IPs {
		if _, ok := u.IPs[ip]; !ok {
			return false
		}
	}
	return true
}
