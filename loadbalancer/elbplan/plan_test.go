package elbplan

import (
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/types"
)

const hash = "0123abcd"

// spec is a two-port ELB over two nodes, as Desired makes one.
func spec(mut ...func(*Spec)) Spec {
	s := Spec{
		Plan: 100, Region: "is1",
		BindPorts: []BindPort{{Port: 80, Mode: "http", RedirectToHTTPS: true}, {Port: 443, Mode: "https", HTTP2: true}},
		Servers: []Server{
			{Node: "a", Addr: netip.MustParseAddr("203.0.113.1"), Port: 30080},
			{Node: "b", Addr: netip.MustParseAddr("203.0.113.2"), Port: 30080},
		},
		HealthCheck: HealthCheck{Protocol: "tcp", DelayLoop: 10},
		InactiveSec: 10, KeepAlive: "safe",
	}
	for _, m := range mut {
		m(&s)
	}
	return s
}

// observed renders s by hand the way the API reads it back, written
// independently of the code under test, then applies mut.
func observed(s Spec, mut ...func(*iaas.ProxyLB)) *iaas.ProxyLB {
	elb := &iaas.ProxyLB{
		ID: 113100000020, Name: "k8s-c-ns-web", Tags: types.Tags{"k8s.usacloud.jp/cluster=c", "k8s.usacloud.jp/service-uid=u"},
		Plan: s.Plan, Region: s.Region, SettingsHash: hash,
		HealthCheck:          &iaas.ProxyLBHealthCheck{Protocol: s.HealthCheck.Protocol, Path: s.HealthCheck.Path, Host: s.HealthCheck.Host, DelayLoop: s.HealthCheck.DelayLoop},
		SorryServer:          &iaas.ProxyLBSorryServer{},
		StickySession:        &iaas.ProxyLBStickySession{},
		Timeout:              &iaas.ProxyLBTimeout{InactiveSec: s.InactiveSec},
		Gzip:                 &iaas.ProxyLBGzip{Enabled: s.Gzip},
		BackendHttpKeepAlive: &iaas.ProxyLBBackendHttpKeepAlive{Mode: s.KeepAlive},
		ProxyProtocol:        &iaas.ProxyLBProxyProtocol{Enabled: s.ProxyProtocol},
		Syslog:               &iaas.ProxyLBSyslog{Port: 514},
	}
	if s.SorryServer.IsValid() {
		elb.SorryServer = &iaas.ProxyLBSorryServer{IPAddress: s.SorryServer.String(), Port: s.SorryServerPort}
	}
	if s.StickySession {
		elb.StickySession = &iaas.ProxyLBStickySession{Enabled: true, Method: "cookie"}
	}
	for _, b := range s.BindPorts {
		elb.BindPorts = append(elb.BindPorts, &iaas.ProxyLBBindPort{ProxyMode: b.Mode, Port: b.Port, RedirectToHTTPS: b.RedirectToHTTPS, SupportHTTP2: b.HTTP2, SSLPolicy: b.SSLPolicy})
	}
	for _, sv := range s.Servers {
		elb.Servers = append(elb.Servers, &iaas.ProxyLBServer{IPAddress: sv.Addr.String(), Port: sv.Port, Enabled: true})
	}
	for _, m := range mut {
		m(elb)
	}
	return elb
}

func TestPlan(t *testing.T) {
	type want struct {
		newELB     bool
		settings   bool
		changePlan string // ServiceClass, "" = none
		diff       string // substring of Diff or Why
	}
	cases := []struct {
		name string
		spec Spec
		have *iaas.ProxyLB
		want want
	}{
		{name: "no ELB: a new one", spec: spec(), have: nil, want: want{newELB: true}},
		{name: "equal: nothing", spec: spec(), have: observed(spec())},
		{name: "API zeros for its defaults: nothing", spec: spec(), have: observed(spec(), func(e *iaas.ProxyLB) {
			e.HealthCheck.DelayLoop, e.Timeout, e.BackendHttpKeepAlive = 0, nil, nil
		})},
		{name: "absent optional blocks read as off: nothing", spec: spec(), have: observed(spec(), func(e *iaas.ProxyLB) {
			e.SorryServer, e.StickySession, e.Gzip, e.ProxyProtocol = nil, nil, nil, nil
		})},
		{name: "servers and ports reordered: nothing", spec: spec(), have: observed(spec(), func(e *iaas.ProxyLB) {
			slices.Reverse(e.Servers)
			slices.Reverse(e.BindPorts)
		})},
		{name: "other name, description and tags: nothing (the caller owns them)", spec: spec(), have: observed(spec(), func(e *iaas.ProxyLB) {
			e.Name, e.Description, e.Tags = "renamed", "by hand", types.Tags{"k8s.usacloud.jp/cluster=other", "@previous-id=1"}
		})},
		{name: "settings we do not model differ: nothing", spec: spec(), have: observed(spec(), func(e *iaas.ProxyLB) {
			e.Rules = []*iaas.ProxyLBRule{{Host: "x.example", Action: "fixed"}}
			e.Syslog = &iaas.ProxyLBSyslog{Server: "198.51.100.9", Port: 514}
		})},

		{name: "server added", spec: spec(func(s *Spec) {
			s.Servers = append(s.Servers, Server{Node: "c", Addr: netip.MustParseAddr("203.0.113.3"), Port: 30080})
		}), have: observed(spec()), want: want{settings: true, diff: "add server 203.0.113.3:30080"}},
		{name: "server removed", spec: spec(func(s *Spec) { s.Servers = s.Servers[:1] }), have: observed(spec()),
			want: want{settings: true, diff: "remove server 203.0.113.2:30080"}},
		{name: "server moved to another NodePort", spec: spec(func(s *Spec) { s.Servers[0].Port = 31000 }), have: observed(spec()),
			want: want{settings: true, diff: "add server 203.0.113.1:31000"}},
		{name: "server disabled by hand", spec: spec(), have: observed(spec(), func(e *iaas.ProxyLB) { e.Servers[1].Enabled = false }),
			want: want{settings: true, diff: "server 203.0.113.2:30080: enabled false"}},
		{name: "server put in a group by hand", spec: spec(), have: observed(spec(), func(e *iaas.ProxyLB) { e.Servers[0].ServerGroup = "g" }),
			want: want{settings: true, diff: `group "g"`}},

		{name: "port mode changed", spec: spec(func(s *Spec) { s.BindPorts[0] = BindPort{Port: 80, Mode: "tcp"} }), have: observed(spec()),
			want: want{settings: true, diff: "port 80: mode http -> tcp"}},
		{name: "port added", spec: spec(), have: observed(spec(func(s *Spec) { s.BindPorts = s.BindPorts[:1] })),
			want: want{settings: true, diff: "add port 443 (https)"}},
		{name: "port removed", spec: spec(func(s *Spec) { s.BindPorts = s.BindPorts[:1] }), have: observed(spec()),
			want: want{settings: true, diff: "remove port 443 (https)"}},
		{name: "redirect turned off", spec: spec(func(s *Spec) { s.BindPorts[0].RedirectToHTTPS = false }), have: observed(spec()),
			want: want{settings: true, diff: "port 80: redirect to https true -> false"}},
		{name: "http2 turned off", spec: spec(func(s *Spec) { s.BindPorts[1].HTTP2 = false }), have: observed(spec()),
			want: want{settings: true, diff: "port 443: http2 true -> false"}},
		{name: "ssl policy asked for", spec: spec(func(s *Spec) { s.BindPorts[1].SSLPolicy = "TLS-1-3-2021-06" }), have: observed(spec()),
			want: want{settings: true, diff: "port 443: ssl policy (none) -> TLS-1-3-2021-06"}},
		{name: "ssl policy left to the ELB: whatever it has is fine", spec: spec(), have: observed(spec(), func(e *iaas.ProxyLB) { e.BindPorts[1].SSLPolicy = "TLS-1-2-2019-04" })},
		{name: "response header added by hand", spec: spec(), have: observed(spec(), func(e *iaas.ProxyLB) {
			e.BindPorts[0].AddResponseHeader = []*iaas.ProxyLBResponseHeader{{Header: "X-A", Value: "1"}}
		}), want: want{settings: true, diff: "port 80: remove 1 response header"}},

		{name: "health check protocol changed", spec: spec(func(s *Spec) { s.HealthCheck = HealthCheck{Protocol: "http", Path: "/hz", DelayLoop: 10} }), have: observed(spec()),
			want: want{settings: true, diff: `health check tcp every 10s -> http every 10s path "/hz"`}},
		{name: "health check path changed", spec: spec(func(s *Spec) { s.HealthCheck = HealthCheck{Protocol: "http", Path: "/b", DelayLoop: 10} }),
			have: observed(spec(func(s *Spec) { s.HealthCheck = HealthCheck{Protocol: "http", Path: "/a", DelayLoop: 10} })),
			want: want{settings: true, diff: `path "/a"`}},
		{name: "health check host changed", spec: spec(func(s *Spec) { s.HealthCheck = HealthCheck{Protocol: "http", Path: "/", Host: "b", DelayLoop: 10} }),
			have: observed(spec(func(s *Spec) { s.HealthCheck = HealthCheck{Protocol: "http", Path: "/", Host: "a", DelayLoop: 10} })),
			want: want{settings: true, diff: `host "a"`}},
		{name: "health check interval changed", spec: spec(func(s *Spec) { s.HealthCheck.DelayLoop = 30 }), have: observed(spec()),
			want: want{settings: true, diff: "tcp every 10s -> tcp every 30s"}},
		{name: "health check missing", spec: spec(), have: observed(spec(), func(e *iaas.ProxyLB) { e.HealthCheck = nil }),
			want: want{settings: true, diff: "health check (none) every 10s -> tcp every 10s"}},

		{name: "sorry server set", spec: spec(func(s *Spec) { s.SorryServer, s.SorryServerPort = netip.MustParseAddr("198.51.100.7"), 8080 }), have: observed(spec()),
			want: want{settings: true, diff: "sorry server (none) -> 198.51.100.7:8080"}},
		{name: "sorry server port changed", spec: spec(func(s *Spec) { s.SorryServer = netip.MustParseAddr("198.51.100.7") }),
			have: observed(spec(func(s *Spec) { s.SorryServer, s.SorryServerPort = netip.MustParseAddr("198.51.100.7"), 8080 })),
			want: want{settings: true, diff: "sorry server 198.51.100.7:8080 -> 198.51.100.7"}},
		{name: "sticky session on", spec: spec(func(s *Spec) { s.StickySession = true }), have: observed(spec()),
			want: want{settings: true, diff: "sticky session off -> by cookie"}},
		{name: "sticky session with another method", spec: spec(func(s *Spec) { s.StickySession = true }),
			have: observed(spec(), func(e *iaas.ProxyLB) { e.StickySession = &iaas.ProxyLBStickySession{Enabled: true, Method: "ip"} }),
			want: want{settings: true, diff: "sticky session by ip -> by cookie"}},
		{name: "timeout changed", spec: spec(func(s *Spec) { s.InactiveSec = 300 }), have: observed(spec()),
			want: want{settings: true, diff: "inactivity timeout 10 -> 300"}},
		{name: "keep-alive changed", spec: spec(func(s *Spec) { s.KeepAlive = "aggressive" }), have: observed(spec()),
			want: want{settings: true, diff: "backend keep-alive safe -> aggressive"}},
		{name: "PROXY protocol on", spec: spec(func(s *Spec) { s.ProxyProtocol = true }), have: observed(spec()),
			want: want{settings: true, diff: "PROXY protocol false -> true"}},
		{name: "gzip off", spec: spec(), have: observed(spec(func(s *Spec) { s.Gzip = true })),
			want: want{settings: true, diff: "gzip true -> false"}},

		{name: "plan changed: ChangePlan only", spec: spec(func(s *Spec) { s.Plan = 500 }), have: observed(spec()),
			want: want{changePlan: "cloud/proxylb/plain/500"}},
		{name: "plan changed in anycast", spec: spec(func(s *Spec) { s.Plan = 1000; s.Region = "anycast" }), have: observed(spec(func(s *Spec) { s.Region = "anycast" })),
			want: want{changePlan: "cloud/proxylb/anycast/1000"}},
		{name: "plan and settings changed: both", spec: spec(func(s *Spec) { s.Plan = 500; s.Gzip = true }), have: observed(spec()),
			want: want{settings: true, changePlan: "cloud/proxylb/plain/500", diff: "gzip false -> true"}},
		{name: "region changed: a new ELB, nothing written to the old", spec: spec(func(s *Spec) { s.Region = "tk1"; s.Plan = 500; s.Gzip = true }), have: observed(spec()),
			want: want{newELB: true, diff: "region is is1, wanted tk1"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Plan(c.spec, c.have)
			if got.NewELB != c.want.newELB || (got.Settings != nil) != c.want.settings {
				t.Fatalf("newELB %t settings %t, want %t %t (diff %q, why %v)", got.NewELB, got.Settings != nil, c.want.newELB, c.want.settings, got.Diff, got.Why)
			}
			gotPlan := ""
			if got.ChangePlan != nil {
				gotPlan = got.ChangePlan.ServiceClass
			}
			if gotPlan != c.want.changePlan {
				t.Fatalf("change plan %q, want %q", gotPlan, c.want.changePlan)
			}
			if got.None() != (!c.want.newELB && !c.want.settings && c.want.changePlan == "") {
				t.Fatalf("None() is %t for %+v", got.None(), got)
			}
			if got.NewELB && (got.Settings != nil || got.ChangePlan != nil) {
				t.Fatalf("a new ELB, yet writes to the old one: %+v", got)
			}
			text := got.Diff
			for _, d := range got.Why {
				text = append(text, d.String())
			}
			if (got.Settings != nil) != (len(got.Diff) > 0) {
				t.Fatalf("settings without a diff or the other way round: %q", got.Diff)
			}
			if !strings.Contains(strings.Join(text, "|"), c.want.diff) {
				t.Fatalf("diff %q lacks %q", text, c.want.diff)
			}
			if got.Settings != nil {
				checkSettings(t, c.spec, c.have, got.Settings)
			}
		})
	}
}

// checkSettings: the write says all of spec, with the hash it was read at,
// and nothing in it would be a difference on the next read.
func checkSettings(t *testing.T, s Spec, have *iaas.ProxyLB, req *iaas.ProxyLBUpdateSettingsRequest) {
	t.Helper()
	if req.SettingsHash != have.SettingsHash {
		t.Errorf("settings hash %q, want the observed %q", req.SettingsHash, have.SettingsHash)
	}
	if len(req.Servers) != len(s.Servers) || len(req.BindPorts) != len(s.BindPorts) {
		t.Fatalf("write has %d servers, %d ports; want %d, %d", len(req.Servers), len(req.BindPorts), len(s.Servers), len(s.BindPorts))
	}
	for _, sv := range req.Servers {
		if !sv.Enabled {
			t.Errorf("server %s:%d written disabled", sv.IPAddress, sv.Port)
		}
	}
	// Read back as the API would store it, the write must be in sync.
	after := *have
	after.HealthCheck, after.SorryServer, after.BindPorts, after.Servers = req.HealthCheck, req.SorryServer, req.BindPorts, req.Servers
	after.StickySession, after.Timeout, after.Gzip = req.StickySession, req.Timeout, req.Gzip
	after.BackendHttpKeepAlive, after.ProxyProtocol = req.BackendHttpKeepAlive, req.ProxyProtocol
	after.Plan = s.Plan
	if again := Plan(s, &after); !again.None() {
		t.Errorf("the write does not converge; next plan: %+v", again)
	}
}

// A full write must not erase what the spec does not model, nor a policy
// the spec leaves to the ELB.
func TestSettingsKeepWhatSpecDoesNotModel(t *testing.T) {
	rules := []*iaas.ProxyLBRule{{Host: "x.example", Action: "fixed", FixedStatusCode: 403}}
	le := &iaas.ProxyLBACMESetting{Enabled: true, CommonName: "www.example"}
	syslog := &iaas.ProxyLBSyslog{Server: "198.51.100.9", Port: 514}
	have := observed(spec(), func(e *iaas.ProxyLB) {
		e.Rules, e.LetsEncrypt, e.Syslog = rules, le, syslog
		e.BindPorts[1].SSLPolicy = "TLS-1-2-2019-04"
	})
	got := Plan(spec(func(s *Spec) { s.Gzip = true }), have)
	if got.Settings == nil {
		t.Fatal("no write")
	}
	r := got.Settings
	if len(r.Rules) != 1 || r.Rules[0] != rules[0] || r.LetsEncrypt != le || r.Syslog != syslog {
		t.Errorf("unmodelled settings not carried: rules %v, lets encrypt %v, syslog %v", r.Rules, r.LetsEncrypt, r.Syslog)
	}
	if p := r.BindPorts[1].SSLPolicy; p != "TLS-1-2-2019-04" {
		t.Errorf("ssl policy left to the ELB was written as %q", p)
	}
	if r.BindPorts[0].SSLPolicy != "" {
		t.Errorf("an http port got an ssl policy: %q", r.BindPorts[0].SSLPolicy)
	}
}

// What the write says for each option, checked field by field against
// the API's model: a mistake here would converge in the test above and
// still write the wrong thing.
func TestSettingsFields(t *testing.T) {
	s := spec(func(s *Spec) {
		s.HealthCheck = HealthCheck{Protocol: "http", Path: "/hz", Host: "h.example", DelayLoop: 20}
		s.SorryServer, s.SorryServerPort = netip.MustParseAddr("198.51.100.7"), 8080
		s.StickySession, s.ProxyProtocol, s.Gzip, s.InactiveSec, s.KeepAlive = true, true, true, 60, "aggressive"
	})
	got := Plan(s, observed(spec()))
	r := got.Settings
	if r == nil {
		t.Fatal("no write")
	}
	if *r.HealthCheck != (iaas.ProxyLBHealthCheck{Protocol: "http", Path: "/hz", Host: "h.example", DelayLoop: 20}) {
		t.Errorf("health check %+v", *r.HealthCheck)
	}
	if *r.SorryServer != (iaas.ProxyLBSorryServer{IPAddress: "198.51.100.7", Port: 8080}) {
		t.Errorf("sorry server %+v", *r.SorryServer)
	}
	if *r.StickySession != (iaas.ProxyLBStickySession{Enabled: true, Method: "cookie"}) || !r.ProxyProtocol.Enabled || !r.Gzip.Enabled ||
		r.Timeout.InactiveSec != 60 || r.BackendHttpKeepAlive.Mode != "aggressive" {
		t.Errorf("options %+v %+v %+v %+v %+v", *r.StickySession, *r.ProxyProtocol, *r.Gzip, *r.Timeout, *r.BackendHttpKeepAlive)
	}
	if !reflect.DeepEqual(r.BindPorts, []*iaas.ProxyLBBindPort{
		{ProxyMode: "http", Port: 80, RedirectToHTTPS: true},
		{ProxyMode: "https", Port: 443, SupportHTTP2: true},
	}) {
		t.Errorf("bind ports %+v %+v", *r.BindPorts[0], *r.BindPorts[1])
	}
	// A tcp check carries no path or host, even if the spec had one.
	tcp := Plan(spec(func(s *Spec) { s.HealthCheck = HealthCheck{Protocol: "tcp", Path: "/x", DelayLoop: 15} }), observed(spec()))
	if hc := *tcp.Settings.HealthCheck; hc != (iaas.ProxyLBHealthCheck{Protocol: "tcp", DelayLoop: 15}) {
		t.Errorf("tcp check %+v", hc)
	}
}

// The same difference reads the same however the API orders its lists.
func TestPlanDiffIsDeterministic(t *testing.T) {
	want := spec(func(s *Spec) { s.Servers = nil; s.BindPorts = s.BindPorts[:1] })
	have := observed(spec(func(s *Spec) {
		for i := 3; i < 9; i++ {
			s.Servers = append(s.Servers, Server{Addr: netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}), Port: 30080})
		}
	}))
	first := Plan(want, have).Diff
	slices.Reverse(have.Servers)
	slices.Reverse(have.BindPorts)
	second := Plan(want, have).Diff
	if !slices.Equal(first, second) || len(first) != 9 {
		t.Errorf("diffs differ or are incomplete:\n%q\n%q", first, second)
	}
}
