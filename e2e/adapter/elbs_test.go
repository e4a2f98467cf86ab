// Package adapter tests the controller's writers of SAKURA resources
// (loadbalancer/apply) against the project's simulator over HTTP: the
// library's fake ignores SettingsHash and so cannot show a lost update.
package adapter

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/types"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/cloud"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/e2e/sakurasim"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/config"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/sakuraapi"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/apply"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/elbplan"
)

const (
	clusterTag = "k8s.usacloud.jp/cluster=adapter"
	serviceTag = "k8s.usacloud.jp/service-uid=u1"
)

// world is a simulator with two nodes on the shared segment and the
// controller's ELB writer talking to it over HTTP.
type world struct {
	sim    *sakurasim.Simulator
	client *sakuraapi.Client
	elbs   *apply.ELBs
	api    iaas.ProxyLBAPI // out of band: another person's edits
}

func newWorld(t *testing.T) *world { return newWorldWith(t, sakurasim.Options{}) }

// newWorldWith is newWorld with simulator options (a read-not-found window).
func newWorldWith(t *testing.T, opts sakurasim.Options) *world {
	t.Helper()
	sim := sakurasim.New(&sakurasim.Topology{Zone: "is1a", Servers: []sakurasim.ServerSpec{
		{Name: "node-a", NICs: []sakurasim.NICSpec{{Shared: true, IPAddress: "198.51.100.11"}}},
		{Name: "node-b", NICs: []sakurasim.NICSpec{{Shared: true, IPAddress: "198.51.100.12"}}},
	}}, opts)
	srv := httptest.NewServer(sim.Handler()) // 127.0.0.1, a free port
	t.Cleanup(srv.Close)
	cfg, err := config.FromReader(strings.NewReader(fmt.Sprintf(
		"accessToken: t\naccessTokenSecret: s\nzone: is1a\nclusterID: adapter\napiRootURL: %s\nretryMax: 0\nrequestTimeoutSec: 5\n", srv.URL)),
		func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	caller, err := cloud.NewCaller(cfg)
	if err != nil {
		t.Fatal(err)
	}
	client := sakuraapi.NewFromCaller(caller, "is1a", sakuraapi.Limits{})
	return &world{sim: sim, client: client, elbs: &apply.ELBs{API: client.ProxyLBs, ClusterID: "adapter"}, api: iaas.NewProxyLBOp(caller)}
}

func spec(servers ...string) elbplan.Spec {
	s := elbplan.Spec{Plan: 100, Region: "is1", BindPorts: []elbplan.BindPort{{Port: 80, Mode: "tcp"}},
		HealthCheck: elbplan.HealthCheck{Protocol: "tcp", DelayLoop: 10}, InactiveSec: 10, KeepAlive: "safe"}
	for _, a := range servers {
		s.Servers = append(s.Servers, elbplan.Server{Addr: netip.MustParseAddr(a), Port: 30080})
	}
	return s
}

func (w *world) create(t *testing.T, s elbplan.Spec) *iaas.ProxyLB {
	t.Helper()
	elb, err := w.elbs.Create(context.Background(), elbplan.CreateRequest(s, elbplan.Identity{Name: "k8s-adapter-web", Tags: []string{clusterTag, serviceTag}}))
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	return elb
}

// TestCreatedAsPlanned: what the writer creates reads back equal to the
// spec, so the first resync writes nothing; Find sees it by its tags only.
func TestCreatedAsPlanned(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	s := spec("198.51.100.11", "198.51.100.12")
	w.create(t, s)
	got, err := w.elbs.Find(ctx, clusterTag, serviceTag)
	if err != nil || len(got) != 1 {
		t.Fatalf("find by tags = %v, %v", got, err)
	}
	if c := elbplan.Plan(s, got[0]); !c.None() {
		t.Fatalf("a just-created ELB would be rewritten: %v", c.Diff)
	}
	if got[0].VirtualIPAddress == "" {
		t.Fatal("the API gives the VIP at creation; the Service status needs it")
	}
	if other, _ := w.elbs.Find(ctx, clusterTag, "k8s.usacloud.jp/service-uid=u2"); len(other) != 0 {
		t.Fatalf("another Service's tags found %d ELBs", len(other))
	}
}

// TestStaleSettingsAreRefused: a settings write planned on a copy that
// someone changed since fails, instead of undoing their change.
func TestStaleSettingsAreRefused(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	elb := w.create(t, spec("198.51.100.11"))
	planned := elbplan.Plan(spec("198.51.100.11", "198.51.100.12"), elb)
	if planned.Settings == nil {
		t.Fatal("adding a server must plan a settings write")
	}
	// Out of band: someone turns gzip on.
	cur, err := w.api.Read(ctx, elb.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.api.UpdateSettings(ctx, elb.ID, &iaas.ProxyLBUpdateSettingsRequest{HealthCheck: cur.HealthCheck, BindPorts: cur.BindPorts, Servers: cur.Servers,
		Gzip: &iaas.ProxyLBGzip{Enabled: true}, Timeout: cur.Timeout, BackendHttpKeepAlive: cur.BackendHttpKeepAlive, SettingsHash: cur.SettingsHash}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.elbs.UpdateSettings(ctx, elb.ID, planned.Settings); err == nil {
		t.Fatal("a write on a stale hash went through: the out-of-band change was lost")
	}
	fresh, _ := w.api.Read(ctx, elb.ID)
	if !fresh.Gzip.Enabled || len(fresh.Servers) != 1 {
		t.Fatalf("the refused write changed the ELB: gzip %v, %d servers", fresh.Gzip.Enabled, len(fresh.Servers))
	}
	// Planned again on the fresh copy, it goes through and keeps nothing stale.
	again := elbplan.Plan(spec("198.51.100.11", "198.51.100.12"), fresh)
	written, err := w.elbs.UpdateSettings(ctx, elb.ID, again.Settings)
	if err != nil {
		t.Fatal(err)
	}
	if len(written.Servers) != 2 {
		t.Fatalf("servers after the write: %d", len(written.Servers))
	}
}

// TestPlanChangeFollowsTheNewID: the ELB answers a plan change under a
// new ID with its tags and VIP; the old ID is gone.
func TestPlanChangeFollowsTheNewID(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	s := spec("198.51.100.11")
	elb := w.create(t, s)
	s.Plan = 500
	c := elbplan.Plan(s, elb)
	if c.ChangePlan == nil || c.Settings != nil {
		t.Fatalf("a plan alone must change the plan and nothing else: %+v", c)
	}
	moved, err := w.elbs.ChangePlan(ctx, elb, c.ChangePlan, clusterTag, serviceTag)
	if err != nil {
		t.Fatal(err)
	}
	if moved.ID == elb.ID || moved.Plan != 500 || moved.VirtualIPAddress != elb.VirtualIPAddress {
		t.Fatalf("after the plan change: id %s (was %s), plan %d, VIP %s (was %s)", moved.ID, elb.ID, moved.Plan, moved.VirtualIPAddress, elb.VirtualIPAddress)
	}
	if _, err := w.elbs.Read(ctx, elb.ID); !sakuraapi.IsNotFound(err) {
		t.Fatalf("the old ID still reads: %v", err)
	}
	found, _ := w.elbs.Find(ctx, clusterTag, serviceTag)
	if len(found) != 1 || found[0].ID != moved.ID {
		t.Fatalf("the tags must follow the new ID: %v", found)
	}
	if c := elbplan.Plan(s, found[0]); !c.None() {
		t.Fatalf("nothing is left to write after the plan change: %+v", c)
	}
}

// TestWritesCheckOwnershipFirst: an ELB that lost the tags the write was
// decided on (taken over by hand) is neither deleted, retagged nor moved.
func TestWritesCheckOwnershipFirst(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	elb := w.create(t, spec("198.51.100.11"))
	cur, _ := w.api.Read(ctx, elb.ID)
	if _, err := w.api.Update(ctx, elb.ID, elbplan.RetagRequest(cur, []string{"someone-else"})); err != nil {
		t.Fatal(err)
	}
	if err := w.elbs.Delete(ctx, elb.ID, clusterTag, serviceTag); err == nil {
		t.Fatal("deleted an ELB that no longer carries the Service's tags")
	}
	if _, err := w.elbs.Retag(ctx, elb.ID, nil, clusterTag, serviceTag); err == nil {
		t.Fatal("retagged an ELB that no longer carries the Service's tags")
	}
	if _, err := w.elbs.ChangePlan(ctx, elb, &iaas.ProxyLBChangePlanRequest{ServiceClass: types.ProxyLBServiceClass(500, "is1")}, clusterTag, serviceTag); err == nil {
		t.Fatal("changed the plan of an ELB that no longer carries the Service's tags")
	}
	if _, ok := w.sim.ProxyLB(elb.ID); !ok {
		t.Fatal("the ELB is gone")
	}
}

// TestPreserveKeepsSettings: untagging (preserve) writes the settings back
// as read; deleting one that is already gone is done.
func TestPreserveKeepsSettings(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	elb := w.create(t, spec("198.51.100.11", "198.51.100.12"))
	kept, err := w.elbs.Retag(ctx, elb.ID, []string{"kept"}, clusterTag, serviceTag)
	if err != nil {
		t.Fatal(err)
	}
	if len(kept.Tags) != 1 || kept.Tags[0] != "kept" || len(kept.Servers) != 2 || kept.SettingsHash != elb.SettingsHash {
		t.Fatalf("after untagging: tags %v, %d servers, hash %s (was %s)", kept.Tags, len(kept.Servers), kept.SettingsHash, elb.SettingsHash)
	}
	other := w.create(t, spec("198.51.100.11"))
	if err := w.elbs.Delete(ctx, other.ID, clusterTag, serviceTag); err != nil {
		t.Fatal(err)
	}
	if err := w.elbs.Delete(ctx, other.ID, clusterTag, serviceTag); err != nil {
		t.Fatalf("deleting an ELB already gone: %v", err)
	}
	var nf interface{ ResponseCode() int }
	if _, err := w.elbs.Read(ctx, other.ID); !errors.As(err, &nf) || nf.ResponseCode() != 404 {
		t.Fatalf("read after delete: %v", err)
	}
}

// TestLetsEncryptAsPlanned: a Let's Encrypt setting is accepted by the
// API as the writer sends it and reads back equal, so nothing is written
// again; left out of a later spec, it is kept by a settings write.
func TestLetsEncryptAsPlanned(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	s := spec("198.51.100.11")
	s.BindPorts = []elbplan.BindPort{{Port: 80, Mode: "http"}}
	s.LetsEncrypt = &elbplan.LetsEncrypt{CommonName: "www.example.com", AltNames: []string{"a.example.com"}}
	w.create(t, s)
	got, err := w.elbs.Find(ctx, clusterTag, serviceTag)
	if err != nil || len(got) != 1 {
		t.Fatalf("find = %v, %v", got, err)
	}
	if c := elbplan.Plan(s, got[0]); !c.None() {
		t.Fatalf("a just-created ELB with Let's Encrypt would be rewritten: %v", c.Diff)
	}
	unmanaged := s
	unmanaged.LetsEncrypt = nil
	unmanaged.Servers = append(unmanaged.Servers, elbplan.Server{Addr: netip.MustParseAddr("198.51.100.12"), Port: 30080})
	c := elbplan.Plan(unmanaged, got[0])
	written, err := w.elbs.UpdateSettings(ctx, got[0].ID, c.Settings)
	if err != nil {
		t.Fatal(err)
	}
	if le := written.LetsEncrypt; le == nil || !le.Enabled || le.CommonName != "www.example.com" {
		t.Fatalf("the Let's Encrypt setting was lost by a write that did not manage it: %+v", le)
	}
}

// TestAdoptChecksTheELBDecidedOn: an adoption decided on a copy that
// someone retagged since is refused with nothing written; one on an
// unchanged ELB writes exactly the tags decided.
func TestAdoptChecksTheELBDecidedOn(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	elb, err := w.api.Create(ctx, elbplan.CreateRequest(spec("198.51.100.11"), elbplan.Identity{Name: "by-hand", Tags: []string{"mine"}}))
	if err != nil {
		t.Fatal(err)
	}
	decided, _ := w.api.Read(ctx, elb.ID)
	cur, _ := w.api.Read(ctx, elb.ID)
	if _, err := w.api.Update(ctx, elb.ID, elbplan.RetagRequest(cur, []string{"mine", "taken"})); err != nil {
		t.Fatal(err)
	}
	if _, err := w.elbs.Adopt(ctx, decided, []string{"mine", clusterTag, serviceTag}); !errors.Is(err, apply.ErrAdoptChanged) {
		t.Fatalf("adopting a retagged ELB: %v", err)
	}
	if now, _ := w.api.Read(ctx, elb.ID); len(now.Tags) != 2 {
		t.Fatalf("a refused adoption wrote tags: %v", now.Tags)
	}
	fresh, _ := w.api.Read(ctx, elb.ID)
	got, err := w.elbs.Adopt(ctx, fresh, []string{"mine", "taken", clusterTag, serviceTag})
	if err != nil || len(got.Tags) != 4 || len(got.Servers) != 1 {
		t.Fatalf("adoption: %v, tags %v", err, got)
	}
}
