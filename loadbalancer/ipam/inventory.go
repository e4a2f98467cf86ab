package ipam

import (
	"context"
	"fmt"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/types"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/sakuraapi"
)

// PageSize is how many resources one Find asks for.
const PageSize = 100

// FindPages pages through a Find whose pages say how many results they
// held (count) out of how many match (total), until every page is read.
// A page advances by count, not by what the caller kept of it.
func FindPages(ctx context.Context, find func(ctx context.Context, cond *iaas.FindCondition) (count, total int, err error), cond *iaas.FindCondition) error {
	if cond == nil {
		cond = &iaas.FindCondition{}
	}
	for from := 0; ; {
		c := *cond
		c.Count, c.From = PageSize, from
		count, total, err := find(ctx, &c)
		if err != nil {
			return err
		}
		from += count
		if count == 0 || from >= total {
			return nil
		}
	}
}

// FindAll pages through a Find until every result is read.
func FindAll[T any](ctx context.Context, find func(ctx context.Context, cond *iaas.FindCondition) ([]T, int, error), cond *iaas.FindCondition) ([]T, error) {
	var out []T
	err := FindPages(ctx, func(ctx context.Context, cond *iaas.FindCondition) (int, int, error) {
		items, total, err := find(ctx, cond)
		out = append(out, items...)
		return len(items), total, err
	}, cond)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Clone copies u, so a cached inventory can be extended for one allocation.
func (u *Usage) Clone() *Usage {
	c := NewUsage()
	for k, v := range u.IPs {
		c.IPs[k] = v
	}
	for k, v := range u.VRIDs {
		c.VRIDs[k] = v
	}
	for k := range u.Appliances {
		c.Appliances[k] = true
	}
	return c
}

// AddLoadBalancers records the addresses and VRIDs of the load balancers on
// switchID, and which appliances the listing showed there.
func AddLoadBalancers(u *Usage, lbs []*iaas.LoadBalancer, switchID types.ID) {
	for _, lb := range lbs {
		if lb == nil || lb.SwitchID != switchID {
			continue
		}
		u.Appliances[lb.ID] = true
		who := fmt.Sprintf("load balancer %s (%s)", lb.Name, lb.ID)
		for _, ip := range lb.IPAddresses {
			u.AddIP(ip, who)
		}
		for _, v := range lb.VirtualIPAddresses {
			u.AddIP(v.VirtualIPAddress, who)
		}
		u.AddVRID(lb.VRID, who)
	}
}

// AddVPCRouters records the addresses of the VPC routers with a NIC on
// switchID (the NIC's, and the router's interface settings for it: its
// addresses, aliases and virtual address) and their VRIDs.
func AddVPCRouters(u *Usage, vrs []*iaas.VPCRouter, switchID types.ID) {
	for _, vr := range vrs {
		if vr == nil {
			continue
		}
		who := fmt.Sprintf("VPC router %s (%s)", vr.Name, vr.ID)
		on := false
		for _, nic := range vr.Interfaces {
			if nic == nil || nic.SwitchID != switchID {
				continue
			}
			on = true
			u.AddIP(nic.IPAddress, who)
			u.AddIP(nic.UserIPAddress, who)
			if vr.Settings == nil {
				continue
			}
			for _, s := range vr.Settings.Interfaces {
				if s != nil && s.Index == nic.Index {
					for _, ip := range s.IPAddress {
						u.AddIP(ip, who)
					}
					for _, ip := range s.IPAliases {
						u.AddIP(ip, who)
					}
					u.AddIP(s.VirtualIPAddress, who)
				}
			}
		}
		if on && vr.Settings != nil {
			u.AddVRID(vr.Settings.VRID, who)
		}
	}
}

// AddDatabases records the addresses (and virtual addresses) of the
// databases on switchID.
func AddDatabases(u *Usage, dbs []*iaas.Database, switchID types.ID) {
	for _, db := range dbs {
		if db == nil || db.SwitchID != switchID {
			continue
		}
		who := fmt.Sprintf("database %s (%s)", db.Name, db.ID)
		for _, ip := range db.IPAddresses {
			u.AddIP(ip, who)
		}
		for _, s := range db.InterfaceSettings {
			if s != nil {
				u.AddIP(s.VirtualIPAddress, who)
			}
		}
	}
}

// AddNFS records the addresses of the NFS appliances on switchID.
func AddNFS(u *Usage, nfs []*iaas.NFS, switchID types.ID) {
	for _, n := range nfs {
		if n == nil || n.SwitchID != switchID {
			continue
		}
		for _, ip := range n.IPAddresses {
			u.AddIP(ip, fmt.Sprintf("NFS %s (%s)", n.Name, n.ID))
		}
	}
}

// AddMobileGateways records the addresses of the mobile gateways with a
// NIC on switchID (the NIC's and the interface settings' for it).
func AddMobileGateways(u *Usage, mgws []*iaas.MobileGateway, switchID types.ID) {
	for _, m := range mgws {
		if m == nil {
			continue
		}
		who := fmt.Sprintf("mobile gateway %s (%s)", m.Name, m.ID)
		for _, nic := range m.Interfaces {
			if nic == nil || nic.SwitchID != switchID {
				continue
			}
			u.AddIP(nic.IPAddress, who)
			u.AddIP(nic.UserIPAddress, who)
			for _, s := range m.InterfaceSettings {
				if s != nil && s.Index == nic.Index {
					for _, ip := range s.IPAddress {
						u.AddIP(ip, who)
					}
				}
			}
		}
	}
}

// AddAppliances records the addresses and VRIDs of every appliance of the
// listing on switchID, whatever its class.
func AddAppliances(u *Usage, a *sakuraapi.Appliances, switchID types.ID) {
	AddLoadBalancers(u, a.LoadBalancers, switchID)
	AddVPCRouters(u, a.VPCRouters, switchID)
	AddDatabases(u, a.Databases, switchID)
	AddNFS(u, a.NFS, switchID)
	AddMobileGateways(u, a.MobileGateways, switchID)
}

// AddNextHops records the next hops of sw's routes (a router+switch's
// extra subnets): they are addresses on the switch.
func AddNextHops(u *Usage, sw *iaas.Switch) {
	for _, s := range sw.Subnets {
		if s != nil && s.NextHop != "" {
			u.AddIP(s.NextHop, "a next-hop route")
		}
	}
}

// AddServers records the addresses of the servers' NICs on switchID.
func AddServers(u *Usage, servers []*iaas.Server, switchID types.ID) {
	for _, s := range servers {
		if s == nil {
			continue
		}
		who := fmt.Sprintf("server %s (%s)", s.Name, s.ID)
		for _, nic := range s.Interfaces {
			if nic != nil && nic.SwitchID == switchID {
				u.AddIP(nic.UserIPAddress, who)
				u.AddIP(nic.IPAddress, who)
			}
		}
	}
}

// SwitchUsage is every address and VRID on sw: its next hops, the servers
// on it (servers, Switch.GetServers's answer) and every appliance of the
// zone's listing with a NIC on it. With the listing shared, a cold
// inventory costs one Switch.GetServers more.
func SwitchUsage(sw *iaas.Switch, servers []*iaas.Server, appliances *sakuraapi.Appliances) *Usage {
	u := NewUsage()
	AddNextHops(u, sw)
	AddServers(u, servers, sw.ID)
	AddAppliances(u, appliances, sw.ID)
	return u
}
