package sakurasim

import (
	"strconv"
	"strings"
	"time"

	"github.com/sacloud/iaas-api-go/naked"
	"github.com/sacloud/iaas-api-go/types"
)

var zoneIDs = map[string]types.ID{"is1a": 31001, "is1b": 31002, "is1c": 31003, "tk1a": 21001, "tk1b": 21002, "tk1v": 29001}

// applianceZone is the zone an appliance on switch sw lives in: its
// switch's (the main zone if the switch is unknown).
func (s *Simulator) applianceZone(sw types.ID) string {
	if r := s.switchByID(sw); r != nil {
		return r.Zone
	}
	return s.zone
}

func zoneIDOf(zone string) types.ID {
	if id, ok := zoneIDs[zone]; ok {
		return id
	}
	return 99001
}

func (s *Simulator) nakedZone() *naked.Zone { return nakedZoneOf(s.zone) }

func nakedZoneOf(zone string) *naked.Zone {
	region := strings.TrimRight(zone, "abcdefghijklmnopqrstuvwxyz")
	if zone == "tk1v" {
		region = "tk1v"
	}
	regionNames := map[string]string{"is1": "石狩", "tk1": "東京", "tk1v": "Sandbox"}
	name := regionNames[region]
	if name == "" {
		name = region
	}
	return &naked.Zone{ID: zoneIDOf(zone), Name: zone, Description: zone,
		Region: &naked.Region{ID: zoneIDOf(zone) / 100, Name: name, Description: name}}
}

func tp(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC().Truncate(time.Second)
	return &t
}

func (s *Simulator) nakedSwitchRef(sw *switchRes) *naked.Switch {
	out := &naked.Switch{ID: sw.ID, Name: sw.Name, Scope: types.Scopes.User}
	if sw.RouterID != 0 {
		out.Subnet = &naked.Subnet{ID: sw.SubnetID, NetworkAddress: sw.Prefix.Addr().String(),
			NetworkMaskLen: sw.Prefix.Bits(), DefaultRoute: sw.DefaultRoute.String()}
		if r := s.routerByID(sw.RouterID); r != nil {
			out.Subnet.Internet = &naked.Internet{BandWidthMbps: r.BandWidth}
		}
	} else {
		out.UserSubnet = &naked.UserSubnet{NetworkMaskLen: sw.Prefix.Bits()}
		if sw.DefaultRoute.IsValid() {
			out.UserSubnet.DefaultRoute = sw.DefaultRoute.String()
		}
	}
	return out
}

func (s *Simulator) nakedServer(sv *server) *naked.Server {
	status := types.ServerInstanceStatuses.Down
	if sv.Up {
		status = types.ServerInstanceStatuses.Up
	}
	out := &naked.Server{
		ID: sv.ID, Name: sv.Name, Tags: sortedTags(sv.Tags), Availability: types.Availabilities.Available,
		HostName: sv.Name, ServiceClass: "cloud/plan/core/" + itoa(sv.CPU) + "core-" + itoa(sv.MemoryMB/1024) + "gb",
		InterfaceDriver: types.InterfaceDrivers.VirtIO,
		ServerPlan: &naked.ServerPlan{ID: serverPlanID(sv),
			Name: itoa(sv.CPU) + "core-" + itoa(sv.MemoryMB/1024) + "GB", CPU: sv.CPU, MemoryMB: sv.MemoryMB, GPU: sv.GPU,
			Generation: 200, Commitment: types.Commitments.Standard},
		Zone:       nakedZoneOf(sv.Zone),
		Instance:   &naked.Instance{Status: status, StatusChangedAt: tp(sv.StatusChangedAt)},
		CreatedAt:  tp(sv.CreatedAt),
		ModifiedAt: tp(sv.StatusChangedAt),
	}
	for _, n := range sv.NICs {
		iface := &naked.Interface{ID: n.ID, MACAddress: n.MAC}
		if n.Shared {
			iface.IPAddress = n.IP
			iface.HostName = sv.Name
			iface.Switch = &naked.Switch{ID: s.sharedSwitch, Name: "スイッチ", Scope: types.Scopes.Shared,
				Subnet: &naked.Subnet{NetworkMaskLen: 23, DefaultRoute: sharedGateway(n.IP)}}
		} else {
			iface.UserIPAddress = n.IP
			if sw := s.switchByID(n.SwitchID); sw != nil {
				iface.Switch = s.nakedSwitchRef(sw)
			}
		}
		out.Interfaces = append(out.Interfaces, iface)
	}
	return out
}

// serverPlanID is a plausible plan ID derived from memory and cores.
func serverPlanID(sv *server) types.ID {
	return types.ID(int64(sv.MemoryMB/1024)*1000 + int64(sv.CPU))
}

// sharedGateway guesses a plausible gateway of the shared segment (x.y.z.1 of the /23).
func sharedGateway(ip string) string {
	i := strings.LastIndex(ip, ".")
	if i < 0 {
		return ""
	}
	return ip[:i] + ".1"
}

func (s *Simulator) subnetOf(sw *switchRes) *naked.Subnet {
	min, max := assignedRange(sw)
	sub := &naked.Subnet{ID: sw.SubnetID, NetworkAddress: sw.Prefix.Addr().String(), NetworkMaskLen: sw.Prefix.Bits(),
		DefaultRoute: sw.DefaultRoute.String(), IPAddresses: &naked.SubnetIPAddressRange{Min: min.String(), Max: max.String()}}
	if r := s.routerByID(sw.RouterID); r != nil {
		sub.Internet = &naked.Internet{ID: r.ID, Name: r.Name, BandWidthMbps: r.BandWidth}
	}
	return sub
}

func (s *Simulator) nakedSwitch(sw *switchRes) *naked.Switch {
	count := s.serverCount(sw)
	out := &naked.Switch{ID: sw.ID, Name: sw.Name, Tags: sortedTags(sw.Tags), Scope: types.Scopes.User,
		CreatedAt: tp(sw.CreatedAt), ModifiedAt: tp(sw.CreatedAt), ServerCount: count, Zone: nakedZoneOf(sw.Zone),
		UserSubnet: &naked.UserSubnet{NetworkMaskLen: sw.Prefix.Bits()}}
	if b := s.bridgeByID(sw.BridgeID); b != nil {
		// iaas-api-go reads only Bridge.ID of a switch (Switch.BridgeID,
		// mapconv "Bridge.ID"); what else the real API nests here is not
		// known, so the simulator sends the ID and name.
		out.Bridge = &naked.Bridge{ID: b.ID, Name: b.Name}
	}
	if sw.DefaultRoute.IsValid() {
		out.UserSubnet.DefaultRoute = sw.DefaultRoute.String()
	}
	if sw.RouterID != 0 {
		out.Subnets = []*naked.Subnet{s.subnetOf(sw)}
		if r := s.routerByID(sw.RouterID); r != nil {
			out.Internet = &naked.Internet{ID: r.ID, Name: r.Name, BandWidthMbps: r.BandWidth, Scope: types.Scopes.User}
		}
	}
	return out
}

func (s *Simulator) nakedInternet(r *router) *naked.Internet {
	out := &naked.Internet{ID: r.ID, Name: r.Name, Tags: sortedTags(r.Tags), CreatedAt: tp(r.CreatedAt),
		Scope: types.Scopes.User, ServiceClass: "cloud/internet/router/" + itoa(r.BandWidth) + "m", BandWidthMbps: r.BandWidth}
	if sw := s.switchByID(r.SwitchID); sw != nil {
		out.NetworkMaskLen = sw.Prefix.Bits()
		sub := s.subnetOf(sw)
		sub.Internet = nil
		sub.IPAddresses = nil
		out.Switch = &naked.Switch{ID: sw.ID, Name: sw.Name, Tags: sortedTags(sw.Tags), Scope: types.Scopes.User,
			Subnets: []*naked.Subnet{sub}}
	}
	return out
}

func (s *Simulator) nakedLB(lb *loadBalancer) *naked.LoadBalancer {
	out := &naked.LoadBalancer{
		ID: lb.ID, Name: lb.Name, Description: lb.Description, Tags: sortedTags(lb.Tags),
		CreatedAt: tp(lb.CreatedAt), ModifiedAt: tp(lb.ModifiedAt), Availability: lb.Availability,
		Class: "loadbalancer", ServiceClass: "cloud/appliance/loadbalancer/" + lb.PlanID.String(),
		Plan:         &naked.AppliancePlan{ID: lb.PlanID},
		Instance:     &naked.Instance{Status: lb.Status, StatusChangedAt: tp(lb.StatusAt)},
		Settings:     &naked.LoadBalancerSettings{LoadBalancer: cloneSettings(lb.Settings)},
		SettingsHash: lb.Hash,
		Remark: &naked.ApplianceRemark{
			Zone:    &naked.ApplianceRemarkZone{ID: zoneIDOf(s.applianceZone(lb.SwitchID))},
			Switch:  &naked.ApplianceRemarkSwitch{ID: lb.SwitchID},
			VRRP:    &naked.ApplianceVRRP{VRID: lb.VRID},
			Network: &naked.ApplianceRemarkNetwork{DefaultRoute: lb.DefaultRoute, NetworkMaskLen: lb.MaskLen},
			Plan:    &naked.AppliancePlan{ID: lb.PlanID},
		},
	}
	for _, ip := range lb.IPs {
		out.Remark.Servers = append(out.Remark.Servers, &naked.ApplianceRemarkServer{IPAddress: ip})
	}
	sw := s.switchByID(lb.SwitchID)
	if sw != nil {
		out.Switch = s.nakedSwitchRef(sw)
		for i, ip := range lb.IPs {
			iface := &naked.Interface{IPAddress: ip, UserIPAddress: ip, Switch: s.nakedSwitchRef(sw), Index: i}
			if i < len(lb.NICIDs) {
				iface.ID = lb.NICIDs[i]
			}
			out.Interfaces = append(out.Interfaces, iface)
		}
	}
	return out
}

// wireLoadBalancer is a load balancer as the API answers it: iaas-api-go's
// naked.LoadBalancer, except that Remark.Switch.ID is a JSON string. The
// real API sends it as one even to clients that ask for big integers as
// numbers (X-Sakura-Bigint-As-Int): libsacloud v1 declares the field a
// string (sacloud.ApplianceRemarkSwitch), and its recorded load balancer
// fixture has "Switch":{"ID":"123456789012"} next to a numeric
// Remark.Zone.ID. iaas-api-go's types.ID decodes either form.
type wireLoadBalancer struct {
	*naked.LoadBalancer
	Remark *wireRemark `json:",omitempty"`
}

type wireRemark struct {
	*naked.ApplianceRemark
	Switch *wireRemarkSwitch `json:",omitempty"`
}

type wireRemarkSwitch struct {
	ID    string       `json:",omitempty"`
	Scope types.EScope `json:",omitempty"`
}

// wireLB wraps a rendered load balancer for an API answer (the admin state
// keeps naked.LoadBalancer as it is).
func wireLB(n *naked.LoadBalancer) *wireLoadBalancer {
	out := &wireLoadBalancer{LoadBalancer: n}
	if n.Remark != nil {
		out.Remark = &wireRemark{ApplianceRemark: n.Remark}
		if sw := n.Remark.Switch; sw != nil {
			out.Remark.Switch = &wireRemarkSwitch{ID: sw.ID.String(), Scope: sw.Scope}
		}
	}
	return out
}

func (s *Simulator) nakedVPCRouter(v *vpcRouter) *naked.VPCRouter {
	now := tp(v.CreatedAt)
	sw := s.switchByID(v.SwitchID)
	ifs := naked.VPCRouterInterfaces{{IPAddress: v.IPs, VirtualIPAddress: v.VIP, Index: v.InterfaceIndex}}
	if sw != nil {
		ifs[0].NetworkMaskLen = sw.Prefix.Bits()
	}
	out := &naked.VPCRouter{
		ID: v.ID, Class: "vpcrouter", Name: v.Name, Tags: sortedTags(v.Tags), Plan: &naked.AppliancePlan{ID: 2},
		Availability: types.Availabilities.Available, ServiceClass: "cloud/appliance/vpc-router/2",
		Instance:  &naked.Instance{Status: types.ServerInstanceStatuses.Up, StatusChangedAt: now},
		CreatedAt: now,
		Settings:  &naked.VPCRouterSettings{Router: &naked.VPCRouterSetting{VRID: v.VRID, Interfaces: ifs}},
		Remark: &naked.ApplianceRemark{Zone: &naked.ApplianceRemarkZone{ID: zoneIDOf(s.applianceZone(v.SwitchID))},
			Router: &naked.ApplianceRemarkRouter{VPCRouterVersion: 2}, VRRP: &naked.ApplianceVRRP{VRID: v.VRID}},
	}
	for _, ip := range v.IPs {
		out.Remark.Servers = append(out.Remark.Servers, &naked.ApplianceRemarkServer{IPAddress: ip})
	}
	if sw != nil {
		out.Interfaces = naked.Interfaces{{Index: v.InterfaceIndex, Switch: s.nakedSwitchRef(sw)}}
		if v.InterfaceIndex != 0 {
			out.Interfaces = append(out.Interfaces, &naked.Interface{Index: 0,
				Switch: &naked.Switch{ID: s.sharedSwitch, Scope: types.Scopes.Shared}})
		}
	}
	return out
}

func itoa(i int) string { return strconv.Itoa(i) }
