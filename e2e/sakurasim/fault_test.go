package sakurasim

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/types"
)

// fakeClock is a settable clock for Options.Now.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *fakeClock) Advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

const tableBootDelay = time.Minute

// faultEnv is one table row's world: a simulator on a fake clock whose
// seeded load balancer (someone-elses-lb) is up.
type faultEnv struct {
	t     *testing.T
	sim   *Simulator
	clock *fakeClock
	lb    types.ID // the seeded load balancer
	cur   *iaas.LoadBalancer
}

func (e *faultEnv) op() iaas.LoadBalancerAPI { return iaas.NewLoadBalancerOp(caller) }

// lbState reads a load balancer's internal state (no API call, so no fault).
func (e *faultEnv) lbState(id types.ID) (lb loadBalancer, ok bool) {
	e.sim.mu.Lock()
	defer e.sim.mu.Unlock()
	e.sim.settle()
	if p := e.sim.lbByID(id); p != nil {
		return *p, true
	}
	return loadBalancer{}, false
}

func (e *faultEnv) read() *iaas.LoadBalancer {
	e.t.Helper()
	got, err := e.op().Read(context.Background(), zone, e.lb)
	if err != nil {
		e.t.Fatalf("setup read: %v", err)
	}
	return got
}

func (e *faultEnv) shutDown() {
	e.t.Helper()
	if err := e.op().Shutdown(context.Background(), zone, e.lb, &iaas.ShutdownOption{Force: true}); err != nil {
		e.t.Fatalf("setup shutdown: %v", err)
	}
	e.clock.Advance(tableBootDelay)
	if st, _ := e.lbState(e.lb); st.Status != types.ServerInstanceStatuses.Down {
		e.t.Fatalf("setup: appliance is %q, want down", st.Status)
	}
}

// addVIP443 is the settings change the UpdateSettings and Config rows make.
func (e *faultEnv) addVIP443(ctx context.Context, c iaas.APICaller) error {
	_, err := iaas.NewLoadBalancerOp(c).UpdateSettings(ctx, zone, e.lb, &iaas.LoadBalancerUpdateSettingsRequest{
		SettingsHash:       e.cur.SettingsHash,
		VirtualIPAddresses: append(e.cur.VirtualIPAddresses, vip("192.168.100.200", 443, "192.168.100.11"))})
	return err
}

// opCase is one operation of the fault table.
type opCase struct {
	op    string
	setup func(e *faultEnv)
	call  func(ctx context.Context, e *faultEnv, c iaas.APICaller) error
	// changed reports whether the operation's effect is visible; nil for
	// reads, which change nothing.
	changed func(e *faultEnv) bool
}

var opCases = []opCase{
	{op: "LoadBalancer.Create",
		call: func(ctx context.Context, e *faultEnv, c iaas.APICaller) error {
			_, err := iaas.NewLoadBalancerOp(c).Create(ctx, zone, lbRequest(e.sim.switchByName("k8s-global").ID,
				[]string{"203.0.113.23"}, 7, vip("203.0.113.25", 80, "203.0.113.20")))
			return err
		},
		changed: func(e *faultEnv) bool {
			for _, lb := range e.sim.Snapshot().LoadBalancers {
				if lb.Name == "k8s-lb" {
					return true
				}
			}
			return false
		}},
	{op: "LoadBalancer.Read",
		call: func(ctx context.Context, e *faultEnv, c iaas.APICaller) error {
			_, err := iaas.NewLoadBalancerOp(c).Read(ctx, zone, e.lb)
			return err
		}},
	{op: "LoadBalancer.Find",
		call: func(ctx context.Context, e *faultEnv, c iaas.APICaller) error {
			_, err := iaas.NewLoadBalancerOp(c).Find(ctx, zone, &iaas.FindCondition{})
			return err
		}},
	{op: "Server.Find",
		call: func(ctx context.Context, e *faultEnv, c iaas.APICaller) error {
			_, err := iaas.NewServerOp(c).Find(ctx, zone, &iaas.FindCondition{})
			return err
		}},
	{op: "LoadBalancer.Status",
		call: func(ctx context.Context, e *faultEnv, c iaas.APICaller) error {
			_, err := iaas.NewLoadBalancerOp(c).Status(ctx, zone, e.lb)
			return err
		}},
	{op: "LoadBalancer.Update",
		call: func(ctx context.Context, e *faultEnv, c iaas.APICaller) error {
			_, err := iaas.NewLoadBalancerOp(c).Update(ctx, zone, e.lb, &iaas.LoadBalancerUpdateRequest{Name: "renamed",
				Tags: e.cur.Tags, VirtualIPAddresses: e.cur.VirtualIPAddresses, SettingsHash: e.cur.SettingsHash})
			return err
		},
		changed: func(e *faultEnv) bool { st, _ := e.lbState(e.lb); return st.Name == "renamed" }},
	{op: "LoadBalancer.UpdateSettings",
		call: func(ctx context.Context, e *faultEnv, c iaas.APICaller) error { return e.addVIP443(ctx, c) },
		changed: func(e *faultEnv) bool {
			_, pending, _ := e.sim.Applied(e.lb)
			return pending // saved settings moved away from the applied ones
		}},
	{op: "LoadBalancer.Config",
		setup: func(e *faultEnv) {
			if err := e.addVIP443(context.Background(), caller); err != nil {
				e.t.Fatalf("setup update settings: %v", err)
			}
		},
		call: func(ctx context.Context, e *faultEnv, c iaas.APICaller) error {
			return iaas.NewLoadBalancerOp(c).Config(ctx, zone, e.lb)
		},
		changed: func(e *faultEnv) bool { _, pending, _ := e.sim.Applied(e.lb); return !pending }},
	{op: "LoadBalancer.Shutdown",
		call: func(ctx context.Context, e *faultEnv, c iaas.APICaller) error {
			return iaas.NewLoadBalancerOp(c).Shutdown(ctx, zone, e.lb, &iaas.ShutdownOption{Force: true})
		},
		changed: func(e *faultEnv) bool {
			st, _ := e.lbState(e.lb)
			return st.PendingTo == types.ServerInstanceStatuses.Down || st.Status == types.ServerInstanceStatuses.Down
		}},
	{op: "LoadBalancer.Boot",
		setup: func(e *faultEnv) { e.shutDown() },
		call: func(ctx context.Context, e *faultEnv, c iaas.APICaller) error {
			return iaas.NewLoadBalancerOp(c).Boot(ctx, zone, e.lb)
		},
		changed: func(e *faultEnv) bool {
			st, _ := e.lbState(e.lb)
			return st.PendingTo == types.ServerInstanceStatuses.Up || st.Status == types.ServerInstanceStatuses.Up
		}},
	{op: "LoadBalancer.Delete",
		setup: func(e *faultEnv) { e.shutDown() },
		call: func(ctx context.Context, e *faultEnv, c iaas.APICaller) error {
			return iaas.NewLoadBalancerOp(c).Delete(ctx, zone, e.lb)
		},
		changed: func(e *faultEnv) bool { _, ok := e.lbState(e.lb); return !ok }},
}

// faultKind is one column of the fault table.
type faultKind struct {
	name      string
	rule      FaultRule
	timeout   time.Duration // client timeout; 0 = generous
	code      int           // HTTP status the client sees; 0 = none (drop, timeout)
	wantErr   bool
	performed bool   // the operation's effect happens
	counted   string // the request count key the answer is recorded under
}

var faultKinds = []faultKind{
	{name: "500", rule: FaultRule{Status: 500}, code: 500, wantErr: true, counted: "500"},
	{name: "409", rule: FaultRule{Status: 409}, code: 409, wantErr: true, counted: "409"},
	{name: "drop", rule: FaultRule{Drop: true}, wantErr: true, counted: "dropped"},
	{name: "timeout", rule: FaultRule{Latency: "1m"}, timeout: 250 * time.Millisecond, wantErr: true, counted: "canceled"},
	{name: "latency", rule: FaultRule{Latency: "30ms"}, performed: true},
	{name: "after-500", rule: FaultRule{Status: 500, After: true}, code: 500, wantErr: true, performed: true, counted: "500"},
	{name: "after-409", rule: FaultRule{Status: 409, After: true}, code: 409, wantErr: true, performed: true, counted: "409"},
	{name: "after-drop", rule: FaultRule{Drop: true, After: true}, wantErr: true, performed: true, counted: "dropped"},
	{name: "after-timeout", rule: FaultRule{Latency: "1m", After: true}, timeout: 250 * time.Millisecond, wantErr: true,
		performed: true, counted: "canceled"},
}

// TestFaultKindsOnEveryOperation runs every fault kind on every operation
// through the real client (without retries) and checks what the client saw,
// how the request was counted and whether the operation's effect happened.
func TestFaultKindsOnEveryOperation(t *testing.T) {
	for _, oc := range opCases {
		for _, fk := range faultKinds {
			t.Run(oc.op+"/"+fk.name, func(t *testing.T) {
				clock := newFakeClock()
				sim := use(t, sampleTopology(t), Options{BootDelay: tableBootDelay, Now: clock.Now})
				e := &faultEnv{t: t, sim: sim, clock: clock, lb: sim.lbs[0].ID}
				e.cur = e.read()
				if oc.setup != nil {
					oc.setup(e)
					e.cur = e.read()
				}
				before, _ := e.lbState(e.lb)
				if oc.changed != nil && oc.changed(e) {
					t.Fatalf("effect visible before the call")
				}
				rule := fk.rule
				rule.Op = oc.op
				if err := sim.SetFaults([]FaultRule{rule}); err != nil {
					t.Fatal(err)
				}
				timeout := fk.timeout
				if timeout == 0 {
					timeout = 10 * time.Second
				}
				ctx, cancel := context.WithTimeout(context.Background(), timeout)
				start := time.Now()
				err := oc.call(ctx, e, noRetryCaller)
				cancel()
				switch {
				case fk.wantErr && err == nil:
					t.Fatalf("call succeeded, want an error")
				case !fk.wantErr && err != nil:
					t.Fatalf("call failed: %v", err)
				}
				if code, _ := apiStatus(err); code != fk.code {
					t.Fatalf("client saw status %d (%v), want %d", code, err, fk.code)
				}
				if fk.timeout > 0 && time.Since(start) > 5*time.Second {
					t.Fatalf("client timeout of %s took %s", fk.timeout, time.Since(start))
				}
				// Go's transport replays an idempotent GET once when a reused
				// connection closes without an answer; a write is never replayed.
				maxTimes := 1
				if fk.rule.Drop && oc.changed == nil {
					maxTimes = 2
				}
				if fk.counted != "" {
					// The handler returns promptly once the client has gone
					// (the latency is a minute): the answer is counted soon.
					deadline := time.Now().Add(3 * time.Second)
					for n := sim.Requests().Operations[oc.op].ByStatus[fk.counted]; n < 1 || n > maxTimes; n = sim.Requests().Operations[oc.op].ByStatus[fk.counted] {
						if time.Now().After(deadline) {
							t.Fatalf("request not counted as %q: %+v", fk.counted, sim.Requests().Operations[oc.op])
						}
						time.Sleep(5 * time.Millisecond)
					}
				}
				if oc.changed != nil {
					if got := oc.changed(e); got != fk.performed {
						t.Fatalf("operation performed = %v, want %v", got, fk.performed)
					}
				}
				if oc.op != "LoadBalancer.Config" {
					if now, ok := e.lbState(e.lb); ok && now.AppliedHash != before.AppliedHash {
						t.Fatalf("%s changed the applied configuration", oc.op)
					}
				}
				if fired := sim.Snapshot().Faults[0].Fired; fired < 1 || fired > maxTimes {
					t.Fatalf("rule fired %d times, want 1..%d", fired, maxTimes)
				}
			})
		}
	}
}

// A long latency holds no lock: other requests (API and admin) are served
// while one waits, and the waiting one ends as soon as its client cancels.
func TestLatencyDoesNotBlockAndEndsOnCancel(t *testing.T) {
	sim := use(t, sampleTopology(t), Options{})
	ctx := context.Background()
	e := &faultEnv{t: t, sim: sim, lb: sim.lbs[0].ID}
	e.cur = e.read()
	if err := e.addVIP443(ctx, caller); err != nil {
		t.Fatal(err)
	}
	if err := sim.SetFaults([]FaultRule{{Op: "LoadBalancer.Config", Latency: "10m"}}); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- iaas.NewLoadBalancerOp(noRetryCaller).Config(cctx, zone, e.lb) }()
	eventually(t, "the Config request to be waiting", func() bool { return sim.Snapshot().Faults[0].Fired == 1 })

	start := time.Now()
	if _, err := iaas.NewServerOp(caller).Find(ctx, zone, &iaas.FindCondition{}); err != nil {
		t.Fatal(err)
	}
	if _, err := iaas.NewLoadBalancerOp(caller).Read(ctx, zone, e.lb); err != nil {
		t.Fatal(err)
	}
	adminDo(t, "GET", "/_admin/state", "", 200)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("other requests took %s while one waited", d)
	}
	select {
	case err := <-done:
		t.Fatalf("Config returned during its latency: %v", err)
	default:
	}

	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("cancelled Config succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("client did not return after cancel")
	}
	eventually(t, "the cancelled request to be counted", func() bool {
		return sim.Requests().Operations["LoadBalancer.Config"].ByStatus["canceled"] == 1
	})
	if _, pending, _ := sim.Applied(e.lb); !pending {
		t.Fatal("a Config whose client gave up during the latency was applied")
	}
}

// The fault between UpdateSettings and Config: the settings are saved, the
// Config fails, the appliance keeps running the old configuration (Status
// shows it) until a later Config applies the new one.
func TestFaultBetweenUpdateSettingsAndConfig(t *testing.T) {
	sim := use(t, sampleTopology(t), Options{})
	ctx := context.Background()
	op := iaas.NewLoadBalancerOp(caller)
	id := sim.lbs[0].ID
	appliedBefore, pending, ok := sim.Applied(id)
	if !ok || pending || len(appliedBefore) != 1 {
		t.Fatalf("seeded LB: applied %d entries, pending %v, ok %v", len(appliedBefore), pending, ok)
	}
	cur, err := op.Read(ctx, zone, id)
	if err != nil {
		t.Fatal(err)
	}

	if err := sim.FailNextConfig(0); err != nil {
		t.Fatal(err)
	}
	upd, err := op.UpdateSettings(ctx, zone, id, &iaas.LoadBalancerUpdateSettingsRequest{SettingsHash: cur.SettingsHash,
		VirtualIPAddresses: append(cur.VirtualIPAddresses, vip("192.168.100.201", 8080, "192.168.100.12"))})
	if err != nil {
		t.Fatal(err)
	}
	err = op.Config(ctx, zone, id)
	if code, _ := apiStatus(err); code != http.StatusInternalServerError {
		t.Fatalf("Config: %v, want the injected 500", err)
	}

	// Saved changed (Read shows it), applied did not, pending is true.
	got, err := op.Read(ctx, zone, id)
	if err != nil || len(got.VirtualIPAddresses) != 2 || got.SettingsHash != upd.SettingsHash {
		t.Fatalf("saved settings after the failed Config: %v %+v", err, got)
	}
	applied, pending, _ := sim.Applied(id)
	if !pending || settingsHash(applied) != settingsHash(appliedBefore) {
		t.Fatalf("after the failed Config: pending %v, applied %d entries (want the old one)", pending, len(applied))
	}
	if st := statusOf(t, id); len(st) != 2 || st["192.168.100.201:8080/192.168.100.12:8080"] != "" {
		t.Fatalf("status shows an unapplied VIP: %v", st)
	}
	state := adminDo(t, "GET", "/_admin/state", "", 200)
	if state["pendingConfig"].(map[string]any)[id.String()] != true {
		t.Fatalf("admin state pendingConfig: %v", state["pendingConfig"])
	}
	if n := len(state["appliedSettings"].(map[string]any)[id.String()].([]any)); n != 1 {
		t.Fatalf("admin state appliedSettings has %d entries, want 1", n)
	}

	// The rule fired once; the next Config applies the saved settings.
	if err := op.Config(ctx, zone, id); err != nil {
		t.Fatal(err)
	}
	applied, pending, _ = sim.Applied(id)
	if pending || len(applied) != 2 {
		t.Fatalf("after Config: pending %v, %d applied entries", pending, len(applied))
	}
	if st := statusOf(t, id); st["192.168.100.201:8080/192.168.100.12:8080"] != "UP" {
		t.Fatalf("status after Config: %v", st)
	}
}
