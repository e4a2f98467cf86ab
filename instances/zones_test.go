package instances

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/record"
	cloudprovider "k8s.io/cloud-provider"

	"github.com/sacloud/iaas-api-go"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/fakezone"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/sakuraapi"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/servercache"
)

// setupZones is setup with a cluster spanning is1a and is1b.
func setupZones(t testing.TB) *env {
	t.Helper()
	client, op := fakezone.NewClient(zone)
	e := &env{client: client, op: op, recorder: record.NewFakeRecorder(100), now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	e.cache = servercache.NewZones(client, []string{"is1a", "is1b"}, time.Minute)
	e.cache.SetClock(nowFunc(func() time.Time { return e.now }))
	e.inst = New(client, e.cache, e.recorder)
	return e
}

// TestNodesInTwoZones: Nodes are matched by name or providerID (both
// forms) in either zone, and carry their own server's zone and region.
func TestNodesInTwoZones(t *testing.T) {
	e := setupZones(t)
	fakezone.Put("is1a", fakezone.Server{ID: 113100000001, Name: "a-1", CPU: 2, MemoryGB: 4, NICs: []fakezone.NIC{{UserIPAddress: "192.168.0.1"}}})
	fakezone.Put("is1b", fakezone.Server{ID: 113200000001, Name: "b-1", CPU: 4, MemoryGB: 8, NICs: []fakezone.NIC{{UserIPAddress: "192.168.0.2"}}})
	for _, tc := range []struct {
		node           *v1.Node
		zone, wantPID  string
		wantType, addr string
	}{
		{node("a-1", ""), "is1a", "sakuracloud://is1a/113100000001", "2core-4gb", "192.168.0.1"},
		{node("b-1", ""), "is1b", "sakuracloud://is1b/113200000001", "4core-8gb", "192.168.0.2"},
		{node("x", "sakuracloud://is1b/113200000001"), "is1b", "sakuracloud://is1b/113200000001", "4core-8gb", "192.168.0.2"},
		{node("y", "sakuracloud://113200000001"), "is1b", "sakuracloud://113200000001", "4core-8gb", "192.168.0.2"},
		{node("z", "sakuracloud://113100000001"), "is1a", "sakuracloud://113100000001", "2core-4gb", "192.168.0.1"},
	} {
		md, err := e.inst.InstanceMetadata(ctx, tc.node)
		if err != nil {
			t.Fatalf("%s: %v", tc.node.Name, err)
		}
		if md.Zone != tc.zone || md.Region != "is1" || md.ProviderID != tc.wantPID || md.InstanceType != tc.wantType || md.NodeAddresses[0].Address != tc.addr {
			t.Errorf("%s: metadata %+v", tc.node.Name, md)
		}
		if ok, err := e.inst.InstanceExists(ctx, tc.node); !ok || err != nil {
			t.Errorf("%s: exists=%v err=%v", tc.node.Name, ok, err)
		}
	}
	if got := e.calls(); got != 2 {
		t.Errorf("%d API calls for ten lookups over two zones, want 2 (one list per zone)", got)
	}
	// A zone outside the cluster is still refused.
	if _, err := e.inst.InstanceExists(ctx, node("t", "sakuracloud://tk1a/1")); err == nil ||
		!strings.Contains(err.Error(), "but this controller manages zones is1a, is1b") {
		t.Errorf("tk1a: %v", err)
	}
	assertEvent(t, e.recorder, ReasonProviderIDZone, "tk1a")
}

// TestSameNameInTwoZones is an error naming both zones and IDs, with a
// Warning Event, never a guess.
func TestSameNameInTwoZones(t *testing.T) {
	e := setupZones(t)
	fakezone.Put("is1a", fakezone.Server{ID: 113100000009, Name: "w"})
	fakezone.Put("is1b", fakezone.Server{ID: 113200000009, Name: "w"})
	want := `2 servers are named "w" (ID 113100000009 in zone is1a, ID 113200000009 in zone is1b)`
	for name, call := range map[string]func() error{
		"exists":   func() error { _, err := e.inst.InstanceExists(ctx, node("w", "")); return err },
		"shutdown": func() error { _, err := e.inst.InstanceShutdown(ctx, node("w", "")); return err },
		"metadata": func() error { _, err := e.inst.InstanceMetadata(ctx, node("w", "")); return err },
	} {
		if err := call(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v", name, err)
		}
	}
	assertEvent(t, e.recorder, ReasonDuplicateServerName, "ID 113100000009 in zone is1a, ID 113200000009 in zone is1b")
	// The providerID settles it.
	md, err := e.inst.InstanceMetadata(ctx, node("w", "sakuracloud://is1b/113200000009"))
	if err != nil || md.Zone != "is1b" {
		t.Errorf("by providerID: %+v %v", md, err)
	}
}

// TestOneZoneOutage: is1b's API fails. No Node of either zone reads as
// gone; is1a's Nodes are answered as before, without waiting on is1b, and
// a new is1a Node is still matched by name; is1b's Nodes get errors.
func TestOneZoneOutage(t *testing.T) {
	e := setupZones(t)
	fakezone.Put("is1a", fakezone.Server{ID: 113100000001, Name: "a-1"})
	fakezone.Put("is1b", fakezone.Server{ID: 113200000001, Name: "b-1"})
	a := node("a-1", "sakuracloud://is1a/113100000001")
	b := node("b-1", "sakuracloud://is1b/113200000001")
	legacyB := node("b-legacy", "sakuracloud://113200000001")
	for _, n := range []*v1.Node{a, b, legacyB} {
		if ok, err := e.inst.InstanceExists(ctx, n); !ok || err != nil {
			t.Fatalf("%s before the outage: %v %v", n.Name, ok, err)
		}
	}
	e.op.SetFailZone("is1b", 503)
	fakezone.Put("is1a", fakezone.Server{ID: 113100000002, Name: "a-2"})
	for round := 0; round < 3; round++ {
		e.now = e.now.Add(time.Minute) // past the TTL: every zone lists again
		if ok, err := e.inst.InstanceExists(ctx, a); !ok || err != nil {
			t.Errorf("round %d: is1a node: %v %v", round, ok, err)
		}
		for _, n := range []*v1.Node{b, legacyB, node("b-1", "")} {
			ok, err := e.inst.InstanceExists(ctx, n)
			if ok || err == nil || sakuraapi.StatusCode(err) != 503 {
				t.Errorf("round %d: %s during is1b's outage: ok=%v err=%v, want the 503", round, n.Name, ok, err)
			}
			if _, err := e.inst.InstanceShutdown(ctx, n); err == nil || errors.Is(err, cloudprovider.InstanceNotFound) {
				t.Errorf("round %d: %s shutdown: %v", round, n.Name, err)
			}
		}
		// A new is1a Node: matched by name although is1b cannot be listed
		// (its last list had no "a-2").
		md, err := e.inst.InstanceMetadata(ctx, node("a-2", ""))
		if err != nil || md.ProviderID != "sakuracloud://is1a/113100000002" || md.Zone != "is1a" {
			t.Errorf("round %d: new is1a node: %+v %v", round, md, err)
		}
		e.cache.Settle()
	}
	// is1b recovers: its Nodes are answered again.
	e.op.SetFailZone("is1b", 0)
	e.now = e.now.Add(time.Minute)
	_, _ = e.inst.InstanceExists(ctx, b) // starts the list in the background
	e.cache.Settle()
	if ok, err := e.inst.InstanceExists(ctx, b); !ok || err != nil {
		t.Errorf("after recovery: %v %v", ok, err)
	}
}

// TestOutageBeforeFirstList: a zone that never answered cannot rule out a
// duplicate name, so name matching waits; providerIDs of the other zone
// still work.
func TestOutageBeforeFirstList(t *testing.T) {
	e := setupZones(t)
	fakezone.Put("is1a", fakezone.Server{ID: 113100000001, Name: "a-1"})
	e.op.SetFailZone("is1b", 503)
	if _, err := e.inst.InstanceMetadata(ctx, node("a-1", "")); err == nil ||
		!strings.Contains(err.Error(), `cannot rule out a server named "a-1" in zone is1b`) || errors.Is(err, cloudprovider.InstanceNotFound) {
		t.Errorf("by name: %v", err)
	}
	if md, err := e.inst.InstanceMetadata(ctx, node("a-1", "sakuracloud://is1a/113100000001")); err != nil || md.Zone != "is1a" {
		t.Errorf("by providerID: %+v %v", md, err)
	}
}

// TestGoneInEveryZone: a legacy providerID is gone only when every zone's
// list misses it and every zone's read answers 404.
func TestGoneInEveryZone(t *testing.T) {
	e := setupZones(t)
	fakezone.Put("is1b", fakezone.Server{ID: 113200000001, Name: "b-1"})
	n := node("b-1", "sakuracloud://113200000001")
	if ok, err := e.inst.InstanceExists(ctx, n); !ok || err != nil {
		t.Fatal(ok, err)
	}
	fakezone.Delete("is1b", 113200000001)
	e.now = e.now.Add(time.Minute)
	if ok, err := e.inst.InstanceExists(ctx, n); ok || err != nil {
		t.Errorf("gone: ok=%v err=%v", ok, err)
	}
	zoned := node("b-1", "sakuracloud://is1b/113200000001")
	e.now = e.now.Add(time.Minute)
	if ok, err := e.inst.InstanceExists(ctx, zoned); ok || err != nil {
		t.Errorf("gone (zoned): ok=%v err=%v", ok, err)
	}
	if _, err := e.inst.InstanceMetadata(ctx, zoned); !errors.Is(err, cloudprovider.InstanceNotFound) ||
		!strings.Contains(err.Error(), "in zones is1a, is1b") {
		t.Errorf("metadata: %v", err)
	}
}

// hangZone blocks every Find of one zone until released.
type hangZone struct {
	*fakezone.PagedServerOp
	zone    string
	entered chan struct{}
	release chan struct{}
}

func (h *hangZone) Find(ctx context.Context, zone string, cond *iaas.FindCondition) (*iaas.ServerFindResult, error) {
	if zone == h.zone {
		select {
		case h.entered <- struct{}{}:
		default:
		}
		<-h.release
	}
	return h.PagedServerOp.Find(ctx, zone, cond)
}

// TestHangingZoneDoesNotHoldOthers: while is1b's list hangs, Nodes with
// an is1a providerID are answered: they never touch is1b (a lookup that
// did would join the hanging list and never return).
func TestHangingZoneDoesNotHoldOthers(t *testing.T) {
	e := setupZones(t)
	fakezone.Put("is1a", fakezone.Server{ID: 113100000001, Name: "a-1"})
	fakezone.Put("is1b", fakezone.Server{ID: 113200000001, Name: "b-1"})
	h := &hangZone{PagedServerOp: e.op, zone: "is1b", entered: make(chan struct{}, 1), release: make(chan struct{})}
	e.client.UseServerOp(h)
	defer func() { close(h.release); e.cache.Settle() }()
	// An is1b Node's lookup hangs in the background on is1b's list.
	go func() {
		_, _ = e.inst.InstanceExists(context.Background(), node("b-1", "sakuracloud://is1b/113200000001"))
	}()
	<-h.entered
	a := node("a-1", "sakuracloud://is1a/113100000001")
	for round := 0; round < 3; round++ {
		e.now = e.now.Add(time.Minute)
		if ok, err := e.inst.InstanceExists(ctx, a); !ok || err != nil {
			t.Fatalf("round %d: exists %v %v", round, ok, err)
		}
		if down, err := e.inst.InstanceShutdown(ctx, a); down || err != nil {
			t.Fatalf("round %d: shutdown %v %v", round, down, err)
		}
		if md, err := e.inst.InstanceMetadata(ctx, a); err != nil || md.Zone != "is1a" {
			t.Fatalf("round %d: metadata %+v %v", round, md, err)
		}
	}
}
