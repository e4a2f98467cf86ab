package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/fake"
	"github.com/sacloud/iaas-api-go/helper/api"
	"github.com/sacloud/iaas-api-go/types"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/config"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/providerid"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/sakuraapi"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/decide"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ktypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	cpapi "k8s.io/cloud-provider/api"
)

const zone = "is1a"

// tb is what both tests and benchmarks need from testing.
type tb interface {
	Helper()
	Fatalf(format string, args ...any)
	Cleanup(func())
}

// env is one fake SAKURA zone with a router+switch block and the adapter.
type env struct {
	t        tb
	ctx      context.Context
	client   *sakuraapi.Client
	lb       *Engine
	recorder *record.FakeRecorder
	router   *iaas.Internet
	sw       *iaas.Switch
	nextID   types.ID
	cfg      config.LoadBalancerConfig
}

// fakeServers lists servers straight from the fake store, standing in for
// the warm shared server cache (so API counts show only the LB path).
type fakeServers struct{}

func (fakeServers) List(ctx context.Context) ([]*iaas.Server, error) {
	r, err := fake.NewServerOp().Find(ctx, zone, nil)
	if err != nil {
		return nil, err
	}
	return r.Servers, nil
}

func newEnv(t tb, maskLen int) *env {
	t.Helper()
	fake.SwitchFactoryFuncToFake()
	api.SetupFakeDefaults()
	fake.DataStore = fake.NewInMemoryStore()
	e := &env{t: t, ctx: context.Background(), nextID: 990000000001}
	e.client = sakuraapi.NewFromCaller(nil, zone, sakuraapi.Limits{})
	e.router, e.sw = e.addBlock(maskLen, "k8s-block")
	// The health poll is on by default: a real-server change then needs no
	// settings-pending mark (decide.MarkUnapplied).
	e.cfg = config.LoadBalancerConfig{HealthPollIntervalSec: 60}
	e.rebuild()
	t.Cleanup(e.settle)
	return e
}

// settle waits until the fake's power goroutines are done: they read from
// the store and write back later, and would otherwise leak appliances into
// the next test's fresh store.
func (e *env) settle() {
	for i := 0; i < 5000; i++ {
		busy := false
		for _, lb := range e.lbs() {
			up := lb.InstanceStatus.IsUp() && lb.Availability.IsAvailable()
			if !up && !lb.InstanceStatus.IsDown() {
				busy = true
			}
			if lb.InstanceStatus.IsDown() && lb.Availability.IsMigrating() {
				busy = true
			}
		}
		if !busy {
			time.Sleep(5 * time.Millisecond) // let a final Put land
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// rebuild makes a fresh adapter (a controller restart) over the same zone.
func (e *env) rebuild() {
	e.recorder = record.NewFakeRecorder(1000)
	e.lb = New(Deps{Client: e.client, Servers: fakeServers{}, Config: e.cfg, ClusterID: "test", Recorder: e.recorder})
	// The fake powers off within tens of milliseconds: wait that long.
	e.lb.deleteWaits = []time.Duration{20 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond}
}

func (e *env) id() types.ID { e.nextID++; return e.nextID }

func (e *env) addBlock(maskLen int, tag string) (*iaas.Internet, *iaas.Switch) {
	e.t.Helper()
	r, err := fake.NewInternetOp().Create(e.ctx, zone, &iaas.InternetCreateRequest{Name: tag, NetworkMaskLen: maskLen, BandWidthMbps: 100, Tags: types.Tags{tag}})
	if err != nil {
		e.t.Fatalf("create router: %v", err)
	}
	sw, err := fake.NewSwitchOp().Read(e.ctx, zone, r.Switch.ID)
	if err != nil {
		e.t.Fatalf("read switch: %v", err)
	}
	return r, sw
}

// ip returns the i-th usable address of the block (0 = first after the router's).
func (e *env) ip(i int) string {
	s := e.sw.Subnets[0]
	var a, b, c, d int
	fmt.Sscanf(s.NetworkAddress, "%d.%d.%d.%d", &a, &b, &c, &d)
	return fmt.Sprintf("%d.%d.%d.%d", a, b, c, d+4+i)
}

// addServer puts a server with a NIC on sw (address ip) into the fake store.
func (e *env) addServer(name string, sw *iaas.Switch, ip string) *iaas.Server {
	e.t.Helper()
	s := &iaas.Server{ID: e.id(), Name: name, InstanceStatus: types.ServerInstanceStatuses.Up, Availability: types.Availabilities.Available}
	s.Interfaces = []*iaas.InterfaceView{
		{ID: e.id(), SwitchID: 0, SwitchScope: types.Scopes.Shared, IPAddress: "203.0.113.9"},
		{ID: e.id(), SwitchID: sw.ID, SwitchScope: types.Scopes.User, UserIPAddress: ip},
	}
	fake.DataStore.Put(fake.ResourceServer, zone, s.ID, s)
	cur, _ := fake.NewSwitchOp().Read(e.ctx, zone, sw.ID)
	cur.ServerCount++
	fake.DataStore.Put(fake.ResourceSwitch, zone, cur.ID, cur)
	return s
}

func node(s *iaas.Server) *v1.Node {
	return &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: s.Name}, Spec: v1.NodeSpec{ProviderID: providerid.Format(zone, s.ID)}}
}

// addNodes adds n servers on the block at addresses ip(first..) and returns their Nodes.
func (e *env) addNodes(n, first int) []*v1.Node {
	var out []*v1.Node
	for i := 0; i < n; i++ {
		out = append(out, node(e.addServer(fmt.Sprintf("node-%03d", first+i), e.sw, e.ip(first+i))))
	}
	return out
}

func service(name string, ports ...int32) *v1.Service {
	s := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: ktypes.UID("uid-" + name), Annotations: map[string]string{}},
		Spec:       v1.ServiceSpec{Type: v1.ServiceTypeLoadBalancer},
	}
	for _, p := range ports {
		s.Spec.Ports = append(s.Spec.Ports, v1.ServicePort{Name: fmt.Sprintf("p%d", p), Port: p, Protocol: v1.ProtocolTCP})
	}
	return s
}

func isRetry(err error) bool {
	var re *cpapi.RetryError
	return errors.As(err, &re)
}

// ensureUp calls EnsureLoadBalancer until the appliance is up. The fake's
// boots and shutdowns take real time, so the bound is a time, generous for a
// loaded machine, not a count of tries.
func (e *env) ensureUp(svc *v1.Service, nodes []*v1.Node) *v1.LoadBalancerStatus {
	e.t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
		st, err := e.lb.EnsureLoadBalancer(e.ctx, "test", svc, nodes)
		if err == nil {
			return st
		}
		if !isRetry(err) {
			e.t.Fatalf("EnsureLoadBalancer: %v", err)
		}
		time.Sleep(time.Millisecond)
	}
	e.t.Fatalf("load balancer never came up")
	return nil
}

// deleteAll calls EnsureLoadBalancerDeleted until it succeeds.
func (e *env) deleteAll(svc *v1.Service) {
	e.t.Helper()
	e.deleteUntilGone(svc, false)
}

// deleteAsServiceController deletes the way the service controller of
// k8s.io/cloud-provider does: GetLoadBalancer, then, if it exists,
// EnsureLoadBalancerDeleted, again on every retry.
func (e *env) deleteAsServiceController(svc *v1.Service) {
	e.t.Helper()
	e.deleteUntilGone(svc, true)
}

func (e *env) deleteUntilGone(svc *v1.Service, askFirst bool) {
	e.t.Helper()
	for i := 0; i < 5000; i++ {
		if askFirst {
			_, exists, err := e.lb.GetLoadBalancer(e.ctx, "test", svc)
			if err != nil {
				e.t.Fatalf("GetLoadBalancer: %v", err)
			}
			if !exists {
				return
			}
		}
		err := e.lb.EnsureLoadBalancerDeleted(e.ctx, "test", svc)
		if err == nil {
			return
		}
		if !isRetry(err) {
			e.t.Fatalf("EnsureLoadBalancerDeleted: %v", err)
		}
		time.Sleep(time.Millisecond)
	}
	e.t.Fatalf("load balancer never went away")
}

func (e *env) lbs() []*iaas.LoadBalancer {
	r, err := fake.NewLoadBalancerOp().Find(e.ctx, zone, nil)
	if err != nil {
		e.t.Fatalf("find: %v", err)
	}
	return r.LoadBalancers
}

// writes counts write calls since snap.
func writes(c *sakuraapi.Client, snap map[sakuraapi.CallKey]int) (int, map[string]int) {
	n, by := 0, map[string]int{}
	for k, v := range c.Stats().Snapshot() {
		d := v - snap[k]
		if d > 0 && sakuraapi.IsWrite(k.Op) {
			n += d
			by[k.Op] += d
		}
	}
	return n, by
}

func calls(c *sakuraapi.Client, snap map[sakuraapi.CallKey]int) int {
	n := 0
	for k, v := range c.Stats().Snapshot() {
		n += v - snap[k]
	}
	return n
}

// events drains the recorder.
func (e *env) events() []string {
	var out []string
	for {
		select {
		case ev := <-e.recorder.Events:
			out = append(out, ev)
		default:
			return out
		}
	}
}

func findEvent(evs []string, substr ...string) string {
outer:
	for _, ev := range evs {
		for _, s := range substr {
			if !strings.Contains(ev, s) {
				continue outer
			}
		}
		return ev
	}
	return ""
}

// The cloudprovider methods, as the parent package's adapter maps them,
// so that tests drive the engine the way the service controller does.
func (l *Engine) EnsureLoadBalancer(ctx context.Context, cluster string, svc *v1.Service, nodes []*v1.Node) (*v1.LoadBalancerStatus, error) {
	return l.Reconcile(ctx, Request{Trigger: decide.ByEnsure, Cluster: cluster, Service: svc, Nodes: nodes})
}

func (l *Engine) UpdateLoadBalancer(ctx context.Context, cluster string, svc *v1.Service, nodes []*v1.Node) error {
	st, err := l.Reconcile(ctx, Request{Trigger: decide.ByServiceController, Cluster: cluster, Service: svc, Nodes: nodes})
	if err == nil && st == nil {
		return ErrNoLoadBalancer
	}
	return err
}

func (l *Engine) GetLoadBalancer(ctx context.Context, cluster string, svc *v1.Service) (*v1.LoadBalancerStatus, bool, error) {
	return l.Status(ctx, cluster, svc)
}

func (l *Engine) EnsureLoadBalancerDeleted(ctx context.Context, cluster string, svc *v1.Service) error {
	return l.Delete(ctx, cluster, svc)
}

// pendingReservations counts the outstanding reservations.
func (m *memory) pendingReservations() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.reservations)
}
