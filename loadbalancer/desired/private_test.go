package desired

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/sacloud/iaas-api-go/types"
	v1 "k8s.io/api/core/v1"
)

// On a plain switch SAKURA often knows no NIC address: the Node's
// InternalIP inside the network stands in; addresses outside it are refused.
func TestSelectBackendsOnNetwork(t *testing.T) {
	const sw types.ID = 50
	network := netip.MustParsePrefix("192.168.0.0/24")
	servers := []Server{
		{ID: 1, Name: "known", IPs: map[types.ID]string{sw: "192.168.0.11"}},
		{ID: 2, Name: "unknown", IPs: map[types.ID]string{sw: ""}},
		{ID: 3, Name: "elsewhere", IPs: map[types.ID]string{99: "10.0.0.3"}},
		{ID: 4, Name: "outside", IPs: map[types.ID]string{sw: "192.168.9.4"}},
		{ID: 5, Name: "noip", IPs: map[types.ID]string{sw: ""}},
	}
	withIP := func(name string, ips ...string) *v1.Node {
		n := nodeNamed(name, "", nil)
		for _, ip := range ips {
			n.Status.Addresses = append(n.Status.Addresses, v1.NodeAddress{Type: v1.NodeInternalIP, Address: ip})
		}
		return n
	}
	nodes := []*v1.Node{
		withIP("known"), withIP("unknown", "10.9.9.9", "192.168.0.12"), withIP("elsewhere", "192.168.0.13"),
		withIP("outside"), withIP("noip", "172.16.0.1"),
	}
	got := SelectBackendsOn(nodes, servers, sw, network)
	want := []Backend{{"known", "192.168.0.11"}, {"unknown", "192.168.0.12"}}
	if !reflect.DeepEqual(got.Selected, want) || !reflect.DeepEqual(got.NotOnSwitch, []string{"elsewhere"}) ||
		!reflect.DeepEqual(got.OutsideNetwork, []string{"noip", "outside"}) {
		t.Fatalf("got %+v", got)
	}
	// Without a network (router+switch) an unknown address is "not on the switch", as before.
	if b := SelectBackends(nodes, servers, sw); len(b.Selected) != 2 || !reflect.DeepEqual(b.NotOnSwitch, []string{"elsewhere", "noip", "unknown"}) {
		t.Fatalf("router+switch selection changed: %+v", b)
	}
	if c := NodeNICSwitches(nodes, servers); c[sw] != 4 || c[99] != 1 {
		t.Fatalf("NIC counts %v", c)
	}
	if c := NodeSwitches(nodes, servers); c[sw] != 2 || c[99] != 1 {
		t.Fatalf("address counts %v", c)
	}
	// A switch SAKURA shows as plain is no router+switch candidate: it is
	// not counted (so not read) when a block is chosen, and NIC counts for
	// plain-switch load balancers still see it.
	servers[2].Plain = map[types.ID]bool{99: true}
	if c := NodeSwitches(nodes, servers); c[sw] != 2 || c[99] != 0 {
		t.Fatalf("address counts with 99 shown as plain: %v", c)
	}
	if c := NodeNICSwitches(nodes, servers); c[99] != 1 {
		t.Fatalf("NIC counts with 99 shown as plain: %v", c)
	}
	if a := NodeAddressesIn(nodes, network); len(a) != 2 || a["192.168.0.12"] != "node unknown" {
		t.Fatalf("node addresses %v", a)
	}
}
