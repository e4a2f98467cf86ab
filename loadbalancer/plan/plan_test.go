package plan

import (
	"strings"
	"testing"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/types"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/annotations"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/desired"
)

var owner = desired.ServiceRef{Namespace: "ns", Name: "web", UID: "u"}

func want(mut ...func(*desired.Appliance)) *desired.Appliance {
	a := &desired.Appliance{
		SwitchID: 7, PlanID: desired.PlanIDStandard,
		VIPs: []desired.VIP{{Owner: owner, IP: "192.0.2.20", Port: 80, DelayLoop: 10,
			HealthCheck: annotations.HealthCheck{Protocol: "ping", Interval: 10},
			Servers:     []string{"192.0.2.4", "192.0.2.5"}}},
	}
	for _, m := range mut {
		m(a)
	}
	return a
}

// actual renders want the way the API echoes it back (DelayLoop filled,
// Retry/ConnectTimeout defaulted by the API when we left them empty).
func actual(w *desired.Appliance, mut ...func(*iaas.LoadBalancer)) *iaas.LoadBalancer {
	lb := &iaas.LoadBalancer{SwitchID: w.SwitchID, PlanID: w.PlanID, IPAddresses: []string{"192.0.2.30"}, VirtualIPAddresses: ToAPI(w.VIPs)}
	if w.HA {
		lb.IPAddresses = append(lb.IPAddresses, "192.0.2.31")
	}
	for _, v := range lb.VirtualIPAddresses {
		for _, s := range v.Servers {
			if s.HealthCheck.Retry == 0 {
				s.HealthCheck.Retry = 3
			}
			if s.HealthCheck.ConnectTimeout == 0 {
				s.HealthCheck.ConnectTimeout = 10
			}
		}
	}
	for _, m := range mut {
		m(lb)
	}
	return lb
}

func kinds(as []Action) string {
	var k []string
	for _, a := range as {
		k = append(k, string(a.Kind))
	}
	return strings.Join(k, ",")
}

func TestCompute(t *testing.T) {
	cases := []struct {
		name    string
		want    *desired.Appliance
		have    *iaas.LoadBalancer
		kinds   string
		changes string // substring of the joined changes/drift
	}{
		{name: "nothing exists", want: want(), have: nil, kinds: "Create"},
		{name: "in sync", want: want(), have: actual(want()), kinds: ""},
		{name: "in sync with API default delay", want: want(), have: actual(want(), func(lb *iaas.LoadBalancer) { lb.VirtualIPAddresses[0].DelayLoop = 0 }), kinds: ""},
		{name: "server order differs", want: want(), have: actual(want(), func(lb *iaas.LoadBalancer) {
			s := lb.VirtualIPAddresses[0].Servers
			s[0], s[1] = s[1], s[0]
		}), kinds: ""},
		{name: "node added", want: want(func(a *desired.Appliance) { a.VIPs[0].Servers = append(a.VIPs[0].Servers, "192.0.2.6") }), have: actual(want()), kinds: "UpdateSettings", changes: "add real server 192.0.2.6"},
		{name: "node removed", want: want(func(a *desired.Appliance) { a.VIPs[0].Servers = a.VIPs[0].Servers[:1] }), have: actual(want()), kinds: "UpdateSettings", changes: "remove real server 192.0.2.5"},
		{name: "server disabled by hand", want: want(), have: actual(want(), func(lb *iaas.LoadBalancer) { lb.VirtualIPAddresses[0].Servers[0].Enabled = types.StringFalse }), kinds: "UpdateSettings", changes: "port/enabled"},
		{name: "port added", want: want(func(a *desired.Appliance) {
			v := a.VIPs[0]
			v.Port = 443
			a.VIPs = append(a.VIPs, v)
		}), have: actual(want()), kinds: "UpdateSettings", changes: "add VIP 192.0.2.20:443"},
		{name: "port removed", want: want(), have: actual(want(func(a *desired.Appliance) {
			v := a.VIPs[0]
			v.Port = 443
			a.VIPs = append(a.VIPs, v)
		})), kinds: "UpdateSettings", changes: "remove VIP 192.0.2.20:443"},
		{name: "health check protocol", want: want(func(a *desired.Appliance) {
			a.VIPs[0].HealthCheck = annotations.HealthCheck{Protocol: "http", Path: "/", Status: 200, Interval: 10}
		}), have: actual(want()), kinds: "UpdateSettings", changes: "health check"},
		{name: "health check path", want: want(func(a *desired.Appliance) {
			a.VIPs[0].HealthCheck = annotations.HealthCheck{Protocol: "http", Path: "/b", Status: 200, Interval: 10}
		}), have: actual(want(func(a *desired.Appliance) {
			a.VIPs[0].HealthCheck = annotations.HealthCheck{Protocol: "http", Path: "/a", Status: 200, Interval: 10}
		})), kinds: "UpdateSettings", changes: "health check"},
		{name: "explicit retry differs", want: want(func(a *desired.Appliance) { a.VIPs[0].HealthCheck.Retry = 5 }), have: actual(want()), kinds: "UpdateSettings", changes: "health check"},
		{name: "interval", want: want(func(a *desired.Appliance) { a.VIPs[0].DelayLoop = 30 }), have: actual(want()), kinds: "UpdateSettings", changes: "interval 10 -> 30"},
		{name: "sorry server", want: want(func(a *desired.Appliance) { a.VIPs[0].SorryServer = "192.0.2.99" }), have: actual(want()), kinds: "UpdateSettings", changes: "sorry server"},
		{name: "vip moved", want: want(func(a *desired.Appliance) { a.VIPs[0].IP = "192.0.2.21" }), have: actual(want()), kinds: "UpdateSettings", changes: "add VIP 192.0.2.21:80"},
		{name: "plan change is drift only", want: want(func(a *desired.Appliance) { a.PlanID = desired.PlanIDHighSpec }), have: actual(want()), kinds: "ReportDrift", changes: "plan is standard, wanted highspec"},
		{name: "ha change is drift only", want: want(func(a *desired.Appliance) { a.HA = true }), have: actual(want()), kinds: "ReportDrift", changes: "ha is false, wanted true"},
		{name: "switch change is drift", want: want(func(a *desired.Appliance) { a.SwitchID = 8 }), have: actual(want()), kinds: "ReportDrift", changes: "switch is 7, wanted 8"},
		{name: "settings and drift together", want: want(func(a *desired.Appliance) { a.HA = true; a.VIPs[0].DelayLoop = 20 }), have: actual(want()), kinds: "UpdateSettings,ReportDrift"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Compute(c.want, c.have)
			if kinds(got) != c.kinds {
				t.Fatalf("kinds %q, want %q (%+v)", kinds(got), c.kinds, got)
			}
			var text []string
			for _, a := range got {
				text = append(text, a.Changes...)
				for _, d := range a.Drift {
					text = append(text, d.String())
				}
			}
			if !strings.Contains(strings.Join(text, "|"), c.changes) {
				t.Fatalf("changes %q lack %q", text, c.changes)
			}
			for _, a := range got {
				if a.Kind == Create || a.Kind == UpdateSettings {
					for _, v := range a.VIPs {
						for _, s := range v.Servers {
							if s.Enabled != types.StringTrue || s.Port.Int() != v.Port.Int() {
								t.Fatalf("real server not enabled / wrong port: %+v", s)
							}
						}
					}
				}
			}
		})
	}
}

func TestToAPIHealthCheckFields(t *testing.T) {
	vips := ToAPI([]desired.VIP{
		{IP: "192.0.2.1", Port: 80, Owner: owner, Servers: []string{"192.0.2.4"}, HealthCheck: annotations.HealthCheck{Protocol: "ping", Path: "/ignored", Status: 200}},
		{IP: "192.0.2.1", Port: 443, Owner: owner, Servers: []string{"192.0.2.4"}, HealthCheck: annotations.HealthCheck{Protocol: "https", Path: "/hz", Status: 204, Retry: 2, Timeout: 5}},
	})
	p := vips[0].Servers[0].HealthCheck
	if p.Path != "" || p.ResponseCode != 0 {
		t.Fatalf("ping carries http fields: %+v", p)
	}
	h := vips[1].Servers[0].HealthCheck
	if h.Protocol != "https" || h.Path != "/hz" || h.ResponseCode.Int() != 204 || h.Retry.Int() != 2 || h.ConnectTimeout.Int() != 5 {
		t.Fatalf("https: %+v", h)
	}
	if vips[0].Description != "k8s:ns/web" {
		t.Fatalf("description %q", vips[0].Description)
	}
}
