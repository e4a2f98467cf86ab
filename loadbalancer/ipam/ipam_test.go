package ipam

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/types"
)

func sw28() *iaas.Switch {
	return &iaas.Switch{ID: 5, Subnets: []*iaas.SwitchSubnet{{
		NetworkAddress: "192.0.2.16", NetworkMaskLen: 28, DefaultRoute: "192.0.2.17",
		AssignedIPAddressMin: "192.0.2.20", AssignedIPAddressMax: "192.0.2.30", Internet: &iaas.Internet{ID: 9},
	}}}
}

func mustBlock(t *testing.T, sw *iaas.Switch) Block {
	t.Helper()
	b, err := BlockFromSwitch(sw)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func TestBlockUsable(t *testing.T) {
	cases := []struct {
		mask  int
		count int
	}{{28, 11}, {27, 27}, {26, 59}, {25, 123}, {24, 251}}
	for _, c := range cases {
		sw := &iaas.Switch{ID: 1, Subnets: []*iaas.SwitchSubnet{{NetworkAddress: "198.51.100.0", NetworkMaskLen: c.mask, DefaultRoute: "198.51.100.1"}}}
		b := mustBlock(t, sw)
		if got := len(b.Usable()); got != c.count {
			t.Errorf("/%d: %d usable, want %d (manual)", c.mask, got, c.count)
		}
	}
	b := mustBlock(t, sw28())
	u := b.Usable()
	if u[0].String() != "192.0.2.20" || u[len(u)-1].String() != "192.0.2.30" || b.RouterID != 9 {
		t.Fatalf("usable %v router %s", u, b.RouterID)
	}
	// Min == Max (one address) must not loop and must yield that address.
	one := sw28()
	one.Subnets[0].AssignedIPAddressMax = "192.0.2.20"
	if u := mustBlock(t, one).Usable(); len(u) != 1 || u[0].String() != "192.0.2.20" {
		t.Fatalf("min==max: %v", u)
	}
	if _, err := BlockFromSwitch(&iaas.Switch{ID: 3}); err == nil {
		t.Fatal("plain switch accepted as a block")
	}
}

func TestAllocate(t *testing.T) {
	b := mustBlock(t, sw28())
	reserved, err := ParseRanges([]string{"192.0.2.26-192.0.2.27", "192.0.2.28/31"})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		used    []string
		req     Request
		vip     string
		app     string
		errIs   error
		errText string
	}{
		{name: "lowest free", req: Request{Appliance: 1}, vip: "192.0.2.20", app: "192.0.2.21"},
		{name: "ha takes two", req: Request{Appliance: 2}, vip: "192.0.2.20", app: "192.0.2.21,192.0.2.22"},
		{name: "skips used", used: []string{"192.0.2.20", "192.0.2.22"}, req: Request{Appliance: 1}, vip: "192.0.2.21", app: "192.0.2.23"},
		{name: "pinned", req: Request{PinnedVIP: "192.0.2.25", Appliance: 1}, vip: "192.0.2.25", app: "192.0.2.20"},
		{name: "pinned used", used: []string{"192.0.2.25"}, req: Request{PinnedVIP: "192.0.2.25", Appliance: 1}, errIs: ErrPinnedUnavailable, errText: "already used by x"},
		{name: "pinned reserved range", req: Request{PinnedVIP: "192.0.2.26", Appliance: 1}, errIs: ErrPinnedUnavailable, errText: "reserved"},
		{name: "pinned gateway", req: Request{PinnedVIP: "192.0.2.17", Appliance: 1}, errIs: ErrPinnedUnavailable, errText: "not a usable address"},
		{name: "pinned outside", req: Request{PinnedVIP: "10.0.0.1", Appliance: 1}, errIs: ErrPinnedUnavailable},
		{name: "exhausted", used: []string{"192.0.2.20", "192.0.2.21", "192.0.2.22", "192.0.2.23", "192.0.2.24", "192.0.2.25"}, req: Request{Appliance: 1},
			errText: "11 usable addresses, 10 in use or reserved, 1 more needed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			u := NewUsage()
			for _, ip := range c.used {
				u.AddIP(ip, "x")
			}
			res, err := Allocate(b, u, reserved, c.req)
			if c.errIs != nil || c.errText != "" {
				if err == nil || (c.errIs != nil && !errors.Is(err, c.errIs)) || !strings.Contains(err.Error(), c.errText) {
					t.Fatalf("err %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var app []string
			for _, a := range res.Appliance {
				app = append(app, a.String())
			}
			if res.VIP.String() != c.vip || strings.Join(app, ",") != c.app {
				t.Fatalf("vip %s app %v", res.VIP, app)
			}
		})
	}
	var ex *ExhaustedError
	u := NewUsage()
	for _, a := range b.Usable() {
		u.AddIP(a.String(), "x")
	}
	if _, err := Allocate(b, u, nil, Request{Appliance: 1}); !errors.As(err, &ex) || ex.Usable != 11 || ex.InUse != 11 {
		t.Fatalf("exhausted: %v", err)
	}
}

func TestCheckVIP(t *testing.T) {
	b := mustBlock(t, sw28())
	u := NewUsage()
	u.AddIP("192.0.2.20", "load balancer shared (77)")
	for _, c := range []struct {
		vip string
		ok  bool
	}{
		{"192.0.2.21", true},
		// Held by the very appliance the VIP is for (another member's VIP
		// on a shared one): refused all the same (issue #18, defect 2).
		{"192.0.2.20", false},
		{"192.0.2.1", false}, // the gateway
		{"not-an-ip", false},
	} {
		err := CheckVIP(b, u, nil, c.vip)
		if (err == nil) != c.ok || (err != nil && !errors.Is(err, ErrPinnedUnavailable)) {
			t.Errorf("CheckVIP(%s) = %v, want ok=%v", c.vip, err, c.ok)
		}
	}
}

func TestParseRanges(t *testing.T) {
	r, err := ParseRanges([]string{"192.0.2.1", " 192.0.2.5 - 192.0.2.7 ", "192.0.2.64/30", ""})
	if err != nil || len(r) != 3 {
		t.Fatalf("%v %v", r, err)
	}
	if !r[1].Contains(netip.MustParseAddr("192.0.2.6")) || !r[2].Contains(netip.MustParseAddr("192.0.2.67")) || r[2].Contains(netip.MustParseAddr("192.0.2.68")) {
		t.Fatalf("ranges wrong: %v", r)
	}
	for _, bad := range []string{"192.0.2.9-192.0.2.1", "nope", "1.2.3.4-x"} {
		if _, err := ParseRanges([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestPickVRID(t *testing.T) {
	u := NewUsage()
	u.AddVRID(1, "vpc router")
	u.AddVRID(2, "foreign lb")
	u.AddVRID(4, "x")
	if v, _ := PickVRID(u); v != 3 {
		t.Fatalf("vrid %d", v)
	}
	for i := 1; i <= MaxVRID; i++ {
		u.AddVRID(i, "x")
	}
	if _, err := PickVRID(u); err == nil {
		t.Fatal("no error when all VRIDs are taken")
	}
}

func TestReservationsReservationsUntilVisible(t *testing.T) {
	a := Reservations{}
	a["svc-a"] = Reservation{At: t0, SwitchID: 5, IPs: addrs("192.0.2.20", "192.0.2.21"), VRID: 3}
	a["svc-b"] = Reservation{At: t0, SwitchID: 6, IPs: addrs("192.0.2.22")}
	u := NewUsage()
	a.Merge(u, 5, t0, time.Hour)
	if _, ok := u.IPs[netip.MustParseAddr("192.0.2.20")]; !ok || u.VRIDs[3] == "" || len(a) != 2 {
		t.Fatalf("in-flight reservation not applied: %v %v", u.IPs, u.VRIDs)
	}
	if _, ok := u.IPs[netip.MustParseAddr("192.0.2.22")]; ok {
		t.Fatal("other switch's reservation leaked")
	}
	// Once the inventory shows the appliance, the reservation is dropped.
	seen := NewUsage()
	seen.AddIP("192.0.2.20", "lb")
	seen.AddIP("192.0.2.21", "lb")
	a.Merge(seen, 5, t0, time.Hour) // no appliance ID: visible by its addresses
	if len(a) != 1 {
		t.Fatalf("pending %d", len(a))
	}
	delete(a, "svc-b")
	if len(a) != 0 {
		t.Fatal("release failed")
	}
}

// TestReservationsKeepsReservationsWithoutAddresses: a sharing-key reservation
// holds no address, only the appliance being created. It must stay until
// that appliance is listed, or a second member of the key, finding neither
// the appliance nor the reservation, creates a second shared appliance.
func TestReservationsKeepsReservationsWithoutAddresses(t *testing.T) {
	a := Reservations{}
	a["share/k"] = Reservation{At: t0, SwitchID: 5, ApplianceID: 77}
	a["svc-a"] = Reservation{At: t0, SwitchID: 5, IPs: addrs("192.0.2.20"), ApplianceID: 78}
	a.Merge(NewUsage(), 5, t0, time.Hour)
	if _, ok := a["share/k"]; !ok {
		t.Fatal("a reservation without addresses was dropped before its appliance was listed")
	}
	// The addresses show (another consumer took them?) but the appliance is
	// not listed yet: still in flight.
	u := NewUsage()
	u.AddIP("192.0.2.20", "someone")
	a.Merge(u, 5, t0, time.Hour)
	if _, ok := a["svc-a"]; !ok {
		t.Fatal("a reservation was dropped although its appliance is not listed")
	}
	listed := NewUsage()
	listed.Appliances[77] = true
	listed.Appliances[78] = true
	listed.AddIP("192.0.2.20", "lb 78")
	a.Merge(listed, 5, t0, time.Hour)
	if len(a) != 0 {
		t.Fatalf("%d reservations left after their appliances were listed", len(a))
	}
}

// A reservation past the visibility grace is dropped even when nothing shows
// it: the create whose answer was lost made nothing (or what it made is
// listed by now), and its Service may be gone, so nothing else would
// release the addresses.
func TestReservationsDropsReservationsPastTheGrace(t *testing.T) {
	a := Reservations{}
	a["lost-answer"] = Reservation{At: t0, SwitchID: 5, IPs: addrs("192.0.2.30"), VRID: 9, Uncertain: true}
	u := NewUsage()
	a.Merge(u, 5, t0, time.Hour)
	if _, ok := u.IPs[netip.MustParseAddr("192.0.2.30")]; !ok || len(a) != 1 {
		t.Fatal("a young uncertain reservation was not held")
	}
	u = NewUsage()
	a.Merge(u, 5, t0.Add(5*time.Millisecond), time.Millisecond)
	if _, ok := u.IPs[netip.MustParseAddr("192.0.2.30")]; ok || len(a) != 0 {
		t.Fatalf("a reservation past the grace still holds its address (pending %d)", len(a))
	}
}

// TestReservationsKeepsAJoinersVIPUntilListed is issue #18's defect 1: B joins
// shared appliance 77 with VIP .40 and reserves it under 77; a listing made
// before B's write shows 77 without .40. The reservation must hold .40 until
// a listing shows it, or the next allocation hands .40 out again.
func TestReservationsKeepsAJoinersVIPUntilListed(t *testing.T) {
	steps := []struct {
		name     string
		listed   []types.ID
		ips      []string
		wantHeld bool
	}{
		{"nothing listed yet", nil, nil, true},
		{"appliance listed, VIP not yet written", []types.ID{77}, []string{"192.0.2.10"}, true},
		{"VIP shows, appliance not listed", nil, []string{"192.0.2.40"}, true},
		{"appliance listed with the VIP", []types.ID{77}, []string{"192.0.2.10", "192.0.2.40"}, false},
	}
	a := Reservations{}
	a["svc-b"] = Reservation{At: t0, SwitchID: 5, IPs: addrs("192.0.2.40"), ApplianceID: 77}
	for _, st := range steps {
		u := NewUsage()
		for _, id := range st.listed {
			u.Appliances[id] = true
		}
		for _, ip := range st.ips {
			u.AddIP(ip, "lb 77")
		}
		a.Merge(u, 5, t0, time.Hour)
		_, held := a["svc-b"]
		if held != st.wantHeld {
			t.Fatalf("%s: reservation held %v, want %v", st.name, held, st.wantHeld)
		}
		if _, used := u.IPs[netip.MustParseAddr("192.0.2.40")]; !used {
			t.Fatalf("%s: the joiner's VIP is free for the next allocation", st.name)
		}
	}
}

// t0 dates the reservations of the tests above.
var t0 = time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)

// TestHeldReservationsOutliveARelease is the race the seeded test
// TestBlocksAcrossZonesUnderConcurrency found (seed 3): an allocation
// fetches a listing; the Service whose create it lacks then sees a newer
// listing show its appliance and releases its reservation; the allocation
// merges the reservations after that release and, with neither the
// listing nor a reservation holding the address, hands it out again. The
// copy taken before the listing keeps holding it.
func TestHeldReservationsOutliveARelease(t *testing.T) {
	rs := Reservations{
		"svc-made":  {At: t0, SwitchID: 5, IPs: addrs("192.0.2.20", "192.0.2.21"), VRID: 4, ApplianceID: 23},
		"svc-other": {At: t0, SwitchID: 6, IPs: addrs("192.0.2.40"), VRID: 9},
		"svc-stale": {At: t0.Add(-2 * time.Hour), SwitchID: 5, IPs: addrs("192.0.2.30"), VRID: 7},
	}
	held := rs.On(5)
	delete(rs, "svc-made") // released: a newer listing showed appliance 23
	old := NewUsage()      // the allocation's listing, older than that one
	rs.Merge(old, 5, t0, time.Hour)
	if _, ok := old.IPs[netip.MustParseAddr("192.0.2.20")]; ok {
		t.Fatal("the released reservation is still merged: the race cannot show here")
	}
	held.Hold(old, 5, t0, time.Hour)
	for _, ip := range []string{"192.0.2.20", "192.0.2.21"} {
		if _, ok := old.IPs[netip.MustParseAddr(ip)]; !ok {
			t.Errorf("%s, held by a create released after the listing was fetched, is free", ip)
		}
	}
	if old.VRIDs[4] == "" {
		t.Error("VRID 4 of that create is free")
	}
	if _, ok := old.IPs[netip.MustParseAddr("192.0.2.40")]; ok {
		t.Error("another switch's reservation is held here")
	}
	if _, ok := old.IPs[netip.MustParseAddr("192.0.2.30")]; ok || old.VRIDs[7] != "" {
		t.Error("a reservation older than the visibility grace is held")
	}
}
