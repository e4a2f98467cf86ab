package sakurasim

import (
	"context"
	"testing"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/types"
)

// conflictingWrites are the writes SAKURA's API is not known to refuse:
// each takes an address something else on the switch already holds. They
// run in order on one simulator; first is an appliance already made with
// 203.0.113.23/.24 and VIP .25 (VRID 5).
func conflictingWrites(swID types.ID) []struct {
	name, field, value string
	write              func(ctx context.Context, op iaas.LoadBalancerAPI, first *iaas.LoadBalancer) error
} {
	create := func(r *iaas.LoadBalancerCreateRequest) func(context.Context, iaas.LoadBalancerAPI, *iaas.LoadBalancer) error {
		return func(ctx context.Context, op iaas.LoadBalancerAPI, _ *iaas.LoadBalancer) error {
			_, err := op.Create(ctx, zone, r)
			return err
		}
	}
	return []struct {
		name, field, value string
		write              func(ctx context.Context, op iaas.LoadBalancerAPI, first *iaas.LoadBalancer) error
	}{
		{"VIP is a server's address", "Settings.LoadBalancer[0].VirtualIPAddress", "203.0.113.20",
			create(lbRequest(swID, []string{"203.0.113.26"}, 6, vip("203.0.113.20", 80, "203.0.113.21")))},
		{"VIP is another appliance's VIP", "Settings.LoadBalancer[0].VirtualIPAddress", "203.0.113.25",
			create(lbRequest(swID, []string{"203.0.113.27"}, 7, vip("203.0.113.25", 443)))},
		{"appliance IP is another appliance's address", "Remark.Servers.IPAddress", "203.0.113.23",
			create(lbRequest(swID, []string{"203.0.113.23"}, 8))},
		{"VIP is the appliance's own address", "Settings.LoadBalancer[0].VirtualIPAddress", "203.0.113.28",
			create(lbRequest(swID, []string{"203.0.113.28"}, 9, vip("203.0.113.28", 80)))},
		{"UpdateSettings to a server's address", "Settings.LoadBalancer[1].VirtualIPAddress", "203.0.113.21",
			func(ctx context.Context, op iaas.LoadBalancerAPI, first *iaas.LoadBalancer) error {
				cur, err := op.Read(ctx, zone, first.ID)
				if err != nil {
					return err
				}
				_, err = op.UpdateSettings(ctx, zone, first.ID, &iaas.LoadBalancerUpdateSettingsRequest{
					VirtualIPAddresses: append(cur.VirtualIPAddresses, vip("203.0.113.21", 80)), SettingsHash: cur.SettingsHash})
				return err
			}},
	}
}

// By default the simulator refuses an address in use with 409 and keeps
// nothing; a duplicate tag is stored as sent (SAKURA is not known to refuse
// it either) and recorded.
func TestConflictsRefusedByDefault(t *testing.T) {
	sim := use(t, sampleTopology(t), Options{})
	ctx := context.Background()
	op := iaas.NewLoadBalancerOp(caller)
	swID := routerSwitchID(t)
	first, err := op.Create(ctx, zone, lbRequest(swID, []string{"203.0.113.23", "203.0.113.24"}, 5, vip("203.0.113.25", 80)))
	if err != nil {
		t.Fatal(err)
	}
	before := len(sim.Snapshot().LoadBalancers)
	for _, w := range conflictingWrites(swID) {
		err := w.write(ctx, op, first)
		if code, ec := apiStatus(err); code != 409 || ec != "conflict" {
			t.Errorf("%s: %v (%d %s), want 409 conflict", w.name, err, code, ec)
		}
	}
	if n := len(sim.Snapshot().LoadBalancers); n != before {
		t.Errorf("refused creates left appliances: %d, want %d", n, before)
	}
	if accept, got := sim.Conflicts(); accept || len(got) != 0 {
		t.Errorf("strict mode: accept=%v, recorded %v, want false and nothing", accept, got)
	}

	// A duplicate tag: stored as sent, in this mode too.
	r := lbRequest(swID, []string{"203.0.113.29"}, 11)
	r.Tags = types.Tags{"k8s", "member=a", "member=a"}
	lb, err := op.Create(ctx, zone, r)
	if err != nil {
		t.Fatalf("duplicate tag: %v, want it accepted", err)
	}
	read, err := op.Read(ctx, zone, lb.ID)
	if err != nil {
		t.Fatal(err)
	}
	if n := countTag(read.Tags, "member=a"); n != 2 {
		t.Errorf("duplicate tag: read shows it %d times (%v), want 2", n, read.Tags)
	}
	if _, got := sim.Conflicts(); len(got) != 1 || got[0].Field != "Tags" || got[0].Value != "member=a" || got[0].Appliance != lb.ID {
		t.Errorf("duplicate tag recorded as %+v", got)
	}
}

// With AcceptConflicts every such write succeeds, is stored as written and
// recorded; what SAKURA is known to refuse (reserved addresses, a VRID in
// use, limits) is still refused.
func TestConflictsAccepted(t *testing.T) {
	sim := use(t, sampleTopology(t), Options{AcceptConflicts: true})
	ctx := context.Background()
	op := iaas.NewLoadBalancerOp(caller)
	swID := routerSwitchID(t)
	first, err := op.Create(ctx, zone, lbRequest(swID, []string{"203.0.113.23", "203.0.113.24"}, 5, vip("203.0.113.25", 80)))
	if err != nil {
		t.Fatal(err)
	}
	writes := conflictingWrites(swID)
	for _, w := range writes {
		if err := w.write(ctx, op, first); err != nil {
			t.Fatalf("%s: %v, want it accepted", w.name, err)
		}
	}
	// An UpdateSettings re-checks every entry it writes: the first
	// appliance's VIP .25, which write 2 took too, is recorded again.
	accept, got := sim.Conflicts()
	if !accept || len(got) != len(writes)+1 {
		t.Fatalf("accepted conflicts: accept=%v %+v, want %d", accept, got, len(writes)+1)
	}
	for _, w := range writes {
		found := false
		for _, c := range got {
			found = found || (c.Field == w.field && c.Value == w.value && c.Holder != "" && !c.Appliance.IsEmpty() && c.Op != "")
		}
		if !found {
			t.Errorf("%s: not recorded (field %s value %s) in %+v", w.name, w.field, w.value, got)
		}
	}
	if last := got[len(got)-1]; last.Op != "LoadBalancer.UpdateSettings" || last.Appliance != first.ID {
		t.Errorf("update recorded as %+v", last)
	}
	// Stored: two appliances show VIP .25, two carry .23, and the finds list them.
	st := sim.Snapshot()
	holders := map[string]int{}
	for _, lb := range st.LoadBalancers {
		if lb.Remark != nil {
			for _, sv := range lb.Remark.Servers {
				holders[sv.IPAddress]++
			}
		}
		if lb.Settings != nil {
			seen := map[string]bool{}
			for _, v := range lb.Settings.LoadBalancer {
				if !seen[v.VirtualIPAddress] {
					seen[v.VirtualIPAddress] = true
					holders[v.VirtualIPAddress]++
				}
			}
		}
	}
	for _, ip := range []string{"203.0.113.25", "203.0.113.23", "203.0.113.28"} {
		if holders[ip] != 2 {
			t.Errorf("%s held %d times, want 2 (stored as written)", ip, holders[ip])
		}
	}
	if !st.AcceptConflicts || len(st.AcceptedConflicts) != len(got) {
		t.Errorf("state: acceptConflicts=%v, %d accepted", st.AcceptConflicts, len(st.AcceptedConflicts))
	}

	// Still refused: a reserved address, a VRID in use, the immutable part.
	if _, err := op.Create(ctx, zone, lbRequest(swID, []string{"203.0.113.29"}, 12, vip("203.0.113.17", 80))); !isStatus(err, 400) {
		t.Errorf("gateway as VIP: %v, want 400", err)
	}
	if _, err := op.Create(ctx, zone, lbRequest(swID, []string{"203.0.113.29"}, 5)); !isStatus(err, 409) {
		t.Errorf("VRID in use: %v, want 409", err)
	}

	// The admin API turns it off (and on) at run time.
	adminDo(t, "POST", "/_admin/conflicts", `{"accept":false}`, 200)
	if _, err := op.Create(ctx, zone, lbRequest(swID, []string{"203.0.113.23"}, 13)); !isStatus(err, 409) {
		t.Errorf("after turning it off: %v, want 409", err)
	}
	out := adminDo(t, "POST", "/_admin/conflicts", `{"accept":true}`, 200)
	if out["accept"] != true || len(out["accepted"].([]any)) != len(got) {
		t.Errorf("admin answer %v", out)
	}
	adminDo(t, "POST", "/_admin/conflicts", `{}`, 400)
	if out := adminDo(t, "GET", "/_admin/conflicts", "", 200); out["accept"] != true {
		t.Errorf("GET /_admin/conflicts: %v", out)
	}
}

func isStatus(err error, want int) bool {
	code, _ := apiStatus(err)
	return code == want
}

func countTag(tags types.Tags, t string) int {
	n := 0
	for _, x := range tags {
		if x == t {
			n++
		}
	}
	return n
}
