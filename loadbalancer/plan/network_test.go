package plan

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/sacloud/iaas-api-go"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/annotations"
)

func TestNetworkDrift(t *testing.T) {
	private := func(network, assign, gw string) annotations.Options {
		o := annotations.Options{Type: annotations.TypeSwitch}
		o.Private.Network = netip.MustParsePrefix(network)
		o.Private.Assign = netip.MustParsePrefix(assign)
		if gw != "" {
			o.Private.Gateway = netip.MustParseAddr(gw)
		}
		return o
	}
	lb := &iaas.LoadBalancer{IPAddresses: []string{"192.168.0.200"}, NetworkMaskLen: 24, DefaultRoute: "192.168.0.1"}
	net24 := netip.MustParsePrefix("192.168.0.200/24")
	cases := []struct {
		name     string
		haveType string
		opts     annotations.Options
		want     []Drift
	}{
		{"same", annotations.TypeSwitch, private("192.168.0.0/24", "192.168.0.192/27", "192.168.0.1"), nil},
		{"internet to switch", annotations.TypeInternet, private("192.168.0.0/24", "192.168.0.192/27", ""), []Drift{{"type", "internet", "switch"}}},
		{"switch to internet", annotations.TypeSwitch, annotations.Options{Type: annotations.TypeInternet}, []Drift{{"type", "switch", "internet"}}},
		{"internet stays", annotations.TypeInternet, annotations.Options{Type: annotations.TypeInternet}, nil},
		{"mask", annotations.TypeSwitch, private("192.168.0.0/23", "192.168.0.192/27", "192.168.0.1"), []Drift{{"ip-range", "192.168.0.0/24", "192.168.0.0/23"}}},
		{"gateway removed", annotations.TypeSwitch, private("192.168.0.0/24", "192.168.0.192/27", ""), []Drift{{"assign-default-gateway", "192.168.0.1", "(none)"}}},
		{"assign moved", annotations.TypeSwitch, private("192.168.0.0/24", "192.168.0.0/27", "192.168.0.1"),
			[]Drift{{"assign-ip-range", "appliance addresses 192.168.0.200", "addresses inside 192.168.0.0/27"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := NetworkDrift(c.haveType, lb, net24, c.opts); !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
}

// A zone the Service names differs from the appliance's: drift; no zone
// named (the block decides) or the same zone: none.
func TestZoneDrift(t *testing.T) {
	for _, tc := range []struct {
		have, want string
		drift      string
	}{
		{"is1a", "", ""},
		{"is1a", "is1a", ""},
		{"is1b", "is1a", "zone is is1b, wanted is1a"},
	} {
		got := ZoneDrift(tc.have, tc.want)
		text := ""
		if len(got) == 1 {
			text = got[0].String()
		}
		if len(got) > 1 || text != tc.drift {
			t.Errorf("ZoneDrift(%q, %q) = %v, want %q", tc.have, tc.want, got, tc.drift)
		}
	}
}
