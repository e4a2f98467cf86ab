package sakuraapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/fake"
	"github.com/sacloud/iaas-api-go/search"
	"github.com/sacloud/iaas-api-go/types"
)

// cannedCaller answers every request with the next scripted status (0:
// success with body) and records what was asked.
type cannedCaller struct {
	mu      sync.Mutex
	body    string
	codes   []int
	methods []string
	urls    []string
	bodies  []string
}

func (c *cannedCaller) Do(ctx context.Context, method, uri string, body interface{}) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	sent, _ := json.Marshal(body)
	c.methods, c.urls, c.bodies = append(c.methods, method), append(c.urls, uri), append(c.bodies, string(sent))
	if n := len(c.methods) - 1; n < len(c.codes) && c.codes[n] != 0 {
		return nil, apiError(c.codes[n])
	}
	return []byte(c.body), nil
}

// The elements below follow the shape of the API's answers (IDs as
// strings, addresses under Remark and Settings), one per class.
const (
	lbJSON = `{"ID":"113100000101","Class":"loadbalancer","Name":"lb-a","Description":"","Tags":["cluster=c1","service-uid=u1"],
		"Availability":"available","Instance":{"Status":"up","StatusChangedAt":"2024-01-02T03:04:05+09:00"},
		"Plan":{"ID":2},"ServiceClass":"cloud/appliance/loadbalancer/2",
		"Remark":{"Switch":{"ID":"113100000010"},"VRRP":{"VRID":7},"Network":{"NetworkMaskLen":28,"DefaultRoute":"203.0.113.17"},
			"Servers":[{"IPAddress":"203.0.113.22"},{"IPAddress":"203.0.113.23"}],"Zone":{"ID":"31001"},"Plan":{"ID":2}},
		"Settings":{"LoadBalancer":[{"VirtualIPAddress":"203.0.113.24","Port":"80","DelayLoop":"10","SorryServer":"","Description":"",
			"Servers":[{"IPAddress":"203.0.113.20","Port":"80","HealthCheck":{"Protocol":"tcp"},"Enabled":"True"}]}]},
		"SettingsHash":"abc123","CreatedAt":"2024-01-02T03:04:05+09:00"}`
	vpcRouterJSON = `{"ID":"113100000102","Class":"vpcrouter","Name":"office","Tags":[],"Availability":"available",
		"Instance":{"Status":"up"},"Plan":{"ID":2},
		"Remark":{"Router":{"VPCRouterVersion":2},"Servers":[{"IPAddress":"192.168.100.2"},{"IPAddress":"192.168.100.3"}],
			"VRRP":{"VRID":1},"Zone":{"ID":"31001"}},
		"Settings":{"Router":{"VRID":1,"Interfaces":[null,{"IPAddress":["192.168.100.2","192.168.100.3"],
			"VirtualIPAddress":"192.168.100.1","IPAliases":["192.168.100.4"],"NetworkMaskLen":24,"Index":1}]}},
		"Interfaces":[{"IPAddress":"198.51.100.7","Switch":{"ID":"113100000001","Scope":"shared"}},
			{"Index":1,"Switch":{"ID":"113100000020","Scope":"user"}}]}`
	databaseJSON = `{"ID":"113100000103","Class":"database","Name":"db","Tags":["@MariaDB"],"Availability":"available",
		"Instance":{"Status":"up"},
		"Remark":{"Switch":{"ID":"113100000020"},"Network":{"NetworkMaskLen":24,"DefaultRoute":"192.168.100.1"},
			"Servers":[{"IPAddress":"192.168.100.31"},{"IPAddress":"192.168.100.32"}],"Zone":{"ID":"31001"},"Plan":{"ID":10}},
		"Settings":{"DBConf":{"Common":{"DefaultUser":"app"},"Interfaces":[{"VirtualIPAddress":"192.168.100.30","Index":0}]}},
		"Interfaces":[{"IPAddress":"","Switch":{"ID":"113100000020","Scope":"user"}}]}`
	nfsJSON = `{"ID":"113100000104","Class":"nfs","Name":"share","Tags":[],"Availability":"available","Instance":{"Status":"up"},
		"Remark":{"Switch":{"ID":"113100000020"},"Network":{"NetworkMaskLen":24,"DefaultRoute":"192.168.100.1"},
			"Servers":[{"IPAddress":"192.168.100.40"}],"Zone":{"ID":"31001"},"Plan":{"ID":"100"}},
		"Switch":{"ID":"113100000020","Name":"k8s-private"}}`
	mobileGatewayJSON = `{"ID":"113100000105","Class":"mobilegateway","Name":"mgw","Tags":[],"Availability":"available",
		"Instance":{"Status":"up"},"Remark":{"MobileGateway":{"GlobalAddress":"198.51.100.9"},"Zone":{"ID":"31001"}},
		"Settings":{"MobileGateway":{"Interfaces":[null,{"IPAddress":["192.168.100.50"],"NetworkMaskLen":24,"Index":1}],
			"InternetConnection":{"Enabled":"True"}}},
		"Interfaces":[{"IPAddress":"198.51.100.9","Switch":{"ID":"113100000001","Scope":"shared"}},
			{"Index":1,"Switch":{"ID":"113100000020","Scope":"user"}}]}`
	unknownJSON = `{"ID":"113100000106","Class":"somethingnew","Name":"future","Remark":{"Servers":[{"IPAddress":"192.168.100.60"}]}}`
)

func page(total int, elements ...string) string {
	return fmt.Sprintf(`{"Total":%d,"From":0,"Count":%d,"Appliances":[%s],"is_ok":true}`, total, len(elements), strings.Join(elements, ","))
}

func TestDecodeAppliancesByClass(t *testing.T) {
	for _, tc := range []struct {
		name    string
		element string
		check   func(t *testing.T, r *ApplianceFindResult)
	}{
		{"load balancer", lbJSON, func(t *testing.T, r *ApplianceFindResult) {
			if len(r.LoadBalancers) != 1 {
				t.Fatalf("load balancers: %+v", r.LoadBalancers)
			}
			lb := r.LoadBalancers[0]
			if lb.ID != 113100000101 || lb.Name != "lb-a" || lb.SwitchID != 113100000010 || lb.VRID != 7 ||
				lb.NetworkMaskLen != 28 || lb.DefaultRoute != "203.0.113.17" || lb.SettingsHash != "abc123" ||
				lb.InstanceStatus != types.ServerInstanceStatuses.Up || lb.PlanID != 2 {
				t.Errorf("fields: %+v", lb)
			}
			if !reflect.DeepEqual(lb.IPAddresses, []string{"203.0.113.22", "203.0.113.23"}) {
				t.Errorf("IPAddresses = %v", lb.IPAddresses)
			}
			if !reflect.DeepEqual([]string(lb.Tags), []string{"cluster=c1", "service-uid=u1"}) {
				t.Errorf("Tags = %v", lb.Tags)
			}
			if len(lb.VirtualIPAddresses) != 1 || lb.VirtualIPAddresses[0].VirtualIPAddress != "203.0.113.24" ||
				lb.VirtualIPAddresses[0].Port != 80 || len(lb.VirtualIPAddresses[0].Servers) != 1 ||
				lb.VirtualIPAddresses[0].Servers[0].IPAddress != "203.0.113.20" || !lb.VirtualIPAddresses[0].Servers[0].Enabled {
				t.Errorf("VIPs = %+v", lb.VirtualIPAddresses)
			}
		}},
		{"VPC router", vpcRouterJSON, func(t *testing.T, r *ApplianceFindResult) {
			if len(r.VPCRouters) != 1 {
				t.Fatalf("VPC routers: %+v", r.VPCRouters)
			}
			vr := r.VPCRouters[0]
			if vr.ID != 113100000102 || vr.Settings == nil || vr.Settings.VRID != 1 || len(vr.Interfaces) != 2 ||
				vr.Interfaces[1].SwitchID != 113100000020 || vr.Interfaces[1].Index != 1 {
				t.Fatalf("fields: %+v", vr)
			}
			var on *iaas.VPCRouterInterfaceSetting
			for _, s := range vr.Settings.Interfaces {
				if s != nil && s.Index == 1 {
					on = s
				}
			}
			if on == nil || on.VirtualIPAddress != "192.168.100.1" || !reflect.DeepEqual(on.IPAddress, []string{"192.168.100.2", "192.168.100.3"}) ||
				!reflect.DeepEqual(on.IPAliases, []string{"192.168.100.4"}) {
				t.Errorf("interface settings: %+v", vr.Settings.Interfaces)
			}
		}},
		{"database", databaseJSON, func(t *testing.T, r *ApplianceFindResult) {
			if len(r.Databases) != 1 {
				t.Fatalf("databases: %+v", r.Databases)
			}
			db := r.Databases[0]
			if db.ID != 113100000103 || db.SwitchID != 113100000020 || !reflect.DeepEqual(db.IPAddresses, []string{"192.168.100.31", "192.168.100.32"}) ||
				len(db.InterfaceSettings) != 1 || db.InterfaceSettings[0].VirtualIPAddress != "192.168.100.30" {
				t.Errorf("fields: %+v", db)
			}
		}},
		{"NFS", nfsJSON, func(t *testing.T, r *ApplianceFindResult) {
			if len(r.NFS) != 1 {
				t.Fatalf("NFS: %+v", r.NFS)
			}
			n := r.NFS[0]
			if n.ID != 113100000104 || n.SwitchID != 113100000020 || !reflect.DeepEqual(n.IPAddresses, []string{"192.168.100.40"}) {
				t.Errorf("fields: %+v", n)
			}
		}},
		{"mobile gateway", mobileGatewayJSON, func(t *testing.T, r *ApplianceFindResult) {
			if len(r.MobileGateways) != 1 {
				t.Fatalf("mobile gateways: %+v", r.MobileGateways)
			}
			m := r.MobileGateways[0]
			if m.ID != 113100000105 || len(m.Interfaces) != 2 || m.Interfaces[1].SwitchID != 113100000020 || m.GlobalAddress != "198.51.100.9" {
				t.Fatalf("fields: %+v", m)
			}
			var ips []string
			for _, s := range m.InterfaceSettings {
				if s != nil && s.Index == 1 {
					ips = s.IPAddress
				}
			}
			if !reflect.DeepEqual(ips, []string{"192.168.100.50"}) {
				t.Errorf("interface settings: %+v", m.InterfaceSettings)
			}
		}},
		{"unknown class", unknownJSON, func(t *testing.T, r *ApplianceFindResult) {
			if n := len(r.LoadBalancers) + len(r.VPCRouters) + len(r.Databases) + len(r.NFS) + len(r.MobileGateways); n != 0 {
				t.Errorf("an unknown class was kept: %+v", r.Appliances)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := decodeAppliances([]byte(page(1, tc.element)))
			if err != nil {
				t.Fatal(err)
			}
			if r.Total != 1 || r.Count != 1 {
				t.Errorf("Total %d Count %d, want 1 1", r.Total, r.Count)
			}
			tc.check(t, r)
		})
	}
}

// One listing holds every class; Count counts the skipped ones too, so
// that paging advances past them.
func TestApplianceFindListsEveryClassInOneCall(t *testing.T) {
	caller := &cannedCaller{body: page(9, lbJSON, vpcRouterJSON, databaseJSON, nfsJSON, mobileGatewayJSON, unknownJSON)}
	c := NewFromCaller(caller, "is1a", Limits{})
	cond := &iaas.FindCondition{Count: 100, From: 0, Filter: search.Filter{search.Key("Tags.Name"): search.TagsAndEqual("cluster=c1")}}
	r, err := c.Appliances.Find(context.Background(), "is1a", cond)
	if err != nil {
		t.Fatal(err)
	}
	if r.Total != 9 || r.Count != 6 || len(r.LoadBalancers) != 1 || len(r.VPCRouters) != 1 || len(r.Databases) != 1 ||
		len(r.NFS) != 1 || len(r.MobileGateways) != 1 {
		t.Errorf("result: Total %d Count %d %+v", r.Total, r.Count, r.Appliances)
	}
	if len(caller.urls) != 1 || caller.methods[0] != http.MethodGet ||
		caller.urls[0] != iaas.SakuraCloudAPIRoot+"/is1a/api/cloud/1.1/appliance" {
		t.Fatalf("requests: %v %v", caller.methods, caller.urls)
	}
	var sent struct {
		Count, From int
		Filter      map[string]json.RawMessage
	}
	if err := json.Unmarshal([]byte(caller.bodies[0]), &sent); err != nil {
		t.Fatalf("body %s: %v", caller.bodies[0], err)
	}
	if sent.Count != 100 || sent.Filter["Class"] != nil || sent.Filter["Tags.Name"] == nil {
		t.Errorf("condition sent: %s", caller.bodies[0])
	}
	if got := c.Stats().Snapshot()[CallKey{"Appliance.Find", ResultOK}]; got != 1 {
		t.Errorf("Appliance.Find counted %d times, want 1: %v", got, c.Stats().Snapshot())
	}
}

// The listing is under the client's policy: a 503 is retried and counted.
func TestApplianceFindIsRetriedAndCounted(t *testing.T) {
	caller := &cannedCaller{body: page(1, lbJSON), codes: []int{http.StatusServiceUnavailable}}
	c := NewFromCaller(caller, "is1a", Limits{RetryMax: 2})
	c.sleep = func(context.Context, time.Duration) error { return nil }
	r, err := c.Appliances.Find(context.Background(), "is1a", nil)
	if err != nil || len(r.LoadBalancers) != 1 {
		t.Fatalf("%v %+v", err, r)
	}
	s := c.Stats().Snapshot()
	if s[CallKey{"Appliance.Find", ResultUnavailable}] != 1 || s[CallKey{"Appliance.Find", ResultOK}] != 1 {
		t.Errorf("counted: %v", s)
	}
}

func TestDecodeAppliancesRefusesGarbage(t *testing.T) {
	for _, in := range []string{`not json`, `{"Appliances":[1]}`, `{"Appliances":[{"Class":"loadbalancer","ID":{}}]}`} {
		if _, err := decodeAppliances([]byte(in)); err == nil {
			t.Errorf("%s: no error", in)
		}
	}
}

// In iaas-api-go's fake mode (no caller) the listing is made of the class
// finds, so tests of the engine on the fake see every class.
func TestApplianceFindInFakeMode(t *testing.T) {
	fake.SwitchFactoryFuncToFake()
	ctx := context.Background()
	c := NewFromCaller(nil, "is1a", Limits{})
	lb, err := iaas.NewLoadBalancerOp(nil).Create(ctx, "is1a", &iaas.LoadBalancerCreateRequest{SwitchID: 1, PlanID: types.LoadBalancerPlans.Standard,
		VRID: 3, IPAddresses: []string{"192.168.0.11"}, NetworkMaskLen: 24, DefaultRoute: "192.168.0.1", Name: "lb"})
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.Appliances.Find(ctx, "is1a", &iaas.FindCondition{Count: 100})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, got := range r.LoadBalancers {
		found = found || got.ID == lb.ID
	}
	if !found || r.Total != r.Count {
		t.Errorf("fake-mode listing: Total %d Count %d %+v", r.Total, r.Count, r.LoadBalancers)
	}
	if next, err := c.Appliances.Find(ctx, "is1a", &iaas.FindCondition{Count: 100, From: r.Count}); err != nil || next.Count != 0 {
		t.Errorf("second page: %v %+v", err, next)
	}
}
