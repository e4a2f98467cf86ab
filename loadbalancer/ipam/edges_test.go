package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// The block's own addresses never come out of the search, even when the
// API's assign range covers them.
func TestUsableSkipsTheBlocksOwnAddresses(t *testing.T) {
	sw := sw28()
	sw.Subnets[0].AssignedIPAddressMin = "192.0.2.16"
	sw.Subnets[0].AssignedIPAddressMax = "192.0.2.31"
	b := mustBlock(t, sw)
	got := fmt.Sprint(b.Reserved())
	if want := "[192.0.2.16 192.0.2.17 192.0.2.18 192.0.2.19 192.0.2.31]"; got != want {
		t.Fatalf("reserved %s, want %s", got, want)
	}
	u := b.Usable()
	if len(u) != 11 || u[0].String() != "192.0.2.20" || u[len(u)-1].String() != "192.0.2.30" {
		t.Fatalf("usable %v", u)
	}
	for _, a := range b.Reserved() {
		if err := CheckVIP(b, NewUsage(), nil, a.String()); !errors.Is(err, ErrPinnedUnavailable) {
			t.Errorf("reserved %s accepted as a VIP: %v", a, err)
		}
	}
}

// Assign ranges of two and one address on a plain switch: the network's
// broadcast, network address and gateway stay out even then.
func TestPlainTinyAssignRanges(t *testing.T) {
	cases := []struct {
		assign, gw string
		want       string
	}{
		{"192.168.0.4/31", "", "[192.168.0.4 192.168.0.5]"},
		{"192.168.0.4/31", "192.168.0.5", "[192.168.0.4]"},
		{"192.168.0.254/31", "", "[192.168.0.254]"}, // .255 is the broadcast
		{"192.168.0.0/31", "", "[192.168.0.1]"},     // .0 is the network
		{"192.168.0.9/32", "", "[192.168.0.9]"},
		{"192.168.0.9/32", "192.168.0.9", "[]"},
		{"192.168.0.255/32", "", "[]"},
	}
	for _, c := range cases {
		b := mustPlain(t, "192.168.0.0/24", c.assign, c.gw)
		if got := fmt.Sprint(b.Usable()); got != c.want {
			t.Errorf("assign %s gateway %q: usable %s, want %s", c.assign, c.gw, got, c.want)
		}
	}
	b := mustPlain(t, "192.168.0.0/24", "192.168.0.255/32", "")
	var ex *ExhaustedError
	if _, err := Allocate(b, NewUsage(), nil, Request{Appliance: 1}); !errors.As(err, &ex) || ex.Usable != 0 || ex.Need != 2 {
		t.Fatalf("empty assign range: %v", err)
	}
}

// Reserved ranges may start or end outside the block, or cover it whole.
func TestReservedRangesAcrossTheBlock(t *testing.T) {
	b := mustBlock(t, sw28()) // usable .20-.30
	cases := []struct {
		ranges []string
		free   string
	}{
		{[]string{"192.0.2.0-192.0.2.21"}, "192.0.2.22"},
		{[]string{"192.0.2.29-192.0.2.40"}, "192.0.2.20"},
		{[]string{"192.0.2.0/24"}, ""},
		{[]string{"192.0.2.20/30", "192.0.2.24"}, "192.0.2.25"},
		{[]string{"198.51.100.0/24"}, "192.0.2.20"},
	}
	for _, c := range cases {
		reserved, err := ParseRanges(c.ranges)
		if err != nil {
			t.Fatal(err)
		}
		f := Free(b, NewUsage(), reserved)
		got := ""
		if len(f) > 0 {
			got = f[0].String()
		}
		if got != c.free {
			t.Errorf("reserved %v: first free %q, want %q", c.ranges, got, c.free)
		}
	}
	reserved, _ := ParseRanges([]string{"192.0.2.0/24"})
	var ex *ExhaustedError
	if _, err := Allocate(b, NewUsage(), reserved, Request{Appliance: 1}); !errors.As(err, &ex) || ex.Usable != 11 || ex.InUse != 11 || ex.Need != 2 {
		t.Fatalf("a reserved range over the block: %v", err)
	}
}

// A range from an IPv4 to an IPv6 address is refused: compared naively it
// would reserve every IPv4 address above its start.
func TestParseRangesRefusesMixedFamilies(t *testing.T) {
	if r, err := ParseRanges([]string{"192.0.2.1-2001:db8::1"}); err == nil {
		t.Fatalf("accepted %v", r)
	}
	if (Range{}).Contains(netip.MustParseAddr("192.0.2.1")) {
		t.Fatal("the zero Range holds an address")
	}
}

// A big assign range with many consumers stays quick: the allocation lists
// only what it hands out.
func TestAllocateOnABusySlash16(t *testing.T) {
	b := mustPlain(t, "10.0.0.0/8", "10.20.0.0/16", "10.0.0.1")
	u := NewUsage()
	for i := 0; i < 60000; i++ {
		u.IPs[netip.AddrFrom4([4]byte{10, 20, byte(i >> 8), byte(i)})] = "server"
	}
	r, err := Allocate(b, u, nil, Request{Appliance: 2})
	if err != nil {
		t.Fatal(err)
	}
	if r.VIP.String() != "10.20.234.96" || fmt.Sprint(r.Appliance) != "[10.20.234.97 10.20.234.98]" {
		t.Fatalf("got %s %v", r.VIP, r.Appliance)
	}
}

// The visibility grace is measured against the time Merge is given: a
// reservation exactly as old as the grace is held, one a nanosecond older
// is dropped.
func TestReservationsGraceEdge(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := Reservations{"lost-answer": {SwitchID: 5, IPs: addrs("192.0.2.30"), Uncertain: true, At: at}}
	a.Merge(NewUsage(), 5, at.Add(time.Hour), time.Hour)
	if len(a) != 1 {
		t.Fatal("a reservation exactly as old as the grace was dropped")
	}
	u := NewUsage()
	a.Merge(u, 5, at.Add(time.Hour+time.Nanosecond), time.Hour)
	if _, ok := u.IPs[netip.MustParseAddr("192.0.2.30")]; ok || len(a) != 0 {
		t.Fatalf("a reservation past the grace still holds its address (pending %d)", len(a))
	}
}
