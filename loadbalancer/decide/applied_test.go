package decide

import (
	"testing"

	"github.com/sacloud/iaas-api-go"
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
