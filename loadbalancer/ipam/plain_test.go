package ipam

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/sacloud/iaas-api-go"
)

func plainSwitch() *iaas.Switch { return &iaas.Switch{ID: 7, Name: "private"} }

func mustPlain(t *testing.T, network, assign, gw string) Block {
	t.Helper()
	var g netip.Addr
	if gw != "" {
		g = netip.MustParseAddr(gw)
	}
	b, err := PlainBlock(plainSwitch(), netip.MustParsePrefix(network), netip.MustParsePrefix(assign), g)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// On a plain switch only network, broadcast and the gateway (if any) are
// reserved; the search stays inside the assign range.
func TestPlainBlockUsable(t *testing.T) {
	cases := []struct {
		name, network, assign, gw string
		first, last               string
		count                     int
	}{
		{"whole /28, no gateway", "192.168.0.0/28", "192.168.0.0/28", "", "192.168.0.1", "192.168.0.14", 14},
		{"whole /28 with gateway", "192.168.0.0/28", "192.168.0.0/28", "192.168.0.1", "192.168.0.2", "192.168.0.14", 13},
		{"gateway inside assign", "192.168.0.0/24", "192.168.0.0/29", "192.168.0.3", "192.168.0.1", "192.168.0.7", 6},
		{"assign at the top: broadcast excluded", "192.168.0.0/24", "192.168.0.248/29", "192.168.0.1", "192.168.0.248", "192.168.0.254", 7},
		{"assign in the middle", "10.0.0.0/16", "10.0.5.0/30", "", "10.0.5.0", "10.0.5.3", 4},
		{"big network, /16 assign stays cheap", "10.0.0.0/8", "10.20.0.0/16", "10.0.0.1", "10.20.0.0", "10.20.255.255", 65536},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := mustPlain(t, c.network, c.assign, c.gw)
			u := b.Usable()
			if len(u) != c.count || u[0].String() != c.first || u[len(u)-1].String() != c.last {
				t.Fatalf("usable: %d addresses %s..%s, want %d %s..%s", len(u), u[0], u[len(u)-1], c.count, c.first, c.last)
			}
		})
	}
}

func TestPlainBlockRefusals(t *testing.T) {
	routed := &iaas.Switch{ID: 8, Subnets: []*iaas.SwitchSubnet{{NetworkAddress: "203.0.113.0", NetworkMaskLen: 28}}}
	_, err := PlainBlock(routed, netip.MustParsePrefix("203.0.113.0/28"), netip.MustParsePrefix("203.0.113.0/28"), netip.Addr{})
	if !errors.Is(err, ErrHasRouter) {
		t.Fatalf("router+switch accepted as plain: %v", err)
	}
	bad := []struct{ network, assign, gw, want string }{
		{"192.168.0.0/24", "192.168.1.0/25", "", "not inside"},
		{"192.168.0.0/24", "192.168.0.0/23", "", "not inside"},
		{"192.168.0.0/24", "192.168.0.0/25", "192.168.1.1", "gateway"},
		{"10.0.0.0/8", "10.0.0.0/15", "", "larger than /16"},
		{"192.168.0.0/31", "192.168.0.0/31", "", "not a usable"},
	}
	for _, c := range bad {
		var g netip.Addr
		if c.gw != "" {
			g = netip.MustParseAddr(c.gw)
		}
		_, err := PlainBlock(plainSwitch(), netip.MustParsePrefix(c.network), netip.MustParsePrefix(c.assign), g)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err %v, want %q", c, err, c.want)
		}
	}
}

// The same search as for router+switch blocks: every consumer on the
// switch, reserved ranges, HA pairs, pinned VIPs, all limited to the
// assign range.
func TestPlainAllocate(t *testing.T) {
	b := mustPlain(t, "192.168.0.0/24", "192.168.0.248/29", "192.168.0.249")
	u := NewUsage()
	u.AddIP("192.168.0.248", "server node-1")
	u.AddIP("192.168.0.10", "server node-2") // outside the assign range: irrelevant
	reserved, _ := ParseRanges([]string{"192.168.0.250"})

	r, err := Allocate(b, u, reserved, Request{Appliance: 2})
	if err != nil {
		t.Fatal(err)
	}
	if r.VIP.String() != "192.168.0.251" || r.Appliance[0].String() != "192.168.0.252" || r.Appliance[1].String() != "192.168.0.253" {
		t.Fatalf("got %v %v", r.VIP, r.Appliance)
	}
	// Pinned VIPs must be usable addresses of the assign range.
	for _, pin := range []string{"192.168.0.10", "192.168.0.249", "192.168.0.255", "192.168.0.248"} {
		if _, err := Allocate(b, u, reserved, Request{PinnedVIP: pin, Appliance: 1}); !errors.Is(err, ErrPinnedUnavailable) {
			t.Errorf("pinned %s accepted: %v", pin, err)
		}
	}
	if r, err := Allocate(b, u, reserved, Request{PinnedVIP: "192.168.0.254", Appliance: 1}); err != nil || r.Appliance[0].String() != "192.168.0.251" {
		t.Fatalf("pinned in range: %v %v", r, err)
	}
	// 4 free (251-254): VIP + HA pair fits, a fifth address does not.
	u.AddIP("192.168.0.251", "load balancer x")
	u.AddIP("192.168.0.252", "load balancer x")
	_, err = Allocate(b, u, reserved, Request{Appliance: 2})
	var ex *ExhaustedError
	if !errors.As(err, &ex) || !strings.Contains(err.Error(), "assign-ip-range") || !strings.Contains(err.Error(), "plain switch") {
		t.Fatalf("exhaustion: %v", err)
	}
}
