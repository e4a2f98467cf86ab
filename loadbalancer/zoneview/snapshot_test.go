package zoneview

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/types"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/sakuraapi"
)

func idsOf(lbs []*iaas.LoadBalancer) []types.ID {
	out := []types.ID{}
	for _, lb := range lbs {
		out = append(out, lb.ID)
	}
	return out
}

func TestOwnedNeedsEveryTagOldestFirst(t *testing.T) {
	lb := func(id types.ID, tags ...string) *iaas.LoadBalancer { return &iaas.LoadBalancer{ID: id, Tags: tags} }
	snap := NewSnapshot(t0, sakuraapi.Appliances{LoadBalancers: []*iaas.LoadBalancer{
		lb(30, "cluster=c1", "service-uid=u1"),
		lb(10, "cluster=c1", "service-uid=u1", "sharing=k"),
		nil,
		lb(20, "cluster=c2", "service-uid=u1"),
		lb(40, "cluster=c1", "sharing=k"),
		lb(10, "cluster=c1", "service-uid=u1", "sharing=k"), // listed twice across pages
		lb(50),
	}})
	for _, tc := range []struct {
		name string
		tags []string
		want []types.ID
	}{
		{"a Service's (FindOwned)", []string{"cluster=c1", "service-uid=u1"}, []types.ID{10, 30}},
		{"shared by a key (FindShared)", []string{"cluster=c1", "sharing=k"}, []types.ID{10, 40}},
		{"the cluster's (FindCluster)", []string{"cluster=c1"}, []types.ID{10, 30, 40}},
		{"another cluster's", []string{"cluster=c2", "service-uid=u1"}, []types.ID{20}},
		{"a tag prefix is not a tag", []string{"cluster=c"}, []types.ID{}},
		{"no tags own nothing", nil, []types.ID{}},
	} {
		if got := idsOf(snap.Owned(tc.tags...)); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	if got := idsOf(snap.LoadBalancers()); !reflect.DeepEqual(got, []types.ID{10, 20, 30, 40, 50}) {
		t.Errorf("LoadBalancers = %v, want every one once, oldest first", got)
	}
}

func TestUsageHoldsEveryClassOnTheSwitch(t *testing.T) {
	const sw types.ID = 5
	snap := NewSnapshot(t0, sakuraapi.Appliances{
		LoadBalancers: []*iaas.LoadBalancer{{ID: 1, SwitchID: sw, VRID: 4, IPAddresses: []string{"192.0.2.10"},
			VirtualIPAddresses: iaas.LoadBalancerVirtualIPAddresses{{VirtualIPAddress: "192.0.2.11"}}},
			{ID: 2, SwitchID: 6, VRID: 5, IPAddresses: []string{"192.0.2.99"}}},
		VPCRouters: []*iaas.VPCRouter{{ID: 3, Interfaces: []*iaas.VPCRouterInterface{{Index: 1, SwitchID: sw}},
			Settings: &iaas.VPCRouterSetting{VRID: 6, Interfaces: []*iaas.VPCRouterInterfaceSetting{
				{Index: 1, IPAddress: []string{"192.0.2.2", "192.0.2.3"}, VirtualIPAddress: "192.0.2.1"}}}}},
		Databases:      []*iaas.Database{{ID: 7, SwitchID: sw, IPAddresses: []string{"192.0.2.20"}}},
		NFS:            []*iaas.NFS{{ID: 8, SwitchID: sw, IPAddresses: []string{"192.0.2.30"}}},
		MobileGateways: []*iaas.MobileGateway{{ID: 9, Interfaces: []*iaas.MobileGatewayInterface{{Index: 1, SwitchID: sw, IPAddress: "192.0.2.40"}}}},
	})
	u := snap.Usage(sw)
	for _, ip := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.10", "192.0.2.11", "192.0.2.20", "192.0.2.30", "192.0.2.40"} {
		if u.IPs[netip.MustParseAddr(ip)] == "" {
			t.Errorf("%s is not held", ip)
		}
	}
	if len(u.IPs) != 8 || len(u.VRIDs) != 2 || u.VRIDs[4] == "" || u.VRIDs[6] == "" {
		t.Errorf("usage %v %v", u.IPs, u.VRIDs)
	}
	full := snap.SwitchUsage(&iaas.Switch{ID: sw}, []*iaas.Server{{ID: 11, Interfaces: []*iaas.InterfaceView{{SwitchID: sw, UserIPAddress: "192.0.2.50"}}}})
	if len(full.IPs) != 9 || full.IPs[netip.MustParseAddr("192.0.2.50")] == "" {
		t.Errorf("switch usage %v", full.IPs)
	}
}
