package e2e

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/types"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/e2e/cluster"
)

// Scenarios of docs/load-balancers.md "Repair: converging from any state",
// and of settings that were saved but never applied (docs/simulator.md,
// "saved and applied settings"). Out-of-band changes go through the SAKURA
// API with the env's credentials, as a user with the console would make them.

const (
	repairAnnotation = "k8s.usacloud.jp/load-balancer-repair"
	reasonRepaired   = "LoadBalancerRepaired"
	// repairInterval is loadBalancer.repairIntervalSec in these tests.
	repairInterval = 3 * time.Second
	// repairPassLog is what the controller logs (at --v=2) after each repair
	// pass; the tests use it to know when a pass ran.
	repairPassLog = "Repair pass done"
)

// repairConfig: a repair pass every 3 s and a health poll every 2 s.
func repairConfig() map[string]any { return repairConfigWith(2) }

// repairConfigWith: a repair pass every 3 s and a health poll every
// healthSec. The two share one tick of the shorter interval, so with
// healthSec 3 a pass is followed by a whole interval without one.
func repairConfigWith(healthSec int) map[string]any {
	return map[string]any{"loadBalancer": map[string]any{
		"repairIntervalSec": int(repairInterval / time.Second), "healthPollIntervalSec": healthSec,
	}}
}

// newRepairEnv starts an env with repairConfig, the given nodes (nil: all)
// and a boot delay of 1 s, so that out-of-band power changes are quick.
func newRepairEnv(t *testing.T, nodes []string) *env {
	t.Helper()
	return newRepairEnvWith(t, nodes, repairConfig())
}

func newRepairEnvWith(t *testing.T, nodes []string, cfg map[string]any) *env {
	t.Helper()
	e := newEnv(t, envOptions{nodes: nodes, extraConfig: cfg})
	if err := e.sim.SetDelays(e.ctx, time.Second, -1); err != nil {
		t.Fatal(err)
	}
	return e
}

// --- reading the appliance: saved and applied settings ---

// portServers maps port → sorted real-server IPs of the entries for vip.
func portServers(settings []cluster.LBSetting, vip string) (map[int][]string, error) {
	out := map[int][]string{}
	for _, s := range settings {
		if s.VirtualIPAddress != vip {
			return nil, fmt.Errorf("entry with VIP %s, want only %s", s.VirtualIPAddress, vip)
		}
		port, err := s.Port.Int64()
		if err != nil {
			return nil, fmt.Errorf("entry port %q: %w", s.Port, err)
		}
		if _, dup := out[int(port)]; dup {
			return nil, fmt.Errorf("two entries for %s:%d", vip, port)
		}
		ips := []string{}
		for _, rs := range s.Servers {
			ips = append(ips, rs.IPAddress)
		}
		sort.Strings(ips)
		out[int(port)] = ips
	}
	return out, nil
}

func sameMapping(got, want map[int][]string) bool {
	if len(got) != len(want) {
		return false
	}
	for p, w := range want {
		g, ok := got[p]
		if !ok || !sameStrings(g, sortedCopy(w)) {
			return false
		}
	}
	return true
}

// waitApplied waits until appliance id is up and *runs* (applied
// configuration, not only saved) exactly the wanted port → real servers on
// vip, with nothing pending, and returns what it saw.
func (e *env) waitApplied(id, vip string, want map[int][]string) *cluster.LoadBalancerConfig {
	e.t.Helper()
	var last *cluster.LoadBalancerConfig
	var lastErr error
	err := pollUntil(e.ctx, longWait, e.failOnCrash(func() (bool, error) {
		c, err := e.sim.LoadBalancer(e.ctx, id)
		if err != nil {
			lastErr = err
			return false, nil
		}
		last = c
		applied, err := portServers(c.Applied, vip)
		if err != nil {
			lastErr = err
			return false, nil
		}
		return c.Status == "up" && !c.Pending && sameMapping(applied, want), nil
	}))
	if err != nil {
		e.t.Fatalf("appliance %s never ran port→servers %v on %s with nothing pending: %v\nlast seen: %s (last error: %v)\nevents: %s",
			id, want, vip, err, describeConfig(last), lastErr, e.allEvents())
	}
	return last
}

func describeConfig(c *cluster.LoadBalancerConfig) string {
	if c == nil {
		return "nothing"
	}
	show := func(ss []cluster.LBSetting) string {
		var parts []string
		for _, s := range ss {
			var ips []string
			for _, rs := range s.Servers {
				ips = append(ips, rs.IPAddress)
			}
			parts = append(parts, fmt.Sprintf("%s:%s→%v", s.VirtualIPAddress, s.Port, ips))
		}
		return "[" + strings.Join(parts, " ") + "]"
	}
	return fmt.Sprintf("status %q pending %v saved %s applied %s", c.Status, c.Pending, show(c.Saved), show(c.Applied))
}

// allEvents lists every Event of the test's namespace (for failure messages).
func (e *env) allEvents() string {
	l, err := e.kube.CoreV1().Events(e.ns).List(e.ctx, metav1.ListOptions{})
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, ev := range l.Items {
		fmt.Fprintf(&b, "\n  %s/%s %s %s (x%d): %s", ev.InvolvedObject.Kind, ev.InvolvedObject.Name, ev.Type, ev.Reason, ev.Count, ev.Message)
	}
	return b.String()
}

// eventCount sums the occurrences of Events with reason on Service name
// whose message contains every substr (repeats are folded into one Event
// with a count).
func (e *env) eventCount(name, reason string, substr ...string) int {
	e.t.Helper()
	l, err := e.kube.CoreV1().Events(e.ns).List(e.ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
	if err != nil {
		e.t.Fatal(err)
	}
	n := 0
next:
	for _, ev := range l.Items {
		if ev.Reason != reason {
			continue
		}
		for _, s := range substr {
			if !strings.Contains(ev.Message, s) {
				continue next
			}
		}
		n += max(int(ev.Count), 1)
	}
	return n
}

// waitNewEvent waits until more than before such Events exist.
func (e *env) waitNewEvent(name, reason string, before int, substr ...string) {
	e.t.Helper()
	err := pollUntil(e.ctx, longWait, e.failOnCrash(func() (bool, error) {
		return e.eventCount(name, reason, substr...) > before, nil
	}))
	if err != nil {
		e.t.Fatalf("no new %s Event on %s with %v: %v\nevents: %s", reason, name, substr, err, e.allEvents())
	}
}

// lbFor returns the ID of the controller's appliance serving ip.
func (e *env) lbFor(ip string) types.ID {
	e.t.Helper()
	lb, _, err := e.sakura.lbWithVIP(e.ctx, ip)
	if err != nil || lb == nil {
		e.t.Fatalf("no appliance serves %s: %v", ip, err)
	}
	return lb.ID
}

func (e *env) serviceIP(name string) string {
	e.t.Helper()
	s, err := e.kube.CoreV1().Services(e.ns).Get(e.ctx, name, metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	if len(s.Status.LoadBalancer.Ingress) == 0 {
		return ""
	}
	return s.Status.LoadBalancer.Ingress[0].IP
}

func (e *env) requestCount(op string) int {
	e.t.Helper()
	reqs, err := e.sim.Requests(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return reqs[op]
}

// clusterLBs are the appliances carrying this cluster's ownership tag, as
// the simulator holds them: also those the API does not list yet.
func (e *env) clusterLBs() []string {
	e.t.Helper()
	all, err := e.sim.LoadBalancers(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	var ids []string
	for _, lb := range all {
		for _, tag := range lb.Tags {
			if tag == clusterTagKey+e.clusterID {
				ids = append(ids, lb.ID.String())
			}
		}
	}
	return ids
}

// --- repair passes, seen in the controller's log ---

func (e *env) repairPasses() int { return strings.Count(e.ccm.Log(), repairPassLog) }

// afterRepairPass returns right after the controller finished a repair
// pass: the next one starts at least one tick (the shorter of the repair and
// health intervals) later.
func (e *env) afterRepairPass() {
	e.t.Helper()
	n := e.repairPasses()
	ctx, cancel := context.WithTimeout(e.ctx, shortWait)
	defer cancel()
	if err := cluster.Poll(ctx, 50*time.Millisecond, nil, e.failOnCrash(func() (bool, error) {
		return e.repairPasses() > n, nil
	})); err != nil {
		e.t.Fatalf("no repair pass logged (%q) within %s: %v", repairPassLog, shortWait, err)
	}
}

// --- out-of-band changes through the SAKURA API ---

// lbStatus is the appliance's instance status in the simulator ("" once
// deleted). A booting appliance shows "down" until it is up.
func (e *env) lbStatus(id types.ID) string {
	c, err := e.sim.LoadBalancer(e.ctx, id.String())
	if err != nil {
		return ""
	}
	return c.Status
}

// powerOffOutOfBand shuts the appliance down (forced) and waits until it is down.
func (e *env) powerOffOutOfBand(id types.ID) {
	e.t.Helper()
	if err := e.sakura.lbs.Shutdown(e.ctx, e.sakura.zoneOf(e.ctx, id), id, &iaas.ShutdownOption{Force: true}); err != nil {
		e.t.Fatalf("shutting down %s: %v", id, err)
	}
	ctx, cancel := context.WithTimeout(e.ctx, shortWait)
	defer cancel()
	if err := cluster.Poll(ctx, 50*time.Millisecond, nil, func() (bool, error) {
		return e.lbStatus(id) == "down", nil
	}); err != nil {
		e.t.Fatalf("appliance %s did not go down: %v", id, err)
	}
}

// deleteOutOfBand shuts the appliance down and deletes it. Should the
// controller boot it again in between (it was seen powered off), the
// shutdown is repeated once it is up.
func (e *env) deleteOutOfBand(id types.ID) {
	e.t.Helper()
	for attempt := 1; ; attempt++ {
		e.powerOffOutOfBand(id)
		err := e.sakura.lbs.Delete(e.ctx, e.sakura.zoneOf(e.ctx, id), id)
		if err == nil {
			return
		}
		if attempt == 3 {
			e.t.Fatalf("deleting %s: %v", id, err)
		}
		e.t.Logf("deleting %s: %v (booted again meanwhile?); retrying", id, err)
		e.eventually(shortWait, "appliance "+id.String()+" did not come up again", func() (bool, error) {
			return e.lbStatus(id) == "up", nil
		})
	}
}

// createApplied creates a one-port LoadBalancer Service on every node and
// waits until its appliance runs them; it returns the VIP, the appliance
// and the nodes' addresses.
func (e *env) createApplied(name string) (ip string, id types.ID, all []string) {
	e.t.Helper()
	e.createLBService(name)
	ip = e.waitIngressIP(name)
	id = e.lbFor(ip)
	all = e.nodeIPs("node-1", "node-2", "node-3")
	e.waitApplied(id.String(), ip, map[int][]string{80: all})
	return ip, id, all
}

// createUnlisted creates a LoadBalancer Service while new appliances stay
// unlisted and unreadable for window, and waits until the controller has
// sent its LoadBalancer.Create.
func (e *env) createUnlisted(name string, window time.Duration) {
	e.t.Helper()
	e.waitInitialized("node-1", "node-2", "node-3")
	if err := e.sim.SetDelays(e.ctx, -1, window); err != nil {
		e.t.Fatal(err)
	}
	e.createLBService(name)
	ctx, cancel := context.WithTimeout(e.ctx, longWait)
	defer cancel()
	if err := cluster.Poll(ctx, 50*time.Millisecond, nil, e.failOnCrash(func() (bool, error) {
		return e.requestCount("LoadBalancer.Create") > 0, nil
	})); err != nil {
		e.t.Fatalf("the controller never sent LoadBalancer.Create: %v", err)
	}
}

// --- the scenarios ---

// TestUnappliedSettingsApplied: a node joins and the controller writes the
// new real servers, but the Config that applies them fails once. The saved
// settings then already show the node, so a controller that only compares
// saved settings never tries again and the appliance keeps running without
// it. The running (applied) configuration must get the node on every VIP
// entry, with nothing left pending.
func TestUnappliedSettingsApplied(t *testing.T) {
	e := newRepairEnv(t, []string{"node-1", "node-2"})
	e.createLBService("app", tcpPort("http", 80), tcpPort("https", 443))
	ip := e.waitIngressIP("app")
	id := e.lbFor(ip).String()
	two := e.nodeIPs("node-1", "node-2")
	e.waitApplied(id, ip, map[int][]string{80: two, 443: two})
	repairedBefore := e.eventCount("app", reasonRepaired)

	if err := e.sim.FailNextConfig(e.ctx, 500); err != nil {
		t.Fatal(err)
	}
	e.registerNode("node-3")
	all := e.nodeIPs("node-1", "node-2", "node-3")
	// The failed Config is what this test is about: it must have happened.
	e.eventually(longWait, "no LoadBalancer.Config failed (the injected fault never fired)", func() (bool, error) {
		rules, err := e.sim.Faults(e.ctx)
		if err != nil {
			return false, err
		}
		for _, r := range rules {
			if r.Op == "LoadBalancer.Config" && r.Fired > 0 {
				return true, nil
			}
		}
		return false, nil
	})
	c := e.waitApplied(id, ip, map[int][]string{80: all, 443: all})
	if c.AppliedHash != c.SavedHash {
		t.Errorf("applied hash %s differs from saved %s", c.AppliedHash, c.SavedHash)
	}
	e.waitNewEvent("app", reasonRepaired, repairedBefore, id)
	if got := e.ownCount(); got != 1 {
		t.Errorf("%d appliances, want 1", got)
	}
}

// TestNodeAddedWhileBooting: a node joins while the Service's new appliance
// boots. A booting appliance cannot be configured; the new real server must
// still run on it once it is up.
func TestNodeAddedWhileBooting(t *testing.T) {
	e := newRepairEnv(t, []string{"node-1", "node-2"})
	e.waitInitialized("node-1", "node-2")
	if err := e.sim.SetDelays(e.ctx, bootWhileJoining, -1); err != nil {
		t.Fatal(err)
	}
	e.createLBService("app")
	var id string
	e.eventually(longWait, "no appliance created", func() (bool, error) {
		if ids := e.clusterLBs(); len(ids) == 1 {
			id = ids[0]
		}
		return id != "", nil
	})
	e.joinWhileBooting(types.StringID(id), "app", "node-3", 3)
	ip := e.waitIngressIP("app")
	e.waitApplied(id, ip, map[int][]string{80: e.nodeIPs("node-1", "node-2", "node-3")})
	if got := e.ownCount(); got != 1 {
		t.Errorf("%d appliances, want 1", got)
	}
}

// TestNodeAddedWhileRebooting: the Service has its address and its appliance
// is rebooted outside the controller; a node joins during that boot. Only the
// node update can bring it in (the Service itself is synced), and it must
// run on the appliance once it is up. (An earlier controller answered the
// node update on a booting appliance with success, so the service controller
// recorded the node set as synced and never retried.)
func TestNodeAddedWhileRebooting(t *testing.T) {
	e := newRepairEnv(t, []string{"node-1", "node-2"})
	e.createLBService("app")
	ip := e.waitIngressIP("app")
	id := e.lbFor(ip)
	e.waitApplied(id.String(), ip, map[int][]string{80: e.nodeIPs("node-1", "node-2")})

	e.powerOffOutOfBand(id)
	if err := e.sim.SetDelays(e.ctx, bootWhileJoining, -1); err != nil {
		t.Fatal(err)
	}
	if err := e.sakura.lbs.Boot(e.ctx, zone, id); err != nil {
		t.Fatal(err)
	}
	e.joinWhileBooting(id, "app", "node-3", 3)
	e.waitApplied(id.String(), ip, map[int][]string{80: e.nodeIPs("node-1", "node-2", "node-3")})
	if got := e.ownCount(); got != 1 {
		t.Errorf("%d appliances, want 1", got)
	}
}

// bootWhileJoining is the boot delay while a node joins: long enough for
// the node to be registered, initialized and handed to the controller.
const bootWhileJoining = 6 * time.Second

// joinWhileBooting registers node and waits until the service controller
// passed the set of n nodes for svc to UpdateLoadBalancer, checking that the
// appliance was still booting by then.
func (e *env) joinWhileBooting(id types.ID, svc, node string, n int) {
	e.t.Helper()
	e.registerNode(node)
	// Logged (--v=2) by the service controller before it calls
	// UpdateLoadBalancer with that node set.
	update := fmt.Sprintf("Updating backends for load balancer %s/%s with %d nodes", e.ns, svc, n)
	e.eventually(shortWait, "the controller was not given "+node, func() (bool, error) {
		return strings.Contains(e.ccm.Log(), update), nil
	})
	if st := e.lbStatus(id); st == "up" {
		e.t.Fatalf("precondition: appliance %s was already up when %s joined; lengthen the boot delay", id, node)
	}
}

// TestDeleteBeforeListed: the Service is deleted right after the controller
// sent its LoadBalancer.Create, while the API does not list (or read) the
// new appliance yet. The Service must only disappear once the appliance is
// gone; a controller that takes "not listed" for "nothing to delete"
// releases the Service and leaks the appliance.
func TestDeleteBeforeListed(t *testing.T) {
	const window = 6 * time.Second
	e := newRepairEnv(t, nil)
	e.createUnlisted("app", window)
	if err := e.kube.CoreV1().Services(e.ns).Delete(e.ctx, "app", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	deletedAt := time.Now()
	e.eventually(shortWait, "the create made no appliance", func() (bool, error) {
		return len(e.clusterLBs()) == 1, nil
	})
	if lbs, err := e.sakura.ownLBs(e.ctx); err != nil || len(lbs) != 0 {
		t.Logf("note: the API already lists the new appliance (%d, %v); the not-found window may have passed", len(lbs), err)
	}
	e.eventually(longWait, "Service app not deleted", func() (bool, error) {
		_, err := e.kube.CoreV1().Services(e.ns).Get(e.ctx, "app", metav1.GetOptions{})
		if !apierrors.IsNotFound(err) {
			return false, nil
		}
		// Gone: its appliance must be gone already.
		if left := e.clusterLBs(); len(left) > 0 {
			t.Fatalf("Service app was released while its appliance %v still exists (leaked)", left)
		}
		return true, nil
	})
	t.Logf("Service gone %s after the delete", time.Since(deletedAt).Round(100*time.Millisecond))
	// And nothing comes back or shows up later, once the API lists everything.
	if wait := window - time.Since(deletedAt); wait > 0 {
		time.Sleep(wait)
	}
	if left := e.clusterLBs(); len(left) > 0 {
		t.Fatalf("appliances %v of this cluster left after the Service was deleted", left)
	}
	if n := e.ownCount(); n != 0 {
		t.Fatalf("%d appliances listed after the Service was deleted, want 0", n)
	}
}

// TestRepairDeletedAppliance: the Service's appliance is deleted outside the
// controller. The repair pass creates it again on the address the Service
// shows, running the Service's settings, and says so in an Event. A second
// Service created while the appliance is gone must not get that address.
func TestRepairDeletedAppliance(t *testing.T) {
	e := newRepairEnvWith(t, nil, repairConfigWith(int(repairInterval/time.Second)))
	e.waitInitialized("node-1", "node-2", "node-3")
	all := e.nodeIPs("node-1", "node-2", "node-3")
	e.createLBService("first")
	ip := e.waitIngressIP("first")
	old := e.lbFor(ip)
	e.waitApplied(old.String(), ip, map[int][]string{80: all})
	repairedBefore := e.eventCount("first", reasonRepaired)

	// Right after a pass, so that the next one (a full interval later)
	// comes after the second Service was given its address.
	e.afterRepairPass()
	start := time.Now()
	e.deleteOutOfBand(old)
	e.createLBService("second")
	if d := time.Since(start); d > repairInterval/2 {
		t.Logf("note: the deletion took %s of the %s repair interval", d.Round(10*time.Millisecond), repairInterval)
	}

	secondIP := e.waitIngressIP("second")
	if secondIP == ip {
		t.Fatalf("the second Service got %s, the address the first Service shows while its appliance is gone", ip)
	}
	var fresh types.ID
	e.eventually(longWait, "first's appliance not created again", func() (bool, error) {
		lb, _, err := e.sakura.lbWithVIP(e.ctx, ip)
		if err != nil || lb == nil {
			return false, err
		}
		fresh = lb.ID
		return lb.ID != old, nil
	})
	e.waitApplied(fresh.String(), ip, map[int][]string{80: all})
	e.waitNewEvent("first", reasonRepaired, repairedBefore)
	if got := e.serviceIP("first"); got != ip {
		t.Errorf("first Service shows %s after the repair, want %s", got, ip)
	}
	secondLB := e.lbFor(secondIP)
	e.waitApplied(secondLB.String(), secondIP, map[int][]string{80: all})
	// IDs increase: the second Service's appliance was created first, so the
	// address choice above really happened while the first's was gone.
	if secondLB > fresh {
		t.Fatalf("precondition: the repair re-created %s before the second Service's %s was created; the address conflict was not exercised", fresh, secondLB)
	}
	if n := e.ownCount(); n != 2 {
		t.Errorf("%d appliances, want 2", n)
	}
}

// TestRepairPoweredOff: the appliance is powered off outside the controller;
// the repair pass boots it (the same appliance), it comes up, and the
// Service is told.
func TestRepairPoweredOff(t *testing.T) {
	e := newRepairEnv(t, nil)
	ip, id, all := e.createApplied("app")
	repairedBefore := e.eventCount("app", reasonRepaired, id.String())
	boots := e.requestCount("LoadBalancer.Boot")

	// A boot that outlasts the repair interval, as real ones do (minutes,
	// against a default interval of 60 s): the controller must let its
	// boot finish instead of starting it over.
	if err := e.sim.SetDelays(e.ctx, 2*repairInterval, -1); err != nil {
		t.Fatal(err)
	}
	e.powerOffOutOfBand(id)
	e.waitApplied(id.String(), ip, map[int][]string{80: all})
	n := e.requestCount("LoadBalancer.Boot") - boots
	if n == 0 {
		t.Errorf("appliance is up again but nobody sent LoadBalancer.Boot")
	}
	t.Logf("%d LoadBalancer.Boot sent", n)
	e.waitNewEvent("app", reasonRepaired, repairedBefore, id.String())
	if got := e.serviceIP("app"); got != ip {
		t.Errorf("Service shows %s after the boot, want %s", got, ip)
	}
	if n := e.ownCount(); n != 1 {
		t.Errorf("%d appliances, want 1 (the same one booted)", n)
	}
}

// TestRepairRealServersChanged: real servers are removed outside the
// controller (settings written and applied through the API); the repair pass
// writes the Service's real servers back, and they are applied.
func TestRepairRealServersChanged(t *testing.T) {
	e := newRepairEnv(t, nil)
	e.createLBService("app", tcpPort("http", 80), tcpPort("https", 443))
	ip := e.waitIngressIP("app")
	id := e.lbFor(ip)
	all := e.nodeIPs("node-1", "node-2", "node-3")
	e.waitApplied(id.String(), ip, map[int][]string{80: all, 443: all})
	lb, err := e.sakura.lbs.Read(e.ctx, zone, id)
	if err != nil {
		t.Fatal(err)
	}
	vips := lb.VirtualIPAddresses
	for _, v := range vips {
		v.Servers = v.Servers[:1] // keep one real server per entry
	}
	if _, err := e.sakura.lbs.UpdateSettings(e.ctx, zone, id, &iaas.LoadBalancerUpdateSettingsRequest{
		VirtualIPAddresses: vips, SettingsHash: lb.SettingsHash,
	}); err != nil {
		t.Fatalf("changing the real servers out of band: %v", err)
	}
	if err := e.sakura.lbs.Config(e.ctx, zone, id); err != nil {
		t.Fatalf("applying the out-of-band change: %v", err)
	}

	// The rewrite comes from the repair pass (LoadBalancerRepaired) or, when
	// a retry of the service controller's own sync is still queued from the
	// boot, from that sync (LoadBalancerUpdated): what counts is that the
	// applied real servers are back.
	e.waitApplied(id.String(), ip, map[int][]string{80: all, 443: all})
	if n := e.ownCount(); n != 1 {
		t.Errorf("%d appliances, want 1 (rewritten, not replaced)", n)
	}
}

// TestRepairOptOut: with k8s.usacloud.jp/load-balancer-repair: "false" an
// appliance deleted outside the controller stays deleted: no pass creates it
// again.
func TestRepairOptOut(t *testing.T) {
	e := newRepairEnv(t, nil)
	e.createAnnotatedService("manual", map[string]string{repairAnnotation: "false"})
	ip := e.waitIngressIP("manual")
	id := e.lbFor(ip)
	e.waitApplied(id.String(), ip, map[int][]string{80: e.nodeIPs("node-1", "node-2", "node-3")})
	creates := e.requestCount("LoadBalancer.Create")

	// Right after a pass: every later pass starts after the deletion.
	e.afterRepairPass()
	e.deleteOutOfBand(id)
	deleted := time.Now()
	passes := e.repairPasses()
	e.eventually(shortWait, "fewer than two repair passes after the deletion", func() (bool, error) {
		return e.repairPasses() >= passes+2, nil
	})
	t.Logf("two repair passes in the %s after the deletion", time.Since(deleted).Round(100*time.Millisecond))
	if n := e.requestCount("LoadBalancer.Create"); n != creates {
		t.Errorf("%d LoadBalancer.Create sent for an opted-out Service after its appliance was deleted", n-creates)
	}
	if left := e.clusterLBs(); len(left) != 0 {
		t.Errorf("opted-out Service's appliance came back: %v", left)
	}
	if n := e.eventCount("manual", reasonRepaired); n != 0 {
		t.Errorf("%d %s Events on an opted-out Service\nevents: %s", n, reasonRepaired, e.allEvents())
	}
}
