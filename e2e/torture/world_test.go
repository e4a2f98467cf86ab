package torture

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/naked"
	"github.com/sacloud/iaas-api-go/types"
	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	restclient "k8s.io/client-go/rest"
	cloudprovider "k8s.io/cloud-provider"
	"k8s.io/utils/clock"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/cloud"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/e2e/sakurasim"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/config"
)

// Names the product documents (docs/load-balancers.md, docs/annotations.md);
// the harness spells them out instead of importing internal packages.
const (
	clusterID       = "torture"
	otherClusterID  = "other-cluster"
	kubeClusterName = "kubernetes" // --cluster-name; the product uses clusterID
	zoneName        = "is1a"
	zoneB           = "is1b" // the second zone: servers only, bridged to the block (testdata/topology.yaml)
	globalSwitch    = "torture-global"
	globalSwitchB   = "torture-global-b"
	privateSwitch   = "torture-private"
	lbFinalizer     = "service.kubernetes.io/load-balancer-cleanup"
	tagCluster      = "k8s.usacloud.jp/cluster="
	tagService      = "k8s.usacloud.jp/service-uid="
	tagSharing      = "k8s.usacloud.jp/sharing-key="
	annSharing      = "k8s.usacloud.jp/load-balancer-sharing-key"
	annPlan         = "k8s.usacloud.jp/load-balancer-plan"
	annHA           = "k8s.usacloud.jp/load-balancer-ha"
	annProtocol     = "k8s.usacloud.jp/load-balancer-healthcheck-protocol"
	annPath         = "k8s.usacloud.jp/load-balancer-healthcheck-path"
	annInterval     = "k8s.usacloud.jp/load-balancer-healthz-interval"
	annSorry        = "k8s.usacloud.jp/load-balancer-sorry-server"
	annType         = "k8s.usacloud.jp/load-balancer-type"
	typeEnhanced    = "enhanced"
	annELBPlan      = "k8s.usacloud.jp/elb-plan"
	annELBID        = "k8s.usacloud.jp/elb-id"
	defaultELBPlan  = 100 // cps, the cloud-config's default elbPlan
	excludeLabel    = "node.kubernetes.io/exclude-from-external-load-balancers"
	uninitTaint     = "node.cloudprovider.kubernetes.io/uninitialized"
	providerScheme  = "sakuracloud://"
	// nodeReserved keeps the node addresses out of the allocator (see testdata/topology.yaml).
	nodeReserved = "203.0.113.10-203.0.113.24"

	// timeScale compresses the service controller's waits (RetryAfter, the
	// 5 s..300 s failure backoff) and the cloud-node controllers': a real
	// second is a harness millisecond. The simulator's boot delay and
	// read-not-found window are chosen on the same scale.
	timeScale = 1000
	// cacheClockFactor speeds up the clock of the provider's shared server
	// cache (TTL 1 s, misses paced to 5 s) when it offers SetClock.
	cacheClockFactor = 100
)

// pinAddrs are the addresses Services pin (spec.loadBalancerIP), two per
// Service actor; nodeSlots the addresses of nodes added during a run.
var (
	pinAddrs = []string{"203.0.113.57", "203.0.113.58", "203.0.113.59", "203.0.113.60", "203.0.113.61", "203.0.113.62"}
	// .20-.23 are the adoption actor's (adopt_test.go); at most three nodes
	// are added at once, so four slots suffice.
	nodeSlots = []string{"203.0.113.16", "203.0.113.17", "203.0.113.18", "203.0.113.19"}
)

// knobs are the per-seed settings of the simulator and the provider.
type knobs struct {
	bootDelay time.Duration
	notFound  time.Duration // simulator read-not-found window after a create
	retryMax  int
	rps       float64
	workers   int  // service controller workers
	ownLoop   bool // the product's own Service loop serves the Services, not the emulated upstream one
	sweepSec  int
	healthSec int
}

func (k knobs) String() string {
	loop := "upstream"
	if k.ownLoop {
		loop = "own"
	}
	return fmt.Sprintf("boot=%s notFoundWindow=%s retryMax=%d rps=%g workers=%d sweep=%ds healthPoll=%ds loop=%s",
		k.bootDelay, k.notFound, k.retryMax, k.rps, k.workers, k.sweepSec, k.healthSec, loop)
}

func drawKnobs(r *rand.Rand) knobs {
	k := knobs{
		bootDelay: time.Duration(2+r.Intn(7)) * time.Millisecond,
		retryMax:  r.Intn(2),
		rps:       1000,
		workers:   1 + r.Intn(3),
	}
	switch r.Intn(10) {
	case 0, 1:
		k.notFound = 2 * time.Millisecond
	case 2:
		k.notFound = 8 * time.Millisecond
	}
	if r.Intn(5) == 0 {
		k.rps = 200
	}
	if r.Intn(3) == 0 {
		k.sweepSec = 1
	}
	if r.Intn(3) == 0 {
		k.healthSec = 1
	}
	k.ownLoop = r.Intn(4) == 0
	return k
}

// world is one seed's universe: simulator, Kubernetes API, controllers.
type world struct {
	seed  int64
	opts  options
	knobs knobs
	start time.Time
	tr    *tracer

	sim  *sakurasim.Simulator
	kube *fake.Clientset
	kmu  sync.Mutex // serializes writes to the fake API (the API server's role)

	inflight  atomic.Int64 // simulator requests being served
	lastWrite atomic.Int64 // UnixNano of the last API write
	lastLocal atomic.Int64 // UnixNano of the last EndpointSlice or Local Service change

	foreign   map[types.ID]string // foreign appliance ID -> its JSON at the start
	trapUID   string              // UID on the other cluster's appliance
	globalSW  types.ID
	globalSWB types.ID // is1b's switch on the bridge: the same segment as globalSW
	oob       iaas.LoadBalancerAPI
	oobELB    iaas.ProxyLBAPI
	oobRoute  *route
	tokens    []string
	ccmMu     sync.Mutex
	ccm       *ccm
	gens      int
	stoppedAt []time.Time

	// foreignELBs are the ELBs that are not this cluster's (made at the
	// start with -torture.elb above 0): ID -> their JSON then.
	foreignELBs map[types.ID]string

	mu        sync.Mutex
	damaged   map[string][]string   // Service UID -> out-of-band damage done to its appliance
	findings  []violation           // seen while running (foreign writes)
	notes     []string              // refusals the last check excused
	deleting  map[types.ID]deletion // appliance -> its only member, being deleted while down
	late      int                   // requests a stopped controller started
	repair    string                // the repair pass configured
	promised  map[string]promise    // adoption actor: Service key -> the VIP it must show
	untouched map[types.ID]string   // adoption actor: refused appliance -> its JSON
	// restartMu serializes restarts (restart).
	restartMu sync.Mutex
	// lastRead is when each Service (namespace/name) was last read.
	lastRead map[string]time.Time
}

func (w *world) since() time.Duration { return time.Since(w.start) }

func newWorld(seed int64, o options) (*world, error) {
	kr := rand.New(rand.NewSource(seed*7919 + 1))
	w := &world{seed: seed, opts: o, knobs: drawKnobs(kr), start: time.Now(), damaged: map[string][]string{}}
	switch o.loop {
	case "own":
		w.knobs.ownLoop = true
	case "upstream":
		w.knobs.ownLoop = false
	}
	w.tr = newTracer(w.start)
	topo, err := sakurasim.LoadTopology("testdata/topology.yaml")
	if err != nil {
		return nil, err
	}
	w.trapUID = serviceUID(seed, 0, 1)
	for i := range topo.LoadBalancers {
		switch topo.LoadBalancers[i].Name {
		case "foreign-other-cluster":
			topo.LoadBalancers[i].Tags = []string{tagCluster + otherClusterID, tagService + w.trapUID}
		case "foreign-cluster-tag-only":
			topo.LoadBalancers[i].Tags = []string{tagCluster + clusterID}
		}
	}
	// Writes SAKURA is not known to refuse (an address in use, a duplicate
	// tag) are accepted and stored, so that a controller relying on a
	// refusal leaves what the checks see (-torture.strict refuses them).
	w.sim = sakurasim.New(topo, sakurasim.Options{BootDelay: w.knobs.bootDelay, ReadNotFoundWindow: w.knobs.notFound, Seed: seed,
		AcceptConflicts: !o.strict})
	st := w.sim.Snapshot()
	w.foreign = map[types.ID]string{}
	for _, lb := range st.LoadBalancers {
		data, _ := json.Marshal(lb)
		w.foreign[lb.ID] = string(data)
	}
	for _, sw := range st.Switches {
		switch sw.Name {
		case globalSwitch:
			w.globalSW = sw.ID
		case globalSwitchB:
			w.globalSWB = sw.ID
		}
	}
	w.kube = fake.NewClientset()
	serviceSemantics(w.kube)
	// When each Service was last read: the oracle of boots during a
	// deletion needs it (noteRequest). Runs first, answers nothing.
	w.kube.PrependReactor("get", "services", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if g, ok := a.(k8stesting.GetAction); ok {
			w.mu.Lock()
			if w.lastRead == nil {
				w.lastRead = map[string]time.Time{}
			}
			w.lastRead[g.GetNamespace()+"/"+g.GetName()] = time.Now()
			w.mu.Unlock()
		}
		return false, nil, nil
	})
	for _, ns := range []string{"default", "team", defectNS, adoptNS} {
		if _, err := w.kube.CoreV1().Namespaces().Create(context.Background(), &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			return nil, err
		}
	}
	for _, sv := range st.Servers {
		if !strings.HasPrefix(sv.Name, "node-") {
			continue
		}
		n := newNode(sv.Name, firstIP(sv.Interfaces))
		n.Spec.ProviderID = providerScheme + sv.Zone.Name + "/" + sv.ID.String()
		n.Spec.Taints = nil
		if _, err := w.kube.CoreV1().Nodes().Create(context.Background(), n, metav1.CreateOptions{}); err != nil {
			return nil, err
		}
	}
	oobToken := fmt.Sprintf("oob-%d-%p", seed, w)
	w.oobRoute = &route{w: w, role: "oob"}
	w.register(oobToken, w.oobRoute)
	cfg, err := w.config(oobToken)
	if err != nil {
		return nil, err
	}
	caller, err := cloud.NewCaller(cfg)
	if err != nil {
		return nil, err
	}
	w.oob = iaas.NewLoadBalancerOp(caller)
	w.oobELB = iaas.NewProxyLBOp(caller)
	if o.elb > 0 {
		if err := w.foreignELBSetup(); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// foreignELBSetup makes the ELBs that are not this cluster's: another
// cluster's, carrying the service-uid of one of this cluster's Services
// (the trap), and one with this cluster's tag but no service-uid. The
// controller must never write or delete them (invariant 3).
func (w *world) foreignELBSetup() error {
	w.foreignELBs = map[types.ID]string{}
	for i, tags := range []types.Tags{{tagCluster + otherClusterID, tagService + w.trapUID}, {tagCluster + clusterID}} {
		req := &iaas.ProxyLBCreateRequest{Plan: types.ProxyLBPlans.CPS100, Region: types.ProxyLBRegions.IS1,
			Name: fmt.Sprintf("foreign-elb-%d", i), Tags: tags,
			HealthCheck: &iaas.ProxyLBHealthCheck{Protocol: types.ProxyLBProtocols.TCP, DelayLoop: 10},
			BindPorts:   []*iaas.ProxyLBBindPort{{ProxyMode: types.ProxyLBProxyModes.TCP, Port: 80}},
			Servers:     []*iaas.ProxyLBServer{{IPAddress: "198.51.100.10", Port: 30080, Enabled: true}}}
		if _, err := w.oobELB.Create(bg, req); err != nil {
			return fmt.Errorf("creating a foreign ELB: %w", err)
		}
	}
	for _, p := range w.sim.Snapshot().ProxyLBs {
		data, _ := json.Marshal(p)
		w.foreignELBs[p.ID] = string(data)
	}
	return nil
}

// sharedIP is a server's address on the shared segment (its global
// address, where an ELB reaches it), or "".
func sharedIP(nics []*naked.Interface) string {
	for _, n := range nics {
		if n != nil && n.Switch != nil && n.Switch.Scope == types.Scopes.Shared && n.IPAddress != "" {
			return n.IPAddress
		}
	}
	return ""
}

func (w *world) register(token string, r *route) {
	w.tokens = append(w.tokens, token)
	routes.Store(token, r)
}

// close stops the controller and forgets the world's tokens.
func (w *world) close() {
	w.stopCCM()
	for _, t := range w.tokens {
		routes.Delete(t)
	}
}

// firstIP is the address of a server's first switch NIC (its InternalIP).
func firstIP(nics []*naked.Interface) string {
	for _, n := range nics {
		if n != nil && n.Switch != nil && n.UserIPAddress != "" {
			return n.UserIPAddress
		}
	}
	return ""
}

// segmentIP is a server's address on the block's layer-2 segment: on the
// router's switch or on is1b's switch bridged to it.
func (w *world) segmentIP(nics []*naked.Interface) string {
	if ip := ipOn(nics, w.globalSW); ip != "" {
		return ip
	}
	return ipOn(nics, w.globalSWB)
}

func ipOn(nics []*naked.Interface, sw types.ID) string {
	for _, n := range nics {
		if n != nil && n.Switch != nil && n.Switch.ID == sw {
			return n.UserIPAddress
		}
	}
	return ""
}

// config is the cloud-config of a controller (or the out-of-band client)
// that authenticates with token.
func (w *world) config(token string) (*config.Config, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "accessToken: %s\naccessTokenSecret: torture-secret\nzone: %s\nzones: [%s, %s]\nclusterID: %s\napiRootURL: %s\n",
		token, zoneName, zoneName, zoneB, clusterID, apiServer.URL)
	fmt.Fprintf(&b, "retryMax: %d\nretryIntervalSec: 0\nretryMaxWaitSec: 0\nrequestsPerSecond: %g\nrequestTimeoutSec: 1\nserverCacheTTLSec: 1\n",
		w.knobs.retryMax, w.knobs.rps)
	fmt.Fprintf(&b, "loadBalancer:\n  reservedIPRanges: [%q]\n  sweepIntervalSec: %d\n  healthPollIntervalSec: %d\n  endpointHoldDownSec: 0\n  endpointMinIntervalSec: 0\n",
		nodeReserved, w.knobs.sweepSec, w.knobs.healthSec)
	if w.knobs.ownLoop {
		b.WriteString("  serviceController: own\n")
	}
	keys := make([]string, 0, len(w.opts.lbExtra))
	for k := range w.opts.lbExtra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "  %s: %s\n", k, w.opts.lbExtra[k])
	}
	noEnv := func(string) (string, bool) { return "", false }
	base := b.String()
	if _, set := w.opts.lbExtra[repairKey]; !set {
		// The repair pass at its shortest interval, where the product has one.
		cfg, err := config.FromReader(strings.NewReader(base+"  "+repairKey+": 1\n"), noEnv)
		if err == nil {
			w.repair = "every 1s"
			return cfg, nil
		}
		if !strings.Contains(err.Error(), repairKey) {
			return nil, err
		}
		w.repair = "none (the cloud-config has no " + repairKey + ")"
	} else {
		w.repair = "every " + w.opts.lbExtra[repairKey] + "s (-torture.lbconfig)"
	}
	return config.FromReader(strings.NewReader(base), noEnv)
}

// repairKey is the product's setting for its periodic repair pass.
const repairKey = "repairIntervalSec"

// noteRequest is called by the router for every write.
func (w *world) noteRequest(rt *route, method, path string, status int, start time.Time, late bool) {
	if status > 0 && status < 300 {
		w.lastWrite.Store(time.Now().UnixNano())
	}
	id := applianceID(path)
	op := path
	if i := strings.Index(path, "/api/cloud/1.1/"); i >= 0 {
		op = path[i+len("/api/cloud/1.1/"):]
	}
	w.tr.api(fmt.Sprintf("%s %s %s %s → %d", fmtDur(start.Sub(w.start)), rt.role, method, op, status))
	// The members a boot was sent for, read before taking the world's lock
	// (the simulator has its own): a member that joined the appliance
	// after it was marked keeps it wanted, and booting it is right.
	var othersLive bool
	if method == "PUT" && strings.HasSuffix(path, "/power") && status > 0 && status < 300 {
		w.mu.Lock()
		d, marked := w.deleting[id]
		w.mu.Unlock()
		if marked {
			for _, lb := range w.sim.Snapshot().LoadBalancers {
				if lb.ID == id {
					othersLive = slices.ContainsFunc(memberUIDs(lb.Tags), func(u string) bool { return u != d.uid })
				}
			}
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if late {
		w.late++
	}
	// A boot sent after the deletion was marked; one sent before it (and
	// answered after) was chosen while the Service was live. Nor does a
	// boot count whose controller last read the Service before the
	// deletion: the controller re-reads the Service right before every
	// boot, and no API orders a Kubernetes deletion against a SAKURA boot,
	// so a boot can trail a deletion by the moment between that read and
	// the request (seed 101807); the deletion then shuts it down again. A
	// boot after a read that already showed the deletion is a violation.
	readBefore := false
	if d, ok := w.deleting[id]; ok {
		if at, read := w.lastRead[d.svc]; read && at.Before(d.at) {
			readBefore = true
		}
	}
	if d, ok := w.deleting[id]; ok && !othersLive && !readBefore && start.After(d.at) && rt.gen > 0 && method == "PUT" && strings.HasSuffix(path, "/power") && status > 0 && status < 300 {
		svc := d.svc
		w.findings = append(w.findings, violation{kind: "inv2/boot-while-deleting", svc: svc,
			msg: fmt.Sprintf("%s booted appliance %s (answer %d) while its only member %s was being deleted", rt.role, id, status, svc)})
	}
	if _, foreign := w.foreign[id]; foreign && rt.gen > 0 && method != "GET" {
		w.findings = append(w.findings, violation{kind: "inv3/foreign-write",
			msg: fmt.Sprintf("%s sent %s %s to appliance %s, which is not this cluster's (answer %d)", rt.role, method, op, id, status)})
	}
	if eid := elbID(path); !eid.IsEmpty() && rt.gen > 0 && method != "GET" {
		if _, foreign := w.foreignELBs[eid]; foreign {
			w.findings = append(w.findings, violation{kind: "inv3/foreign-elb-write",
				msg: fmt.Sprintf("%s sent %s %s to ELB %s, which is not this cluster's (answer %d)", rt.role, method, op, eid, status)})
		}
	}
}

// elbID is the ELB a request is about (ELBs are commonserviceitems).
func elbID(path string) types.ID {
	i := strings.Index(path, "/commonserviceitem/")
	if i < 0 {
		return 0
	}
	rest := path[i+len("/commonserviceitem/"):]
	if j := strings.IndexByte(rest, '/'); j >= 0 {
		rest = rest[:j]
	}
	return types.StringID(rest)
}

func applianceID(path string) types.ID {
	i := strings.Index(path, "/appliance/")
	if i < 0 {
		return 0
	}
	rest := path[i+len("/appliance/"):]
	if j := strings.IndexByte(rest, '/'); j >= 0 {
		rest = rest[:j]
	}
	return types.StringID(rest)
}

func (w *world) damage(uids []string, kind string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, u := range uids {
		w.damaged[u] = append(w.damaged[u], kind)
	}
}

// --- the controller manager: provider + service controller + node controllers

// ccm is one controller-manager process of the cluster (one generation).
type ccm struct {
	w      *world
	gen    int
	route  *route
	cloud  *cloud.Cloud
	lb     cloudprovider.LoadBalancer
	inst   cloudprovider.InstancesV2
	stop   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	sc     *svcController // nil when the product's own loop serves the Services
	wg     sync.WaitGroup
	// nodeBusy counts node-controller work in flight (for quiescence).
	nodeBusy atomic.Int64
	fastPath bool // the server cache runs on the compressed clock
}

type clientBuilder struct{ c kubernetes.Interface }

func (b clientBuilder) Config(string) (*restclient.Config, error)   { return &restclient.Config{}, nil }
func (b clientBuilder) ConfigOrDie(string) *restclient.Config       { return &restclient.Config{} }
func (b clientBuilder) Client(string) (kubernetes.Interface, error) { return b.c, nil }
func (b clientBuilder) ClientOrDie(string) kubernetes.Interface     { return b.c }

// startCCM builds the next controller generation and starts its loops.
func (w *world) startCCM() error {
	w.ccmMu.Lock()
	defer w.ccmMu.Unlock()
	if w.ccm != nil {
		return fmt.Errorf("ccm#%d still runs: one controller at a time (leader election)", w.ccm.gen)
	}
	w.gens++
	gen := w.gens
	token := fmt.Sprintf("ccm-%d-%d-%p", w.seed, gen, w)
	rt := &route{w: w, role: fmt.Sprintf("ccm#%d", gen), gen: gen}
	w.register(token, rt)
	cfg, err := w.config(token)
	if err != nil {
		return err
	}
	c, err := cloud.New(cfg)
	if err != nil {
		return err
	}
	m := &ccm{w: w, gen: gen, route: rt, cloud: c, stop: make(chan struct{})}
	m.fastPath = compressCacheClock(c, cacheClockFactor)
	m.ctx, m.cancel = context.WithCancel(context.Background())
	c.Initialize(clientBuilder{w.kube}, m.stop)
	lb, ok := c.LoadBalancer()
	if !ok {
		return fmt.Errorf("the provider offers no LoadBalancer")
	}
	inst, ok := c.InstancesV2()
	if !ok {
		return fmt.Errorf("the provider offers no InstancesV2")
	}
	m.lb, m.inst = lb, inst
	w.ccm = m
	if w.knobs.ownLoop {
		// The product's own loop, as the app starts it: on its shared
		// informers, with the service controller's worker count.
		factory := informers.NewSharedInformerFactory(w.kube, 0)
		started, err := c.StartServiceLoop(m.ctx, w.kube, factory, kubeClusterName, w.knobs.workers)
		if err != nil || !started {
			w.ccm = nil
			return fmt.Errorf("the own Service loop did not start (started %v): %v", started, err)
		}
		factory.Start(m.ctx.Done())
	} else {
		m.sc = newSvcController(m)
		m.sc.start()
	}
	m.wg.Add(1)
	go m.nodeControllers()
	w.tr.add("ccm#%d started (server cache clock compressed: %v; repair pass: %s)", gen, m.fastPath, w.repair)
	return nil
}

// stopCCM ends the current generation as a crash or lost lease would: its
// context is cancelled (in-flight API calls are cut), its workers stop, and
// it is never called again.
func (w *world) stopCCM() {
	w.ccmMu.Lock()
	m := w.ccm
	w.ccm = nil
	w.ccmMu.Unlock()
	if m == nil {
		return
	}
	// Everything at once, as when the process dies: the provider's own
	// loops (stop channel) and the emulated controllers (context).
	m.route.stopped.Store(true)
	close(m.stop)
	m.cancel()
	if m.sc != nil {
		m.sc.shutdown()
	}
	m.wg.Wait()
	w.mu.Lock()
	w.stoppedAt = append(w.stoppedAt, time.Now())
	w.mu.Unlock()
	w.tr.add("ccm#%d stopped", m.gen)
}

func (w *world) current() *ccm {
	w.ccmMu.Lock()
	defer w.ccmMu.Unlock()
	return w.ccm
}

// compressCacheClock runs the provider's server cache on a fast clock when
// the provider offers one (Cloud.Servers().SetClock). It is looked up by
// reflection so that the harness does not depend on the cache's type.
func compressCacheClock(c any, factor float64) bool {
	m := reflect.ValueOf(c).MethodByName("Servers")
	if !m.IsValid() || m.Type().NumIn() != 0 || m.Type().NumOut() != 1 {
		return false
	}
	out := m.Call(nil)[0]
	if !out.IsValid() || (out.Kind() == reflect.Pointer && out.IsNil()) {
		return false
	}
	setter, ok := out.Interface().(interface{ SetClock(clock.PassiveClock) })
	if !ok {
		return false
	}
	setter.SetClock(fastClock{base: time.Now(), factor: factor})
	return true
}

// fastClock runs factor times faster than real time from base.
type fastClock struct {
	base   time.Time
	factor float64
}

func (c fastClock) Now() time.Time {
	return c.base.Add(time.Duration(float64(time.Since(c.base)) * c.factor))
}
func (c fastClock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }

// --- the API server: all writes to the fake clientset go through these

func newNode(name, ip string) *v1.Node {
	return &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}},
		Spec:       v1.NodeSpec{Taints: []v1.Taint{{Key: uninitTaint, Value: "true", Effect: v1.TaintEffectNoSchedule}}},
		Status: v1.NodeStatus{
			Addresses:  []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: ip}, {Type: v1.NodeHostName, Address: name}},
			Conditions: []v1.NodeCondition{{Type: v1.NodeReady, Status: v1.ConditionTrue}},
		},
	}
}

var bg = context.Background()

func (w *world) getService(ns, name string) (*v1.Service, error) {
	return w.kube.CoreV1().Services(ns).Get(bg, name, metav1.GetOptions{})
}

func (w *world) listServices() []*v1.Service {
	l, err := w.kube.CoreV1().Services("").List(bg, metav1.ListOptions{})
	if err != nil {
		return nil
	}
	out := make([]*v1.Service, 0, len(l.Items))
	for i := range l.Items {
		out = append(out, &l.Items[i])
	}
	sort.Slice(out, func(i, j int) bool { return key(out[i]) < key(out[j]) })
	return out
}

func key(s *v1.Service) string { return s.Namespace + "/" + s.Name }

func (w *world) createService(s *v1.Service) error {
	w.kmu.Lock()
	created, err := w.kube.CoreV1().Services(s.Namespace).Create(bg, s, metav1.CreateOptions{})
	w.kmu.Unlock()
	if err != nil {
		return err
	}
	if isLocalLB(created) {
		w.lastLocal.Store(time.Now().UnixNano())
	}
	return nil
}

// updateService applies mutate to the stored Service (only if its UID is
// uid, when uid is set), retrying on conflicts with the product's writes.
// It is an update of the Service itself: the status does not change (see
// serviceSemantics), and a Service left with a deletion timestamp and no
// finalizers goes away.
func (w *world) updateService(ns, name, uid string, mutate func(*v1.Service)) error {
	w.kmu.Lock()
	defer w.kmu.Unlock()
	for try := 0; ; try++ {
		old, err := w.getService(ns, name)
		if err != nil {
			return err
		}
		if uid != "" && string(old.UID) != uid {
			return apierrors.NewNotFound(v1.Resource("services"), name)
		}
		cur := old.DeepCopy()
		mutate(cur)
		_, err = w.kube.CoreV1().Services(ns).Update(bg, cur, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) && try < 20 {
			continue
		}
		if err == nil && (isLocalLB(old) || isLocalLB(cur)) {
			w.lastLocal.Store(time.Now().UnixNano())
		}
		return err
	}
}

// updateServiceStatus writes the load balancer status (the status
// subresource), retrying on conflicts.
func (w *world) updateServiceStatus(ns, name string, st *v1.LoadBalancerStatus) error {
	w.kmu.Lock()
	defer w.kmu.Unlock()
	for try := 0; ; try++ {
		cur, err := w.getService(ns, name)
		if err != nil {
			return err
		}
		cur.Status.LoadBalancer = *st.DeepCopy()
		_, err = w.kube.CoreV1().Services(ns).UpdateStatus(bg, cur, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) && try < 20 {
			continue
		}
		return err
	}
}

// deleteService is kubectl delete of the Service with that UID: with
// finalizers it only gets a deletion timestamp (see serviceSemantics).
func (w *world) deleteService(ns, name, uid string) error {
	w.kmu.Lock()
	defer w.kmu.Unlock()
	old, err := w.getService(ns, name)
	if err != nil {
		return err
	}
	if string(old.UID) != uid {
		return apierrors.NewNotFound(v1.Resource("services"), name)
	}
	return w.kube.CoreV1().Services(ns).Delete(bg, name, metav1.DeleteOptions{})
}

func isLocalLB(s *v1.Service) bool {
	return s != nil && s.Spec.Type == v1.ServiceTypeLoadBalancer && s.Spec.ExternalTrafficPolicy == v1.ServiceExternalTrafficPolicyLocal
}

func (w *world) listNodes() []*v1.Node {
	l, err := w.kube.CoreV1().Nodes().List(bg, metav1.ListOptions{})
	if err != nil {
		return nil
	}
	out := make([]*v1.Node, 0, len(l.Items))
	for i := range l.Items {
		out = append(out, &l.Items[i])
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (w *world) createNode(n *v1.Node) error {
	w.kmu.Lock()
	_, err := w.kube.CoreV1().Nodes().Create(bg, n, metav1.CreateOptions{})
	w.kmu.Unlock()
	return err
}

func (w *world) updateNode(name string, uid string, mutate func(*v1.Node)) error {
	w.kmu.Lock()
	old, err := w.kube.CoreV1().Nodes().Get(bg, name, metav1.GetOptions{})
	if err != nil || (uid != "" && string(old.UID) != uid) {
		w.kmu.Unlock()
		if err == nil {
			err = apierrors.NewNotFound(v1.Resource("nodes"), name)
		}
		return err
	}
	cur := old.DeepCopy()
	mutate(cur)
	_, err = w.kube.CoreV1().Nodes().Update(bg, cur, metav1.UpdateOptions{})
	w.kmu.Unlock()
	return err
}

func (w *world) deleteNode(name string) error {
	w.kmu.Lock()
	err := w.kube.CoreV1().Nodes().Delete(bg, name, metav1.DeleteOptions{})
	w.kmu.Unlock()
	return err
}

// applySlice writes the one EndpointSlice of a Service: an endpoint per
// node in ready (true = ready, false = not ready).
func (w *world) applySlice(ns, svc string, ready map[string]bool) error {
	name := svc + "-torture"
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	nodes := make([]string, 0, len(ready))
	for n := range ready {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	for i, n := range nodes {
		r := ready[n]
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{fmt.Sprintf("10.244.%d.%d", i, 10+i)},
			Conditions: discoveryv1.EndpointConditions{Ready: &r},
			NodeName:   &n,
		})
	}
	w.kmu.Lock()
	defer w.kmu.Unlock()
	w.lastLocal.Store(time.Now().UnixNano())
	_, err := w.kube.DiscoveryV1().EndpointSlices(ns).Update(bg, s, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		_, err = w.kube.DiscoveryV1().EndpointSlices(ns).Create(bg, s, metav1.CreateOptions{})
	}
	return err
}

func (w *world) deleteSlice(ns, svc string) {
	w.kmu.Lock()
	defer w.kmu.Unlock()
	w.lastLocal.Store(time.Now().UnixNano())
	_ = w.kube.DiscoveryV1().EndpointSlices(ns).Delete(bg, svc+"-torture", metav1.DeleteOptions{})
}

func (w *world) readyNodesOf(ns, svc string) map[string]bool {
	l, err := w.kube.DiscoveryV1().EndpointSlices(ns).List(bg, metav1.ListOptions{})
	out := map[string]bool{}
	if err != nil {
		return out
	}
	for _, s := range l.Items {
		if s.Labels[discoveryv1.LabelServiceName] != svc {
			continue
		}
		for _, e := range s.Endpoints {
			if e.NodeName == nil || *e.NodeName == "" {
				continue
			}
			if e.Conditions.Ready != nil && !*e.Conditions.Ready {
				continue
			}
			out[*e.NodeName] = true
		}
	}
	return out
}

// serviceUID is the deterministic UID of the seq-th Service an actor
// creates; it ends in <actor><seq> (traces show the last four digits).
func serviceUID(seed int64, actor, seq int) string {
	return fmt.Sprintf("%08x-%04x-4000-a000-%08x%02x%02x", uint32(seed), uint16(seed>>32), uint32(seed>>16), actor&0xff, seq&0xff)
}
