package sakurasim

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/search"
	"github.com/sacloud/iaas-api-go/types"
)

// The structs below mirror the field types libsacloud v1 (v1.27.1, the
// earlier controller's client) decodes answers into: sacloud.LoadBalancer
// and the props it embeds, sacloud.ResultFlagValue (power and config
// answers), api.loadBalancerResponse / loadBalancerStatusResponse /
// SearchLoadBalancerResponse and sacloud.ResultErrorValue. Plain
// encoding/json into them fails exactly where libsacloud would (a string
// where it declares a bool, a number where it declares a string).
type lsResource struct {
	ID int64
}

type lsZone struct {
	ID          int64
	Name        string
	Description string
	Region      *struct {
		ID          int64
		Name        string
		Description string
		NameServers []string
	}
}

type lsInternet struct {
	ID             int64
	Name           string
	Description    string
	Scope          string
	ServiceClass   string
	Switch         *lsSwitch
	Tags           []string
	CreatedAt      *time.Time
	BandWidthMbps  int
	NetworkMaskLen int
}

type lsSubnet struct {
	ID             int64
	ServiceClass   string
	CreatedAt      *time.Time
	DefaultRoute   string
	NetworkAddress string
	NetworkMaskLen int
	ServiceID      int64
	StaticRoute    string
	NextHop        string
	Switch         *lsSwitch
	Internet       *lsInternet
}

type lsSwitchSubnet struct {
	lsSubnet
	IPAddresses struct {
		Min string
		Max string
	}
}

type lsSwitch struct {
	ID             int64
	Name           string
	Description    string
	ServiceClass   string
	Icon           *lsResource
	Tags           []string
	CreatedAt      *time.Time
	Zone           *lsZone
	ServerCount    int
	ApplianceCount int
	Scope          string
	Subnet         *lsSubnet
	UserSubnet     *lsSubnet
	Subnets        []lsSwitchSubnet
	Internet       *lsInternet
}

type lsInterface struct {
	ID            int64
	Server        *lsResource
	Switch        *lsSwitch
	MACAddress    string
	IPAddress     string
	UserIPAddress string
	HostName      string
}

type lsInstance struct {
	Status            string
	BeforeStatus      string
	Server            lsResource
	StatusChangedAt   *time.Time
	MigrationProgress string
	IsMigrating       bool
	ModifiedAt        *time.Time
}

type lsLBServer struct {
	IPAddress   string
	Port        string
	HealthCheck *struct {
		Protocol string
		Path     string
		Status   string
	}
	Enabled    string
	Status     string
	ActiveConn string
}

type lsLBSetting struct {
	VirtualIPAddress string
	Port             string
	DelayLoop        string
	SorryServer      string
	Description      string
	Servers          []*lsLBServer
}

type lsLoadBalancer struct {
	ID           int64
	Availability string
	Name         string
	Description  string
	Plan         *lsResource
	ServiceClass string
	Instance     *lsInstance
	Switch       *lsSwitch
	Interfaces   []lsInterface
	Icon         *lsResource
	Tags         []string
	CreatedAt    *time.Time
	Class        string
	SettingHash  string
	Remark       *struct {
		Servers []any
		Switch  *struct {
			ID    string // libsacloud: sacloud.ApplianceRemarkSwitch.ID is a string
			Scope string
		}
		VRRP    *struct{ VRID int }
		Network *struct {
			NetworkMaskLen int
			DefaultRoute   string
		}
	}
	Settings *struct {
		LoadBalancer []*lsLBSetting
	}
}

type lsLBResponse struct {
	IsOk         bool            `json:"is_ok,omitempty"`
	Success      any             // libsacloud: interface{}, "cannot be converted to bool"
	LoadBalancer *lsLoadBalancer `json:"Appliance,omitempty"`
}

type lsFindLBResponse struct {
	Total         int
	From          int
	Count         int
	LoadBalancers []lsLoadBalancer `json:"Appliances,omitempty"`
}

type lsFindSwitchResponse struct {
	Total    int
	From     int
	Count    int
	Switches []lsSwitch
	Internet []lsInternet
}

// lsResultFlagValue is what libsacloud's modify (Boot, Shutdown, Stop, Config) decodes.
type lsResultFlagValue struct {
	IsOk    bool `json:"is_ok,omitempty"`
	Success bool `json:",omitempty"`
}

type lsStatusResponse struct {
	IsOk         bool `json:"is_ok,omitempty"`
	Success      any
	LoadBalancer []*struct {
		VirtualIPAddress string
		Port             string
		Servers          []*struct {
			ActiveConn string
			IPAddress  string
			Status     string
			Port       string
			CPS        string
		}
		CPS string
	}
}

type lsResultErrorValue struct {
	IsFatal      bool   `json:"is_fatal,omitempty"`
	Serial       string `json:"serial,omitempty"`
	Status       string `json:"status,omitempty"`
	ErrorCode    string `json:"error_code,omitempty"`
	ErrorMessage string `json:"error_msg,omitempty"`
}

// lsDo sends a request the way libsacloud's Client.newRequest does: a GET
// carries its JSON condition raw after "?", other methods a JSON body, and
// every request has Basic auth and X-Sakura-Bigint-As-Int: 1.
func lsDo(t *testing.T, method, path, cond, body string) (int, []byte) {
	t.Helper()
	u := baseURL + "/is1a/api/cloud/1.1/" + path
	if cond != "" {
		u += "?" + cond
	}
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(testToken, testSecret)
	req.Header.Add("X-Sakura-Bigint-As-Int", "1")
	req.Header.Add("User-Agent", "libsacloud/1.27.1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

// lsDecode decodes like libsacloud: plain json.Unmarshal into its types.
func lsDecode(t *testing.T, what string, data []byte, out any) {
	t.Helper()
	if err := json.Unmarshal(data, out); err != nil {
		t.Fatalf("%s: libsacloud v1 could not decode the answer: %v\n%s", what, err, data)
	}
}

// The mirrors are faithful: the answers the simulator used to send fail.
func TestLibsacloudMirrorRejectsOldWireForm(t *testing.T) {
	if err := json.Unmarshal([]byte(`{"is_ok":true,"Success":"Accepted"}`), &lsResultFlagValue{}); err == nil {
		t.Error(`Success "Accepted" decoded into libsacloud's bool`)
	}
	if err := json.Unmarshal([]byte(`{"Appliance":{"Remark":{"Switch":{"ID":113100000005}}}}`), &lsLBResponse{}); err == nil {
		t.Error("a numeric Remark.Switch.ID decoded into libsacloud's string")
	}
}

// Every load balancer answer decodes with libsacloud v1's types and with
// iaas-api-go; Remark.Switch.ID is a JSON string, Remark.Zone.ID a number.
func TestWireFormBothClients(t *testing.T) {
	clock := newFakeClock()
	sim := use(t, sampleTopology(t), Options{BootDelay: time.Minute, Now: clock.Now})
	ctx := context.Background()
	op := iaas.NewLoadBalancerOp(caller)
	swID := sim.switchByName("k8s-global").ID

	// Create with libsacloud's request shape (string switch ID and ports).
	body := fmt.Sprintf(`{"Appliance":{"Class":"loadbalancer","Name":"ls-lb","Description":"","Tags":["k8s","libsacloud"],
		"Plan":{"ID":1},"Remark":{"Switch":{"ID":"%s"},"VRRP":{"VRID":9},"Network":{"NetworkMaskLen":28,"DefaultRoute":"203.0.113.17"},
		"Servers":[{"IPAddress":"203.0.113.23"}]},
		"Settings":{"LoadBalancer":[{"VirtualIPAddress":"203.0.113.25","Port":"80","DelayLoop":"10","SorryServer":"","Description":"",
		"Servers":[{"IPAddress":"203.0.113.20","Port":"80","HealthCheck":{"Protocol":"ping"},"Enabled":"True"}]}]}}}`, swID)
	code, data := lsDo(t, "POST", "appliance", "", body)
	if code != http.StatusCreated {
		t.Fatalf("libsacloud-shaped create: %d %s", code, data)
	}
	var created lsLBResponse
	lsDecode(t, "create", data, &created)
	if created.Success != "Accepted" || !created.IsOk || created.LoadBalancer == nil ||
		created.LoadBalancer.Remark.Switch.ID != swID.String() {
		t.Fatalf("create answer: %+v", created)
	}
	id := types.ID(created.LoadBalancer.ID)

	// iaas-api-go decodes the same appliance (types.ID takes the string form).
	got, err := op.Read(ctx, zone, id)
	if err != nil || got.SwitchID != swID || got.VRID != 9 || len(got.VirtualIPAddresses) != 1 ||
		got.VirtualIPAddresses[0].Port != 80 {
		t.Fatalf("iaas-api-go read: %v %+v", err, got)
	}

	// The raw wire form.
	code, data = lsDo(t, "GET", "appliance/"+id.String(), "", "")
	var raw struct {
		Appliance struct {
			Remark struct {
				Switch struct{ ID any }
				Zone   struct{ ID any }
			}
			Switch struct{ ID any }
		}
	}
	if err := json.Unmarshal(data, &raw); err != nil || code != 200 {
		t.Fatalf("read: %d %v", code, err)
	}
	if _, isString := raw.Appliance.Remark.Switch.ID.(string); !isString {
		t.Fatalf("Remark.Switch.ID is %T, want a JSON string", raw.Appliance.Remark.Switch.ID)
	}
	if _, isNumber := raw.Appliance.Remark.Zone.ID.(float64); !isNumber {
		t.Fatalf("Remark.Zone.ID is %T, want a JSON number", raw.Appliance.Remark.Zone.ID)
	}
	if _, isNumber := raw.Appliance.Switch.ID.(float64); !isNumber {
		t.Fatalf("Switch.ID is %T, want a JSON number", raw.Appliance.Switch.ID)
	}

	// libsacloud: Read while migrating, Find by class and tag, Config refused.
	var read lsLBResponse
	lsDecode(t, "read", data, &read)
	lb := read.LoadBalancer
	if lb.Availability != "migrating" || lb.Remark.Switch.ID != swID.String() || lb.Switch.ID != int64(swID) ||
		lb.Settings.LoadBalancer[0].Port != "80" || lb.Settings.LoadBalancer[0].Servers[0].Enabled != "True" ||
		lb.Interfaces[0].Switch.ID != int64(swID) || lb.Plan.ID != 1 || lb.Remark.VRRP.VRID != 9 {
		t.Fatalf("libsacloud read: %+v", lb)
	}
	code, data = lsDo(t, "GET", "appliance", `{"Filter":{"Class":"loadbalancer","Tags.Name":"libsacloud"}}`, "")
	var found lsFindLBResponse
	lsDecode(t, "find", data, &found)
	if code != 200 || found.Total != 1 || found.LoadBalancers[0].ID != int64(id) {
		t.Fatalf("libsacloud find: %d %+v", code, found)
	}
	code, data = lsDo(t, "PUT", "appliance/"+id.String()+"/config", "", "")
	var lerr lsResultErrorValue
	lsDecode(t, "error", data, &lerr)
	if code != 409 || lerr.ErrorCode != "still_creating" || !lerr.IsFatal || lerr.Status != "409 Conflict" {
		t.Fatalf("libsacloud config while creating: %d %+v", code, lerr)
	}

	// Booted: status, config, stop (forced shutdown) and boot decode as
	// libsacloud's modify does.
	clock.Advance(time.Minute)
	code, data = lsDo(t, "GET", "appliance/"+id.String()+"/status", "", "")
	var st lsStatusResponse
	lsDecode(t, "status", data, &st)
	if code != 200 || len(st.LoadBalancer) != 1 || st.LoadBalancer[0].Port != "80" ||
		st.LoadBalancer[0].Servers[0].Status != "UP" || st.LoadBalancer[0].Servers[0].Port != "80" {
		t.Fatalf("libsacloud status: %d %s", code, data)
	}
	modify := func(what, method, path, body string, want int) {
		t.Helper()
		code, data := lsDo(t, method, "appliance/"+id.String()+"/"+path, "", body)
		var res lsResultFlagValue
		lsDecode(t, what, data, &res)
		if code != want || !res.IsOk || !res.Success {
			t.Fatalf("libsacloud %s: %d %s", what, code, data)
		}
	}
	modify("config", "PUT", "config", "", 200)
	modify("stop", "DELETE", "power", `{"Force":true}`, 202)
	modify("stop again", "DELETE", "power", `{"Force":true}`, 202)
	clock.Advance(time.Minute)
	modify("boot", "PUT", "power", "", 202)
	clock.Advance(time.Minute)

	// iaas-api-go: the same calls through the real client.
	if err := op.Config(ctx, zone, id); err != nil {
		t.Fatal(err)
	}
	if err := op.Shutdown(ctx, zone, id, &iaas.ShutdownOption{Force: true}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	if err := op.Boot(ctx, zone, id); err != nil {
		t.Fatal(err)
	}
	lbs, err := op.Find(ctx, zone, &iaas.FindCondition{Filter: search.Filter{search.Key("Tags.Name"): search.TagsAndEqual("k8s", "libsacloud")}})
	if err != nil || lbs.Total != 1 || lbs.LoadBalancers[0].SwitchID != swID {
		t.Fatalf("iaas-api-go find: %v %+v", err, lbs)
	}

	// Delete's answer and a 404 decode too.
	clock.Advance(time.Minute)
	lsDo(t, "DELETE", "appliance/"+id.String()+"/power", "", `{"Force":true}`)
	clock.Advance(time.Minute)
	code, data = lsDo(t, "DELETE", "appliance/"+id.String(), "", "")
	var deleted lsLBResponse
	lsDecode(t, "delete", data, &deleted)
	if code != 200 || deleted.LoadBalancer == nil || deleted.LoadBalancer.Remark.Switch.ID != swID.String() {
		t.Fatalf("libsacloud delete: %d %s", code, data)
	}
	code, data = lsDo(t, "GET", "appliance/"+id.String(), "", "")
	lsDecode(t, "not found", data, &lerr)
	if code != 404 || lerr.ErrorCode != "not_found" {
		t.Fatalf("read after delete: %d %+v", code, lerr)
	}

	// Switch and router finds with libsacloud's filter forms decode as well.
	code, data = lsDo(t, "GET", "switch", `{"Filter":{"Tags.Name":"k8s","Name":"k8s-global"}}`, "")
	var sws lsFindSwitchResponse
	lsDecode(t, "switch find", data, &sws)
	if code != 200 || sws.Total != 1 || sws.Switches[0].ID != int64(swID) || len(sws.Switches[0].Subnets) != 1 ||
		sws.Switches[0].Subnets[0].IPAddresses.Min != "203.0.113.20" {
		t.Fatalf("libsacloud switch find: %d %s", code, data)
	}
	code, data = lsDo(t, "GET", "internet", `{"Filter":{"Tags.Name":["k8s"]}}`, "")
	lsDecode(t, "router find", data, &sws)
	if code != 200 || sws.Total != 1 || sws.Internet[0].Switch.ID != int64(swID) {
		t.Fatalf("libsacloud router find: %d %s", code, data)
	}
}
