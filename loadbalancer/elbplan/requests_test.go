package elbplan

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/types"
)

// readBack is what the API shows after a create with req: the request's
// settings under a new ID.
func readBack(req *iaas.ProxyLBCreateRequest) *iaas.ProxyLB {
	return &iaas.ProxyLB{
		ID: 113100000021, Name: req.Name, Tags: req.Tags, Plan: req.Plan, Region: req.Region, SettingsHash: hash,
		HealthCheck: req.HealthCheck, SorryServer: req.SorryServer, BindPorts: req.BindPorts, Servers: req.Servers,
		StickySession: req.StickySession, Timeout: req.Timeout, Gzip: req.Gzip, BackendHttpKeepAlive: req.BackendHttpKeepAlive,
		ProxyProtocol: req.ProxyProtocol, LetsEncrypt: req.LetsEncrypt,
	}
}

func TestCreateRequestNeedsNoWriteAfterwards(t *testing.T) {
	for name, s := range map[string]Spec{
		"two ports": spec(),
		"sticky + sorry": spec(func(s *Spec) {
			s.StickySession = true
			s.SorryServer = netip.MustParseAddr("198.51.100.9")
			s.SorryServerPort = 8080
		}),
		"http check": spec(func(s *Spec) {
			s.HealthCheck = HealthCheck{Protocol: "http", Path: "/healthz", Host: "a.example", DelayLoop: 30}
		}),
		"proxy protocol": spec(func(s *Spec) { s.ProxyProtocol, s.Gzip, s.InactiveSec = true, true, 600 }),
		"let's encrypt": spec(func(s *Spec) {
			s.LetsEncrypt = &LetsEncrypt{CommonName: "www.example.com", AltNames: []string{"a.example.com"}}
		}),
	} {
		t.Run(name, func(t *testing.T) {
			req := CreateRequest(s, Identity{Name: "n", Description: "d", Tags: []string{"a", "b"}})
			if req.Plan != s.Plan || req.Region != s.Region || req.Name != "n" || req.Description != "d" || !reflect.DeepEqual([]string(req.Tags), []string{"a", "b"}) {
				t.Fatalf("identity or plan not carried: %+v", req)
			}
			if c := Plan(s, readBack(req)); !c.None() {
				t.Fatalf("an ELB created from the spec would be rewritten at once: %v", c.Diff)
			}
		})
	}
}

func TestRetagKeepsEverythingButTheTags(t *testing.T) {
	have := observed(spec(), func(e *iaas.ProxyLB) {
		e.Rules = []*iaas.ProxyLBRule{{Host: "a.example", ServerGroup: "g"}}
		e.LetsEncrypt = &iaas.ProxyLBACMESetting{CommonName: "a.example", Enabled: true}
	})
	req := RetagRequest(have, []string{"kept-by-hand"})
	if !reflect.DeepEqual([]string(req.Tags), []string{"kept-by-hand"}) {
		t.Fatalf("tags = %v", req.Tags)
	}
	if req.SettingsHash != hash {
		t.Fatalf("the write must carry the hash it was decided on, got %q", req.SettingsHash)
	}
	if !reflect.DeepEqual(req.Servers, have.Servers) || !reflect.DeepEqual(req.BindPorts, have.BindPorts) ||
		!reflect.DeepEqual(req.Rules, have.Rules) || !reflect.DeepEqual(req.LetsEncrypt, have.LetsEncrypt) ||
		!reflect.DeepEqual(req.Syslog, have.Syslog) || req.Name != have.Name {
		t.Fatalf("settings not written back as read: %+v", req)
	}
	have.Tags = types.Tags{"changed"}
	if req.Tags[0] != "kept-by-hand" {
		t.Fatal("the request shares the tags slice with its input")
	}
}

func TestVIPFailoverIsKeptAndReported(t *testing.T) {
	s := spec(func(s *Spec) { s.VIPFailover = true })
	if req := CreateRequest(s, Identity{Name: "n"}); !req.UseVIPFailover {
		t.Fatal("a new ELB must be made with the VIP failover asked for")
	}
	have := observed(spec(), func(e *iaas.ProxyLB) { e.Plan = 500 })
	c := Plan(s, have)
	if c.NewELB || c.Settings != nil {
		t.Fatalf("VIP failover alone must neither replace the ELB nor write settings: %+v", c)
	}
	if c.ChangePlan == nil {
		t.Fatal("the plan must still change while VIP failover differs")
	}
	if len(c.Kept) != 1 || c.Kept[0].Field != "VIP failover" || c.Kept[0].Have != "false" || c.Kept[0].Want != "true" {
		t.Fatalf("kept = %v", c.Kept)
	}
	if c := Plan(s, observed(s, func(e *iaas.ProxyLB) { e.UseVIPFailover = true })); len(c.Kept) != 0 || !c.None() {
		t.Fatalf("an ELB as wanted must need nothing: %+v", c)
	}
}

func TestLetsEncrypt(t *testing.T) {
	le := &LetsEncrypt{CommonName: "www.example.com", AltNames: []string{"a.example.com", "b.example.com"}}
	want := spec(func(s *Spec) { s.LetsEncrypt = le })
	// Off on the ELB: one settings write turns it on.
	c := Plan(want, observed(spec()))
	if c.Settings == nil || c.Settings.LetsEncrypt == nil || !c.Settings.LetsEncrypt.Enabled || c.Settings.LetsEncrypt.CommonName != "www.example.com" {
		t.Fatalf("turning Let's Encrypt on: %+v", c.Settings)
	}
	if len(c.Diff) != 1 || !strings.Contains(c.Diff[0], "let's encrypt off -> www.example.com (a.example.com, b.example.com)") {
		t.Fatalf("diff = %v", c.Diff)
	}
	// The same names in another order: nothing to write.
	on := observed(spec(), func(e *iaas.ProxyLB) {
		e.LetsEncrypt = &iaas.ProxyLBACMESetting{CommonName: "www.example.com", Enabled: true, SubjectAltNames: []string{"b.example.com", "a.example.com"}}
	})
	if c := Plan(want, on); !c.None() {
		t.Fatalf("same names, another order: %v", c.Diff)
	}
	// Not asked for: the ELB's own setting is kept as it is.
	if c := Plan(spec(), on); !c.None() {
		t.Fatalf("a setting made by hand was changed: %v", c.Diff)
	}
	if c := Plan(spec(func(s *Spec) { s.Servers = s.Servers[:1] }), on); c.Settings == nil || c.Settings.LetsEncrypt == nil || !c.Settings.LetsEncrypt.Enabled {
		t.Fatalf("another write dropped the ELB's own Let's Encrypt setting: %+v", c.Settings)
	}
}
