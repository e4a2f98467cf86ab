package sakurasim

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sacloud/iaas-api-go"
)

// Status follows the applied configuration: a VIP or real server added but
// not yet Config'd is absent, one removed but not Config'd still shows.
func TestStatusFollowsAppliedConfiguration(t *testing.T) {
	sim := use(t, sampleTopology(t), Options{})
	ctx := context.Background()
	op := iaas.NewLoadBalancerOp(caller)
	id := sim.lbs[0].ID
	const v80a, v80b = "192.168.100.200:80/192.168.100.11:80", "192.168.100.200:80/192.168.100.12:80"
	const v443 = "192.168.100.200:443/192.168.100.11:443"
	update := func(vips ...*iaas.LoadBalancerVirtualIPAddress) {
		t.Helper()
		cur, err := op.Read(ctx, zone, id)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := op.UpdateSettings(ctx, zone, id, &iaas.LoadBalancerUpdateSettingsRequest{
			SettingsHash: cur.SettingsHash, VirtualIPAddresses: vips}); err != nil {
			t.Fatal(err)
		}
	}
	check := func(what string, wantPending bool, want ...string) {
		t.Helper()
		got := statusOf(t, id)
		var keys []string
		for k := range got {
			keys = append(keys, k)
		}
		if fmt.Sprint(sortedTags(keys)) != fmt.Sprint(sortedTags(want)) {
			t.Fatalf("%s: status entries %v, want %v", what, keys, want)
		}
		if _, pending, _ := sim.Applied(id); pending != wantPending {
			t.Fatalf("%s: pending = %v, want %v", what, pending, wantPending)
		}
	}
	check("seeded", false, v80a, v80b)

	// Add a VIP and a real server: saved, not applied.
	update(vip("192.168.100.200", 80, "192.168.100.11"), vip("192.168.100.200", 443, "192.168.100.11"))
	check("VIP 443 added, .12 removed, not applied", true, v80a, v80b)
	if err := op.Config(ctx, zone, id); err != nil {
		t.Fatal(err)
	}
	check("applied", false, v80a, v443)

	// Remove the 443 VIP without Config: it still shows.
	update(vip("192.168.100.200", 80, "192.168.100.11", "192.168.100.12"))
	check("443 removed, not applied", true, v80a, v443)
	if err := op.Config(ctx, zone, id); err != nil {
		t.Fatal(err)
	}
	check("removal applied", false, v80a, v80b)

	// Config without a pending change is a harmless no-op.
	if err := op.Config(ctx, zone, id); err != nil {
		t.Fatal(err)
	}
	check("second Config", false, v80a, v80b)

	// The saved settings are what Read and Find return; both admin views agree.
	got, _ := op.Read(ctx, zone, id)
	cfg := adminDo(t, "GET", "/_admin/load-balancers/"+id.String(), "", 200)
	if cfg["pending"] != false || cfg["savedHash"] != got.SettingsHash || cfg["appliedHash"] != got.SettingsHash ||
		len(cfg["saved"].([]any)) != 1 || len(cfg["applied"].([]any)) != 1 || cfg["status"] != "up" {
		t.Fatalf("admin load balancer view: %v", cfg)
	}
	adminDo(t, "GET", "/_admin/load-balancers/999999999999", "", 404)
	if _, _, ok := sim.Applied(999999999999); ok {
		t.Fatal("Applied of an unknown appliance reported ok")
	}
}

// Config needs a running appliance: 409 still_creating while it is being
// created, 409 conflict while it is down, booting or shutting down. A
// reboot does not apply pending settings; only Config does.
func TestConfigNeedsARunningAppliance(t *testing.T) {
	clock := newFakeClock()
	sim := use(t, sampleTopology(t), Options{BootDelay: time.Minute, Now: clock.Now})
	ctx := context.Background()
	op := iaas.NewLoadBalancerOp(caller)
	lb, err := op.Create(ctx, zone, lbRequest(sim.switchByName("k8s-global").ID, []string{"203.0.113.23"}, 7,
		vip("203.0.113.25", 80, "203.0.113.20")))
	if err != nil {
		t.Fatal(err)
	}
	// The created settings count as applied; nothing is pending.
	applied, pending, ok := sim.Applied(lb.ID)
	if !ok || pending || len(applied) != 1 {
		t.Fatalf("new LB: applied %d, pending %v", len(applied), pending)
	}
	wantConfig := func(what string, code int, ec string) {
		t.Helper()
		err := op.Config(ctx, zone, lb.ID)
		gotCode, gotEC := apiStatus(err)
		if code == 0 && err != nil || code != 0 && (gotCode != code || gotEC != ec) {
			t.Fatalf("Config %s: %v (%d %s), want %d %s", what, err, gotCode, gotEC, code, ec)
		}
	}
	// UpdateSettings is allowed while migrating; the change stays pending.
	if _, err := op.UpdateSettings(ctx, zone, lb.ID, &iaas.LoadBalancerUpdateSettingsRequest{SettingsHash: lb.SettingsHash,
		VirtualIPAddresses: append(lb.VirtualIPAddresses, vip("203.0.113.25", 443, "203.0.113.20"))}); err != nil {
		t.Fatal(err)
	}
	wantConfig("while creating", 409, "still_creating")
	clock.Advance(time.Minute)
	if got := statusOf(t, lb.ID); len(got) != 1 {
		t.Fatalf("booted LB shows %v, want only the created VIP", got)
	}
	if _, pending, _ := sim.Applied(lb.ID); !pending {
		t.Fatal("update made while creating is not pending after boot")
	}

	if err := op.Shutdown(ctx, zone, lb.ID, &iaas.ShutdownOption{}); err != nil {
		t.Fatal(err)
	}
	wantConfig("while shutting down", 409, "conflict")
	clock.Advance(time.Minute)
	wantConfig("while down", 409, "conflict")
	if err := op.Boot(ctx, zone, lb.ID); err != nil {
		t.Fatal(err)
	}
	wantConfig("while booting", 409, "conflict")
	clock.Advance(time.Minute)
	if st, _ := op.Read(ctx, zone, lb.ID); !st.InstanceStatus.IsUp() {
		t.Fatalf("not up after boot: %s", st.InstanceStatus)
	}
	if _, pending, _ := sim.Applied(lb.ID); !pending {
		t.Fatal("a reboot applied the pending settings; only Config should")
	}
	wantConfig("when up", 0, "")
	if got := statusOf(t, lb.ID); len(got) != 2 {
		t.Fatalf("after Config: %v", got)
	}
	if n := sim.Requests().Operations["LoadBalancer.Config"].ByStatus["409"]; n != 4 {
		t.Fatalf("refused Configs counted %d, want 4", n)
	}
}

// The admin fault helpers: fail-next-config puts a one-time Config failure
// in front of the other rules; add prepends rules.
func TestAdminFaultHelpers(t *testing.T) {
	sim := use(t, sampleTopology(t), Options{})
	ctx := context.Background()
	op := iaas.NewLoadBalancerOp(caller)
	id := sim.lbs[0].ID
	adminDo(t, "POST", "/_admin/faults", `{"rules":[{"op":"Zone.*","status":503}]}`, 200)
	out := adminDo(t, "POST", "/_admin/faults/fail-next-config", `{"status":409}`, 200)
	rules := out["rules"].([]any)
	if len(rules) != 2 || rules[0].(map[string]any)["op"] != "LoadBalancer.Config" || rules[1].(map[string]any)["op"] != "Zone.*" {
		t.Fatalf("rules after fail-next-config: %v", rules)
	}
	if code, _ := apiStatus(op.Config(ctx, zone, id)); code != 409 {
		t.Fatalf("first Config: %d, want 409", code)
	}
	if err := op.Config(ctx, zone, id); err != nil {
		t.Fatalf("second Config: %v", err)
	}
	out = adminDo(t, "POST", "/_admin/faults/add", `{"rules":[{"op":"Server.Find","status":500,"times":1}]}`, 200)
	if rules := out["rules"].([]any); len(rules) != 3 || rules[0].(map[string]any)["op"] != "Server.Find" {
		t.Fatalf("rules after add: %v", rules)
	}
	adminDo(t, "POST", "/_admin/faults/add", `{"rules":[{"status":500}]}`, 400)
	if r := ConfigFailure(0); r.Status != 500 || r.Times != 1 || r.Op != "LoadBalancer.Config" || r.After {
		t.Fatalf("ConfigFailure(0) = %+v", r)
	}
}
