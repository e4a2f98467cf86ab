package decide

import (
	"testing"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/types"
)

func TestUnapplied(t *testing.T) {
	saved := func(servers ...string) iaas.LoadBalancerVirtualIPAddresses {
		e := &iaas.LoadBalancerVirtualIPAddress{VirtualIPAddress: "192.0.2.10", Port: 80}
		for _, s := range servers {
			e.Servers = append(e.Servers, &iaas.LoadBalancerServer{IPAddress: s, Port: 80})
		}
		return iaas.LoadBalancerVirtualIPAddresses{e}
	}
	running := func(servers ...string) []*iaas.LoadBalancerStatus {
		e := &iaas.LoadBalancerStatus{VirtualIPAddress: "192.0.2.10", Port: 80}
		for _, s := range servers {
			e.Servers = append(e.Servers, &iaas.LoadBalancerServerStatus{IPAddress: s, Port: 80, Status: "UP"})
		}
		return []*iaas.LoadBalancerStatus{e}
	}
	for _, c := range []struct {
		name    string
		saved   iaas.LoadBalancerVirtualIPAddresses
		running []*iaas.LoadBalancerStatus
		want    bool
	}{
		{"applied", saved("10.0.0.1", "10.0.0.2"), running("10.0.0.2", "10.0.0.1"), false},
		// UpdateSettings saved a third node; Config failed (timeout, 409,
		// 5xx): the running appliance still has two. A plan that compares
		// saved with wanted sees nothing to do; this sees the gap.
		{"node added, Config failed", saved("10.0.0.1", "10.0.0.2", "10.0.0.3"), running("10.0.0.1", "10.0.0.2"), true},
		{"node removed, Config failed", saved("10.0.0.1"), running("10.0.0.1", "10.0.0.2"), true},
		{"VIP added, Config failed", append(saved(), &iaas.LoadBalancerVirtualIPAddress{VirtualIPAddress: "192.0.2.11", Port: 443}), running(), true},
		{"nothing at all", nil, nil, false},
	} {
		if got := Unapplied(c.saved, c.running); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func TestMarkUnapplied(t *testing.T) {
	entry := func(delay int, protocol string, servers ...string) iaas.LoadBalancerVirtualIPAddresses {
		e := &iaas.LoadBalancerVirtualIPAddress{VirtualIPAddress: "192.0.2.10", Port: 80, DelayLoop: types.StringNumber(delay)}
		for _, s := range servers {
			e.Servers = append(e.Servers, &iaas.LoadBalancerServer{IPAddress: s, Port: 80,
				HealthCheck: &iaas.LoadBalancerServerHealthCheck{Protocol: types.ELoadBalancerHealthCheckProtocol(protocol)}})
		}
		return iaas.LoadBalancerVirtualIPAddresses{e}
	}
	have := entry(10, "ping", "10.0.0.1")
	for _, c := range []struct {
		name   string
		want   iaas.LoadBalancerVirtualIPAddresses
		polled bool
		mark   bool
	}{
		{"node added, polled: Status shows it", entry(10, "ping", "10.0.0.1", "10.0.0.2"), true, false},
		{"node added, no poll", entry(10, "ping", "10.0.0.1", "10.0.0.2"), false, true},
		{"health check changed: Status cannot show it", entry(10, "tcp", "10.0.0.1"), true, true},
		{"delay loop changed", entry(30, "ping", "10.0.0.1"), true, true},
		{"health check and a node", entry(10, "tcp", "10.0.0.1", "10.0.0.2"), true, false},
	} {
		if got := MarkUnapplied(have, c.want, c.polled); got != c.mark {
			t.Errorf("%s: mark %v, want %v", c.name, got, c.mark)
		}
	}
}
