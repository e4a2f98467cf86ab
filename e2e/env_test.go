package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	client "github.com/sacloud/api-client-go"
	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/helper/api"
	"github.com/sacloud/iaas-api-go/types"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/e2e/cluster"
)

const (
	zone         = "is1a"
	topologyFile = "testdata/topology.yaml"
	// routerSwitch is the router+switch block VIPs come from (see the topology).
	routerSwitch = "k8s-router-switch"
	// Generous deadlines: a shared 2-core machine can be slow; nothing here
	// asserts timing, only that the state is reached.
	longWait  = 3 * time.Minute
	shortWait = 90 * time.Second
)

// topology is the part of testdata/topology.yaml the tests read (the
// simulator parses the full format).
type topology struct {
	Servers []struct {
		Name string `json:"name"`
		Zone string `json:"zone"` // empty: the main zone
		CPU  int    `json:"cpu"`
		Mem  int    `json:"memoryGB"`
		NICs []struct {
			Switch        string `json:"switch"`
			UserIPAddress string `json:"userIPAddress"`
		} `json:"nics"`
	} `json:"servers"`
}

func loadTopology(t *testing.T, file string) *topology {
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var top topology
	if err := yaml.Unmarshal(b, &top); err != nil {
		t.Fatal(err)
	}
	return &top
}

// ipOn returns the server's address on the named switch.
func (top *topology) ipOn(server, sw string) string {
	for _, s := range top.Servers {
		if s.Name == server {
			for _, n := range s.NICs {
				if n.Switch == sw {
					return n.UserIPAddress
				}
			}
		}
	}
	return ""
}

type envOptions struct {
	// nodes to register (server names); nil means every server in the topology.
	nodes []string
	// noCCM: the test starts controllers itself.
	noCCM bool
	// extraConfig merged into the cloud-config.
	extraConfig map[string]any
	// allowForbidden: the test takes RBAC rules away on purpose.
	allowForbidden bool
	// topology file; empty: topologyFile.
	topology string
}

// env is one test's world on the shared control plane: its own simulator (a
// fresh zone), its own CCM replica(s) with their own Lease, its own namespace,
// and the Nodes for the topology's servers. Cleanup undoes all of it, prints
// log tails on failure and checks that no log holds the API secret.
type env struct {
	t         *testing.T
	ctx       context.Context
	kube      kubernetes.Interface
	sim       *cluster.Simulator
	ccm       *cluster.CCM
	ccms      []*cluster.CCM
	ns        string
	top       *topology
	sakura    *sakuraView
	clusterID string
	lease     string
	name      string
	// allowForbidden skips the check that RBAC denied the controller nothing.
	allowForbidden bool
}

var (
	nonAlnum = regexp.MustCompile(`[^a-z0-9]+`)
	envSeq   int
)

func newEnv(t *testing.T, opts envOptions) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	name := strings.Trim(nonAlnum.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	if len(name) > 40 {
		name = name[:40]
	}
	// Unique per run too (-count=N): the previous namespace may still be
	// terminating.
	envSeq++
	name = fmt.Sprintf("%s-%d", name, envSeq)
	topoFile := topologyFile
	if opts.topology != "" {
		topoFile = opts.topology
	}
	e := &env{t: t, ctx: ctx, kube: cp.Client, top: loadTopology(t, topoFile), name: name,
		clusterID: "e2e-" + name, lease: "ccm-" + name, ns: name, allowForbidden: opts.allowForbidden}
	t.Cleanup(cancel)
	t.Cleanup(e.cleanup)

	topo, err := filepath.Abs(topoFile)
	if err != nil {
		t.Fatal(err)
	}
	e.sim, err = cp.StartSimulator(ctx, cluster.SimulatorOptions{Topology: topo, Name: "sim-" + name})
	if err != nil {
		t.Fatal(err)
	}
	e.sakura = newSakuraView(t, e.sim)

	if _, err := e.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: e.ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	nodes := opts.nodes
	if nodes == nil {
		for _, s := range e.top.Servers {
			nodes = append(nodes, s.Name)
		}
	}
	for _, n := range nodes {
		e.registerNode(n)
	}
	// Nodes stay Ready while their server runs, and go Unknown when it
	// stops, as kubelet + node-lifecycle would make them.
	go cp.EmulateKubelets(ctx, e.sim, time.Second)
	if !opts.noCCM {
		e.ccm = e.startCCM("ccm-"+name, opts.extraConfig)
	}
	return e
}

func (e *env) registerNode(name string) {
	e.t.Helper()
	if _, err := cp.RegisterNode(e.ctx, cluster.NodeSpec{Name: name}); err != nil {
		e.t.Fatal(err)
	}
}

// startCCM starts a replica competing for this test's Lease.
func (e *env) startCCM(name string, extra map[string]any) *cluster.CCM {
	e.t.Helper()
	// A short server-cache TTL: power and deletion changes reach the
	// controller in seconds instead of the default minute.
	cfg := map[string]any{"serverCacheTTLSec": 5}
	for k, v := range extra {
		cfg[k] = v
	}
	m, err := cp.StartCCM(e.ctx, cluster.CCMOptions{
		Simulator: e.sim, ClusterID: e.clusterID, Zone: zone, Name: name, LeaseName: e.lease, Extra: cfg,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.ccms = append(e.ccms, m)
	return m
}

func (e *env) cleanup() {
	t := e.t
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Let a running controller release what it made, so the next test's
	// controller never sees this test's Services.
	if e.anyCCMRunning() {
		if l, err := e.kube.CoreV1().Services(e.ns).List(ctx, metav1.ListOptions{}); err == nil {
			for _, s := range l.Items {
				_ = e.kube.CoreV1().Services(e.ns).Delete(ctx, s.Name, metav1.DeleteOptions{})
			}
		}
		_ = pollUntil(ctx, 60*time.Second, func() (bool, error) {
			l, err := e.kube.CoreV1().Services(e.ns).List(ctx, metav1.ListOptions{})
			return err == nil && len(l.Items) == 0, err
		})
	}
	if t.Failed() {
		for _, m := range e.ccms {
			t.Logf("--- last lines of %s (%s) ---\n%s", m.Name, m.LogFile, m.Tail(60))
		}
		if e.sim != nil {
			t.Logf("--- last lines of %s ---\n%s", e.sim.Process.LogFile, e.sim.Process.Tail(30))
		}
	}
	for _, m := range e.ccms {
		m.Stop()
		if err := m.CheckNoSecret(); err != nil {
			t.Error(err)
		}
		if !e.allowForbidden {
			if err := m.CheckNoForbidden(); err != nil {
				t.Error(err)
			}
		}
	}
	if e.sim != nil {
		if containsAny(cp.APIServer.Log(), e.sim.Secret) {
			t.Error("the API secret appears in the kube-apiserver log")
		}
		e.sim.Stop()
	}
	// Strip finalizers left by a killed controller, then drop the namespace
	// and the Nodes.
	if l, err := e.kube.CoreV1().Services(e.ns).List(ctx, metav1.ListOptions{}); err == nil {
		for _, s := range l.Items {
			if len(s.Finalizers) > 0 {
				s.Finalizers = nil
				_, _ = e.kube.CoreV1().Services(e.ns).Update(ctx, &s, metav1.UpdateOptions{})
			}
			_ = e.kube.CoreV1().Services(e.ns).Delete(ctx, s.Name, metav1.DeleteOptions{})
		}
	}
	_ = e.kube.CoreV1().Namespaces().Delete(ctx, e.ns, metav1.DeleteOptions{})
	if err := cp.DeleteAllNodes(ctx); err != nil {
		t.Errorf("cleanup nodes: %v", err)
	}
	_ = e.kube.CoordinationV1().Leases("kube-system").Delete(ctx, e.lease, metav1.DeleteOptions{})
}

func (e *env) anyCCMRunning() bool {
	for _, m := range e.ccms {
		if m.Running() {
			return true
		}
	}
	return false
}

func containsAny(s string, subs ...string) bool {
	for _, x := range subs {
		if x != "" && strings.Contains(s, x) {
			return true
		}
	}
	return false
}

// pollUntil calls fn every 500ms until it returns true or the deadline passes.
func pollUntil(ctx context.Context, d time.Duration, fn func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if err := cluster.Poll(ctx, 500*time.Millisecond, nil, fn); err != nil {
		return fmt.Errorf("not reached within %s: %w", d, err)
	}
	return nil
}

// eventually fails the test with msg (and the describe callback's output)
// unless fn becomes true within d.
func (e *env) eventually(d time.Duration, msg string, fn func() (bool, error)) {
	e.t.Helper()
	if err := pollUntil(e.ctx, d, e.failOnCrash(fn)); err != nil {
		e.t.Fatalf("%s: %v", msg, err)
	}
}

// failOnCrash wraps a poll condition so that a controller that died by itself
// ends the wait at once with its log, instead of at the deadline.
func (e *env) failOnCrash(fn func() (bool, error)) func() (bool, error) {
	return func() (bool, error) {
		for _, m := range e.ccms {
			if crashed, why := m.Crashed(); crashed {
				e.t.Fatal(why)
			}
		}
		return fn()
	}
}

// --- Services ---

func (e *env) createLBService(name string, ports ...corev1.ServicePort) *corev1.Service {
	e.t.Helper()
	if len(ports) == 0 {
		ports = []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(8080)}}
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.ns},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeLoadBalancer,
			Selector: map[string]string{"app": name},
			Ports:    ports,
		},
	}
	created, err := e.kube.CoreV1().Services(e.ns).Create(e.ctx, svc, metav1.CreateOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return created
}

// waitIngressIP waits for the Service's status.loadBalancer.ingress[0].ip.
func (e *env) waitIngressIP(name string) string {
	e.t.Helper()
	var ip string
	err := pollUntil(e.ctx, longWait, e.failOnCrash(func() (bool, error) {
		s, err := e.kube.CoreV1().Services(e.ns).Get(e.ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if len(s.Status.LoadBalancer.Ingress) > 0 && s.Status.LoadBalancer.Ingress[0].IP != "" {
			ip = s.Status.LoadBalancer.Ingress[0].IP
			return true, nil
		}
		return false, nil
	}))
	if err != nil {
		e.t.Fatalf("Service %s/%s got no EXTERNAL-IP: %v\nevents: %s", e.ns, name, err, e.eventsFor("Service", name))
	}
	return ip
}

func (e *env) eventsFor(kind, name string) string {
	l, err := e.kube.CoreV1().Events(e.ns).List(e.ctx, metav1.ListOptions{
		FieldSelector: "involvedObject.kind=" + kind + ",involvedObject.name=" + name,
	})
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, ev := range l.Items {
		fmt.Fprintf(&b, "\n  %s %s: %s", ev.Type, ev.Reason, ev.Message)
	}
	return b.String()
}

func (e *env) deleteService(name string) {
	e.t.Helper()
	if err := e.kube.CoreV1().Services(e.ns).Delete(e.ctx, name, metav1.DeleteOptions{}); err != nil {
		e.t.Fatal(err)
	}
	e.eventually(longWait, "Service "+name+" not deleted (finalizer kept?)", func() (bool, error) {
		_, err := e.kube.CoreV1().Services(e.ns).Get(e.ctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
}

// excludeNode labels Node name out of load balancers (the upstream label)
// and takes the label off again when the test ends.
func (e *env) excludeNode(name string) {
	e.t.Helper()
	label := func(ctx context.Context, value string) error {
		patch := fmt.Sprintf(`{"metadata":{"labels":{%q:%s}}}`, corev1.LabelNodeExcludeBalancers, value)
		_, err := e.kube.CoreV1().Nodes().Patch(ctx, name, k8stypes.MergePatchType, []byte(patch), metav1.PatchOptions{})
		return err
	}
	if err := label(e.ctx, `"true"`); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), longWait)
		defer cancel()
		_ = label(ctx, "null")
	})
}

// nodeIPs returns the router-switch addresses of the given servers, sorted.
func (e *env) nodeIPs(servers ...string) []string {
	var ips []string
	for _, s := range servers {
		ips = append(ips, e.top.ipOn(s, routerSwitch))
	}
	sort.Strings(ips)
	return ips
}

// --- the SAKURA side, seen through the simulator's public API ---

// sakuraView reads the simulated zone with the unmodified iaas-api-go client,
// as a user with the same credentials would.
type sakuraView struct {
	t       *testing.T
	servers iaas.ServerAPI
	lbs     iaas.LoadBalancerAPI
	foreign map[types.ID]bool
	// zones are the zones listed for appliances (the main one first;
	// alsoZone adds one): an appliance lives in its switch's zone. Other
	// zones are left out unless a test asks, so that a test taking one
	// zone's API down still reads the others.
	zones []string
}

func newSakuraView(t *testing.T, sim *cluster.Simulator) *sakuraView {
	caller := api.NewCallerWithOptions(&api.CallerOptions{
		Options: &client.Options{
			AccessToken: sim.Token, AccessTokenSecret: sim.Secret,
			HttpRequestRateLimit: 100, RetryMax: 10,
			RetryWaitMin: 1, RetryWaitMax: 2,
		},
		APIRootURL: sim.URL, DefaultZone: zone,
	})
	v := &sakuraView{t: t, servers: iaas.NewServerOp(caller), lbs: iaas.NewLoadBalancerOp(caller), foreign: map[types.ID]bool{}, zones: []string{zone}}
	lbs, err := v.allLBs(context.Background())
	if err != nil {
		t.Fatalf("listing load balancers in the simulator: %v", err)
	}
	for _, lb := range lbs {
		v.foreign[lb.ID] = true
	}
	return v
}

func (v *sakuraView) allLBs(ctx context.Context) ([]*iaas.LoadBalancer, error) {
	var out []*iaas.LoadBalancer
	for _, z := range v.zones {
		for from := 0; ; {
			res, err := v.lbs.Find(ctx, z, &iaas.FindCondition{Count: 50, From: from})
			if err != nil {
				return nil, err
			}
			out = append(out, res.LoadBalancers...)
			from += len(res.LoadBalancers)
			if len(res.LoadBalancers) == 0 || from >= res.Total {
				break
			}
		}
	}
	return out, nil
}

// alsoZone lists the appliances of z too, those there now being foreign.
func (v *sakuraView) alsoZone(ctx context.Context, z string) {
	v.t.Helper()
	before := v.zones
	v.zones = []string{z}
	lbs, err := v.allLBs(ctx)
	v.zones = append(before, z)
	if err != nil {
		v.t.Fatalf("listing the load balancers of zone %s: %v", z, err)
	}
	for _, lb := range lbs {
		v.foreign[lb.ID] = true
	}
}

// zoneOf is the zone load balancer id answers in ("" when none does).
func (v *sakuraView) zoneOf(ctx context.Context, id types.ID) string {
	for _, z := range v.zones {
		if _, err := v.lbs.Read(ctx, z, id); err == nil {
			return z
		}
	}
	return ""
}

// ownLBs are the load balancers that were not in the topology: the ones the
// controller made.
func (v *sakuraView) ownLBs(ctx context.Context) ([]*iaas.LoadBalancer, error) {
	all, err := v.allLBs(ctx)
	if err != nil {
		return nil, err
	}
	var out []*iaas.LoadBalancer
	for _, lb := range all {
		if !v.foreign[lb.ID] {
			out = append(out, lb)
		}
	}
	return out, nil
}

func (v *sakuraView) server(ctx context.Context, name string) *iaas.Server {
	v.t.Helper()
	res, err := v.servers.Find(ctx, zone, &iaas.FindCondition{Count: 100})
	if err != nil {
		v.t.Fatal(err)
	}
	for _, s := range res.Servers {
		if s.Name == name {
			return s
		}
	}
	v.t.Fatalf("server %s not in the simulator", name)
	return nil
}

// vipView is one VIP+port of an appliance and its real servers.
type vipView struct {
	VIP     string
	Port    int
	Servers []string // real server IPs, sorted
}

// lbWithVIP returns the controller's appliance serving ip and its entries for ip.
func (v *sakuraView) lbWithVIP(ctx context.Context, ip string) (*iaas.LoadBalancer, []vipView, error) {
	own, err := v.ownLBs(ctx)
	if err != nil {
		return nil, nil, err
	}
	var found *iaas.LoadBalancer
	for _, lb := range own {
		for _, vip := range lb.VirtualIPAddresses {
			if vip.VirtualIPAddress == ip {
				if found != nil && found.ID != lb.ID {
					return nil, nil, fmt.Errorf("VIP %s on two appliances (%s, %s)", ip, found.ID, lb.ID)
				}
				found = lb
			}
		}
	}
	if found == nil {
		return nil, nil, nil
	}
	var vips []vipView
	for _, vip := range found.VirtualIPAddresses {
		if vip.VirtualIPAddress != ip {
			continue // another Service's entry on a shared appliance
		}
		vv := vipView{VIP: vip.VirtualIPAddress, Port: vip.Port.Int()}
		for _, s := range vip.Servers {
			vv.Servers = append(vv.Servers, s.IPAddress)
		}
		sort.Strings(vv.Servers)
		vips = append(vips, vv)
	}
	sort.Slice(vips, func(i, j int) bool { return vips[i].Port < vips[j].Port })
	return found, vips, nil
}

func sameStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
