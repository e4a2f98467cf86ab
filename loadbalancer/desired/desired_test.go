package desired

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/sacloud/iaas-api-go/types"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/annotations"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func svc(ports ...v1.ServicePort) *v1.Service {
	return &v1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "u-1"}, Spec: v1.ServiceSpec{Ports: ports}}
}

func tcp(p int32) v1.ServicePort { return v1.ServicePort{Port: p, Protocol: v1.ProtocolTCP} }

func nodeNamed(name, providerID string, labels map[string]string) *v1.Node {
	return &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}, Spec: v1.NodeSpec{ProviderID: providerID}}
}

func TestCheckPorts(t *testing.T) {
	many := svc()
	for i := 0; i < MaxVIPEntries+1; i++ {
		many.Spec.Ports = append(many.Spec.Ports, tcp(int32(1000+i)))
	}
	cases := []struct {
		name string
		svc  *v1.Service
		is   error
		msg  string
	}{
		{"tcp ok", svc(tcp(80), tcp(443)), nil, ""},
		{"empty protocol is TCP", svc(v1.ServicePort{Port: 80}), nil, ""},
		{"udp", svc(tcp(80), v1.ServicePort{Name: "q", Port: 443, Protocol: v1.ProtocolUDP}), ErrUnsupportedProtocol, `"q" 443/UDP`},
		{"sctp", svc(v1.ServicePort{Port: 9, Protocol: v1.ProtocolSCTP}), ErrUnsupportedProtocol, "9/SCTP"},
		{"21 ports", many, ErrTooManyPorts, "21 ports"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := CheckPorts(c.svc)
			if c.is == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("got %v", err)
			}
		})
	}
}

func TestSelectBackends(t *testing.T) {
	const sw, other types.ID = 10, 20
	servers := []Server{
		{ID: 1, Name: "a", IPs: map[types.ID]string{sw: "192.0.2.11"}},
		{ID: 2, Name: "b", IPs: map[types.ID]string{sw: "192.0.2.12"}},
		{ID: 3, Name: "c", IPs: map[types.ID]string{other: "10.0.0.3"}},
		{ID: 4, Name: "dup", IPs: map[types.ID]string{sw: "192.0.2.14"}},
		{ID: 5, Name: "dup", IPs: map[types.ID]string{sw: "192.0.2.15"}},
		{ID: 6, Name: "renamed", IPs: map[types.ID]string{sw: "192.0.2.16"}},
		// Server 7 replaced server 70 (plan change): the node that still
		// names 70 is server 7, as the instances adapter says too.
		{ID: 7, Name: "upgraded", IPs: map[types.ID]string{sw: "192.0.2.17"}, PreviousIDs: []types.ID{70}},
		// A re-created server of a node's name is another machine.
		{ID: 8, Name: "recreated", IPs: map[types.ID]string{sw: "192.0.2.18"}},
	}
	nodes := []*v1.Node{
		nodeNamed("upgraded", "sakuracloud://is1a/70", nil),
		nodeNamed("recreated", "sakuracloud://is1a/80", nil),
		nodeNamed("b", "", nil),
		nodeNamed("a", "sakuracloud://is1a/1", nil),
		nodeNamed("c", "", nil),
		nodeNamed("dup", "", nil),
		nodeNamed("x", "sakuracloud://6", nil), // legacy providerID, name differs from server
		nodeNamed("gone", "", nil),
		nodeNamed("ex", "sakuracloud://is1a/2", map[string]string{ExcludeLabel: "true"}),
	}
	got := SelectBackends(nodes, servers, sw)
	want := Backends{
		Selected:    []Backend{{"a", "192.0.2.11"}, {"b", "192.0.2.12"}, {"upgraded", "192.0.2.17"}, {"x", "192.0.2.16"}},
		Excluded:    []string{"ex"},
		NotOnSwitch: []string{"c"},
		Unmatched:   []string{"dup", "gone", "recreated"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

// A load balancer in is1a on a switch bridged to one of is1b's switches:
// its real servers are the nodes on either switch (each by its address on
// the switch it sits on); a node of a zone the bridge does not reach is told
// apart from one whose zone is on the segment but which has no NIC on it.
func TestSelectBackendsAcrossABridge(t *testing.T) {
	const home, bridged, otherB, onlyC types.ID = 10, 20, 21, 30
	seg := Segment{Switches: []types.ID{home, bridged}, Zones: []string{"is1a", "is1b"}}
	servers := []Server{
		{ID: 1, Name: "a1", Zone: "is1a", IPs: map[types.ID]string{home: "192.168.0.11"}},
		{ID: 2, Name: "b1", Zone: "is1b", IPs: map[types.ID]string{bridged: "192.168.0.21"}},
		{ID: 3, Name: "b2", Zone: "is1b", IPs: map[types.ID]string{otherB: "10.1.0.2"}},
		{ID: 4, Name: "c1", Zone: "is1c", IPs: map[types.ID]string{onlyC: "10.2.0.1"}},
		// On both: the address on the first switch of the segment wins.
		{ID: 5, Name: "a2", Zone: "is1a", IPs: map[types.ID]string{bridged: "192.168.0.25", home: "192.168.0.15"}},
		// The same name in two zones: never a guess.
		{ID: 6, Name: "twin", Zone: "is1a", IPs: map[types.ID]string{home: "192.168.0.16"}},
		{ID: 7, Name: "twin", Zone: "is1b", IPs: map[types.ID]string{bridged: "192.168.0.27"}},
	}
	nodes := []*v1.Node{
		nodeNamed("a1", "sakuracloud://is1a/1", nil),
		nodeNamed("b1", "sakuracloud://is1b/2", nil),
		nodeNamed("b2", "sakuracloud://is1b/3", nil),
		nodeNamed("c1", "sakuracloud://is1c/4", nil),
		nodeNamed("a2", "", nil),
		nodeNamed("twin", "", nil),
	}
	network := netip.MustParsePrefix("192.168.0.0/24")
	for _, c := range []struct {
		name string
		seg  Segment
		want Backends
	}{
		{"bridged", seg, Backends{
			Selected:    []Backend{{"a1", "192.168.0.11"}, {"a2", "192.168.0.15"}, {"b1", "192.168.0.21"}},
			NotOnSwitch: []string{"b2"},
			OtherZone:   []string{"c1"},
			Unmatched:   []string{"twin"},
		}},
		{"the home switch alone, zones known", Segment{Switches: []types.ID{home}, Zones: []string{"is1a"}}, Backends{
			Selected:  []Backend{{"a1", "192.168.0.11"}, {"a2", "192.168.0.15"}},
			OtherZone: []string{"b1", "b2", "c1"},
			Unmatched: []string{"twin"},
		}},
		{"zones not known: every server off the switch is simply not on it", OneSwitch(home), Backends{
			Selected:    []Backend{{"a1", "192.168.0.11"}, {"a2", "192.168.0.15"}},
			NotOnSwitch: []string{"b1", "b2", "c1"},
			Unmatched:   []string{"twin"},
		}},
	} {
		if got := SelectBackendsIn(nodes, servers, c.seg, network); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s:\ngot  %+v\nwant %+v", c.name, got, c.want)
		}
	}
}

func TestSelectBackendsTruncatesDeterministically(t *testing.T) {
	var servers []Server
	var nodes []*v1.Node
	for i := 45; i > 0; i-- { // reverse order in: result must not depend on it
		name := "n" + string(rune('A'+i/26)) + string(rune('a'+i%26))
		servers = append(servers, Server{ID: types.ID(i), Name: name, IPs: map[types.ID]string{1: "192.0.2." + string(rune('0'+i%10))}})
		nodes = append(nodes, nodeNamed(name, "", nil))
	}
	b := SelectBackends(nodes, servers, 1)
	if len(b.Selected) != MaxRealServers || len(b.Truncated) != 5 {
		t.Fatalf("selected %d truncated %d", len(b.Selected), len(b.Truncated))
	}
	for i := 1; i < len(b.Selected); i++ {
		if b.Selected[i-1].Node >= b.Selected[i].Node {
			t.Fatalf("not sorted by name")
		}
	}
	if b.Truncated[0] <= b.Selected[len(b.Selected)-1].Node {
		t.Fatalf("truncated nodes must be the last by name")
	}
}

func TestBuild(t *testing.T) {
	hc := annotations.HealthCheck{Protocol: "http", Path: "/hz", Status: 200, Interval: 15, Retry: 2}
	cases := []struct {
		name string
		in   Input
		want *Appliance
		err  string
	}{
		{
			name: "two ports, servers sorted numerically",
			in: Input{ClusterID: "c1", Service: svc(tcp(443), tcp(80)), SwitchID: 7, VIP: "192.0.2.20",
				Options:  annotations.Options{Plan: "highspec", HA: true, HealthCheck: hc, SorryServer: "192.0.2.99"},
				Backends: []Backend{{"b", "192.0.2.100"}, {"a", "192.0.2.9"}}},
			want: &Appliance{
				Tags: []string{ClusterTag("c1"), ServiceTag("u-1")}, SwitchID: 7, PlanID: PlanIDHighSpec, HA: true,
				VIPs: []VIP{
					{Owner: ServiceRef{"ns", "web", "u-1"}, IP: "192.0.2.20", Port: 80, DelayLoop: 15, SorryServer: "192.0.2.99", HealthCheck: hc, Servers: []string{"192.0.2.9", "192.0.2.100"}},
					{Owner: ServiceRef{"ns", "web", "u-1"}, IP: "192.0.2.20", Port: 443, DelayLoop: 15, SorryServer: "192.0.2.99", HealthCheck: hc, Servers: []string{"192.0.2.9", "192.0.2.100"}},
				},
			},
		},
		{
			name: "no nodes still builds entries",
			in:   Input{ClusterID: "c1", Service: svc(tcp(80)), SwitchID: 7, VIP: "192.0.2.20", Options: annotations.Options{Plan: "standard", HealthCheck: annotations.HealthCheck{Protocol: "ping", Interval: 10}}},
			want: &Appliance{
				Tags: []string{ClusterTag("c1"), ServiceTag("u-1")}, SwitchID: 7, PlanID: PlanIDStandard,
				VIPs: []VIP{{Owner: ServiceRef{"ns", "web", "u-1"}, IP: "192.0.2.20", Port: 80, DelayLoop: 10, HealthCheck: annotations.HealthCheck{Protocol: "ping", Interval: 10}}},
			},
		},
		{name: "udp refused", in: Input{Service: svc(v1.ServicePort{Port: 53, Protocol: v1.ProtocolUDP}), VIP: "192.0.2.1"}, err: "TCP only"},
		{name: "no vip", in: Input{Service: svc(tcp(80))}, err: "no VIP"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Build(c.in)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Name != Name(c.in.ClusterID, c.in.Service) || !strings.Contains(got.Description, "ns/web") {
				t.Fatalf("name/description %q %q", got.Name, got.Description)
			}
			got.Name, got.Description = "", ""
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got  %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func TestNameIsDeterministicAndBounded(t *testing.T) {
	s := svc()
	s.Name = strings.Repeat("x", 63)
	a, b := Name("cluster", s), Name("cluster", s)
	if a != b || len(a) > 63 {
		t.Fatalf("%q %q", a, b)
	}
	s2 := s.DeepCopy()
	s2.UID = "u-2"
	if Name("cluster", s2) == a {
		t.Fatal("different Services share a name")
	}
}
