package e2e

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/testcert"

	client "github.com/sacloud/api-client-go"
	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/helper/api"
	"github.com/sacloud/iaas-api-go/types"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// The Enhanced Load Balancer (ELB, "proxylb" in iaas-api-go) as a second
// load balancer kind, through the real binary, a real API server and the
// simulator. Annotations and the ownership tags are written out here: the
// e2e module tests the documented contract, not the controller's code.
const (
	typeEnhanced    = "enhanced"
	annELBID        = "k8s.usacloud.jp/elb-id"
	annELBPlan      = "k8s.usacloud.jp/elb-plan"
	annELBRegion    = "k8s.usacloud.jp/elb-region"
	annELBPortModes = "k8s.usacloud.jp/elb-port-modes"
	annELBFailover  = "k8s.usacloud.jp/elb-vip-failover"
	annELBTLS       = "k8s.usacloud.jp/elb-tls-secret"
	// elbTopology: servers whose only NIC is on the shared segment, so a
	// Node's ExternalIP is its server's shared (global) address and nothing
	// else. The CCM runs in is1a; the is1b servers are never Nodes here.
	elbTopology = "testdata/topology-zones.yaml"
	// elbTarget is the targetPort of every port: an ELB sends either bind
	// port's traffic to any of its servers, so the ports must lead to the
	// same target.
	elbTarget = 8080
)

// elbEnv is an env with a client for the ELB API (a global resource: no
// zone), as a user with the same credentials would use it.
type elbEnv struct {
	*env
	plbs iaas.ProxyLBAPI
}

func newELBEnv(t *testing.T, nodes ...string) *elbEnv {
	t.Helper()
	e := newEnv(t, envOptions{topology: elbTopology, nodes: nodes, extraConfig: repairConfig()})
	caller := api.NewCallerWithOptions(&api.CallerOptions{
		Options: &client.Options{
			AccessToken: e.sim.Token, AccessTokenSecret: e.sim.Secret,
			HttpRequestRateLimit: 100, RetryMax: 10,
			RetryWaitMin: 1, RetryWaitMax: 2,
		},
		APIRootURL: e.sim.URL, DefaultZone: zone,
	})
	return &elbEnv{env: e, plbs: iaas.NewProxyLBOp(caller)}
}

func elbPort(name string, port int32) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Port: port, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(elbTarget)}
}

// createELBService creates a LoadBalancer Service asking for an ELB, with
// extra annotations, on the given ports (none: http 80).
func (e *elbEnv) createELBService(name string, extra map[string]string, ports ...corev1.ServicePort) *corev1.Service {
	e.t.Helper()
	if len(ports) == 0 {
		ports = []corev1.ServicePort{elbPort("http", 80)}
	}
	ann := map[string]string{annType: typeEnhanced}
	for k, v := range extra {
		ann[k] = v
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.ns, Annotations: ann},
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

// patchService merge-patches Service name's metadata: annotations and
// labels, a nil value removing the key.
func (e *elbEnv) patchService(name string, annotations, labels map[string]*string) {
	e.t.Helper()
	meta := map[string]any{}
	if annotations != nil {
		meta["annotations"] = annotations
	}
	if labels != nil {
		meta["labels"] = labels
	}
	patch, err := json.Marshal(map[string]any{"metadata": meta})
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.kube.CoreV1().Services(e.ns).Patch(e.ctx, name, k8stypes.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *elbEnv) setAnnotation(name, key, value string) {
	e.t.Helper()
	e.patchService(name, map[string]*string{key: &value}, nil)
}

func (e *elbEnv) removeAnnotation(name, key string) {
	e.t.Helper()
	e.patchService(name, map[string]*string{key: nil}, nil)
}

// sharedIP is server name's address on the shared segment.
func (e *elbEnv) sharedIP(name string) string {
	e.t.Helper()
	srv := e.sakura.server(e.ctx, name)
	for _, nic := range srv.Interfaces {
		if nic != nil && nic.SwitchScope == types.Scopes.Shared && nic.IPAddress != "" {
			return nic.IPAddress
		}
	}
	e.t.Fatalf("server %s has no NIC on the shared segment", name)
	return ""
}

// --- the ELBs, as the API lists them ---

func plbHasTag(p *iaas.ProxyLB, tag string) bool {
	for _, t := range p.Tags {
		if t == tag {
			return true
		}
	}
	return false
}

// clusterELBs are the ELBs carrying this cluster's ownership tag.
func (e *elbEnv) clusterELBs() ([]*iaas.ProxyLB, error) {
	var out []*iaas.ProxyLB
	for from := 0; ; {
		res, err := e.plbs.Find(e.ctx, &iaas.FindCondition{Count: 50, From: from})
		if err != nil {
			return nil, err
		}
		for _, p := range res.ProxyLBs {
			if plbHasTag(p, clusterTagKey+e.clusterID) {
				out = append(out, p)
			}
		}
		from += len(res.ProxyLBs)
		if len(res.ProxyLBs) == 0 || from >= res.Total {
			break
		}
	}
	return out, nil
}

// serviceELBs are the ELBs carrying this cluster's tag and svc's UID tag.
func (e *elbEnv) serviceELBs(svc *corev1.Service) ([]*iaas.ProxyLB, error) {
	all, err := e.clusterELBs()
	if err != nil {
		return nil, err
	}
	var out []*iaas.ProxyLB
	for _, p := range all {
		if plbHasTag(p, serviceTagKey+string(svc.UID)) {
			out = append(out, p)
		}
	}
	return out, nil
}

func (e *elbEnv) clusterELBCount() int {
	e.t.Helper()
	all, err := e.clusterELBs()
	if err != nil {
		e.t.Fatal(err)
	}
	return len(all)
}

// elbWant is what the ELB of one Service must run.
type elbWant struct {
	plan   int
	region string
	modes  map[int]string // bind port → proxy mode
	nodes  []string       // real servers' addresses, on every NodePort of the Service
}

func (w elbWant) String() string {
	return fmt.Sprintf("plan %d region %s bind ports %v nodes %v", w.plan, w.region, w.modes, w.nodes)
}

func describeELB(p *iaas.ProxyLB) string {
	if p == nil {
		return "none"
	}
	var binds, servers []string
	for _, b := range p.BindPorts {
		binds = append(binds, fmt.Sprintf("%d/%s", b.Port, b.ProxyMode))
	}
	for _, s := range p.Servers {
		servers = append(servers, fmt.Sprintf("%s:%d", s.IPAddress, s.Port))
	}
	sort.Strings(servers)
	return fmt.Sprintf("ELB %s plan %d region %s VIP %q FQDN %q bind %v servers %v tags %v",
		p.ID, p.Plan.Int(), p.Region, p.VirtualIPAddress, p.FQDN, binds, servers, p.Tags)
}

// mismatch says how the ELB p of svc differs from want ("" when it does not).
func mismatch(p *iaas.ProxyLB, svc *corev1.Service, want elbWant) string {
	if got := p.Plan.Int(); got != want.plan {
		return fmt.Sprintf("plan %d, want %d", got, want.plan)
	}
	if string(p.Region) != want.region {
		return fmt.Sprintf("region %q, want %q", p.Region, want.region)
	}
	modes := map[int]string{}
	for _, b := range p.BindPorts {
		modes[b.Port] = string(b.ProxyMode)
	}
	if fmt.Sprint(modes) != fmt.Sprint(want.modes) || len(p.BindPorts) != len(want.modes) {
		return fmt.Sprintf("bind ports %v, want %v", modes, want.modes)
	}
	var wantServers, gotServers []string
	for _, ip := range want.nodes {
		for _, sp := range svc.Spec.Ports {
			if sp.NodePort == 0 {
				return fmt.Sprintf("Service port %d has no NodePort yet", sp.Port)
			}
			wantServers = append(wantServers, fmt.Sprintf("%s:%d", ip, sp.NodePort))
		}
	}
	for _, s := range p.Servers {
		gotServers = append(gotServers, fmt.Sprintf("%s:%d", s.IPAddress, s.Port))
	}
	sort.Strings(wantServers)
	sort.Strings(gotServers)
	if !sameStrings(gotServers, wantServers) {
		return fmt.Sprintf("servers %v, want %v", gotServers, wantServers)
	}
	return ""
}

// statusMismatch says how the Service's load balancer status and elb-id
// annotation differ from what ELB p calls for ("" when they do not).
func statusMismatch(svc *corev1.Service, p *iaas.ProxyLB) string {
	if got := svc.Annotations[annELBID]; got != p.ID.String() {
		return fmt.Sprintf("annotation %s is %q, want %q", annELBID, got, p.ID)
	}
	ing := svc.Status.LoadBalancer.Ingress
	if len(ing) != 1 {
		return fmt.Sprintf("status.loadBalancer.ingress %+v, want one entry", ing)
	}
	if ing[0].IP != p.VirtualIPAddress || ing[0].Hostname != p.FQDN {
		return fmt.Sprintf("ingress ip %q hostname %q, want the ELB's VIP %q and FQDN %q", ing[0].IP, ing[0].Hostname, p.VirtualIPAddress, p.FQDN)
	}
	if m := ing[0].IPMode; m == nil || *m != corev1.LoadBalancerIPModeProxy {
		return fmt.Sprintf("ingress ipMode %v, want %s", ptrString(m), corev1.LoadBalancerIPModeProxy)
	}
	return ""
}

func ptrString(m *corev1.LoadBalancerIPMode) string {
	if m == nil {
		return "<nil>"
	}
	return string(*m)
}

// waitELB waits until Service name has exactly one ELB (by its ownership
// tags), running want, that the Service's annotation and status show; it
// returns that ELB.
func (e *elbEnv) waitELB(name string, want elbWant) *iaas.ProxyLB {
	e.t.Helper()
	var last *iaas.ProxyLB
	why := "nothing read yet"
	err := pollUntil(e.ctx, longWait, e.failOnCrash(func() (bool, error) {
		svc, err := e.kube.CoreV1().Services(e.ns).Get(e.ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		own, err := e.serviceELBs(svc)
		if err != nil {
			why = err.Error()
			return false, nil
		}
		if len(own) != 1 {
			var ds []string
			for _, p := range own {
				ds = append(ds, describeELB(p))
			}
			why = fmt.Sprintf("%d ELBs with the Service's tags %v", len(own), ds)
			return false, nil
		}
		last = own[0]
		if why = mismatch(last, svc, want); why != "" {
			return false, nil
		}
		if why = statusMismatch(svc, last); why != "" {
			return false, nil
		}
		return true, nil
	}))
	if err != nil {
		e.t.Fatalf("Service %s: no ELB running %s: %v\nlast: %s\nlast seen ELB: %s\nevents: %s",
			name, want, err, why, describeELB(last), e.eventsFor("Service", name))
	}
	return last
}

// --- writes, counted by the simulator ---

// isWrite tells the operations that change something from those that only read.
func isWrite(op string) bool {
	for _, read := range []string{".Find", ".Read", ".Status", ".HealthStatus", ".GetCertificates", ".GetServers"} {
		if strings.HasSuffix(op, read) {
			return false
		}
	}
	return true
}

func (e *elbEnv) requests() map[string]int {
	e.t.Helper()
	reqs, err := e.sim.Requests(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return reqs
}

// writesSince is every write operation sent since before, with its count.
func (e *elbEnv) writesSince(before map[string]int) map[string]int {
	e.t.Helper()
	out := map[string]int{}
	for op, n := range e.requests() {
		if d := n - before[op]; d > 0 && isWrite(op) {
			out[op] = d
		}
	}
	return out
}

// settle returns after two more repair passes, so that whatever a change
// still had to write has been written: the pass compares every ELB with
// its Service, and the service controller's sync of the change ran before.
func (e *elbEnv) settle() {
	e.t.Helper()
	e.afterRepairPass()
	e.afterRepairPass()
}

// expectWrites settles and then checks that exactly want (operation →
// count) was written since before, nothing else.
func (e *elbEnv) expectWrites(step string, before map[string]int, want map[string]int) {
	e.t.Helper()
	e.settle()
	got := e.writesSince(before)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		e.t.Errorf("%s: writes %v, want exactly %v", step, got, want)
	}
}

// ensures counts the service controller's syncs of Service name (logged
// at --v=2 before each EnsureLoadBalancer).
func (e *elbEnv) ensures(name string) int {
	return strings.Count(e.ccm.Log(), "Ensuring load balancer for service "+e.ns+"/"+name)
}

// planChanges are the ChangePlan calls the simulator answered (old and new ID).
func (e *elbEnv) planChanges() []struct {
	From types.ID `json:"from"`
	To   types.ID `json:"to"`
	Plan int      `json:"plan"`
} {
	e.t.Helper()
	var st struct {
		Changes []struct {
			From types.ID `json:"from"`
			To   types.ID `json:"to"`
			Plan int      `json:"plan"`
		} `json:"proxyLBPlanChanges"`
	}
	if err := e.sim.Admin(e.ctx, http.MethodGet, "/state", nil, &st); err != nil {
		e.t.Fatal(err)
	}
	return st.Changes
}

// waitConditionStatus waits until Service name's serving condition has
// status and its message contains contains (any reason); it returns the
// reason.
func (e *elbEnv) waitConditionStatus(name string, status metav1.ConditionStatus, contains string) string {
	e.t.Helper()
	var reason, last string
	err := pollUntil(e.ctx, longWait, e.failOnCrash(func() (bool, error) {
		svc, err := e.kube.CoreV1().Services(e.ns).Get(e.ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range svc.Status.Conditions {
			if c.Type == conditionServing {
				last = fmt.Sprintf("%s/%s: %s", c.Status, c.Reason, c.Message)
				reason = c.Reason
				return c.Status == status && strings.Contains(c.Message, contains), nil
			}
		}
		return false, nil
	}))
	if err != nil {
		e.t.Fatalf("%s: condition never %s with %q: %v\nlast: %s\nevents: %s", name, status, contains, err, last, e.eventsFor("Service", name))
	}
	return reason
}

// waitWarning waits for a Warning Event on Service name whose message
// contains every substr, and returns its reason.
func (e *elbEnv) waitWarning(name string, substr ...string) string {
	e.t.Helper()
	var reason string
	err := pollUntil(e.ctx, longWait, e.failOnCrash(func() (bool, error) {
		l, err := e.kube.CoreV1().Events(e.ns).List(e.ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
		if err != nil {
			return false, err
		}
	next:
		for _, ev := range l.Items {
			if ev.Type != corev1.EventTypeWarning {
				continue
			}
			for _, s := range substr {
				if !strings.Contains(ev.Message, s) {
					continue next
				}
			}
			reason = ev.Reason
			return true, nil
		}
		return false, nil
	}))
	if err != nil {
		e.t.Fatalf("no Warning Event on %s with %v: %v\nevents: %s", name, substr, err, e.eventsFor("Service", name))
	}
	return reason
}

// --- the scenarios ---

// TestEnhancedLoadBalancer walks one ELB Service through its life on one
// env: created with its ownership tags, elb-id and status (VIP, FQDN,
// ipMode Proxy); a no-op resync, a new port, a new node, a port mode and a
// plan change, each converging with exactly the writes it needs; invalid
// annotations and a region change refused without a write; deleted out
// of band and made again by the repair pass; gone with its Service.
func TestEnhancedLoadBalancer(t *testing.T) {
	e := newELBEnv(t, "zone-a-1", "zone-a-2")
	ip1, ip2 := e.sharedIP("zone-a-1"), e.sharedIP("zone-a-2")
	// Nodes with their addresses first: the create step counts writes.
	e.waitInitialized("zone-a-1", "zone-a-2")
	start := e.requests()

	// 1. Created: one ELB, tagged, on every node's shared address.
	// With VIP failover the VIP may move, and the FQDN is the stable name
	// the status shows as the hostname.
	svc := e.createELBService("web", map[string]string{annELBFailover: "true"})
	want := elbWant{plan: 100, region: "is1", modes: map[int]string{80: "tcp"}, nodes: []string{ip1, ip2}}
	p := e.waitELB("web", want)
	t.Logf("created: %s", describeELB(p))
	if p.FQDN == "" || !p.UseVIPFailover {
		t.Fatalf("the ELB has no FQDN (VIP failover %v): the Service's status would have no hostname", p.UseVIPFailover)
	}
	e.expectWrites("create", start, map[string]int{"ProxyLB.Create": 1})
	if n := e.ownCount(); n != 0 {
		t.Errorf("%d DSR appliances for an enhanced Service, want 0", n)
	}
	e.waitConditionStatus("web", metav1.ConditionTrue, "")

	// 2. A resync that changes nothing writes nothing: a label and an
	// unrelated annotation (the service controller syncs on the latter).
	before, syncs := e.requests(), e.ensures("web")
	note := "resync"
	e.patchService("web", map[string]*string{"example.com/note": &note}, map[string]*string{"example.com/tier": &note})
	e.eventually(longWait, "the service controller did not sync web after its annotation changed", func() (bool, error) {
		return e.ensures("web") > syncs, nil
	})
	e.expectWrites("no-op resync", before, map[string]int{})
	if got := e.waitELB("web", want); got.ID != p.ID {
		t.Fatalf("a no-op resync replaced the ELB %s with %s", p.ID, got.ID)
	}

	// 3. A second port: one settings write.
	before = e.requests()
	cur := e.service("web")
	cur.Spec.Ports = append(cur.Spec.Ports, elbPort("https", 443))
	if _, err := e.kube.CoreV1().Services(e.ns).Update(e.ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	want.modes = map[int]string{80: "tcp", 443: "tcp"}
	p = e.waitELB("web", want)
	e.expectWrites("add a port", before, map[string]int{"ProxyLB.UpdateSettings": 1})

	// 4. A node joins: one settings write.
	before = e.requests()
	if _, err := e.sim.AddServer(e.ctx, map[string]any{"name": "zone-a-3",
		"nics": []map[string]any{{"shared": true, "ipAddress": "198.51.100.13"}}}); err != nil {
		t.Fatal(err)
	}
	e.registerNode("zone-a-3")
	want.nodes = []string{ip1, ip2, "198.51.100.13"}
	p = e.waitELB("web", want)
	e.expectWrites("add a node", before, map[string]int{"ProxyLB.UpdateSettings": 1})

	// 5. A port mode: one settings write.
	before = e.requests()
	e.setAnnotation("web", annELBPortModes, "80=http")
	want.modes = map[int]string{80: "http", 443: "tcp"}
	p = e.waitELB("web", want)
	e.expectWrites("port mode 80=http", before, map[string]int{"ProxyLB.UpdateSettings": 1})

	// 5b. TLS: port 443 becomes https with the certificate of a
	// kubernetes.io/tls Secret: one settings write and one certificate
	// write. A rotated Secret is set again (by the repair pass), once.
	first := e.createTLSSecret("web-tls", "www.example.com")
	before = e.requests()
	e.patchService("web", map[string]*string{annELBPortModes: ptrTo("80=http,443=https"), annELBTLS: ptrTo("web-tls")}, nil)
	want.modes = map[int]string{80: "http", 443: "https"}
	p = e.waitELB("web", want)
	e.waitCertificate(p, first)
	e.expectWrites("https with a TLS Secret", before, map[string]int{"ProxyLB.UpdateSettings": 1, "ProxyLB.SetCertificates": 1})
	before = e.requests()
	rotated := e.createTLSSecret("web-tls", "www.example.com")
	e.waitCertificate(p, rotated)
	e.expectWrites("TLS Secret rotated", before, map[string]int{"ProxyLB.SetCertificates": 1})

	// 6. A plan change: one ChangePlan; the API answers under a new ID,
	// which the annotation follows, and the old ID is gone.
	before = e.requests()
	old := p
	e.setAnnotation("web", annELBPlan, "500")
	want.plan = 500
	p = e.waitELB("web", want)
	if p.ID == old.ID {
		t.Fatalf("plan 500 reached under the old ID %s (the API answers a plan change under a new ID)", old.ID)
	}
	if _, err := e.plbs.Read(e.ctx, old.ID); !iaas.IsNotFoundError(err) {
		t.Errorf("the ELB's old ID %s after the plan change: %v, want not found", old.ID, err)
	}
	e.settle()
	got := e.writesSince(before)
	if got["ProxyLB.ChangePlan"] != 1 {
		t.Errorf("plan change: %d ProxyLB.ChangePlan, want 1 (writes %v)", got["ProxyLB.ChangePlan"], got)
	}
	// Nothing else is written: the certificates stay with the ELB.
	delete(got, "ProxyLB.ChangePlan")
	if len(got) != 0 {
		t.Errorf("plan change: writes besides the ChangePlan: %v", got)
	}
	e.waitCertificate(p, rotated)
	if pc := e.planChanges(); len(pc) != 1 || pc[0].From != old.ID || pc[0].To != p.ID || pc[0].Plan != 500 {
		t.Errorf("plan changes in the simulator: %+v, want one, %s → %s to 500", pc, old.ID, p.ID)
	}

	// 7. Invalid annotations: reported (Event, condition), nothing written,
	// the ELB runs on; fixed, the condition recovers without a write.
	for _, bad := range []struct{ key, value, fixed string }{
		{annELBPlan, "123", "500"},
		{annELBPortModes, "80=ftp", "80=http,443=https"},
	} {
		before = e.requests()
		e.setAnnotation("web", bad.key, bad.value)
		e.waitEvent("web", "InvalidAnnotation", bad.key)
		e.waitCondition("web", metav1.ConditionFalse, "InvalidAnnotation", bad.key)
		e.expectWrites(bad.key+": "+bad.value, before, map[string]int{})
		if got := e.waitELB("web", want); got.ID != p.ID {
			t.Fatalf("%s %q: the ELB %s was replaced by %s", bad.key, bad.value, p.ID, got.ID)
		}
		e.setAnnotation("web", bad.key, bad.fixed)
		e.waitConditionStatus("web", metav1.ConditionTrue, "")
		e.expectWrites(bad.key+" fixed", before, map[string]int{})
	}

	// 8. The region is fixed at creation: a change is reported, nothing
	// moves or is written; taken back, still nothing is written.
	before = e.requests()
	e.setAnnotation("web", annELBRegion, "tk1")
	e.waitEvent("web", "ChangeNeedsNewLoadBalancer", "region")
	e.expectWrites("region tk1", before, map[string]int{})
	if got := e.waitELB("web", want); got.ID != p.ID {
		t.Fatalf("region change: the ELB %s was replaced by %s", p.ID, got.ID)
	}
	e.removeAnnotation("web", annELBRegion)
	e.expectWrites("region annotation removed", before, map[string]int{})

	// 9. Deleted out of band: the repair pass makes it again, with the
	// Service's settings, and the status shows the new VIP and FQDN.
	if err := e.plbs.Delete(e.ctx, p.ID); err != nil {
		t.Fatalf("deleting ELB %s out of band: %v", p.ID, err)
	}
	before = e.requests()
	gone := p
	p = e.waitELB("web", want)
	if p.ID == gone.ID {
		t.Fatalf("the ELB %s deleted out of band is still there", gone.ID)
	}
	if p.VirtualIPAddress == gone.VirtualIPAddress {
		t.Logf("note: the new ELB got the deleted one's VIP %s", p.VirtualIPAddress)
	}
	t.Logf("repaired: %s (was %s)", describeELB(p), gone.ID)
	// The new ELB gets the Secret's certificate again.
	e.waitCertificate(p, rotated)
	e.expectWrites("repair after an out-of-band delete", before, map[string]int{"ProxyLB.Create": 1, "ProxyLB.SetCertificates": 1})

	// 9b. VIP failover moves the VIP (the FQDN stays): the repair pass
	// shows the new one in the Service's status, writing nothing to SAKURA.
	before = e.requests()
	var moved struct {
		VIP string `json:"vip"`
	}
	if err := e.sim.Admin(e.ctx, http.MethodPost, "/proxylbs/"+p.ID.String()+"/failover", nil, &moved); err != nil {
		t.Fatalf("VIP failover: %v", err)
	}
	if moved.VIP == "" || moved.VIP == p.VirtualIPAddress {
		t.Fatalf("VIP failover gave %q (was %s)", moved.VIP, p.VirtualIPAddress)
	}
	p = e.waitELB("web", want) // waits for the status to show the ELB's VIP and FQDN
	if p.VirtualIPAddress != moved.VIP {
		t.Fatalf("the ELB's VIP is %s, the failover gave %s", p.VirtualIPAddress, moved.VIP)
	}
	e.expectWrites("VIP failover followed", before, map[string]int{})

	// 10. The Service goes: its ELB goes, and its finalizer with it.
	if fin := e.service("web").Finalizers; len(fin) == 0 {
		t.Errorf("the Service has no finalizer while it has an ELB")
	}
	before = e.requests()
	e.deleteService("web")
	e.eventually(longWait, "the ELB outlived its Service", func() (bool, error) {
		own, err := e.serviceELBs(svc)
		return err == nil && len(own) == 0, err
	})
	if n := e.clusterELBCount(); n != 0 {
		t.Errorf("%d ELBs of this cluster left after the Service went, want 0", n)
	}
	if _, err := e.plbs.Read(e.ctx, p.ID); !iaas.IsNotFoundError(err) {
		t.Errorf("ELB %s after its Service was deleted: %v, want not found", p.ID, err)
	}
	if got := e.writesSince(before); got["ProxyLB.Delete"] != 1 {
		t.Errorf("Service deleted: writes %v, want one ProxyLB.Delete", got)
	}
}

// TestEnhancedLoadBalancerRefusals: Services an ELB cannot serve as asked
// get a Warning Event and a condition saying why, and no ELB (nor a DSR
// appliance instead): three ports (an ELB binds at most two), an invalid
// plan and an invalid port mode at creation. A valid Service made
// afterwards gets its ELB, so the controller has had every chance to act
// on the others.
func TestEnhancedLoadBalancerRefusals(t *testing.T) {
	e := newELBEnv(t, "zone-a-1", "zone-a-2")
	e.waitInitialized("zone-a-1", "zone-a-2")
	start := e.requests()

	e.createELBService("three", nil, elbPort("http", 80), elbPort("https", 443), elbPort("alt", 8443))
	reason := e.waitWarning("three", "binds at most 2")
	t.Logf("three ports: Warning %s", reason)
	e.waitConditionStatus("three", metav1.ConditionFalse, "at most 2")

	e.createELBService("bad-plan", map[string]string{annELBPlan: "123"})
	e.waitEvent("bad-plan", "InvalidAnnotation", annELBPlan)
	e.waitCondition("bad-plan", metav1.ConditionFalse, "InvalidAnnotation", annELBPlan)

	e.createELBService("bad-mode", map[string]string{annELBPortModes: "80=ftp"})
	e.waitEvent("bad-mode", "InvalidAnnotation", annELBPortModes)
	e.waitCondition("bad-mode", metav1.ConditionFalse, "InvalidAnnotation", annELBPortModes)

	ok := e.createELBService("ok", nil)
	p := e.waitELB("ok", elbWant{plan: 100, region: "is1", modes: map[int]string{80: "tcp"},
		nodes: []string{e.sharedIP("zone-a-1"), e.sharedIP("zone-a-2")}})
	e.expectWrites("refused Services and one valid", start, map[string]int{"ProxyLB.Create": 1})
	all, err := e.clusterELBs()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 || all[0].ID != p.ID || !plbHasTag(all[0], serviceTagKey+string(ok.UID)) {
		var ds []string
		for _, x := range all {
			ds = append(ds, describeELB(x))
		}
		t.Errorf("ELBs of this cluster: %v, want only ok's %s", ds, p.ID)
	}
	if n := e.ownCount(); n != 0 {
		t.Errorf("%d DSR appliances, want 0", n)
	}
	for _, name := range []string{"three", "bad-plan", "bad-mode"} {
		s := e.service(name)
		if ing := s.Status.LoadBalancer.Ingress; len(ing) != 0 {
			t.Errorf("refused Service %s shows an address: %+v", name, ing)
		}
		if id := s.Annotations[annELBID]; id != "" {
			t.Errorf("refused Service %s has %s %q", name, annELBID, id)
		}
	}
}

func ptrTo(s string) *string { return &s }

// createTLSSecret creates (or replaces) a kubernetes.io/tls Secret with a
// fresh self-signed certificate for cn and returns the certificate's PEM.
func (e *elbEnv) createTLSSecret(name, cn string) string {
	e.t.Helper()
	certPEM, keyPEM, err := testcert.SelfSigned(cn)
	if err != nil {
		e.t.Fatal(err)
	}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.ns}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{corev1.TLSCertKey: certPEM, corev1.TLSPrivateKeyKey: keyPEM}}
	if _, err := e.kube.CoreV1().Secrets(e.ns).Update(e.ctx, sec, metav1.UpdateOptions{}); apierrors.IsNotFound(err) {
		_, err = e.kube.CoreV1().Secrets(e.ns).Create(e.ctx, sec, metav1.CreateOptions{})
		if err != nil {
			e.t.Fatal(err)
		}
	} else if err != nil {
		e.t.Fatal(err)
	}
	return string(certPEM)
}

// waitCertificate waits until ELB p (by its tags: its ID may change)
// serves certPEM as its primary certificate.
func (e *elbEnv) waitCertificate(p *iaas.ProxyLB, certPEM string) {
	e.t.Helper()
	want, _ := pem.Decode([]byte(certPEM))
	e.eventually(longWait, "the ELB does not serve the TLS Secret's certificate", func() (bool, error) {
		certs, err := e.plbs.GetCertificates(e.ctx, p.ID)
		if err != nil || certs == nil || certs.PrimaryCert == nil {
			return false, nil
		}
		got, _ := pem.Decode([]byte(certs.PrimaryCert.ServerCertificate))
		return got != nil && bytes.Equal(got.Bytes, want.Bytes), nil
	})
}
