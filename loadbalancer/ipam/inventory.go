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

// FindAll pages through a Find until every result is read.
func FindAll[T any](ctx context.Context, find func(ctx context.Context, cond *iaas.FindCondition) ([]T, int, error), cond *iaas.FindCondition) ([]T, error) {
	if cond == nil {
		cond = &iaas.FindCondition{}
	}
	var out []T
	for from := 0; ; {
		c := *cond
		c.Count, c.From = PageSize, from
		items, total, err := find(ctx, &c)
		if err != nil {
			return nil, err
		}
		out = append(out, items...)
		from += len(items)
		if len(items) == 0 || from >= total {
			return out, nil
		}
	}
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

// ListLoadBalancers lists every load balancer of the zone (all owners: an
// appliance of another cluster or made by hand holds addresses too).
func ListLoadBalancers(ctx context.Context, c *sakuraapi.Client) ([]*iaas.LoadBalancer, error) {
	lbs, err := FindAll(ctx, func(ctx context.Context, cond *iaas.FindCondition) ([]*iaas.LoadBalancer, int, error) {
		r, err := c.LoadBalancers.Find(ctx, c.Zone, cond)
		if err != nil {
			return nil, 0, err
		}
		return r.LoadBalancers, r.Total, nil
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("listing load balancers: %w", err)
	}
	return lbs, nil
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

// OtherConsumers lists the addresses and VRIDs on sw held by everything but
// load balancers: the switch's next hops, the servers on it, and the VPC
// routers, databases, NFS and mobile gateways of the zone with a NIC on it.
// These change seldom and cost five calls, so callers may reuse the answer
// for a bounded time; load balancers, which this controller creates
// itself, are listed afresh for every allocation (ListLoadBalancers).
func OtherConsumers(ctx context.Context, c *sakuraapi.Client, sw *iaas.Switch) (*Usage, error) {
	u := NewUsage()
	id := sw.ID
	for _, s := range sw.Subnets {
		if s != nil && s.NextHop != "" {
			u.AddIP(s.NextHop, "a next-hop route")
		}
	}

	servers, err := c.Switches.GetServers(ctx, c.Zone, id)
	if err != nil {
		return nil, fmt.Errorf("listing servers on switch %s: %w", id, err)
	}
	for _, s := range servers.Servers {
		for _, nic := range s.Interfaces {
			if nic.SwitchID == id {
				u.AddIP(nic.UserIPAddress, fmt.Sprintf("server %s (%s)", s.Name, s.ID))
				u.AddIP(nic.IPAddress, fmt.Sprintf("server %s (%s)", s.Name, s.ID))
			}
		}
	}

	vrs, err := FindAll(ctx, func(ctx context.Context, cond *iaas.FindCondition) ([]*iaas.VPCRouter, int, error) {
		r, err := c.VPCRouters.Find(ctx, c.Zone, cond)
		if err != nil {
			return nil, 0, err
		}
		return r.VPCRouters, r.Total, nil
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("listing VPC routers: %w", err)
	}
	for _, vr := range vrs {
		who := fmt.Sprintf("VPC router %s (%s)", vr.Name, vr.ID)
		on := false
		for _, nic := range vr.Interfaces {
			if nic == nil || nic.SwitchID != id {
				continue
			}
			on = true
			u.AddIP(nic.IPAddress, who)
			u.AddIP(nic.UserIPAddress, who)
			if vr.Settings != nil {
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
		}
		if on && vr.Settings != nil {
			u.AddVRID(vr.Settings.VRID, who)
		}
	}

	dbs, err := FindAll(ctx, func(ctx context.Context, cond *iaas.FindCondition) ([]*iaas.Database, int, error) {
		r, err := c.Databases.Find(ctx, c.Zone, cond)
		if err != nil {
			return nil, 0, err
		}
		return r.Databases, r.Total, nil
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("listing databases: %w", err)
	}
	for _, db := range dbs {
		if db.SwitchID != id {
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

	nfss, err := FindAll(ctx, func(ctx context.Context, cond *iaas.FindCondition) ([]*iaas.NFS, int, error) {
		r, err := c.NFS.Find(ctx, c.Zone, cond)
		if err != nil {
			return nil, 0, err
		}
		return r.NFS, r.Total, nil
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("listing NFS appliances: %w", err)
	}
	for _, n := range nfss {
		if n.SwitchID != id {
			continue
		}
		for _, ip := range n.IPAddresses {
			u.AddIP(ip, fmt.Sprintf("NFS %s (%s)", n.Name, n.ID))
		}
	}

	mgws, err := FindAll(ctx, func(ctx context.Context, cond *iaas.FindCondition) ([]*iaas.MobileGateway, int, error) {
		r, err := c.MobileGateways.Find(ctx, c.Zone, cond)
		if err != nil {
			return nil, 0, err
		}
		return r.MobileGateways, r.Total, nil
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("listing mobile gateways: %w", err)
	}
	for _, m := range mgws {
		who := fmt.Sprintf("mobile gateway %s (%s)", m.Name, m.ID)
		for _, nic := range m.Interfaces {
			if nic == nil || nic.SwitchID != id {
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
	return u, nil
}
