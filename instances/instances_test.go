package instances

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sacloud/iaas-api-go"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
	cloudprovider "k8s.io/cloud-provider"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/fakezone"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/sakuraapi"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/servercache"
)

const zone = "is1a"

type env struct {
	inst     *Instances
	client   *sakuraapi.Client
	op       *fakezone.PagedServerOp
	cache    *servercache.Zones
	recorder *record.FakeRecorder
	now      time.Time
}

func setup(t testing.TB) *env {
	t.Helper()
	client, op := fakezone.NewClient(zone)
	e := &env{client: client, op: op, recorder: record.NewFakeRecorder(100), now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	e.cache = servercache.NewZones(client, []string{zone}, time.Minute)
	e.cache.SetClock(nowFunc(func() time.Time { return e.now }))
	e.inst = New(client, e.cache, e.recorder)
	return e
}

// nowFunc is a clock.PassiveClock read from a test's variable.
type nowFunc func() time.Time

func (f nowFunc) Now() time.Time                  { return f() }
func (f nowFunc) Since(t time.Time) time.Duration { return f().Sub(t) }

// later moves the clock past the miss-refresh interval.
func (e *env) later() { e.now = e.now.Add(servercache.MinRefreshInterval) }

func (e *env) calls() int { return e.client.Stats().Total(nil) }

func node(name, providerID string) *v1.Node {
	return &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1.NodeSpec{ProviderID: providerID}}
}

var ctx = context.Background()

func TestMatchByProviderIDBothForms(t *testing.T) {
	e := setup(t)
	fakezone.Put(zone, fakezone.Server{ID: 113100000001, Name: "worker-1", CPU: 4, MemoryGB: 8,
		NICs: []fakezone.NIC{{IPAddress: "203.0.113.10"}, {UserIPAddress: "192.168.0.11"}}})
	fakezone.Put(zone, fakezone.Server{ID: 113100000002, Name: "other"})
	for _, pid := range []string{"sakuracloud://is1a/113100000001", "sakuracloud://113100000001"} {
		// The node name differs from the server name: the providerID decides.
		md, err := e.inst.InstanceMetadata(ctx, node("renamed-node", pid))
		if err != nil {
			t.Fatalf("%s: %v", pid, err)
		}
		if md.ProviderID != pid || md.InstanceType != "4core-8gb" || md.Zone != "is1a" || md.Region != "is1" {
			t.Errorf("%s: metadata %+v", pid, md)
		}
		if len(md.NodeAddresses) != 3 || md.NodeAddresses[0].Address != "192.168.0.11" {
			t.Errorf("%s: addresses %v", pid, md.NodeAddresses)
		}
		if ok, err := e.inst.InstanceExists(ctx, node("renamed-node", pid)); !ok || err != nil {
			t.Errorf("%s: exists=%v err=%v", pid, ok, err)
		}
	}
}

func TestProviderIDErrors(t *testing.T) {
	e := setup(t)
	fakezone.Put(zone, fakezone.Server{ID: 1, Name: "n"})
	for pid, want := range map[string]string{
		"sakuracloud://tk1a/1": `providerID "sakuracloud://tk1a/1" is in zone tk1a, but this controller manages zone is1a`,
		"aws:///i-123":         `does not start with "sakuracloud://"`,
		"sakuracloud://is1a/x": "has no numeric server ID",
	} {
		for name, call := range map[string]func() error{
			"exists":   func() error { _, err := e.inst.InstanceExists(ctx, node("n", pid)); return err },
			"shutdown": func() error { _, err := e.inst.InstanceShutdown(ctx, node("n", pid)); return err },
			"metadata": func() error { _, err := e.inst.InstanceMetadata(ctx, node("n", pid)); return err },
		} {
			err := call()
			if err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, errNodeMatch) {
				t.Errorf("%s %s: err=%v, want %q", name, pid, err, want)
			}
		}
	}
	// A wrong zone never reads as "gone": the node must not be deleted.
	if ok, err := e.inst.InstanceExists(ctx, node("n", "sakuracloud://tk1a/1")); ok || err == nil {
		t.Errorf("wrong zone: ok=%v err=%v", ok, err)
	}
	assertEvent(t, e.recorder, ReasonProviderIDZone, "tk1a")
}

func TestMatchByName(t *testing.T) {
	e := setup(t)
	fakezone.Put(zone, fakezone.Server{ID: 5, Name: "worker-5", CPU: 2, MemoryGB: 4, NICs: []fakezone.NIC{{UserIPAddress: "10.0.0.5"}}})
	fakezone.Put(zone, fakezone.Server{ID: 6, Name: "worker-50"}) // a prefix match must not count
	md, err := e.inst.InstanceMetadata(ctx, node("worker-5", ""))
	if err != nil {
		t.Fatal(err)
	}
	if md.ProviderID != "sakuracloud://is1a/5" || md.InstanceType != "2core-4gb" {
		t.Errorf("metadata %+v", md)
	}
	want := []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: "10.0.0.5"}, {Type: v1.NodeHostName, Address: "worker-5"}}
	if len(md.NodeAddresses) != 2 || md.NodeAddresses[0] != want[0] || md.NodeAddresses[1] != want[1] {
		t.Errorf("addresses %v", md.NodeAddresses)
	}
	// No server of that name: a configuration problem, the node is kept.
	e.later()
	if ok, err := e.inst.InstanceExists(ctx, node("worker-7", "")); !ok || err != nil {
		t.Errorf("missing by name: ok=%v err=%v, want kept", ok, err)
	}
	if _, err := e.inst.InstanceMetadata(ctx, node("worker-7", "")); !errors.Is(err, cloudprovider.InstanceNotFound) ||
		!strings.Contains(err.Error(), "--provider-id=sakuracloud://is1a/<server ID>") {
		t.Errorf("metadata of missing node: %v", err)
	}
}

// TestUnmatchedNodeIsKeptWithAWarning: a node without providerID whose name
// no server carries is never reported gone nor shut down; one Warning Event
// (per UnmatchedWarnInterval) names the node, the zone and the fix.
func TestUnmatchedNodeIsKeptWithAWarning(t *testing.T) {
	e := setup(t)
	clk := clocktesting.NewFakePassiveClock(e.now)
	e.inst.SetClock(clk)
	fakezone.Put(zone, fakezone.Server{ID: 5, Name: "worker-5"})
	n := node("ip-10-0-0-7", "")
	n.UID = "uid-7"
	for range 3 {
		e.later()
		if ok, err := e.inst.InstanceExists(ctx, n); !ok || err != nil {
			t.Fatalf("exists: ok=%v err=%v, want true (kept)", ok, err)
		}
		if down, err := e.inst.InstanceShutdown(ctx, n); down || err != nil {
			t.Fatalf("shutdown: %v %v, want false, nil", down, err)
		}
		if _, err := e.inst.InstanceMetadata(ctx, n); !errors.Is(err, cloudprovider.InstanceNotFound) {
			t.Fatalf("metadata: %v", err)
		}
	}
	events := drain(e.recorder)
	if len(events) != 1 {
		t.Fatalf("events %q, want exactly one within the interval", events)
	}
	for _, want := range []string{"Warning " + ReasonNoMatchingServer, `"ip-10-0-0-7"`, "zone is1a",
		"--provider-id=sakuracloud://is1a/<server ID>", "rename its server"} {
		if !strings.Contains(events[0], want) {
			t.Errorf("event %q lacks %q", events[0], want)
		}
	}
	// After the interval it is said again.
	clk.SetTime(clk.Now().Add(UnmatchedWarnInterval))
	if ok, _ := e.inst.InstanceExists(ctx, n); !ok {
		t.Fatal("not kept")
	}
	if events := drain(e.recorder); len(events) != 1 {
		t.Errorf("after the interval: events %q, want one", events)
	}
	// A node with a providerID is unaffected: its gone server is reported gone.
	fakezone.Put(zone, fakezone.Server{ID: 9, Name: "gone"})
	g := node("gone", "sakuracloud://is1a/9")
	if ok, err := e.inst.InstanceExists(ctx, g); !ok || err != nil {
		t.Fatal(ok, err)
	}
	fakezone.Delete(zone, 9)
	e.now = e.now.Add(2 * time.Minute)
	if ok, err := e.inst.InstanceExists(ctx, g); ok || err != nil {
		t.Errorf("gone server with providerID: ok=%v err=%v, want false", ok, err)
	}
	if events := drain(e.recorder); len(events) != 0 {
		t.Errorf("events for a gone server: %q", events)
	}
}

func drain(r *record.FakeRecorder) []string {
	var out []string
	for {
		select {
		case ev := <-r.Events:
			out = append(out, ev)
		default:
			return out
		}
	}
}

func TestDuplicateNamesAreAnErrorNamingBothIDs(t *testing.T) {
	e := setup(t)
	fakezone.Put(zone, fakezone.Server{ID: 113100000021, Name: "worker-2"})
	fakezone.Put(zone, fakezone.Server{ID: 113100000022, Name: "worker-2"})
	for name, call := range map[string]func() error{
		"exists":   func() error { _, err := e.inst.InstanceExists(ctx, node("worker-2", "")); return err },
		"shutdown": func() error { _, err := e.inst.InstanceShutdown(ctx, node("worker-2", "")); return err },
		"metadata": func() error { _, err := e.inst.InstanceMetadata(ctx, node("worker-2", "")); return err },
	} {
		err := call()
		if err == nil || !strings.Contains(err.Error(), "113100000021, 113100000022") || !strings.Contains(err.Error(), `2 servers are named "worker-2"`) {
			t.Errorf("%s: %v", name, err)
		}
	}
	assertEvent(t, e.recorder, ReasonDuplicateServerName, "113100000021, 113100000022")
	// With a providerID the duplicate does not matter.
	if ok, err := e.inst.InstanceExists(ctx, node("worker-2", "sakuracloud://is1a/113100000022")); !ok || err != nil {
		t.Errorf("by providerID: %v %v", ok, err)
	}
}

func assertEvent(t *testing.T, r *record.FakeRecorder, reason, contains string) {
	t.Helper()
	for {
		select {
		case ev := <-r.Events:
			if strings.HasPrefix(ev, "Warning "+reason+" ") && strings.Contains(ev, contains) {
				return
			}
		default:
			t.Errorf("no Warning %s event containing %q", reason, contains)
			return
		}
	}
}

func TestZoneOf250Servers(t *testing.T) {
	e := setup(t)
	fakezone.PutMany(zone, "node", 113200000000, 250)
	for _, n := range []*v1.Node{node("node-000", ""), node("node-249", ""), node("x", "sakuracloud://is1a/113200000249"), node("y", "sakuracloud://113200000150")} {
		md, err := e.inst.InstanceMetadata(ctx, n)
		if err != nil || md == nil {
			t.Fatalf("%s: %v", n.Name, err)
		}
	}
	if got := e.client.Stats().Total(nil); got != 3 {
		t.Errorf("%d API calls for 4 lookups in a zone of 250, want 3 (one paged list)", got)
	}
}

func TestPreviousID(t *testing.T) {
	e := setup(t)
	// Server 100 had its plan changed: it is now 200, tagged @previous-id=100.
	fakezone.Put(zone, fakezone.Server{ID: 200, Name: "worker-9", CPU: 8, MemoryGB: 16, Tags: []string{"@previous-id=100"},
		NICs: []fakezone.NIC{{IPAddress: "198.51.100.9"}}})
	n := node("worker-9", "sakuracloud://is1a/100")
	ok, err := e.inst.InstanceExists(ctx, n)
	if !ok || err != nil {
		t.Fatalf("exists=%v err=%v", ok, err)
	}
	md, err := e.inst.InstanceMetadata(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	if md.ProviderID != "sakuracloud://is1a/100" || md.InstanceType != "8core-16gb" || md.NodeAddresses[0].Address != "198.51.100.9" {
		t.Errorf("metadata %+v", md)
	}
	// Two claimants: an error naming both, never a guess.
	fakezone.Put(zone, fakezone.Server{ID: 201, Name: "worker-9b", Tags: []string{"@previous-id=100"}})
	e.cache.Invalidate()
	if _, err := e.inst.InstanceExists(ctx, n); err == nil || !strings.Contains(err.Error(), "IDs 200, 201") {
		t.Errorf("ambiguous replacement: %v", err)
	}
	assertEvent(t, e.recorder, ReasonAmbiguousReplacement, "200, 201")
}

func TestShutdownVsRunning(t *testing.T) {
	e := setup(t)
	fakezone.Put(zone, fakezone.Server{ID: 1, Name: "up"})
	fakezone.Put(zone, fakezone.Server{ID: 2, Name: "down", Down: true})
	srv := fakezone.Put(zone, fakezone.Server{ID: 3, Name: "booting"})
	srv.InstanceStatus = "" // neither up nor down (e.g. migrating)
	for name, want := range map[string]bool{"up": false, "down": true, "booting": false} {
		got, err := e.inst.InstanceShutdown(ctx, node(name, ""))
		if err != nil || got != want {
			t.Errorf("%s: shutdown=%v err=%v, want %v", name, got, err, want)
		}
		// A shut-down server still exists: the node is tainted, not deleted.
		if ok, err := e.inst.InstanceExists(ctx, node(name, "")); !ok || err != nil {
			t.Errorf("%s: exists=%v err=%v", name, ok, err)
		}
	}
	e.later()
	// Never matched (no providerID): not "shut down", and not an error that
	// the lifecycle controller would log every 5 s (NoMatchingServer says it).
	if down, err := e.inst.InstanceShutdown(ctx, node("gone", "")); down || err != nil {
		t.Errorf("shutdown of unmatched: %v %v", down, err)
	}
	// A providerID whose server is gone: InstanceNotFound.
	if _, err := e.inst.InstanceShutdown(ctx, node("gone", "sakuracloud://is1a/99")); !errors.Is(err, cloudprovider.InstanceNotFound) {
		t.Errorf("shutdown of missing: %v", err)
	}
}

func TestNotFoundVersusAPIError(t *testing.T) {
	e := setup(t)
	fakezone.Put(zone, fakezone.Server{ID: 1, Name: "a"})
	fakezone.Put(zone, fakezone.Server{ID: 2, Name: "b"})
	a, b := node("a", "sakuracloud://is1a/1"), node("b", "")
	if ok, err := e.inst.InstanceExists(ctx, a); !ok || err != nil {
		t.Fatal(ok, err)
	}
	// API outage: errors, never "gone".
	e.op.SetFail(503)
	e.cache.Invalidate()
	for _, n := range []*v1.Node{a, b} {
		ok, err := e.inst.InstanceExists(ctx, n)
		if ok || err == nil || sakuraapi.StatusCode(err) != 503 {
			t.Errorf("%s during outage: ok=%v err=%v", n.Name, ok, err)
		}
		if _, err := e.inst.InstanceShutdown(ctx, n); err == nil || errors.Is(err, cloudprovider.InstanceNotFound) {
			t.Errorf("%s shutdown during outage: %v", n.Name, err)
		}
		if _, err := e.inst.InstanceMetadata(ctx, n); err == nil || errors.Is(err, cloudprovider.InstanceNotFound) {
			t.Errorf("%s metadata during outage: %v", n.Name, err)
		}
	}
	// 404 on a list is an API error too, not "gone".
	e.later()
	e.op.SetFail(404)
	if ok, err := e.inst.InstanceExists(ctx, a); ok || err == nil {
		t.Errorf("404 on list: ok=%v err=%v", ok, err)
	}
	e.cache.Settle()
	fakezone.Delete(zone, 1)
	e.op.SetFail(0)
	// The zone was failing: the next lookup is answered from that state
	// while a list runs in the background (servercache).
	e.later()
	if ok, err := e.inst.InstanceExists(ctx, a); ok || err == nil {
		t.Errorf("first lookup after recovery: ok=%v err=%v", ok, err)
	}
	e.cache.Settle()
	// Gone from the list but the confirming read fails: still an error.
	e.op.SetFailRead(500)
	if ok, err := e.inst.InstanceExists(ctx, a); ok || err == nil || !strings.Contains(err.Error(), "confirming server 1 is gone") {
		t.Errorf("failed confirmation: ok=%v err=%v", ok, err)
	}
	// Really gone: list misses it and the read says 404.
	e.op.SetFailRead(0)
	if ok, err := e.inst.InstanceExists(ctx, a); ok || err != nil {
		t.Errorf("gone: ok=%v err=%v", ok, err)
	}
	// By name (no providerID): never matched, so never "gone", even once a
	// list after the TTL lacks it (TestUnmatchedNodeIsKeptWithAWarning).
	fakezone.Delete(zone, 2)
	e.later()
	if ok, err := e.inst.InstanceExists(ctx, b); !ok || err != nil {
		t.Errorf("within the TTL: ok=%v err=%v", ok, err)
	}
	e.now = e.now.Add(time.Minute)
	if ok, err := e.inst.InstanceExists(ctx, b); !ok || err != nil {
		t.Errorf("no server by name: ok=%v err=%v, want kept", ok, err)
	}
}

func TestNewNodeIsFoundAfterAMiss(t *testing.T) {
	e := setup(t)
	fakezone.Put(zone, fakezone.Server{ID: 1, Name: "a"})
	if _, err := e.inst.InstanceMetadata(ctx, node("a", "")); err != nil {
		t.Fatal(err)
	}
	fakezone.Put(zone, fakezone.Server{ID: 2, Name: "b"})
	e.later()
	if _, err := e.inst.InstanceMetadata(ctx, node("b", "")); err != nil {
		t.Fatalf("new server not found after the miss interval: %v", err)
	}
}

func TestAddressType(t *testing.T) {
	for addr, want := range map[string]v1.NodeAddressType{
		"10.1.2.3": v1.NodeInternalIP, "172.16.0.1": v1.NodeInternalIP, "172.31.255.254": v1.NodeInternalIP,
		"192.168.100.1": v1.NodeInternalIP, "100.64.0.1": v1.NodeInternalIP, "100.127.255.254": v1.NodeInternalIP,
		"fd00::1": v1.NodeInternalIP, "::ffff:10.0.0.1": v1.NodeInternalIP,
		"172.32.0.1": v1.NodeExternalIP, "100.128.0.1": v1.NodeExternalIP, "203.0.113.5": v1.NodeExternalIP,
		"153.120.1.1": v1.NodeExternalIP, "2001:db8::1": v1.NodeExternalIP, "11.0.0.1": v1.NodeExternalIP,
		"127.0.0.1": "", "169.254.1.1": "", "0.0.0.0": "", "fe80::1": "", "224.0.0.1": "", "": "", "nonsense": "",
	} {
		if got := AddressType(addr); got != want {
			t.Errorf("AddressType(%q) = %q, want %q", addr, got, want)
		}
	}
}

func TestNodeAddressesFromEveryNIC(t *testing.T) {
	srv := &iaas.Server{Interfaces: []*iaas.InterfaceView{
		{IPAddress: "203.0.113.7"},      // shared segment: global
		{UserIPAddress: "192.168.1.7"},  // switch: private
		{UserIPAddress: "198.51.100.7"}, // router+switch: global
		{UserIPAddress: "100.64.3.7"},   // CGNAT: internal
		{},                              // disconnected NIC
		{IPAddress: "192.168.1.7", UserIPAddress: "169.254.0.1"}, // duplicate and link-local: skipped
		nil,
	}}
	got := NodeAddresses(srv, "worker-7")
	want := []v1.NodeAddress{
		{Type: v1.NodeInternalIP, Address: "192.168.1.7"},
		{Type: v1.NodeInternalIP, Address: "100.64.3.7"},
		{Type: v1.NodeExternalIP, Address: "203.0.113.7"},
		{Type: v1.NodeExternalIP, Address: "198.51.100.7"},
		{Type: v1.NodeHostName, Address: "worker-7"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("[%d] = %v, want %v", i, got[i], want[i])
		}
	}
}

func TestLabels(t *testing.T) {
	for _, tc := range []struct {
		cpu, memMB, gpu int
		want            string
	}{
		{4, 8192, 0, "4core-8gb"}, {1, 1024, 0, "1core-1gb"}, {8, 65536, 1, "8core-64gb-1gpu"}, {0, 0, 0, ""},
	} {
		if got := InstanceType(&iaas.Server{CPU: tc.cpu, MemoryMB: tc.memMB, GPU: tc.gpu}); got != tc.want {
			t.Errorf("InstanceType(%d,%d,%d) = %q, want %q", tc.cpu, tc.memMB, tc.gpu, got, tc.want)
		}
	}
	for z, want := range map[string]string{"is1a": "is1", "is1b": "is1", "is1c": "is1", "tk1a": "tk1", "tk1b": "tk1", "tk1v": "tk1", "x": "x"} {
		if got := Region(z); got != want {
			t.Errorf("Region(%s) = %s, want %s", z, got, want)
		}
	}
}
