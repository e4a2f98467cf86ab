package sakurasim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	client "github.com/sacloud/api-client-go"
	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/helper/api"
	"github.com/sacloud/iaas-api-go/search"
	"github.com/sacloud/iaas-api-go/types"
	"github.com/sacloud/saclient-go"
)

const (
	testToken  = "test-token"
	testSecret = "test-secret-do-not-print"
	zone       = "is1a"
)

// iaas-api-go keeps the API root in package globals, so the test binary builds
// its callers once against one HTTP server whose simulator each test swaps in.
var (
	current   atomic.Pointer[Simulator]
	baseURL   string
	caller    iaas.APICaller
	badCaller iaas.APICaller
	// noRetryCaller is the real client without retries (the others retry a
	// dropped connection once, after a one-second wait): the fault tables
	// see exactly one request per call.
	noRetryCaller iaas.APICaller
)

func TestMain(m *testing.M) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		current.Load().Handler().ServeHTTP(w, r)
	}))
	baseURL = srv.URL
	opts := func(secret string) *api.CallerOptions {
		return &api.CallerOptions{
			Options: &client.Options{AccessToken: testToken, AccessTokenSecret: secret,
				HttpRequestRateLimit: 1000, RetryMax: 1, RetryWaitMin: 1, RetryWaitMax: 1},
			APIRootURL:  srv.URL,
			DefaultZone: zone,
		}
	}
	caller = api.NewCallerWithOptions(opts(testSecret))
	badCaller = api.NewCallerWithOptions(opts("wrong-secret"))
	// iaas.NewClientWithOptions always installs a status-code retry policy
	// (which also retries connection errors); build this one from saclient
	// directly so that only CheckRetryFunc decides. The API root is the
	// package global the callers above set.
	var sa saclient.Client
	if err := sa.CompatSettingsFromAPIClientOptions(&client.Options{AccessToken: testToken, AccessTokenSecret: testSecret,
		HttpRequestRateLimit: 1000, CheckRetryFunc: func(context.Context, *http.Response, error) (bool, error) { return false, nil }}); err != nil {
		panic(err)
	}
	noRetryCaller = iaas.NewClientFromSaclient(&sa)
	code := m.Run()
	srv.Close()
	os.Exit(code)
}

func use(t *testing.T, topo *Topology, opts Options) *Simulator {
	t.Helper()
	opts.Token, opts.Secret = testToken, testSecret
	if opts.BootDelay == 0 {
		opts.BootDelay = 50 * time.Millisecond
	}
	s, err := Build(topo, opts)
	if err != nil {
		t.Fatalf("building simulator: %v", err)
	}
	current.Store(s)
	return s
}

func sampleTopology(t *testing.T) *Topology {
	t.Helper()
	topo, err := LoadTopology("testdata/topology.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

func apiStatus(err error) (int, string) {
	var ae iaas.APIError
	if errors.As(err, &ae) {
		return ae.ResponseCode(), ae.Code()
	}
	return 0, ""
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestSampleTopologyIsValid(t *testing.T) {
	s := use(t, sampleTopology(t), Options{})
	st := s.Snapshot()
	if len(st.Servers) != 3 || len(st.Routers) != 1 || len(st.VPCRouters) != 1 || len(st.LoadBalancers) != 1 {
		t.Fatalf("unexpected sample state: %d servers, %d routers, %d vpc routers, %d lbs",
			len(st.Servers), len(st.Routers), len(st.VPCRouters), len(st.LoadBalancers))
	}
}

func TestTopologyRejectsBadInput(t *testing.T) {
	cases := map[string]string{
		"not a network address": "zone: is1a\nswitches: [{name: a, network: 10.0.0.1, maskLen: 24}]",
		"reserved router addr": "routers: [{name: r, switch: {name: s, network: 203.0.113.16, maskLen: 28}}]\n" +
			"servers: [{name: w, nics: [{switch: s, userIPAddress: 203.0.113.18}]}]",
		"duplicate IP": "switches: [{name: a, network: 10.0.0.0, maskLen: 24}]\n" +
			"servers: [{name: w1, nics: [{switch: a, userIPAddress: 10.0.0.5}]}, {name: w2, nics: [{switch: a, userIPAddress: 10.0.0.5}]}]",
		"unknown field": "zone: is1a\nbogus: 1",
	}
	for name, y := range cases {
		t.Run(name, func(t *testing.T) {
			topo, err := ParseTopology([]byte(y))
			if err == nil {
				_, err = Build(topo, Options{})
			}
			if err == nil {
				t.Fatalf("topology accepted, want error")
			}
		})
	}
}

func TestServerFindPaging(t *testing.T) {
	topo := &Topology{Zone: zone, Switches: []SwitchSpec{{Name: "big", Network: "10.0.0.0", MaskLen: 16}}}
	for i := 1; i <= 250; i++ {
		topo.Servers = append(topo.Servers, ServerSpec{Name: fmt.Sprintf("worker-%d", i),
			NICs: []NICSpec{{Switch: "big", UserIPAddress: fmt.Sprintf("10.0.%d.%d", i/200, 10+i%200)}}})
	}
	use(t, topo, Options{})
	op := iaas.NewServerOp(caller)
	ctx := context.Background()

	seen := map[string]bool{}
	for from := 0; ; {
		res, err := op.Find(ctx, zone, &iaas.FindCondition{Count: 100, From: from})
		if err != nil {
			t.Fatal(err)
		}
		if res.Total != 250 {
			t.Fatalf("Total = %d, want 250", res.Total)
		}
		for _, sv := range res.Servers {
			seen[sv.Name] = true
		}
		from += len(res.Servers)
		if len(res.Servers) == 0 || from >= res.Total {
			break
		}
	}
	if len(seen) != 250 {
		t.Fatalf("paged through %d distinct servers, want 250", len(seen))
	}

	res, err := op.Find(ctx, zone, &iaas.FindCondition{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Count != 20 || len(res.Servers) != 20 || res.Total != 250 {
		t.Fatalf("default page: Count=%d len=%d Total=%d, want 20/20/250", res.Count, len(res.Servers), res.Total)
	}

	partial, err := op.Find(ctx, zone, &iaas.FindCondition{Count: 1000, Filter: search.Filter{search.Key("Name"): search.PartialMatch("worker-1")}})
	if err != nil {
		t.Fatal(err)
	}
	// worker-1, worker-10..19 and worker-100..199
	if partial.Total != 111 {
		t.Fatalf("partial name match found %d, want 111", partial.Total)
	}
	exact, err := op.Find(ctx, zone, &iaas.FindCondition{Filter: search.Filter{search.Key("Name"): search.ExactMatch("worker-1")}})
	if err != nil {
		t.Fatal(err)
	}
	if exact.Total != 1 || exact.Servers[0].Name != "worker-1" {
		t.Fatalf("exact match found %d", exact.Total)
	}
	sv, err := op.Read(ctx, zone, exact.Servers[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if sv.CPU != 2 || sv.GetMemoryGB() != 4 || sv.InstanceStatus != types.ServerInstanceStatuses.Up ||
		sv.Interfaces[0].UserIPAddress == "" || sv.Zone.Name != zone {
		t.Fatalf("unexpected server %+v", sv)
	}
	if _, err := op.Read(ctx, zone, 999999999999); !iaas.IsNotFoundError(err) {
		t.Fatalf("read of missing server: %v, want 404", err)
	}
}

func TestSwitchAndInternet(t *testing.T) {
	use(t, sampleTopology(t), Options{})
	ctx := context.Background()
	inet, err := iaas.NewInternetOp(caller).Find(ctx, zone, &iaas.FindCondition{})
	if err != nil || inet.Total != 1 {
		t.Fatalf("internet find: %v %+v", err, inet)
	}
	router, err := iaas.NewInternetOp(caller).Read(ctx, zone, inet.Internet[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if router.Switch == nil || router.NetworkMaskLen != 28 {
		t.Fatalf("router without switch or mask: %+v", router)
	}
	swOp := iaas.NewSwitchOp(caller)
	sw, err := swOp.Read(ctx, zone, router.Switch.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(sw.Subnets) != 1 {
		t.Fatalf("router switch has %d subnets", len(sw.Subnets))
	}
	sub := sw.Subnets[0]
	if sub.NetworkAddress != "203.0.113.16" || sub.NetworkMaskLen != 28 || sub.DefaultRoute != "203.0.113.17" ||
		sub.AssignedIPAddressMin != "203.0.113.20" || sub.AssignedIPAddressMax != "203.0.113.30" ||
		sub.Internet == nil || sub.Internet.ID != router.ID {
		t.Fatalf("unexpected subnet %+v", sub)
	}
	servers, err := swOp.GetServers(ctx, zone, sw.ID)
	if err != nil || len(servers.Servers) != 3 {
		t.Fatalf("GetServers: %v, %d servers", err, len(servers.Servers))
	}
	found, err := swOp.Find(ctx, zone, &iaas.FindCondition{Filter: search.Filter{search.Key("Tags"): search.TagsAndEqual("k8s")}})
	if err != nil || found.Total != 2 {
		t.Fatalf("switch find by tag: %v, total %d", err, found.Total)
	}
	private, err := swOp.Find(ctx, zone, &iaas.FindCondition{Filter: search.Filter{search.Key("Name"): search.ExactMatch("k8s-private")}})
	if err != nil || private.Total != 1 || private.Switches[0].NetworkMaskLen != 24 || private.Switches[0].DefaultRoute != "192.168.100.1" {
		t.Fatalf("private switch: %v %+v", err, private)
	}
	vr, err := iaas.NewVPCRouterOp(caller).Find(ctx, zone, &iaas.FindCondition{})
	if err != nil || vr.Total != 1 || vr.VPCRouters[0].Settings.VRID != 1 {
		t.Fatalf("vpc router find: %v %+v", err, vr)
	}
	ifs := vr.VPCRouters[0].Settings.Interfaces
	if len(ifs) != 1 || ifs[0].Index != 1 || ifs[0].VirtualIPAddress != "192.168.100.1" || len(ifs[0].IPAddress) != 2 {
		t.Fatalf("vpc router interfaces: %+v", ifs)
	}
	for name, find := range map[string]func() (int, error){
		"database": func() (int, error) {
			r, err := iaas.NewDatabaseOp(caller).Find(ctx, zone, &iaas.FindCondition{})
			return r.Total, err
		},
		"nfs": func() (int, error) {
			r, err := iaas.NewNFSOp(caller).Find(ctx, zone, &iaas.FindCondition{})
			return r.Total, err
		},
		"mobilegateway": func() (int, error) {
			r, err := iaas.NewMobileGatewayOp(caller).Find(ctx, zone, &iaas.FindCondition{})
			return r.Total, err
		},
	} {
		if n, err := find(); err != nil || n != 0 {
			t.Fatalf("%s find: %v, %d", name, err, n)
		}
	}
	lbs, err := iaas.NewLoadBalancerOp(caller).Find(ctx, zone, &iaas.FindCondition{})
	if err != nil || lbs.Total != 1 || lbs.LoadBalancers[0].Name != "someone-elses-lb" {
		t.Fatalf("lb find: %v %+v", err, lbs)
	}
}

func routerSwitchID(t *testing.T) types.ID {
	t.Helper()
	res, err := iaas.NewSwitchOp(caller).Find(context.Background(), zone,
		&iaas.FindCondition{Filter: search.Filter{search.Key("Name"): search.ExactMatch("k8s-global")}})
	if err != nil || res.Total != 1 {
		t.Fatalf("finding k8s-global: %v", err)
	}
	return res.Switches[0].ID
}

func vip(addr string, port int, servers ...string) *iaas.LoadBalancerVirtualIPAddress {
	v := &iaas.LoadBalancerVirtualIPAddress{VirtualIPAddress: addr, Port: types.StringNumber(port), DelayLoop: 10}
	for _, s := range servers {
		v.Servers = append(v.Servers, &iaas.LoadBalancerServer{IPAddress: s, Port: types.StringNumber(port),
			Enabled: types.StringTrue, HealthCheck: &iaas.LoadBalancerServerHealthCheck{Protocol: types.LoadBalancerHealthCheckProtocols.Ping}})
	}
	return v
}

func lbRequest(swID types.ID, ips []string, vrid int, vips ...*iaas.LoadBalancerVirtualIPAddress) *iaas.LoadBalancerCreateRequest {
	return &iaas.LoadBalancerCreateRequest{SwitchID: swID, PlanID: types.LoadBalancerPlans.Standard, VRID: vrid,
		IPAddresses: ips, NetworkMaskLen: 28, DefaultRoute: "203.0.113.17", Name: "k8s-lb", Tags: types.Tags{"k8s"},
		VirtualIPAddresses: vips}
}

func TestLoadBalancerLifecycle(t *testing.T) {
	sim := use(t, sampleTopology(t), Options{})
	ctx := context.Background()
	op := iaas.NewLoadBalancerOp(caller)
	swID := routerSwitchID(t)

	lb, err := op.Create(ctx, zone, lbRequest(swID, []string{"203.0.113.23", "203.0.113.24"}, 5,
		vip("203.0.113.25", 80, "203.0.113.20", "203.0.113.21")))
	if err != nil {
		t.Fatal(err)
	}
	if lb.Availability != types.Availabilities.Migrating || lb.InstanceStatus.IsUp() {
		t.Fatalf("new LB: availability %q status %q, want migrating and not up", lb.Availability, lb.InstanceStatus)
	}
	if lb.VRID != 5 || len(lb.IPAddresses) != 2 || lb.SwitchID != swID || lb.SettingsHash == "" ||
		lb.PlanID != types.LoadBalancerPlans.Standard || lb.NetworkMaskLen != 28 || lb.DefaultRoute != "203.0.113.17" ||
		lb.ZoneID != 31001 || len(lb.Interfaces) != 2 || lb.Class != "loadbalancer" || len(lb.VirtualIPAddresses) != 1 ||
		lb.VirtualIPAddresses[0].Servers[0].Enabled != types.StringTrue {
		t.Fatalf("new LB fields: %+v", lb)
	}
	if err := op.Config(ctx, zone, lb.ID); err == nil {
		t.Fatalf("Config while migrating succeeded")
	} else if code, ec := apiStatus(err); code != 409 || ec != "still_creating" {
		t.Fatalf("Config while migrating: %d %s", code, ec)
	}
	eventually(t, "LB up", func() bool {
		got, err := op.Read(ctx, zone, lb.ID)
		return err == nil && got.InstanceStatus.IsUp() && got.Availability.IsAvailable()
	})

	st, err := op.Status(ctx, zone, lb.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Status) != 1 || len(st.Status[0].Servers) != 2 || st.Status[0].Servers[0].Status != "UP" {
		t.Fatalf("status: %+v", st.Status)
	}
	if _, err := sim.PowerServer("worker-2", false); err != nil {
		t.Fatal(err)
	}
	st, _ = op.Status(ctx, zone, lb.ID)
	for _, s := range st.Status[0].Servers {
		want := types.EServerInstanceStatus("UP")
		if s.IPAddress == "203.0.113.21" {
			want = "DOWN"
		}
		if s.Status != want {
			t.Fatalf("server %s status %s, want %s", s.IPAddress, s.Status, want)
		}
	}

	cur, _ := op.Read(ctx, zone, lb.ID)
	upd, err := op.UpdateSettings(ctx, zone, lb.ID, &iaas.LoadBalancerUpdateSettingsRequest{
		VirtualIPAddresses: append(cur.VirtualIPAddresses, vip("203.0.113.25", 443, "203.0.113.20")),
		SettingsHash:       cur.SettingsHash})
	if err != nil {
		t.Fatal(err)
	}
	if len(upd.VirtualIPAddresses) != 2 || upd.SettingsHash == cur.SettingsHash {
		t.Fatalf("update settings: %d VIPs, hash changed %v", len(upd.VirtualIPAddresses), upd.SettingsHash != cur.SettingsHash)
	}
	_, err = op.UpdateSettings(ctx, zone, lb.ID, &iaas.LoadBalancerUpdateSettingsRequest{
		VirtualIPAddresses: cur.VirtualIPAddresses, SettingsHash: cur.SettingsHash})
	if code, _ := apiStatus(err); code != http.StatusConflict {
		t.Fatalf("stale hash: %v, want 409", err)
	}
	renamed, err := op.Update(ctx, zone, lb.ID, &iaas.LoadBalancerUpdateRequest{Name: "renamed", Tags: types.Tags{"k8s", "x"},
		VirtualIPAddresses: upd.VirtualIPAddresses, SettingsHash: upd.SettingsHash})
	if err != nil || renamed.Name != "renamed" || len(renamed.Tags) != 2 {
		t.Fatalf("update: %v %+v", err, renamed)
	}
	if err := op.Config(ctx, zone, lb.ID); err != nil {
		t.Fatal(err)
	}

	if err := op.Delete(ctx, zone, lb.ID); err == nil {
		t.Fatal("deleting a running LB succeeded")
	} else if code, _ := apiStatus(err); code != http.StatusConflict {
		t.Fatalf("delete running: %v, want 409", err)
	}
	if err := op.Shutdown(ctx, zone, lb.ID, &iaas.ShutdownOption{Force: true}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "LB down", func() bool {
		got, err := op.Read(ctx, zone, lb.ID)
		return err == nil && got.InstanceStatus.IsDown()
	})
	if err := op.Boot(ctx, zone, lb.ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, "LB up again", func() bool {
		got, err := op.Read(ctx, zone, lb.ID)
		return err == nil && got.InstanceStatus.IsUp()
	})
	if err := op.Shutdown(ctx, zone, lb.ID, &iaas.ShutdownOption{Force: false}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "LB down again", func() bool {
		got, err := op.Read(ctx, zone, lb.ID)
		return err == nil && got.InstanceStatus.IsDown()
	})
	if err := op.Delete(ctx, zone, lb.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := op.Read(ctx, zone, lb.ID); !iaas.IsNotFoundError(err) {
		t.Fatalf("read after delete: %v, want 404", err)
	}

	stats := sim.Requests().Operations
	for _, name := range []string{"LoadBalancer.Create", "LoadBalancer.Read", "LoadBalancer.UpdateSettings",
		"LoadBalancer.Update", "LoadBalancer.Config", "LoadBalancer.Shutdown", "LoadBalancer.Boot",
		"LoadBalancer.Delete", "LoadBalancer.Status", "Switch.Find"} {
		if stats[name].Total == 0 {
			t.Errorf("no requests counted for %s (have %v)", name, stats)
		}
	}
	if stats["LoadBalancer.UpdateSettings"].ByStatus["409"] != 1 {
		t.Errorf("stale UpdateSettings not counted as 409: %+v", stats["LoadBalancer.UpdateSettings"])
	}
}

func TestLoadBalancerValidation(t *testing.T) {
	use(t, sampleTopology(t), Options{})
	ctx := context.Background()
	op := iaas.NewLoadBalancerOp(caller)
	swID := routerSwitchID(t)
	ha := []string{"203.0.113.23", "203.0.113.24"}

	many := func(n int) []*iaas.LoadBalancerVirtualIPAddress {
		var out []*iaas.LoadBalancerVirtualIPAddress
		for i := 0; i < n; i++ {
			out = append(out, vip("203.0.113.25", 1000+i, "203.0.113.20"))
		}
		return out
	}
	manyServers := func(n int) *iaas.LoadBalancerVirtualIPAddress {
		v := vip("203.0.113.25", 80)
		for i := 0; i < n; i++ {
			v.Servers = append(v.Servers, vip("x", 80, fmt.Sprintf("203.0.113.%d", 20+i%11)).Servers[0])
		}
		return v
	}

	privateSw, err := iaas.NewSwitchOp(caller).Find(ctx, zone, &iaas.FindCondition{Filter: search.Filter{search.Key("Name"): search.ExactMatch("k8s-private")}})
	if err != nil {
		t.Fatal(err)
	}
	privID := privateSw.Switches[0].ID

	cases := []struct {
		name string
		req  func() *iaas.LoadBalancerCreateRequest
		want int
	}{
		{"VIP outside subnet", func() *iaas.LoadBalancerCreateRequest {
			return lbRequest(swID, ha, 5, vip("203.0.113.40", 80, "203.0.113.20"))
		}, 400},
		{"VIP is a server's address", func() *iaas.LoadBalancerCreateRequest {
			return lbRequest(swID, ha, 5, vip("203.0.113.20", 80, "203.0.113.21"))
		}, 409},
		{"appliance IP is a server's address", func() *iaas.LoadBalancerCreateRequest {
			return lbRequest(swID, []string{"203.0.113.22", "203.0.113.24"}, 5)
		}, 409},
		{"appliance IP is the router's address", func() *iaas.LoadBalancerCreateRequest {
			return lbRequest(swID, []string{"203.0.113.18", "203.0.113.24"}, 5)
		}, 400},
		{"VIP is the gateway", func() *iaas.LoadBalancerCreateRequest {
			return lbRequest(swID, ha, 5, vip("203.0.113.17", 80))
		}, 400},
		{"VIP is the broadcast", func() *iaas.LoadBalancerCreateRequest {
			return lbRequest(swID, ha, 5, vip("203.0.113.31", 80))
		}, 400},
		{"VRID clash with VPC router", func() *iaas.LoadBalancerCreateRequest {
			r := lbRequest(privID, []string{"192.168.100.50", "192.168.100.51"}, 1)
			r.NetworkMaskLen, r.DefaultRoute = 24, "192.168.100.1"
			return r
		}, 409},
		{"VIP used by a foreign LB", func() *iaas.LoadBalancerCreateRequest {
			r := lbRequest(privID, []string{"192.168.100.50", "192.168.100.51"}, 9, vip("192.168.100.200", 443))
			r.NetworkMaskLen, r.DefaultRoute = 24, "192.168.100.1"
			return r
		}, 409},
		{"21 VIPs", func() *iaas.LoadBalancerCreateRequest { return lbRequest(swID, ha, 5, many(21)...) }, 400},
		{"41 real servers", func() *iaas.LoadBalancerCreateRequest { return lbRequest(swID, ha, 5, manyServers(41)) }, 400},
		{"VRID 0", func() *iaas.LoadBalancerCreateRequest { return lbRequest(swID, ha, 0) }, 400},
		{"VRID 256", func() *iaas.LoadBalancerCreateRequest { return lbRequest(swID, ha, 256) }, 400},
		{"plan 3", func() *iaas.LoadBalancerCreateRequest {
			r := lbRequest(swID, ha, 5)
			r.PlanID = 3
			return r
		}, 400},
		{"wrong mask", func() *iaas.LoadBalancerCreateRequest {
			r := lbRequest(swID, ha, 5)
			r.NetworkMaskLen = 24
			return r
		}, 400},
		{"11 tags", func() *iaas.LoadBalancerCreateRequest {
			r := lbRequest(swID, ha, 5)
			for i := 0; i < 11; i++ {
				r.Tags = append(r.Tags, fmt.Sprintf("t%d", i))
			}
			return r
		}, 400},
		{"retry 9", func() *iaas.LoadBalancerCreateRequest {
			v := vip("203.0.113.25", 80, "203.0.113.20")
			v.Servers[0].HealthCheck.Retry = 9
			return lbRequest(swID, ha, 5, v)
		}, 400},
		{"udp-ish protocol", func() *iaas.LoadBalancerCreateRequest {
			v := vip("203.0.113.25", 80, "203.0.113.20")
			v.Servers[0].HealthCheck.Protocol = "udp"
			return lbRequest(swID, ha, 5, v)
		}, 400},
		{"http check without path", func() *iaas.LoadBalancerCreateRequest {
			v := vip("203.0.113.25", 80, "203.0.113.20")
			v.Servers[0].HealthCheck.Protocol = types.LoadBalancerHealthCheckProtocols.HTTP
			return lbRequest(swID, ha, 5, v)
		}, 400},
		{"real server outside subnet", func() *iaas.LoadBalancerCreateRequest {
			return lbRequest(swID, ha, 5, vip("203.0.113.25", 80, "10.1.1.1"))
		}, 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := op.Create(ctx, zone, tc.req())
			code, _ := apiStatus(err)
			if code != tc.want {
				t.Fatalf("got %v (status %d), want status %d", err, code, tc.want)
			}
		})
	}

	// 20 VIPs and 40 servers are fine; a second LB with the same VRID on the switch is not.
	first, err := op.Create(ctx, zone, lbRequest(swID, ha, 5, append(many(19), manyServers(11))...))
	if err != nil {
		t.Fatalf("create at limits: %v", err)
	}
	_, err = op.Create(ctx, zone, lbRequest(swID, []string{"203.0.113.26"}, 5))
	if code, _ := apiStatus(err); code != 409 {
		t.Fatalf("duplicate VRID: %v, want 409", err)
	}
	_, err = op.Create(ctx, zone, lbRequest(swID, []string{"203.0.113.23"}, 6))
	if code, _ := apiStatus(err); code != 409 {
		t.Fatalf("duplicate appliance IP: %v, want 409", err)
	}
	_, err = op.UpdateSettings(ctx, zone, first.ID, &iaas.LoadBalancerUpdateSettingsRequest{VirtualIPAddresses: many(21)})
	if code, _ := apiStatus(err); code != 400 {
		t.Fatalf("update to 21 VIPs: %v, want 400", err)
	}
}

// rawDo sends a hand-made request (what the library cannot produce).
func rawDo(t *testing.T, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, baseURL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(testToken, testSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(data, &out)
	return resp.StatusCode, out
}

func TestWireDetails(t *testing.T) {
	sim := use(t, sampleTopology(t), Options{BootDelay: time.Millisecond})
	// URL-encoded JSON query (curl style) is understood like the raw form.
	q := url.QueryEscape(`{"Count":1,"From":1,"Filter":{"Tags":["worker"]}}`)
	code, out := rawDo(t, "GET", "/is1a/api/cloud/1.1/server?"+q, "")
	if code != 200 || out["Total"].(float64) != 3 || out["Count"].(float64) != 1 {
		t.Fatalf("encoded query: %d %v", code, out)
	}
	code, out = rawDo(t, "GET", "/is1a/api/cloud/1.1/nosuchthing", "")
	if code != 404 || out["error_code"] != "not_found" || out["status"] != "404 Not Found" || out["is_fatal"] != true {
		t.Fatalf("unknown route: %d %v", code, out)
	}
	code, _ = rawDo(t, "GET", "/tk1a/api/cloud/1.1/server", "")
	if code != 404 {
		t.Fatalf("wrong zone: %d, want 404", code)
	}
	// Immutable fields on update are refused.
	swID := sim.switchByName("k8s-global").ID
	lb, err := iaas.NewLoadBalancerOp(caller).Create(context.Background(), zone, lbRequest(swID, []string{"203.0.113.23"}, 7))
	if err != nil {
		t.Fatal(err)
	}
	code, out = rawDo(t, "PUT", "/is1a/api/cloud/1.1/appliance/"+lb.ID.String(),
		`{"Appliance":{"Name":"x","Remark":{"VRRP":{"VRID":8}}}}`)
	if code != 400 || !strings.Contains(out["error_msg"].(string), "VRID") {
		t.Fatalf("immutable VRID: %d %v", code, out)
	}
	// Real servers must say Enabled explicitly.
	code, out = rawDo(t, "PUT", "/is1a/api/cloud/1.1/appliance/"+lb.ID.String(),
		`{"Appliance":{"Settings":{"LoadBalancer":[{"VirtualIPAddress":"203.0.113.25","Port":"80","Servers":[{"IPAddress":"203.0.113.20","Port":"80","HealthCheck":{"Protocol":"ping"}}]}]}}}`)
	if code != 400 || !strings.Contains(out["error_msg"].(string), "Enabled") {
		t.Fatalf("missing Enabled: %d %v", code, out)
	}
	if sim.Requests().Operations["LoadBalancer.UpdateSettings"].ByStatus["400"] != 1 {
		t.Fatalf("settings-only PUT not classified as UpdateSettings: %+v", sim.Requests().Operations)
	}
}

func TestReadNotFoundWindow(t *testing.T) {
	sim := use(t, sampleTopology(t), Options{ReadNotFoundWindow: time.Hour})
	ctx := context.Background()
	op := iaas.NewLoadBalancerOp(caller)
	lb, err := op.Create(ctx, zone, lbRequest(sim.switchByName("k8s-global").ID, []string{"203.0.113.23"}, 7))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := op.Read(ctx, zone, lb.ID); !iaas.IsNotFoundError(err) {
		t.Fatalf("read inside the not-found window: %v, want 404", err)
	}
	found, err := op.Find(ctx, zone, &iaas.FindCondition{Filter: search.Filter{search.Key("Name"): search.ExactMatch("k8s-lb")}})
	if err != nil || found.Total != 0 {
		t.Fatalf("find inside the window: %v, total %d", err, found.Total)
	}
}

func TestAuth(t *testing.T) {
	use(t, sampleTopology(t), Options{})
	_, err := iaas.NewServerOp(badCaller).Find(context.Background(), zone, &iaas.FindCondition{})
	code, ec := apiStatus(err)
	if code != http.StatusUnauthorized || ec != "unauthorized" {
		t.Fatalf("wrong secret: %v (%d %s), want 401", err, code, ec)
	}
	if strings.Contains(err.Error(), "wrong-secret") || strings.Contains(err.Error(), testSecret) {
		t.Fatalf("error echoes a secret")
	}
	resp, err := http.Get(baseURL + "/is1a/api/cloud/1.1/server")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no auth: %d, want 401", resp.StatusCode)
	}
}

func TestFaultInjection(t *testing.T) {
	sim := use(t, sampleTopology(t), Options{Seed: 7})
	ctx := context.Background()
	if err := sim.SetFaults([]FaultRule{{Op: "Server.Find", Status: 429, Times: 1}}); err != nil {
		t.Fatal(err)
	}
	_, err := iaas.NewServerOp(caller).Find(ctx, zone, &iaas.FindCondition{})
	if code, ec := apiStatus(err); code != http.StatusTooManyRequests || ec != "too_many_requests" {
		t.Fatalf("faulted find: %v, want 429", err)
	}
	if _, err := iaas.NewServerOp(caller).Find(ctx, zone, &iaas.FindCondition{}); err != nil {
		t.Fatalf("second find (rule exhausted): %v", err)
	}
	st := sim.Requests().Operations["Server.Find"]
	if st.ByStatus["429"] != 1 || st.ByStatus["200"] != 1 {
		t.Fatalf("counts: %+v", st)
	}

	// Rates are seeded: the same seed gives the same sequence of outcomes.
	outcomes := func() string {
		s := use(t, sampleTopology(t), Options{Seed: 42})
		_ = s.SetFaults([]FaultRule{{Op: "Switch.*", Status: 500, Rate: 0.5}}) // 500 is not retried by the client
		var b strings.Builder
		for i := 0; i < 20; i++ {
			_, err := iaas.NewSwitchOp(caller).Find(ctx, zone, &iaas.FindCondition{})
			if err != nil {
				b.WriteByte('x')
			} else {
				b.WriteByte('.')
			}
		}
		return b.String()
	}
	a, b := outcomes(), outcomes()
	if a != b || !strings.Contains(a, "x") || !strings.Contains(a, ".") {
		t.Fatalf("seeded outcomes differ or are degenerate: %q vs %q", a, b)
	}

	// Admin HTTP: drop closes the connection without an answer; DELETE clears.
	sim = use(t, sampleTopology(t), Options{})
	adminDo(t, "POST", "/_admin/faults", `{"rules":[{"op":"*","drop":true}]}`, 200)
	req, _ := http.NewRequest("GET", baseURL+"/is1a/api/cloud/1.1/zone", nil)
	req.SetBasicAuth(testToken, testSecret)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("dropped request got an answer: %d", resp.StatusCode)
	}
	adminDo(t, "DELETE", "/_admin/faults", "", 200)
	if code, out := rawDo(t, "GET", "/is1a/api/cloud/1.1/zone", ""); code != 200 || out["Total"].(float64) != 1 {
		t.Fatalf("zone find after clearing faults: %d %v", code, out)
	}
	// (Go's client may retry an idempotent GET once on a closed connection.)
	if sim.Requests().Operations["Zone.Find"].ByStatus["dropped"] < 1 {
		t.Fatalf("dropped request not counted: %+v", sim.Requests().Operations)
	}
}

func adminDo(t *testing.T, method, path, body string, want int) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(method, baseURL+path, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, data, want)
	}
	var out map[string]any
	_ = json.Unmarshal(data, &out)
	return out
}

func TestAdminServers(t *testing.T) {
	use(t, sampleTopology(t), Options{})
	ctx := context.Background()
	op := iaas.NewServerOp(caller)
	byName := func(name string) []*iaas.Server {
		res, err := op.Find(ctx, zone, &iaas.FindCondition{Filter: search.Filter{search.Key("Name"): search.ExactMatch(name)}})
		if err != nil {
			t.Fatal(err)
		}
		return res.Servers
	}

	added := adminDo(t, "POST", "/_admin/servers",
		`{"name":"worker-4","cpu":4,"memoryGB":16,"nics":[{"switch":"k8s-global","userIPAddress":"203.0.113.26"}]}`, 201)
	if added["Name"] != "worker-4" {
		t.Fatalf("added: %v", added)
	}
	adminDo(t, "POST", "/_admin/servers", `{"name":"dup","nics":[{"switch":"k8s-global","userIPAddress":"203.0.113.26"}]}`, 409)
	got := byName("worker-4")
	if len(got) != 1 || got[0].CPU != 4 || got[0].GetMemoryGB() != 16 {
		t.Fatalf("worker-4 via API: %+v", got)
	}

	adminDo(t, "POST", "/_admin/servers/worker-4/power", `{"on":false}`, 200)
	if s := byName("worker-4")[0]; !s.InstanceStatus.IsDown() {
		t.Fatalf("after power off: %s", s.InstanceStatus)
	}
	adminDo(t, "POST", "/_admin/servers/"+got[0].ID.String()+"/power", `{"on":true}`, 200)
	if s := byName("worker-4")[0]; !s.InstanceStatus.IsUp() {
		t.Fatalf("after power on: %s", s.InstanceStatus)
	}

	adminDo(t, "POST", "/_admin/servers/worker-4/replace", `{"cpu":8}`, 200)
	repl := byName("worker-4")
	if len(repl) != 1 || repl[0].ID == got[0].ID || repl[0].CPU != 8 ||
		!contains(repl[0].Tags, "@previous-id="+got[0].ID.String()) || repl[0].Interfaces[0].UserIPAddress != "203.0.113.26" {
		t.Fatalf("replaced: %+v", repl)
	}
	if _, err := op.Read(ctx, zone, got[0].ID); !iaas.IsNotFoundError(err) {
		t.Fatalf("old ID after replace: %v, want 404", err)
	}

	adminDo(t, "DELETE", "/_admin/servers/worker-4", "", 200)
	if len(byName("worker-4")) != 0 {
		t.Fatal("worker-4 still listed after delete")
	}
	adminDo(t, "DELETE", "/_admin/servers/worker-4", "", 404)

	st := adminDo(t, "GET", "/_admin/state", "", 200)
	if len(st["servers"].([]any)) != 3 {
		t.Fatalf("state servers: %v", st["servers"])
	}
	adminDo(t, "POST", "/_admin/boot-delay", `{"bootDelay":"10ms"}`, 200)
	req := adminDo(t, "GET", "/_admin/requests", "", 200)
	if req["operations"].(map[string]any)["Server.Find"] == nil {
		t.Fatalf("requests: %v", req)
	}
	adminDo(t, "POST", "/_admin/requests/reset", "", 200)
	if r := adminDo(t, "GET", "/_admin/requests", "", 200); r["total"].(float64) != 0 {
		t.Fatalf("after reset: %v", r)
	}
}

func TestConcurrentCreatesClaimAnAddressOnce(t *testing.T) {
	sim := use(t, sampleTopology(t), Options{})
	swID := sim.switchByName("k8s-global").ID
	op := iaas.NewLoadBalancerOp(caller)
	const n = 8
	results := make(chan error, n)
	for i := 0; i < n; i++ {
		go func(i int) {
			// all want the same VIP; appliance IPs and VRIDs differ
			req := lbRequest(swID, []string{fmt.Sprintf("203.0.113.%d", 23+i%4)}, 10+i, vip("203.0.113.30", 80))
			_, err := op.Create(context.Background(), zone, req)
			results <- err
		}(i)
	}
	ok := 0
	for i := 0; i < n; i++ {
		err := <-results
		if err == nil {
			ok++
		} else if code, _ := apiStatus(err); code != http.StatusConflict {
			t.Errorf("unexpected error %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d creates succeeded, want exactly 1", ok)
	}
}

func TestTagFilters(t *testing.T) {
	sim := use(t, sampleTopology(t), Options{})
	ctx := context.Background()
	op := iaas.NewLoadBalancerOp(caller)
	req := lbRequest(sim.switchByName("k8s-global").ID, []string{"203.0.113.23"}, 7)
	req.Tags = types.Tags{"k8s.usacloud.jp/cluster=abc", "k8s.usacloud.jp/service=ns/name", "k8s"}
	if _, err := op.Create(ctx, zone, req); err != nil {
		t.Fatal(err)
	}
	find := func(f search.Filter) int {
		res, err := op.Find(ctx, zone, &iaas.FindCondition{Filter: f})
		if err != nil {
			t.Fatal(err)
		}
		return res.Total
	}
	if n := find(search.Filter{search.Key("Tags"): search.TagsAndEqual("k8s.usacloud.jp/cluster=abc", "k8s.usacloud.jp/service=ns/name")}); n != 1 {
		t.Fatalf("AND tags found %d, want 1", n)
	}
	if n := find(search.Filter{search.Key("Tags"): search.TagsAndEqual("k8s.usacloud.jp/cluster=abc", "other")}); n != 0 {
		t.Fatalf("AND tags with a missing tag found %d, want 0", n)
	}
	if n := find(search.Filter{search.Key("Tags"): "not-k8s"}); n != 1 {
		t.Fatalf("single tag found %d, want 1 (the foreign LB)", n)
	}
	if n := find(search.Filter{search.Key("Name"): search.PartialMatch("K8S", "lb")}); n != 1 {
		t.Fatalf("partial name found %d, want 1", n)
	}
	id := sim.lbs[0].ID
	if n := find(search.Filter{search.Key("ID"): id}); n != 1 {
		t.Fatalf("by ID found %d, want 1", n)
	}
	prev := sim.Snapshot().Servers[0].ID
	if _, err := sim.ReplaceServer("worker-1", 0, 0); err != nil {
		t.Fatal(err)
	}
	res, err := iaas.NewServerOp(caller).Find(ctx, zone, &iaas.FindCondition{
		Filter: search.Filter{search.Key("Tags"): search.TagsAndEqual("@previous-id=" + prev.String())}})
	if err != nil || res.Total != 1 || res.Servers[0].Name != "worker-1" {
		t.Fatalf("find by @previous-id: %v %+v", err, res)
	}
}

// docs/simulator.md names every operation, admin route and limit the code has.
func TestDocsMatchCode(t *testing.T) {
	data, err := os.ReadFile("../../docs/simulator.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	for _, want := range []string{
		"Server.Find", "Server.Read", "Switch.Find", "Switch.Read", "Switch.GetServers", "Internet.Find", "Internet.Read",
		"LoadBalancer.Find", "LoadBalancer.Create", "LoadBalancer.Read", "LoadBalancer.Update", "LoadBalancer.UpdateSettings",
		"LoadBalancer.Delete", "LoadBalancer.Config", "LoadBalancer.Boot", "LoadBalancer.Shutdown", "LoadBalancer.Status",
		"VPCRouter.Find", "Database.Find", "NFS.Find", "MobileGateway.Find", "Zone.Find", "Appliance.Find",
		"/_admin/state", "/_admin/servers", "/power", "/replace", "/_admin/faults", "/_admin/boot-delay",
		"/_admin/requests", "/_admin/requests/reset", "/_admin/realserver-health", `"times"`, `"after"`, `"latency"`, `"drop"`, `"rate"`,
		"/_admin/faults/add", "/_admin/faults/fail-next-config", "/_admin/load-balancers/{id}", "`appliedSettings`", "`pendingConfig`",
		"`canceled`", "`dropped`", "Applied(id)", "FailNextConfig", "AddFaults", "ConfigFailure", "X-Sakura-Bigint-As-Int",
		"`Remark.Switch.ID`", `"Accepted"`,
		fmt.Sprintf("%d VIP", maxVIPs), fmt.Sprintf("%d real servers", maxServersPerVIP), fmt.Sprintf("%d tags", maxTags),
		fmt.Sprintf("`Retry` set and not %d–%d", minRetry, maxRetry),
		fmt.Sprintf("`ConnectTimeout` set and not %d–%d", minConnectTimeout, maxConnectTimeout),
		"of **20**",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("docs/simulator.md does not mention %q", want)
		}
	}
	s, _ := Build(nil, Options{})
	if s.opts.DefaultPageSize != 20 {
		t.Errorf("default page size is %d, docs say 20", s.opts.DefaultPageSize)
	}
}

// An "after" fault performs the operation and loses its answer: the load
// balancer exists although the client saw an error.
func TestFaultAfterOperation(t *testing.T) {
	sim := use(t, sampleTopology(t), Options{})
	if err := sim.SetFaults([]FaultRule{{Op: "LoadBalancer.Create", Status: 500, After: true, Times: 1}}); err != nil {
		t.Fatal(err)
	}
	op := iaas.NewLoadBalancerOp(caller)
	_, err := op.Create(context.Background(), zone, lbRequest(sim.switchByName("k8s-global").ID, []string{"203.0.113.23"}, 7))
	if code, _ := apiStatus(err); code != 500 {
		t.Fatalf("create: %v, want 500", err)
	}
	res, err := op.Find(context.Background(), zone, &iaas.FindCondition{Filter: search.Filter{search.Key("Name"): search.ExactMatch("k8s-lb")}})
	if err != nil || res.Total != 1 {
		t.Fatalf("the load balancer should exist despite the error: %v %d", err, res.Total)
	}
}

// statusOf maps "vip:port/server" to UP/DOWN as the real client decodes Status.
func statusOf(t *testing.T, id types.ID) map[string]string {
	t.Helper()
	res, err := iaas.NewLoadBalancerOp(caller).Status(context.Background(), zone, id)
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	out := map[string]string{}
	for _, v := range res.Status {
		for _, sv := range v.Servers {
			out[fmt.Sprintf("%s:%d/%s:%d", v.VirtualIPAddress, v.Port.Int(), sv.IPAddress, sv.Port.Int())] = string(sv.Status)
		}
	}
	return out
}

func TestLoadBalancerStatusAndHealthOverride(t *testing.T) {
	var mu sync.Mutex
	clock := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }
	sim := use(t, sampleTopology(t), Options{BootDelay: time.Minute, Now: now})
	ctx := context.Background()
	op := iaas.NewLoadBalancerOp(caller)
	seeded := sim.Snapshot().LoadBalancers[0]
	const a, b = "192.168.100.200:80/192.168.100.11:80", "192.168.100.200:80/192.168.100.12:80"

	// Two VIPs on the seeded (up) appliance: port 80 with .11/.12, port 443 with .11.
	cur, err := op.Read(ctx, zone, seeded.ID)
	if err != nil {
		t.Fatal(err)
	}
	cur, err = op.UpdateSettings(ctx, zone, seeded.ID, &iaas.LoadBalancerUpdateSettingsRequest{SettingsHash: cur.SettingsHash,
		VirtualIPAddresses: append(cur.VirtualIPAddresses, vip("192.168.100.200", 443, "192.168.100.11"))})
	if err != nil {
		t.Fatal(err)
	}
	const c = "192.168.100.200:443/192.168.100.11:443"
	// Status follows the applied configuration: the new VIP shows once Config has applied it.
	if got := statusOf(t, seeded.ID); len(got) != 2 {
		t.Fatalf("status before Config: %v, want the two applied entries only", got)
	}
	if err := op.Config(ctx, zone, seeded.ID); err != nil {
		t.Fatal(err)
	}
	check := func(what string, want map[string]string) {
		t.Helper()
		if got := statusOf(t, seeded.ID); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s: status %v, want %v", what, got, want)
		}
	}
	check("all up", map[string]string{a: "UP", b: "UP", c: "UP"})

	if _, err := sim.PowerServer("worker-2", false); err != nil {
		t.Fatal(err)
	}
	check("worker-2 off", map[string]string{a: "UP", b: "DOWN", c: "UP"})
	if _, err := sim.PowerServer("worker-2", true); err != nil {
		t.Fatal(err)
	}

	// Admin override: whole address, then one port; up:true / DELETE clear.
	adminDo(t, "POST", "/_admin/realserver-health", `{"ip":"192.168.100.11","up":false}`, 200)
	check("override .11", map[string]string{a: "DOWN", b: "UP", c: "DOWN"})
	st := adminDo(t, "GET", "/_admin/state", "", 200)
	if fmt.Sprint(st["realServersDown"]) != "[map[ip:192.168.100.11]]" {
		t.Fatalf("state realServersDown: %v", st["realServersDown"])
	}
	adminDo(t, "POST", "/_admin/realserver-health", `{"ip":"192.168.100.11","up":true}`, 200)
	check("override cleared", map[string]string{a: "UP", b: "UP", c: "UP"})
	out := adminDo(t, "POST", "/_admin/realserver-health", `{"ip":"192.168.100.11","port":443,"up":false}`, 200)
	if fmt.Sprint(out["down"]) != "[map[ip:192.168.100.11 port:443]]" {
		t.Fatalf("override list: %v", out)
	}
	check("override .11:443", map[string]string{a: "UP", b: "UP", c: "DOWN"})
	adminDo(t, "DELETE", "/_admin/realserver-health", "", 200)
	check("overrides deleted", map[string]string{a: "UP", b: "UP", c: "UP"})
	adminDo(t, "POST", "/_admin/realserver-health", `{"ip":"nope","up":false}`, 400)
	adminDo(t, "POST", "/_admin/realserver-health", `{"ip":"192.168.100.11"}`, 400)

	// A disabled entry is DOWN.
	cur.VirtualIPAddresses[0].Servers[1].Enabled = types.StringFalse
	if _, err := op.UpdateSettings(ctx, zone, seeded.ID, &iaas.LoadBalancerUpdateSettingsRequest{
		SettingsHash: cur.SettingsHash, VirtualIPAddresses: cur.VirtualIPAddresses}); err != nil {
		t.Fatal(err)
	}
	check("disabled .12 saved, not applied", map[string]string{a: "UP", b: "UP", c: "UP"})
	if err := op.Config(ctx, zone, seeded.ID); err != nil {
		t.Fatal(err)
	}
	check("disabled .12", map[string]string{a: "UP", b: "DOWN", c: "UP"})

	// Faults apply and the op is counted as LoadBalancer.Status.
	if err := sim.SetFaults([]FaultRule{{Op: "LoadBalancer.Status", Status: 500, Times: 1}}); err != nil {
		t.Fatal(err)
	}
	if _, err := op.Status(ctx, zone, seeded.ID); err == nil {
		t.Fatalf("faulted status succeeded")
	} else if code, _ := apiStatus(err); code != 500 {
		t.Fatalf("faulted status: %v, want 500", err)
	}
	if n := sim.Requests().Operations["LoadBalancer.Status"]; n.ByStatus["200"] < 1 || n.ByStatus["500"] != 1 {
		t.Fatalf("LoadBalancer.Status counts: %+v", n)
	}

	// Unknown appliance: 404. Still being created: 409 still_creating.
	// Down: an empty list. Up again: statuses come back.
	if _, err := op.Status(ctx, zone, 999999999999); !iaas.IsNotFoundError(err) {
		t.Fatalf("unknown appliance: %v, want 404", err)
	}
	lb, err := op.Create(ctx, zone, lbRequest(sim.switchByName("k8s-global").ID, []string{"203.0.113.23"}, 7,
		vip("203.0.113.25", 80, "203.0.113.20")))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := op.Status(ctx, zone, lb.ID); err == nil {
		t.Fatalf("status while creating succeeded")
	} else if code, ec := apiStatus(err); code != 409 || ec != "still_creating" {
		t.Fatalf("status while creating: %d %s, want 409 still_creating", code, ec)
	}
	advance(time.Minute)
	if got := statusOf(t, lb.ID); got["203.0.113.25:80/203.0.113.20:80"] != "UP" {
		t.Fatalf("booted LB status: %v", got)
	}
	if err := op.Shutdown(ctx, zone, lb.ID, &iaas.ShutdownOption{}); err != nil {
		t.Fatal(err)
	}
	advance(time.Minute)
	if got := statusOf(t, lb.ID); len(got) != 0 {
		t.Fatalf("down LB status: %v, want empty", got)
	}
}
