package sakurasim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/search"
	"github.com/sacloud/iaas-api-go/types"
)

// filterWorld: the sample topology plus two cluster load balancers.
func filterWorld(t *testing.T) *Simulator {
	t.Helper()
	sim := use(t, sampleTopology(t), Options{BootDelay: time.Millisecond})
	op := iaas.NewLoadBalancerOp(caller)
	sw := sim.switchByName("k8s-global").ID
	for i, svc := range []string{"ns/a", "ns/b"} {
		req := lbRequest(sw, []string{fmt.Sprintf("203.0.113.%d", 23+i)}, 7+i, vip(fmt.Sprintf("203.0.113.%d", 27+i), 80, "203.0.113.20"))
		req.Name = "k8s-lb-" + strings.TrimPrefix(svc, "ns/")
		req.Description = "service " + svc
		req.Tags = types.Tags{"k8s", "cluster=abc", "service=" + svc}
		if _, err := op.Create(context.Background(), zone, req); err != nil {
			t.Fatal(err)
		}
	}
	return sim
}

func apiMessage(err error) string {
	var ae iaas.APIError
	if errors.As(err, &ae) {
		return ae.Message()
	}
	return ""
}

// The CCM's own forms (iaas-api-go search.Key("Tags.Name") with
// search.TagsAndEqual) filter, instead of answering with everything.
func TestTagsNameFilterLikeTheCCM(t *testing.T) {
	filterWorld(t)
	ctx := context.Background()
	lbOp := iaas.NewLoadBalancerOp(caller)
	lbs := func(f search.Filter) []string {
		t.Helper()
		res, err := lbOp.Find(ctx, zone, &iaas.FindCondition{Filter: f})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, lb := range res.LoadBalancers {
			names = append(names, lb.Name)
		}
		return names
	}
	tags := search.Key("Tags.Name")
	for _, tc := range []struct {
		f    search.Filter
		want string
	}{
		{search.Filter{tags: search.TagsAndEqual("cluster=abc")}, "[k8s-lb-a k8s-lb-b]"},
		{search.Filter{tags: search.TagsAndEqual("cluster=abc", "service=ns/a")}, "[k8s-lb-a]"},
		{search.Filter{tags: search.TagsAndEqual("cluster=xyz")}, "[]"},
		{search.Filter{tags: search.TagsAndEqual("cluster=abc", "not-k8s")}, "[]"},
		{search.Filter{tags: "not-k8s"}, "[someone-elses-lb]"},
		{search.Filter{tags: search.OrEqual("service=ns/b", "not-k8s")}, "[someone-elses-lb k8s-lb-b]"},
		{search.Filter{tags: search.TagsAndEqual("k8s"), search.Key("Name"): search.PartialMatch("lb-b")}, "[k8s-lb-b]"},
	} {
		data, _ := json.Marshal(tc.f)
		if got := fmt.Sprint(lbs(tc.f)); got != tc.want && !(tc.want == "[]" && got == "[]") {
			t.Errorf("LoadBalancer.Find %s: %s, want %s", data, got, tc.want)
		}
	}
	sw, err := iaas.NewSwitchOp(caller).Find(ctx, zone, &iaas.FindCondition{Filter: search.Filter{tags: search.TagsAndEqual("k8s")}})
	if err != nil || sw.Total != 2 {
		t.Fatalf("Switch.Find by tag: %v %d", err, sw.Total)
	}
	sw, err = iaas.NewSwitchOp(caller).Find(ctx, zone, &iaas.FindCondition{Filter: search.Filter{tags: search.TagsAndEqual("k8s", "nope")}})
	if err != nil || sw.Total != 0 {
		t.Fatalf("Switch.Find by a missing tag: %v %d", err, sw.Total)
	}
	inet, err := iaas.NewInternetOp(caller).Find(ctx, zone, &iaas.FindCondition{Filter: search.Filter{tags: search.TagsAndEqual("k8s")}})
	if err != nil || inet.Total != 1 {
		t.Fatalf("Internet.Find by tag: %v %d", err, inet.Total)
	}
	srv, err := iaas.NewServerOp(caller).Find(ctx, zone, &iaas.FindCondition{Filter: search.Filter{tags: search.TagsAndEqual("worker")}})
	if err != nil || srv.Total != 3 {
		t.Fatalf("Server.Find by tag: %v %d", err, srv.Total)
	}
}

// libsacloud's filter forms (raw query; see api/base_api.go filterBy):
// scalar strings (WithTag, WithNameLike, FilterBy("Class", ...)), words
// joined with %20 (a repeated WithTag), and plain arrays (WithTags).
func TestLibsacloudFilterForms(t *testing.T) {
	filterWorld(t)
	names := func(path, cond string) string {
		t.Helper()
		code, data := lsDo(t, "GET", path, cond, "")
		var out struct {
			Total      int
			Appliances []struct{ Name string }
			Servers    []struct{ Name string }
		}
		if code != 200 || json.Unmarshal(data, &out) != nil {
			t.Fatalf("%s?%s: %d %s", path, cond, code, data)
		}
		var n []string
		for _, a := range out.Appliances {
			n = append(n, a.Name)
		}
		for _, s := range out.Servers {
			n = append(n, s.Name)
		}
		return fmt.Sprint(n)
	}
	for _, tc := range []struct{ cond, want string }{
		{`{"Filter":{"Class":"loadbalancer"}}`, "[someone-elses-lb k8s-lb-a k8s-lb-b]"},
		{`{"Filter":{"Class":"loadbalancer","Tags.Name":"k8s"}}`, "[k8s-lb-a k8s-lb-b]"},
		{`{"Filter":{"Class":"loadbalancer","Tags.Name":"k8s%20service=ns/a"}}`, "[k8s-lb-a]"},
		{`{"Filter":{"Class":"loadbalancer","Tags.Name":["service=ns/a","not-k8s"]}}`, "[someone-elses-lb k8s-lb-a]"},
		{`{"Filter":{"Class":"loadbalancer","Name":"K8S%20lb"}}`, "[k8s-lb-a k8s-lb-b]"},
		{`{"Filter":{"Class":"vpcrouter","Name":"office"}}`, "[office-vpc-router]"},
		{`{"Filter":{"Tags.Name":"k8s"},"Sort":["-Name"]}`, "[k8s-lb-b k8s-lb-a]"},
	} {
		if got := names("appliance", tc.cond); got != tc.want {
			t.Errorf("appliance?%s: %s, want %s", tc.cond, got, tc.want)
		}
	}
	if got := names("server", `{"Filter":{"Tags.Name":"worker","Name":"worker-2"}}`); got != "[worker-2]" {
		t.Errorf("server by tag and name: %s", got)
	}
}

// Every accepted key filters on the field of that name in the answer.
func TestOtherFilterKeys(t *testing.T) {
	sim := filterWorld(t)
	ctx := context.Background()
	eventually(t, "LBs up", func() bool {
		res, _ := iaas.NewLoadBalancerOp(caller).Find(ctx, zone, &iaas.FindCondition{})
		for _, lb := range res.LoadBalancers {
			if !lb.InstanceStatus.IsUp() {
				return false
			}
		}
		return res.Total == 3
	})
	private := sim.switchByName("k8s-private").ID
	global := sim.switchByName("k8s-global").ID
	seeded := sim.lbs[0].ID
	if _, err := sim.PowerServer("worker-3", false); err != nil {
		t.Fatal(err)
	}
	total := func(path string, f map[string]any) int {
		t.Helper()
		cond, _ := json.Marshal(map[string]any{"Filter": f})
		code, data := lsDo(t, "GET", path, string(cond), "")
		var out struct{ Total int }
		if code != 200 || json.Unmarshal(data, &out) != nil {
			t.Fatalf("%s?%s: %d %s", path, cond, code, data)
		}
		return out.Total
	}
	for _, tc := range []struct {
		path string
		f    map[string]any
		want int
	}{
		{"appliance", map[string]any{"ID": []string{seeded.String()}}, 1},
		{"appliance", map[string]any{"ID": seeded.Int64()}, 1},
		{"appliance", map[string]any{"Class": []string{"loadbalancer", "vpcrouter"}}, 4},
		{"appliance", map[string]any{"Switch.ID": []string{private.String()}}, 1}, // VPC routers have no top-level Switch
		{"appliance", map[string]any{"Switch.ID": global.String()}, 2},
		{"appliance", map[string]any{"Class": "loadbalancer", "Instance.Status": "up"}, 3},
		{"appliance", map[string]any{"Availability": []string{"available"}}, 4},
		{"appliance", map[string]any{"Plan.ID": "2"}, 1},
		{"appliance", map[string]any{"Description": "service%20ns/b"}, 1},
		{"appliance", map[string]any{"Zone.Name": "is1a"}, 4},
		{"appliance", map[string]any{"Zone.ID": []string{"21001"}}, 0},
		{"appliance", map[string]any{"Name": nil}, 4}, // null: no condition
		{"server", map[string]any{"Interfaces.Switch.ID": []string{private.String()}}, 2},
		{"server", map[string]any{"Interfaces.Switch.ID": []any{[]string{private.String(), global.String()}}}, 2},
		{"server", map[string]any{"ServerPlan.CPU": 4}, 1},
		{"server", map[string]any{"ServerPlan.MemoryMB": []string{"4096"}}, 2},
		{"server", map[string]any{"ServerPlan.GPU": 0}, 3},
		{"server", map[string]any{"ServerPlan.ID": "8004"}, 1},
		{"server", map[string]any{"Instance.Status": "down"}, 1},
		{"server", map[string]any{"HostName": "WORKER"}, 3},
		{"server", map[string]any{"Availability": "available", "Zone.Name": []string{"is1a", "is1b"}}, 3},
		{"switch", map[string]any{"Scope": "user"}, 2},
		{"switch", map[string]any{"Scope": []string{"shared"}}, 0},
		{"switch", map[string]any{"ID": []string{private.String(), global.String()}}, 2},
		{"internet", map[string]any{"BandWidthMbps": 100, "Switch.ID": global.String(), "Scope": "user"}, 1},
		{"internet", map[string]any{"BandWidthMbps": 500}, 0},
		{"zone", map[string]any{"Name": "is1a"}, 1},
		{"zone", map[string]any{"ID": []string{"31002"}}, 0},
	} {
		if got := total(tc.path, tc.f); got != tc.want {
			data, _ := json.Marshal(tc.f)
			t.Errorf("%s %s: Total %d, want %d", tc.path, data, got, tc.want)
		}
	}

	// Sort by ID or Name, descending with "-"; iaas-api-go's SortKeys too.
	res, err := iaas.NewServerOp(caller).Find(ctx, zone, &iaas.FindCondition{Sort: search.SortKeys{search.SortKeyDesc("Name")}})
	if err != nil || res.Servers[0].Name != "worker-3" || res.Servers[2].Name != "worker-1" {
		t.Fatalf("sort by -Name: %v", err)
	}
	res, err = iaas.NewServerOp(caller).Find(ctx, zone, &iaas.FindCondition{Count: 1, From: 1, Sort: search.SortKeys{search.SortKeyDesc("ID")}})
	if err != nil || res.Total != 3 || len(res.Servers) != 1 || res.Servers[0].Name != "worker-2" {
		t.Fatalf("sort by -ID, second page: %v %+v", err, res)
	}
}

// A filter the simulator cannot interpret is refused with 400 naming the
// key, rather than ignored (which would answer with everything).
func TestUninterpretableFiltersAreRefused(t *testing.T) {
	sim := filterWorld(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		find func() error
		key  string
	}{
		{"unknown key", func() error {
			_, err := iaas.NewLoadBalancerOp(caller).Find(ctx, zone, &iaas.FindCondition{Filter: search.Filter{search.Key("Remark.Nope"): "x"}})
			return err
		}, `"Remark.Nope"`},
		{"comparison operator", func() error {
			_, err := iaas.NewServerOp(caller).Find(ctx, zone, &iaas.FindCondition{Filter: search.Filter{
				search.KeyWithOp("CreatedAt", search.OpLessThan): time.Now()}})
			return err
		}, `"CreatedAt<"`},
		{"Scope on appliances", func() error {
			_, err := iaas.NewLoadBalancerOp(caller).Find(ctx, zone, &iaas.FindCondition{Filter: search.Filter{search.Key("Scope"): "user"}})
			return err
		}, `"Scope"`},
		{"Class on servers", func() error {
			_, err := iaas.NewServerOp(caller).Find(ctx, zone, &iaas.FindCondition{Filter: search.Filter{search.Key("Class"): "server"}})
			return err
		}, `"Class"`},
		{"Switch.ID on servers (the key is Interfaces.Switch.ID)", func() error {
			_, err := iaas.NewServerOp(caller).Find(ctx, zone, &iaas.FindCondition{Filter: search.Filter{search.Key("Switch.ID"): "1"}})
			return err
		}, `"Switch.ID"`},
		{"database find with an unknown key", func() error {
			_, err := iaas.NewDatabaseOp(caller).Find(ctx, zone, &iaas.FindCondition{Filter: search.Filter{search.Key("Remark.DBConf"): "x"}})
			return err
		}, `"Remark.DBConf"`},
		{"sort key", func() error {
			_, err := iaas.NewSwitchOp(caller).Find(ctx, zone, &iaas.FindCondition{Sort: search.SortKeys{search.SortKeyAsc("CreatedAt")}})
			return err
		}, `"CreatedAt"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.find()
			code, ec := apiStatus(err)
			if code != 400 || ec != "bad_request" || !strings.Contains(apiMessage(err), tc.key) {
				t.Fatalf("got %v (%d %s), want 400 bad_request naming %s", err, code, ec, tc.key)
			}
		})
	}
	for _, cond := range []string{
		`{"Filter":{"Name":true}}`, `{"Filter":{"Name":{"a":1}}}`, `{"Filter":{"Tags.Name":[[["deep"]]]}}`,
		`{"Filter":{"Zone.Foo":"x"}}`,
	} {
		code, data := lsDo(t, "GET", "server", url.PathEscape(cond), "")
		var e lsResultErrorValue
		_ = json.Unmarshal(data, &e)
		if code != 400 || e.ErrorCode != "bad_request" || !strings.Contains(e.ErrorMessage, "Filter key") {
			t.Errorf("%s: %d %s", cond, code, data)
		}
	}
	if n := sim.Requests().Operations["Server.Find"].ByStatus["400"]; n != 7 {
		t.Errorf("refused Server.Find counted %d times, want 7", n)
	}
}

// Each resource's record carries exactly the keys its find accepts, and the
// docs list them.
func TestFilterKeysConsistent(t *testing.T) {
	sim := use(t, sampleTopology(t), Options{})
	doc, err := readDoc()
	if err != nil {
		t.Fatal(err)
	}
	z := sim.nakedZone()
	for name, tc := range map[string]struct {
		f   *findable
		rec record
	}{
		"server":     {serverKeys, sim.serverRecord(sim.servers[0])},
		"switch":     {switchKeys, sim.switchRecord(sim.switches[0])},
		"internet":   {internetKeys, sim.internetRecord(sim.routers[0])},
		"lb":         {applianceKeys, sim.lbRecord(sim.lbs[0])},
		"vpc router": {applianceKeys, sim.vpcRouterRecord(sim.vpcRouters[0])},
		"zone":       {zoneKeys, record{"ID": ids(z.ID), "Name": {z.Name}}},
		"proxylb":    {proxyLBKeys, plbRecord(&proxyLB{ID: 1})},
		"bridge":     {bridgeKeys, bridgeRecord(&bridge{ID: 1})},
	} {
		var want, got []string
		for k := range tc.f.keys {
			want = append(want, k)
			if !strings.Contains(doc, "`"+k+"`") {
				t.Errorf("docs/simulator.md does not list filter key `%s`", k)
			}
		}
		for k := range tc.rec {
			got = append(got, k)
		}
		sort.Strings(want)
		sort.Strings(got)
		if name == "vpc router" {
			want = without(want, "Switch.ID")
		}
		if fmt.Sprint(want) != fmt.Sprint(got) {
			t.Errorf("%s: record keys %v, find keys %v", name, got, want)
		}
	}
}

func readDoc() (string, error) {
	data, err := os.ReadFile("../../docs/simulator.md")
	return string(data), err
}

func without(list []string, drop string) []string {
	var out []string
	for _, s := range list {
		if s != drop {
			out = append(out, s)
		}
	}
	return out
}
