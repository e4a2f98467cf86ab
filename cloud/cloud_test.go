package cloud

import (
	"bytes"
	"context"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ktypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	kubefake "k8s.io/client-go/kubernetes/fake"
	restclient "k8s.io/client-go/rest"
	cloudprovider "k8s.io/cloud-provider"
	"k8s.io/component-base/metrics/legacyregistry"
	"k8s.io/klog/v2"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/instances"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/config"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/metrics"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/sakuraapi"
)

const (
	testToken  = "tok-7a6b5c4d3e2f"
	testSecret = "sec-0f1e2d3c4b5a-never-print-me"
)

// fakeAPI speaks just enough of the SAKURA Cloud API over HTTP: Server.Find.
type fakeAPI struct {
	mu       sync.Mutex
	requests map[string]int
	authOK   int
	fail     int // answer every request with this status when non-zero
}

const serversJSON = `{"Total":3,"From":0,"Count":3,"Servers":[
 {"ID":"113500000001","Name":"dup","ServerPlan":{"CPU":2,"MemoryMB":4096},"Instance":{"Status":"up"},"Interfaces":[{"IPAddress":"203.0.113.1"}]},
 {"ID":"113500000002","Name":"dup","ServerPlan":{"CPU":2,"MemoryMB":4096},"Instance":{"Status":"up"},"Interfaces":[{"IPAddress":"203.0.113.2"}]},
 {"ID":"113500000003","Name":"solo","ServerPlan":{"CPU":4,"MemoryMB":8192},"Instance":{"Status":"down"},"Interfaces":[{"UserIPAddress":"192.168.0.3"}]}]}`

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests[r.Method+" "+r.URL.Path]++
	if r.Header.Get("Authorization") == "Basic "+base64.StdEncoding.EncodeToString([]byte(testToken+":"+testSecret)) {
		f.authOK++
	}
	fail := f.fail
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if fail != 0 {
		w.WriteHeader(fail)
		fmt.Fprintf(w, `{"is_fatal":true,"serial":"s","status":"%d %s","error_code":"busy","error_msg":"try later"}`, fail, http.StatusText(fail))
		return
	}
	if r.Method == http.MethodGet && r.URL.Path == "/is1a/api/cloud/1.1/server" {
		_, _ = io.WriteString(w, serversJSON)
		return
	}
	w.WriteHeader(http.StatusNotFound)
	_, _ = io.WriteString(w, `{"is_fatal":true,"serial":"s","status":"404 Not Found","error_code":"not_found","error_msg":"no"}`)
}

func (f *fakeAPI) count(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests[key]
}

func (f *fakeAPI) setFail(code int) { f.mu.Lock(); f.fail = code; f.mu.Unlock() }

func startAPI(t *testing.T) (*fakeAPI, string) {
	t.Helper()
	api := &fakeAPI{requests: map[string]int{}}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	return api, srv.URL
}

func testConfig(t *testing.T, root string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(fmt.Sprintf("accessToken: %s\naccessTokenSecret: %s\nzone: is1a\napiRootURL: %s\nretryIntervalSec: 0\nretryMaxWaitSec: 0\nretryMax: 2\n",
		testToken, testSecret, root)), nil)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

type builder struct{ kube kubernetes.Interface }

func (b builder) Config(string) (*restclient.Config, error)   { return &restclient.Config{}, nil }
func (b builder) ConfigOrDie(string) *restclient.Config       { return &restclient.Config{} }
func (b builder) Client(string) (kubernetes.Interface, error) { return b.kube, nil }
func (b builder) ClientOrDie(string) kubernetes.Interface     { return b.kube }
func node(name, providerID string) *v1.Node {
	return &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, UID: ktypes.UID("uid-" + name)}, Spec: v1.NodeSpec{ProviderID: providerID}}
}

func TestRegisteredProviderReadsConfigAndEnvironment(t *testing.T) {
	_, root := startAPI(t)
	t.Setenv("SAKURACLOUD_ACCESS_TOKEN", testToken)
	t.Setenv("SAKURACLOUD_ACCESS_TOKEN_SECRET", testSecret)
	t.Setenv("SAKURACLOUD_API_ROOT_URL", root)
	t.Setenv("SAKURACLOUD_ZONE", "is1a")
	p, err := cloudprovider.GetCloudProvider(ProviderName, strings.NewReader("zone: tk1a\nclusterID: from-file\n"))
	if err != nil {
		t.Fatal(err)
	}
	c, ok := p.(*Cloud)
	if !ok {
		t.Fatalf("provider is %T", p)
	}
	if c.Config().Zone != "is1a" || c.Config().ClusterID != "from-file" || c.ProviderName() != "sakuracloud" {
		t.Errorf("config %s", c.Config().Redacted())
	}
	if _, ok := c.InstancesV2(); !ok {
		t.Error("InstancesV2 not offered")
	}
	for name, ok := range map[string]bool{
		"Instances": second(c.Instances()), "Zones": second(c.Zones()), "Routes": second(c.Routes()),
		"Clusters": second(c.Clusters()), "LoadBalancer before Initialize": second(c.LoadBalancer()),
	} {
		if ok {
			t.Errorf("%s offered", name)
		}
	}
	// An invalid configuration is refused with the config's message.
	t.Setenv("SAKURACLOUD_ZONE", "nowhere")
	if _, err := cloudprovider.GetCloudProvider(ProviderName, nil); err == nil || !strings.Contains(err.Error(), "SAKURACLOUD_ZONE") {
		t.Errorf("invalid zone: %v", err)
	}
}

func second[T any](_ T, ok bool) bool { return ok }

func TestClusterID(t *testing.T) {
	_, root := startAPI(t)
	cfg := testConfig(t, root)
	c := NewWithClient(cfg, sakuraapi.NewFromCaller(nil, "is1a", cfg.Limits()))
	if c.HasClusterID() {
		t.Fatal("no cluster ID configured, yet HasClusterID")
	}
	c.SetDefaultClusterID("from-flag")
	if !c.HasClusterID() || c.Config().ClusterID != "from-flag" {
		t.Fatalf("clusterID %q", c.Config().ClusterID)
	}
	c.SetDefaultClusterID("other") // a configured ID wins over --cluster-name
	if c.Config().ClusterID != "from-flag" {
		t.Fatalf("clusterID overwritten: %q", c.Config().ClusterID)
	}
	// The upstream default of --cluster-name identifies nothing.
	c2 := NewWithClient(testConfig(t, root), sakuraapi.NewFromCaller(nil, "is1a", cfg.Limits()))
	c2.SetDefaultClusterID("kubernetes")
	if c2.HasClusterID() {
		t.Fatalf("--cluster-name=kubernetes became the cluster ID %q", c2.Config().ClusterID)
	}
}

// TestUntrustedIdentityHoldsTheSweepToReport: under the shared default
// "kubernetes" (kept when configured, since appliances may carry it) the
// sweep reports instead of deleting; under any other ID the mode stands.
func TestUntrustedIdentityHoldsTheSweepToReport(t *testing.T) {
	_, root := startAPI(t)
	for _, c := range []struct {
		id, mode, want string
	}{
		{"kubernetes", "delete", "report"},
		{"kubernetes", "report", "report"},
		{"3f6c1c9e-4f0a-4c55-9d55-0b7f3c2e8a11", "delete", "delete"},
		{"prod-1", "delete", "delete"},
	} {
		cfg := testConfig(t, root)
		cfg.ClusterID = c.id
		cfg.LoadBalancer.SweepMode = c.mode
		p := NewWithClient(cfg, sakuraapi.NewFromCaller(nil, "is1a", cfg.Limits()))
		if got := p.lbConfig().SweepMode; got != c.want {
			t.Errorf("clusterID %q, sweepMode %s: the sweep runs as %s, want %s", c.id, c.mode, got, c.want)
		}
		if cfg.LoadBalancer.SweepMode != c.mode {
			t.Errorf("the configuration itself was changed")
		}
	}
}

func TestLoadBalancerSwitch(t *testing.T) {
	_, root := startAPI(t)
	for _, disabled := range []bool{false, true} {
		cfg := testConfig(t, root)
		cfg.ClusterID = "c1"
		cfg.DisableLoadBalancer = disabled
		c, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		c.Initialize(builder{kubefake.NewSimpleClientset()}, stopAtCleanup(t))
		if lb, ok := c.LoadBalancer(); ok == disabled || (ok && lb == nil) {
			t.Errorf("disableLoadBalancer=%v: LoadBalancer() ok=%v", disabled, ok)
		}
	}
}

// TestCallerOverHTTP drives the real caller against a local API: credentials
// come from the configuration only, the library never retries by itself
// (503 → exactly 1 + retryMax requests), and the instances adapter works end
// to end.
func TestCallerOverHTTP(t *testing.T) {
	api, root := startAPI(t)
	// Variables the SAKURA client library would read on its own: ignored.
	t.Setenv("SAKURA_ACCESS_TOKEN", "wrong-token")
	t.Setenv("SAKURA_ACCESS_TOKEN_SECRET", "wrong-secret")
	t.Setenv("SAKURA_API_ROOT_URL", "http://127.0.0.1:1")
	t.Setenv("SAKURACLOUD_RETRY_MAX", "9")
	cfg := testConfig(t, root)
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	inst, _ := c.InstancesV2()
	md, err := inst.InstanceMetadata(context.Background(), node("solo", ""))
	if err != nil {
		t.Fatal(err)
	}
	if md.ProviderID != "sakuracloud://is1a/113500000003" || md.InstanceType != "4core-8gb" || md.Region != "is1" {
		t.Errorf("metadata %+v", md)
	}
	if down, err := inst.InstanceShutdown(context.Background(), node("solo", "")); !down || err != nil {
		t.Errorf("shutdown=%v err=%v", down, err)
	}
	if api.count("GET /is1a/api/cloud/1.1/server") != 1 || api.authOK != 1 {
		t.Fatalf("requests %v, authenticated %d", api.requests, api.authOK)
	}
	api.setFail(http.StatusServiceUnavailable)
	c.Servers().Invalidate()
	_, err = inst.InstanceExists(context.Background(), node("solo", ""))
	if err == nil || sakuraapi.StatusCode(err) != 503 {
		t.Fatalf("outage: %v", err)
	}
	// The lookup returned at the first 503; the client's retries of the
	// list went on without it (servercache).
	c.Servers().Settle()
	if got := api.count("GET /is1a/api/cloud/1.1/server"); got != 1+3 {
		t.Errorf("server saw %d requests for one list under 503, want 3 (1 + retryMax 2; no inner retries)", got-1)
	}
	if got := c.Client().Stats().Retries()[sakuraapi.CallKey{Op: "Server.Find", Result: sakuraapi.ResultUnavailable}]; got != 2 {
		t.Errorf("retries counted %d", got)
	}
	// The same calls reach the Prometheus registry behind /metrics.
	families, err := legacyregistry.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := false
	for _, f := range families {
		if f.GetName() == metrics.Namespace+"_api_requests_total" {
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "operation" && l.GetValue() == "Server.Find" {
						seen = true
					}
				}
			}
		}
	}
	if !seen {
		t.Error("Server.Find calls are not in the metrics registry")
	}
}

// TestEventOnDuplicateNames goes through Initialize's recorder to the
// Kubernetes API (a fake clientset) and checks the Warning Event on the Node.
func TestEventOnDuplicateNames(t *testing.T) {
	_, root := startAPI(t)
	cfg := testConfig(t, root)
	cfg.DisableLoadBalancer = true
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	kube := kubefake.NewSimpleClientset()
	stop := make(chan struct{})
	defer close(stop)
	c.Initialize(builder{kube}, stop)
	inst, _ := c.InstancesV2()
	_, err = inst.InstanceMetadata(context.Background(), node("dup", ""))
	if err == nil || !strings.Contains(err.Error(), "113500000001, 113500000002") {
		t.Fatalf("duplicate names: %v", err)
	}
	var found *v1.Event
	_ = wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		evs, err := kube.CoreV1().Events("").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		for i := range evs.Items {
			if evs.Items[i].Reason == instances.ReasonDuplicateServerName {
				found = &evs.Items[i]
				return true, nil
			}
		}
		return false, nil
	})
	if found == nil {
		t.Fatal("no DuplicateServerName event recorded")
	}
	if found.Type != v1.EventTypeWarning || found.InvolvedObject.Kind != "Node" || found.InvolvedObject.Name != "dup" ||
		!strings.Contains(found.Message, "113500000001, 113500000002") || found.Source.Component != EventComponent {
		t.Errorf("event %+v", found)
	}
}

// TestSecretsNeverLogged runs the provider at klog -v=10 with the library's
// trace variables set, captures klog, the standard logger and the process's
// stdout/stderr, and greps all of it (and every error) for the credentials.
func TestSecretsNeverLogged(t *testing.T) {
	api, root := startAPI(t)
	t.Setenv("SAKURACLOUD_TRACE", "all")
	t.Setenv("SAKURA_TRACE", "all")
	t.Setenv("USACLOUD_TRACE", "all")
	t.Setenv("SAKURACLOUD_TRACE_MODE", "all")

	var klogBuf, logBuf bytes.Buffer
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	_ = fs.Set("v", "10")
	_ = fs.Set("logtostderr", "false")
	klog.SetOutput(&klogBuf)
	log.SetOutput(&logBuf)
	stdout, stderr := os.Stdout, os.Stderr
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	os.Stdout, os.Stderr = w, w
	var piped bytes.Buffer
	done := make(chan struct{})
	go func() { _, _ = io.Copy(&piped, r); close(done) }()
	restore := func() {
		os.Stdout, os.Stderr = stdout, stderr
		_ = w.Close()
		<-done
		_ = fs.Set("v", "0")
		_ = fs.Set("logtostderr", "true")
		klog.SetOutput(os.Stderr)
		log.SetOutput(os.Stderr)
	}

	var errs []string
	cfg := testConfig(t, root)
	klog.InfoS("configuration", "config", cfg)
	c, err := New(cfg)
	if err != nil {
		restore()
		t.Fatal(err)
	}
	kube := kubefake.NewSimpleClientset()
	stop := make(chan struct{})
	c.Initialize(builder{kube}, stop)
	inst, _ := c.InstancesV2()
	ctx := context.Background()
	for _, n := range []*v1.Node{node("solo", ""), node("dup", ""), node("x", "sakuracloud://is1a/9"), node("y", "sakuracloud://tk1a/9")} {
		_, err1 := inst.InstanceExists(ctx, n)
		_, err2 := inst.InstanceMetadata(ctx, n)
		for _, e := range []error{err1, err2} {
			if e != nil {
				errs = append(errs, e.Error())
			}
		}
	}
	api.setFail(http.StatusTooManyRequests)
	c.Servers().Invalidate()
	if _, err := inst.InstanceShutdown(ctx, node("solo", "")); err != nil {
		errs = append(errs, err.Error())
	}
	_, cfgErr := config.Parse([]byte("accessToken: "+testToken+"\naccessTokenSecret: "+testSecret+"\nzone: bad\n"), nil)
	errs = append(errs, cfgErr.Error())
	klog.Flush()
	close(stop)
	restore()

	if api.authOK == 0 {
		t.Fatal("no authenticated request reached the API; the test proves nothing")
	}
	all := klogBuf.String() + logBuf.String() + piped.String() + strings.Join(errs, "\n") + fmt.Sprint(c, cfg)
	if !strings.Contains(klogBuf.String(), "<redacted>") {
		t.Errorf("klog did not see the (redacted) configuration")
	}
	for _, s := range []string{testToken, testSecret, base64.StdEncoding.EncodeToString([]byte(testToken + ":" + testSecret)), "Authorization"} {
		if strings.Contains(all, s) {
			t.Errorf("captured output contains %q", s)
		}
	}
}

// TestInitializeStartsSweep: Initialize (which the cloud-provider app runs
// only in the elected leader) starts the load balancer sweep once, unless
// load balancers or the sweep are turned off.
func TestInitializeStartsSweep(t *testing.T) {
	_, root := startAPI(t)
	for _, c := range []struct {
		name     string
		disabled bool
		interval int
		want     bool
	}{
		{"default", false, 300, true},
		{"sweep off", false, 0, false},
		{"load balancers off", true, 300, false},
	} {
		cfg := testConfig(t, root)
		cfg.ClusterID = "c1"
		cfg.DisableLoadBalancer = c.disabled
		cfg.LoadBalancer.SweepIntervalSec = c.interval
		p, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		p.Initialize(builder{kubefake.NewSimpleClientset()}, stop)
		first := p.sweeper
		firstLB, _ := p.LoadBalancer()
		p.Initialize(builder{kubefake.NewSimpleClientset()}, stop) // leader migration calls it twice
		secondLB, _ := p.LoadBalancer()
		close(stop)
		if firstLB != secondLB {
			t.Errorf("%s: a second Initialize built a second load balancer adapter (two allocators and lock sets on the same appliances)", c.name)
		}
		if (first != nil) != c.want {
			t.Errorf("%s: sweep started = %v, want %v", c.name, first != nil, c.want)
		}
		if p.sweeper != first {
			t.Errorf("%s: a second Initialize started a second sweep", c.name)
		}
	}
}

// stopAtCleanup is a stop channel closed when the test ends, so background
// work Initialize starts (the load balancer sweep) cannot outlive the test
// and reach the next test's API server through iaas-api-go's global root.
func stopAtCleanup(t *testing.T) chan struct{} {
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	return stop
}

// TestSetInformersTrimsAndShares: the app's factory, handed over before
// Initialize, caches Nodes and Services without managedFields (and Nodes
// without their image list), and the endpoint follower reads Services from
// it: one list of Services in all, none of EndpointSlices (no Service is
// Local).
func TestSetInformersTrimsAndShares(t *testing.T) {
	_, root := startAPI(t)
	cfg := testConfig(t, root)
	cfg.ClusterID = "c1"
	cfg.LoadBalancer.SweepIntervalSec = 0 // the sweep lists Services from the API server
	cfg.LoadBalancer.HealthPollIntervalSec, cfg.LoadBalancer.RepairIntervalSec = 0, 0
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	managed := []metav1.ManagedFieldsEntry{{Manager: "kubelet", Operation: metav1.ManagedFieldsOperationUpdate}}
	n := node("worker-1", "")
	n.ManagedFields = managed
	n.Status.Images = []v1.ContainerImage{{Names: []string{"registry.k8s.io/pause:3.10"}, SizeBytes: 320000}}
	svc := &v1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: "uid-web", ManagedFields: managed,
		Annotations: map[string]string{v1.LastAppliedConfigAnnotation: "{}"}}, Spec: v1.ServiceSpec{Type: v1.ServiceTypeLoadBalancer}}
	kube := kubefake.NewClientset(n, svc)
	factory := informers.NewSharedInformerFactory(kube, 0)
	stop := stopAtCleanup(t)
	p.SetInformers(factory) // cloudInitializer
	p.Initialize(builder{kube}, stop)
	p.SetInformers(informers.NewSharedInformerFactory(kube, 0)) // the app, after Initialize: ignored
	// The controllers take the same informers; then the app starts them.
	nodes, services := factory.Core().V1().Nodes(), factory.Core().V1().Services()
	factory.Start(stop)
	for typ, ok := range factory.WaitForCacheSync(stop) {
		if !ok {
			t.Fatalf("%v not synced", typ)
		}
	}
	gotNode, err := nodes.Lister().Get("worker-1")
	if err != nil || gotNode.ManagedFields != nil || gotNode.Status.Images != nil {
		t.Errorf("cached Node %+v, %v: want no managedFields, no images", gotNode, err)
	}
	gotSvc, err := services.Lister().Services("default").Get("web")
	if err != nil || gotSvc.ManagedFields != nil || gotSvc.Annotations[v1.LastAppliedConfigAnnotation] != "{}" {
		t.Errorf("cached Service %+v, %v: want no managedFields, annotations kept", gotSvc, err)
	}
	time.Sleep(300 * time.Millisecond) // a follower with its own informers would have listed by now
	lists := map[string]int{}
	for _, a := range kube.Actions() {
		if a.GetVerb() == "list" {
			lists[a.GetResource().Resource]++
		}
	}
	if lists["services"] != 1 || lists["endpointslices"] != 0 {
		t.Errorf("lists %v: want Services once (one cache for the app and the follower), EndpointSlices never", lists)
	}
}

// Which Service loops run: never two for one Service.
func TestServiceLoops(t *testing.T) {
	for _, c := range []struct {
		name                  string
		class, elbClass, loop string
		disabled              bool
		wantUpstream, wantOwn bool
	}{
		{"defaults: upstream for no class, own for the classes", config.DefaultLoadBalancerClass, config.DefaultELBClass, config.ServiceControllerUpstream, false, true, true},
		{"own loop for everything: the upstream one stands down", config.DefaultLoadBalancerClass, config.DefaultELBClass, config.ServiceControllerOwn, false, false, true},
		{"no class served: the upstream loop alone", "", "", config.ServiceControllerUpstream, false, true, false},
		{"the ELB class alone: own loop for it", "", config.DefaultELBClass, config.ServiceControllerUpstream, false, true, true},
		{"no class served, own loop for the rest", "", "", config.ServiceControllerOwn, false, false, true},
		{"load balancers off: the upstream loop finds none", config.DefaultLoadBalancerClass, config.DefaultELBClass, config.ServiceControllerOwn, true, true, false},
	} {
		cfg := testConfig(t, "http://127.0.0.1:1")
		cfg.LoadBalancer.Class, cfg.LoadBalancer.ELBClass, cfg.LoadBalancer.ServiceController, cfg.DisableLoadBalancer = c.class, c.elbClass, c.loop, c.disabled
		p := NewWithClient(cfg, sakuraapi.NewFromCaller(nil, "is1a", cfg.Limits()))
		if up, own := p.ServiceLoops(); up != c.wantUpstream || own != c.wantOwn {
			t.Errorf("%s: upstream %v own %v, want %v %v", c.name, up, own, c.wantUpstream, c.wantOwn)
		}
	}
}
