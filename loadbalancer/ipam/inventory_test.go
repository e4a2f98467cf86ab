package ipam

import (
	"context"
	"errors"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/fake"
	"github.com/sacloud/iaas-api-go/types"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/sakuraapi"
)

const onSwitch, elsewhere types.ID = 5, 6

// zoneAppliances has one appliance of each class on the switch and one
// of each elsewhere.
func zoneAppliances() *sakuraapi.Appliances {
	vrOn := func(id, sw types.ID, vrid int, base string) *iaas.VPCRouter {
		return &iaas.VPCRouter{ID: id, Name: "vr",
			Interfaces: []*iaas.VPCRouterInterface{{Index: 0, SwitchID: 1, IPAddress: "198.51.100.1"}, {Index: 2, SwitchID: sw}},
			Settings: &iaas.VPCRouterSetting{VRID: vrid, Interfaces: []*iaas.VPCRouterInterfaceSetting{
				{Index: 2, IPAddress: []string{base + ".2", base + ".3"}, IPAliases: []string{base + ".4"}, VirtualIPAddress: base + ".1"},
				{Index: 3, IPAddress: []string{base + ".99"}}, // an interface on another switch
			}}}
	}
	mgwOn := func(id, sw types.ID, ip string) *iaas.MobileGateway {
		return &iaas.MobileGateway{ID: id, Name: "mgw",
			Interfaces:        []*iaas.MobileGatewayInterface{{Index: 0, SwitchID: 1, IPAddress: "198.51.100.2"}, {Index: 1, SwitchID: sw}},
			InterfaceSettings: []*iaas.MobileGatewayInterfaceSetting{{Index: 1, IPAddress: []string{ip}}}}
	}
	return &sakuraapi.Appliances{
		LoadBalancers: []*iaas.LoadBalancer{
			{ID: 10, Name: "lb", SwitchID: onSwitch, VRID: 7, IPAddresses: []string{"192.0.2.20", "192.0.2.21"},
				VirtualIPAddresses: iaas.LoadBalancerVirtualIPAddresses{{VirtualIPAddress: "192.0.2.22"}}},
			{ID: 11, Name: "lb-elsewhere", SwitchID: elsewhere, VRID: 8, IPAddresses: []string{"10.0.0.20"}},
		},
		VPCRouters: []*iaas.VPCRouter{vrOn(20, onSwitch, 9, "192.0.2"), vrOn(21, elsewhere, 10, "10.0.0")},
		Databases: []*iaas.Database{
			{ID: 30, Name: "db", SwitchID: onSwitch, IPAddresses: []string{"192.0.2.31"},
				InterfaceSettings: []*iaas.DatabaseSettingsInterface{{VirtualIPAddress: "192.0.2.30"}}},
			{ID: 31, Name: "db2", SwitchID: elsewhere, IPAddresses: []string{"10.0.0.31"}},
		},
		NFS: []*iaas.NFS{{ID: 40, Name: "nfs", SwitchID: onSwitch, IPAddresses: []string{"192.0.2.40"}},
			{ID: 41, SwitchID: elsewhere, IPAddresses: []string{"10.0.0.40"}}},
		MobileGateways: []*iaas.MobileGateway{mgwOn(50, onSwitch, "192.0.2.50"), mgwOn(51, elsewhere, "10.0.0.50")},
	}
}

// ipsOf lists the addresses u holds, in address order.
func ipsOf(u *Usage) []string {
	held := slices.SortedFunc(maps.Keys(u.IPs), netip.Addr.Compare)
	out := make([]string, len(held))
	for i, a := range held {
		out[i] = a.String()
	}
	return out
}

func TestSwitchUsageCountsEveryConsumerOnTheSwitch(t *testing.T) {
	sw := &iaas.Switch{ID: onSwitch, Subnets: []*iaas.SwitchSubnet{{NetworkAddress: "192.0.2.0", NetworkMaskLen: 24, NextHop: "192.0.2.60"}}}
	servers := []*iaas.Server{{ID: 70, Name: "node", Interfaces: []*iaas.InterfaceView{
		{SwitchID: 1, IPAddress: "198.51.100.3"}, {SwitchID: onSwitch, UserIPAddress: "192.0.2.70"}}}}
	u := SwitchUsage(sw, servers, zoneAppliances())

	want := []string{"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", // VPC router
		"192.0.2.20", "192.0.2.21", "192.0.2.22", // load balancer
		"192.0.2.30", "192.0.2.31", "192.0.2.40", "192.0.2.50", // database, NFS, mobile gateway
		"192.0.2.60", "192.0.2.70"} // next hop, server
	if got := ipsOf(u); !reflect.DeepEqual(got, want) {
		t.Errorf("addresses\n got %v\nwant %v", got, want)
	}
	if len(u.VRIDs) != 2 || u.VRIDs[7] == "" || u.VRIDs[9] == "" {
		t.Errorf("VRIDs = %v, want 7 (load balancer) and 9 (VPC router)", u.VRIDs)
	}
	if !reflect.DeepEqual(u.Appliances, map[types.ID]bool{10: true}) {
		t.Errorf("Appliances = %v, want the load balancer on the switch", u.Appliances)
	}
	if who := u.IPs[netip.MustParseAddr("192.0.2.50")]; !strings.Contains(who, "mobile gateway") {
		t.Errorf("192.0.2.50 held by %q", who)
	}
}

func TestFindPagesAdvancesByWhatPagesHeld(t *testing.T) {
	var froms []int
	err := FindPages(context.Background(), func(ctx context.Context, c *iaas.FindCondition) (int, int, error) {
		froms = append(froms, c.From)
		return min(PageSize, 250-c.From), 250, nil
	}, nil)
	if err != nil || !reflect.DeepEqual(froms, []int{0, 100, 200}) {
		t.Errorf("pages from %v (%v)", froms, err)
	}
	boom := errors.New("boom")
	if err := FindPages(context.Background(), func(context.Context, *iaas.FindCondition) (int, int, error) { return 0, 0, boom }, nil); !errors.Is(err, boom) {
		t.Errorf("error %v", err)
	}
}

// A switch's usage comes from the zone's one appliance listing and its
// servers: two calls see every consumer's address on it (next hops,
// servers, VPC routers, databases, NFS, mobile gateways), where the class
// finds took five.
func TestSwitchUsageFromOneListing(t *testing.T) {
	fake.SwitchFactoryFuncToFake()
	ctx := context.Background()
	const zone = "is1a"
	c := sakuraapi.NewFromCaller(nil, zone, sakuraapi.Limits{})
	sw, err := iaas.NewSwitchOp(nil).Create(ctx, zone, &iaas.SwitchCreateRequest{Name: "sw"})
	if err != nil {
		t.Fatal(err)
	}
	sw.ServerCount = 1
	fake.DataStore.Put(fake.ResourceSwitch, zone, sw.ID, sw)
	fake.DataStore.Put(fake.ResourceServer, zone, 70, &iaas.Server{ID: 70, Name: "node",
		Interfaces: []*iaas.InterfaceView{{SwitchID: sw.ID, UserIPAddress: "192.0.2.70"}}})
	a := zoneAppliances()
	for _, vr := range a.VPCRouters {
		for _, nic := range vr.Interfaces {
			if nic.SwitchID == onSwitch {
				nic.SwitchID = sw.ID
			}
		}
		fake.DataStore.Put(fake.ResourceVPCRouter, zone, vr.ID, vr)
	}
	for _, db := range a.Databases {
		if db.SwitchID == onSwitch {
			db.SwitchID = sw.ID
		}
		fake.DataStore.Put(fake.ResourceDatabase, zone, db.ID, db)
	}
	for _, n := range a.NFS {
		if n.SwitchID == onSwitch {
			n.SwitchID = sw.ID
		}
		fake.DataStore.Put(fake.ResourceNFS, zone, n.ID, n)
	}
	for _, m := range a.MobileGateways {
		for _, nic := range m.Interfaces {
			if nic.SwitchID == onSwitch {
				nic.SwitchID = sw.ID
			}
		}
		fake.DataStore.Put(fake.ResourceMobileGateway, zone, m.ID, m)
	}

	before := c.Stats().Total(nil)
	listing, err := c.Appliances.Find(ctx, zone, nil)
	if err != nil {
		t.Fatal(err)
	}
	servers, err := c.Switches.GetServers(ctx, zone, sw.ID)
	if err != nil {
		t.Fatal(err)
	}
	u := SwitchUsage(sw, servers.Servers, &listing.Appliances)
	if calls := c.Stats().Total(nil) - before; calls != 2 {
		t.Errorf("listing + servers cost %d calls, want 2: %v", calls, c.Stats().Snapshot())
	}
	want := []string{"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.30", "192.0.2.31", "192.0.2.40", "192.0.2.50", "192.0.2.70"}
	if got := ipsOf(u); !reflect.DeepEqual(got, want) {
		t.Errorf("usage\n got %v\nwant %v", got, want)
	}
}
