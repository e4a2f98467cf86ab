package sakurasim

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/md5"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/sacloud/iaas-api-go/naked"
	"github.com/sacloud/iaas-api-go/types"
)

// Enhanced Load Balancer (ELB, "proxylb"): a commonserviceitem of provider
// class "proxylb", a global resource. Paths, envelopes and enumerations
// follow iaas-api-go v1.29.3 (internal/define/proxylb.go, naked/proxylb.go,
// types/proxylb_*.go); the limits are from SAKURA's manual and the
// Terraform providers, each in one constant below (see docs/simulator.md).
const (
	proxyLBClass = "proxylb"
	// maxProxyLBBindPorts: one or two listening ports per ELB.
	maxProxyLBBindPorts = 2
	// maxProxyLBServers: real servers per ELB.
	maxProxyLBServers = 40
	// Health check interval (DelayLoop) in seconds; 0 means the default.
	minProxyLBDelayLoop     = 10
	maxProxyLBDelayLoop     = 60
	defaultProxyLBDelayLoop = 10
	// Inactivity timeout (Timeout.InactiveSec) in seconds; 0 means the default.
	minProxyLBInactiveSec     = 10
	maxProxyLBInactiveSec     = 600
	defaultProxyLBInactiveSec = 10
	// maxProxyLBAdditionalCerts: SNI certificates besides the primary one.
	maxProxyLBAdditionalCerts = 20
	// proxyLBCertDateLayout is how the API writes CertificateEndDate
	// (naked.ProxyLBCertificate.UnmarshalJSON parses this layout).
	proxyLBCertDateLayout = "Jan _2 15:04:05 2006 MST"
)

var (
	// proxyLBPlans are the plans in connections per second
	// (types.ProxyLBPlanValues: 100 … 400000).
	proxyLBPlans = types.ProxyLBPlanValues
	// proxyLBRegions are where an ELB can be placed (types.ProxyLBRegionStrings).
	proxyLBRegions = types.ProxyLBRegionStrings
	// proxyLBProxyModes are the bind port modes (types.ProxyLBProxyModeStrings); no UDP.
	proxyLBProxyModes = types.ProxyLBProxyModeStrings
	// proxyLBHealthProtocols are the health check protocols (types.ProxyLBProtocolStrings).
	proxyLBHealthProtocols = types.ProxyLBProtocolStrings
	// proxyLBSSLPolicies are the SSL policies of https ports (types.ProxyLBSSLPolicies).
	proxyLBSSLPolicies = types.ProxyLBSSLPolicies
	// proxyLBKeepAliveModes are the backend keep-alive modes (types.ProxyLBBackendHttpKeepAliveStrings).
	proxyLBKeepAliveModes = types.ProxyLBBackendHttpKeepAliveStrings
	// proxyLBNetworks are the source networks ELBs of a region connect to
	// real servers from (Status.ProxyNetworks): made-up documentation-range
	// values, one per region.
	proxyLBNetworks = map[types.EProxyLBRegion][]string{
		types.ProxyLBRegions.IS1:     {"198.19.1.0/28"},
		types.ProxyLBRegions.TK1:     {"198.19.2.0/28"},
		types.ProxyLBRegions.Anycast: {"198.19.3.0/28"},
	}
)

// proxyLB is one ELB. Settings are applied as soon as they are written
// (an ELB has no Config step).
type proxyLB struct {
	ID             types.ID
	Name           string
	Description    string
	Tags           []string
	IconID         types.ID
	Plan           types.EProxyLBPlan
	Region         types.EProxyLBRegion
	UseVIPFailover bool
	Settings       *naked.ProxyLBSetting
	Hash           string
	VIP            string
	FQDN           string
	CreatedAt      time.Time
	ModifiedAt     time.Time
	Certs          *proxyLBCerts
	// Renewals counts RenewLetsEncryptCert calls that were accepted.
	Renewals int
}

type proxyLBCerts struct {
	Primary    *storedCert
	Additional []*storedCert
}

// storedCert keeps a certificate with its private key. The key is never
// rendered: not in API answers, the admin API or error messages.
type storedCert struct {
	Server       string
	Intermediate string
	key          string
	CommonName   string
	AltNames     string
	NotAfter     time.Time
}

func (s *Simulator) proxyLBByID(id types.ID) *proxyLB {
	return first(s.proxyLBs, func(p *proxyLB) bool { return p.ID == id })
}

// globalOp reports an operation on a global resource, which the API
// answers under the path of any zone.
func globalOp(op string) bool {
	return strings.HasPrefix(op, "ProxyLB.") || strings.HasPrefix(op, "CommonServiceItem.")
}

// classifyCommonServiceItem names a commonserviceitem operation. Only
// ELBs are simulated; a find for another provider class is counted as
// CommonServiceItem.Find (and finds nothing).
func classifyCommonServiceItem(req *request) string {
	p, m := req.parts, req.method
	switch {
	case len(p) == 1 && m == http.MethodGet:
		if c := req.find.classOf("Provider.Class"); c != "" && c != proxyLBClass {
			return "CommonServiceItem.Find"
		}
		return "ProxyLB.Find"
	case len(p) == 1 && m == http.MethodPost:
		return "ProxyLB.Create"
	case len(p) == 2 && m == http.MethodGet:
		return "ProxyLB.Read"
	case len(p) == 2 && m == http.MethodPut:
		if isSettingsOnly(req.body, "CommonServiceItem") {
			return "ProxyLB.UpdateSettings"
		}
		return "ProxyLB.Update"
	case len(p) == 2 && m == http.MethodDelete:
		return "ProxyLB.Delete"
	case len(p) == 3 && p[2] == "plan" && m == http.MethodPut:
		return "ProxyLB.ChangePlan"
	case len(p) == 3 && p[2] == "health" && m == http.MethodGet:
		return "ProxyLB.HealthStatus"
	case len(p) == 4 && p[2] == "proxylb" && p[3] == "sslcertificate":
		switch m {
		case http.MethodGet:
			return "ProxyLB.GetCertificates"
		case http.MethodPut:
			return "ProxyLB.SetCertificates"
		case http.MethodDelete:
			return "ProxyLB.DeleteCertificates"
		}
	case len(p) == 4 && p[2] == "proxylb" && p[3] == "letsencryptrenew" && m == http.MethodPut:
		return "ProxyLB.RenewLetsEncryptCert"
	}
	return "ProxyLB.Unknown"
}

// dispatchProxyLB runs one ELB operation. Called with mu held.
func (s *Simulator) dispatchProxyLB(req *request, id types.ID) (int, any, *apiErr, bool) {
	var status int
	var resp any
	var e *apiErr
	switch req.op {
	case "ProxyLB.Find", "CommonServiceItem.Find":
		status, resp, e = s.plbFind(req.find, req.op)
	case "ProxyLB.Create":
		status, resp, e = s.plbCreate(req.body)
	case "ProxyLB.Read":
		status, resp, e = s.plbAnswer(id, func(p *proxyLB) *apiErr {
			if s.plbHidden(p) {
				return notFound(fmt.Sprintf("commonserviceitem %s not found", id))
			}
			return nil
		})
	case "ProxyLB.Update", "ProxyLB.UpdateSettings":
		status, resp, e = s.plbUpdate(id, req.body, req.op == "ProxyLB.UpdateSettings")
	case "ProxyLB.Delete":
		status, resp, e = s.plbDelete(id)
	case "ProxyLB.ChangePlan":
		status, resp, e = s.plbChangePlan(id, req.body)
	case "ProxyLB.GetCertificates":
		status, resp, e = s.plbGetCerts(id)
	case "ProxyLB.SetCertificates":
		status, resp, e = s.plbSetCerts(id, req.body)
	case "ProxyLB.DeleteCertificates":
		status, resp, e = s.plbDeleteCerts(id)
	case "ProxyLB.RenewLetsEncryptCert":
		status, resp, e = s.plbRenew(id)
	case "ProxyLB.HealthStatus":
		status, resp, e = s.plbHealth(id)
	default:
		return 0, nil, nil, false
	}
	return status, resp, e, true
}

var proxyLBKeys = keySet(map[string]fieldKind{"ID": exactField, "Name": textField, "Description": textField,
	"Provider.Class": exactField}, tagKeys)

func (s *Simulator) plbFind(fc *findCond, op string) (int, any, *apiErr) {
	var cands []candidate
	for _, p := range s.proxyLBs {
		if s.plbHidden(p) {
			continue
		}
		p := p
		cands = append(cands, candidate{p.ID, p.Name, plbRecord(p), func() any { return s.nakedProxyLB(p) }})
	}
	return s.runFind(fc, proxyLBKeys, op, "CommonServiceItems", cands)
}

// plbRecord holds an ELB's values for each filter key of proxyLBKeys
// (no zone keys: the resource is global).
func plbRecord(p *proxyLB) record {
	return record{"ID": ids(p.ID), "Name": {p.Name}, "Description": {p.Description},
		"Provider.Class": {proxyLBClass}, "Tags.Name": p.Tags, "Tags": p.Tags}
}

// nakedProxyLB renders an ELB as the API answers it (naked.ProxyLB, whose
// MarshalJSON writes ServiceClass from the plan and region).
func (s *Simulator) nakedProxyLB(p *proxyLB) *naked.ProxyLB {
	out := &naked.ProxyLB{ID: p.ID, Name: p.Name, Description: p.Description, Tags: sortedTags(p.Tags),
		CreatedAt: tp(p.CreatedAt), ModifiedAt: tp(p.ModifiedAt), Availability: types.Availabilities.Available,
		Provider: &naked.Provider{Class: proxyLBClass},
		Settings: &naked.ProxyLBSettings{ProxyLB: cloneProxyLBSetting(p.Settings)}, SettingsHash: p.Hash,
		Status: &naked.ProxyLBStatus{UseVIPFailover: p.UseVIPFailover, Region: p.Region,
			ProxyNetworks: append([]string{}, proxyLBNetworks[p.Region]...), FQDN: p.FQDN, VirtualIPAddress: p.VIP},
		ServiceClass: types.ProxyLBServiceClass(p.Plan, p.Region), Plan: p.Plan}
	if p.IconID != 0 {
		out.Icon = &naked.Icon{ID: p.IconID}
	}
	return out
}

func cloneProxyLBSetting(in *naked.ProxyLBSetting) *naked.ProxyLBSetting {
	if in == nil {
		return nil
	}
	data, _ := json.Marshal(in)
	out := &naked.ProxyLBSetting{}
	_ = json.Unmarshal(data, out)
	return out
}

func proxyLBHash(set *naked.ProxyLBSetting) string {
	data, _ := json.Marshal(set)
	sum := md5.Sum(data)
	return hex.EncodeToString(sum[:])
}

// decodeCommonServiceItem decodes {"CommonServiceItem":{...}} and reports
// which keys it carried.
func decodeCommonServiceItem(body []byte) (*naked.ProxyLB, map[string]json.RawMessage, *apiErr) {
	var env struct{ CommonServiceItem json.RawMessage }
	if err := json.Unmarshal(body, &env); err != nil || len(env.CommonServiceItem) == 0 || string(env.CommonServiceItem) == "null" {
		return nil, nil, badRequest(`request body must be {"CommonServiceItem":{...}}`)
	}
	var n naked.ProxyLB
	if err := json.Unmarshal(env.CommonServiceItem, &n); err != nil {
		return nil, nil, badRequest("invalid CommonServiceItem: " + err.Error())
	}
	keys := map[string]json.RawMessage{}
	_ = json.Unmarshal(env.CommonServiceItem, &keys)
	return &n, keys, nil
}

// servicePlan reads a ServiceClass ("cloud/proxylb/plain/100",
// "cloud/proxylb/anycast/100") for region: the prefix must fit the
// region and the plan must be one of proxyLBPlans.
func servicePlan(serviceClass string, region types.EProxyLBRegion) (types.EProxyLBPlan, *apiErr) {
	plan := types.ProxyLBPlanFromServiceClass(serviceClass)
	if !slices.Contains(proxyLBPlans, plan.Int()) {
		return 0, badRequest(fmt.Sprintf("ServiceClass: %q is not a plan (connections per second: %v)", serviceClass, proxyLBPlans))
	}
	if want := types.ProxyLBServiceClass(plan, region); serviceClass != want {
		return 0, badRequest(fmt.Sprintf("ServiceClass: %q does not fit region %s (want %q)", serviceClass, region, want))
	}
	return plan, nil
}

func (s *Simulator) plbCreate(body []byte) (int, any, *apiErr) {
	n, _, e := decodeCommonServiceItem(body)
	if e != nil {
		return 0, nil, e
	}
	if n.Provider == nil || n.Provider.Class != proxyLBClass {
		return 0, nil, badRequest(`Provider.Class: the simulator only creates "proxylb" items`)
	}
	if n.Name == "" {
		return 0, nil, badRequest("Name is required")
	}
	if len(n.Tags) > maxTags {
		return 0, nil, badRequest(fmt.Sprintf("Tags: at most %d tags (got %d)", maxTags, len(n.Tags)))
	}
	if n.Status == nil || !slices.Contains(proxyLBRegions, string(n.Status.Region)) {
		return 0, nil, badRequest(fmt.Sprintf("Status.Region: required, one of %v", proxyLBRegions))
	}
	plan, e := servicePlan(n.ServiceClass, n.Status.Region)
	if e != nil {
		return 0, nil, e
	}
	if n.Settings == nil || n.Settings.ProxyLB == nil {
		return 0, nil, badRequest("Settings.ProxyLB is required")
	}
	set := cloneProxyLBSetting(n.Settings.ProxyLB)
	if e := validateProxyLBSetting(set); e != nil {
		return 0, nil, e
	}
	now := s.now()
	p := &proxyLB{ID: s.newID(), Name: n.Name, Description: n.Description, Tags: n.Tags, Plan: plan,
		Region: n.Status.Region, UseVIPFailover: n.Status.UseVIPFailover, Settings: set, Hash: proxyLBHash(set),
		VIP: s.newProxyLBVIP(), CreatedAt: now, ModifiedAt: now}
	if n.Icon != nil {
		p.IconID = n.Icon.ID
	}
	if p.UseVIPFailover {
		// The FQDN is the stable name of an ELB whose VIP may move; the
		// library's own fake gives one only with VIP failover too.
		p.FQDN = fmt.Sprintf("site-%s.proxylb.sakurasim.invalid", p.ID)
	}
	s.proxyLBs = append(s.proxyLBs, p)
	return http.StatusCreated, map[string]any{"is_ok": true, "Success": true, "CommonServiceItem": s.nakedProxyLB(p)}, nil
}

// newProxyLBVIP hands out VIPs from 198.18.0.0/15 (a range kept for
// benchmarks, so never a real server's address). Called with mu held.
func (s *Simulator) newProxyLBVIP() string {
	s.proxyLBVIPs++
	n := s.proxyLBVIPs
	return fmt.Sprintf("198.18.%d.%d", (n/250)%256, 1+n%250)
}

// plbHidden: a just-created ELB is missing from finds and reads for the
// simulator's ReadNotFoundWindow, as a new appliance is (the real API's
// lag after a create); writes by its ID find it.
func (s *Simulator) plbHidden(p *proxyLB) bool {
	return s.notFoundAfter > 0 && s.now().Before(p.CreatedAt.Add(s.notFoundAfter))
}

func (s *Simulator) plbFor(id types.ID) (*proxyLB, *apiErr) {
	p := s.proxyLBByID(id)
	if p == nil {
		return nil, notFound(fmt.Sprintf("commonserviceitem %s not found", id))
	}
	return p, nil
}

// plbAnswer runs fn on the ELB and answers it in its envelope.
func (s *Simulator) plbAnswer(id types.ID, fn func(p *proxyLB) *apiErr) (int, any, *apiErr) {
	p, e := s.plbFor(id)
	if e != nil {
		return 0, nil, e
	}
	if e := fn(p); e != nil {
		return 0, nil, e
	}
	return ok(map[string]any{"CommonServiceItem": s.nakedProxyLB(p)})
}

func (s *Simulator) plbUpdate(id types.ID, body []byte, settingsOnly bool) (int, any, *apiErr) {
	p, e := s.plbFor(id)
	if e != nil {
		return 0, nil, e
	}
	n, keys, e := decodeCommonServiceItem(body)
	if e != nil {
		return 0, nil, e
	}
	imm := func(field, why string) *apiErr {
		return badRequest(field + ": cannot be changed by an update (" + why + ")")
	}
	if n.Provider != nil && n.Provider.Class != "" && n.Provider.Class != proxyLBClass {
		return 0, nil, imm("Provider.Class", "create a new item")
	}
	if n.ServiceClass != "" && n.ServiceClass != types.ProxyLBServiceClass(p.Plan, p.Region) {
		return 0, nil, imm("ServiceClass", "use ChangePlan")
	}
	if n.Status != nil && ((n.Status.Region != "" && n.Status.Region != p.Region) || n.Status.UseVIPFailover != p.UseVIPFailover) {
		return 0, nil, imm("Status", "the region and VIP failover need a new ELB")
	}
	if n.SettingsHash != "" && n.SettingsHash != p.Hash {
		return 0, nil, conflict(fmt.Sprintf("SettingsHash: %s is stale; the settings were changed since they were read (current %s)", n.SettingsHash, p.Hash))
	}
	set := p.Settings
	if _, has := keys["Settings"]; has {
		if n.Settings == nil || n.Settings.ProxyLB == nil {
			return 0, nil, badRequest("Settings.ProxyLB is required")
		}
		set = cloneProxyLBSetting(n.Settings.ProxyLB)
		if e := validateProxyLBSetting(set); e != nil {
			return 0, nil, e
		}
	}
	name, desc, tags, icon := p.Name, p.Description, p.Tags, p.IconID
	if !settingsOnly {
		var e *apiErr
		if name, desc, tags, e = updateCommon(keys, n.Name, n.Description, n.Tags, name, desc, tags); e != nil {
			return 0, nil, e
		}
		if _, has := keys["Icon"]; has {
			icon = 0
			if n.Icon != nil {
				icon = n.Icon.ID
			}
		}
	}
	p.Name, p.Description, p.Tags, p.IconID, p.Settings = name, desc, tags, icon, set
	p.Hash = proxyLBHash(set)
	p.ModifiedAt = s.now()
	return ok(map[string]any{"CommonServiceItem": s.nakedProxyLB(p)})
}

func (s *Simulator) plbDelete(id types.ID) (int, any, *apiErr) {
	p, e := s.plbFor(id)
	if e != nil {
		return 0, nil, e
	}
	out := s.nakedProxyLB(p)
	s.proxyLBs = slices.DeleteFunc(s.proxyLBs, func(x *proxyLB) bool { return x == p })
	return ok(map[string]any{"CommonServiceItem": out})
}

// plbChangePlan moves the ELB to a new plan under a new ID, as the API
// does (iaas-api-go helper/plans.ChangeProxyLBPlan tags the old ID before
// calling it): the old ID is gone afterwards. Tags are kept as they are;
// the API writes no @previous-id tag of its own.
func (s *Simulator) plbChangePlan(id types.ID, body []byte) (int, any, *apiErr) {
	p, e := s.plbFor(id)
	if e != nil {
		return 0, nil, e
	}
	var env struct {
		CommonServiceItem *naked.ProxyLBPlanChange
	}
	if err := json.Unmarshal(body, &env); err != nil || env.CommonServiceItem == nil {
		return 0, nil, badRequest(`request body must be {"CommonServiceItem":{"ServiceClass":"..."}}`)
	}
	plan, e := servicePlan(env.CommonServiceItem.ServiceClass, p.Region)
	if e != nil {
		return 0, nil, e
	}
	if plan == p.Plan {
		return 0, nil, badRequest(fmt.Sprintf("ServiceClass: the ELB already has plan %s", plan))
	}
	p.Plan, p.ID, p.ModifiedAt = plan, s.newID(), s.now()
	s.proxyLBPlanChanges = append(s.proxyLBPlanChanges, ProxyLBPlanChange{From: id, To: p.ID, Plan: plan.Int()})
	return ok(map[string]any{"CommonServiceItem": s.nakedProxyLB(p)})
}

func (s *Simulator) plbRenew(id types.ID) (int, any, *apiErr) {
	p, e := s.plbFor(id)
	if e != nil {
		return 0, nil, e
	}
	if le := p.Settings.LetsEncrypt; le == nil || !le.Enabled {
		return 0, nil, conflict("Let's Encrypt is not enabled on this ELB")
	}
	p.Renewals++
	return ok(map[string]any{})
}

// plbHealth answers per-server health of the ELB's settings. A server is
// UP when its entry is enabled, some powered-on server holds its address
// as a global address (a shared-segment NIC, or a NIC on a router+switch)
// and no admin override (/_admin/realserver-health) marks it down.
func (s *Simulator) plbHealth(id types.ID) (int, any, *apiErr) {
	p, e := s.plbFor(id)
	if e != nil {
		return 0, nil, e
	}
	h := &naked.ProxyLBHealth{CurrentVIP: p.VIP, Servers: []*naked.ProxyLBHealthServer{}}
	for _, sv := range p.Settings.Servers {
		status := types.EServerInstanceStatus("DOWN")
		if sv.Enabled && s.globalAddressUp(sv.IPAddress) && !s.forcedDown(sv.IPAddress, sv.Port) {
			status = "UP"
		}
		h.Servers = append(h.Servers, &naked.ProxyLBHealthServer{Status: status, IPAddress: sv.IPAddress, Port: itoa(sv.Port)})
	}
	return ok(map[string]any{"ProxyLB": h})
}

func (s *Simulator) globalAddressUp(ip string) bool {
	for _, sv := range s.servers {
		for _, n := range sv.NICs {
			if n.IP != ip || !sv.Up {
				continue
			}
			if n.Shared {
				return true
			}
			if sw := s.switchByID(n.SwitchID); sw != nil && sw.RouterID != 0 {
				return true
			}
		}
	}
	return false
}

// validateProxyLBSetting checks settings against the limits and fills the
// defaults the API fills (health check interval, inactivity timeout).
func validateProxyLBSetting(set *naked.ProxyLBSetting) *apiErr {
	f := "Settings.ProxyLB"
	if n := len(set.BindPorts); n < 1 || n > maxProxyLBBindPorts {
		return badRequest(fmt.Sprintf("%s.BindPorts: 1 to %d bind ports, got %d", f, maxProxyLBBindPorts, n))
	}
	webPort := false
	ports := map[int]bool{}
	for i, bp := range set.BindPorts {
		bf := fmt.Sprintf("%s.BindPorts[%d]", f, i)
		if bp == nil {
			return badRequest(bf + ": null entry")
		}
		mode := string(bp.ProxyMode)
		if !slices.Contains(proxyLBProxyModes, mode) {
			return badRequest(fmt.Sprintf("%s.ProxyMode: %q is not one of %v", bf, mode, proxyLBProxyModes))
		}
		if bp.Port < 1 || bp.Port > 65535 {
			return badRequest(fmt.Sprintf("%s.Port: must be 1..65535, got %d", bf, bp.Port))
		}
		if ports[bp.Port] {
			return badRequest(fmt.Sprintf("%s.Port: %d is bound twice", bf, bp.Port))
		}
		ports[bp.Port] = true
		webPort = webPort || mode != "tcp"
		if bp.RedirectToHTTPS && mode != "http" {
			return badRequest(bf + ".RedirectToHttps: only on http ports")
		}
		if bp.SupportHTTP2 && mode != "https" {
			return badRequest(bf + ".SupportHttp2: only on https ports")
		}
		if bp.SSLPolicy != "" && (mode != "https" || !slices.Contains(proxyLBSSLPolicies, bp.SSLPolicy)) {
			return badRequest(fmt.Sprintf("%s.SSLPolicy: only on https ports, one of %v", bf, proxyLBSSLPolicies))
		}
		if len(bp.AddResponseHeader) > 0 && mode == "tcp" {
			return badRequest(bf + ".AddResponseHeader: only on http and https ports")
		}
	}
	if n := len(set.Servers); n > maxProxyLBServers {
		return badRequest(fmt.Sprintf("%s.Servers: at most %d servers, got %d", f, maxProxyLBServers, n))
	}
	seen := map[string]bool{}
	for i, sv := range set.Servers {
		sf := fmt.Sprintf("%s.Servers[%d]", f, i)
		if a, err := netip.ParseAddr(sv.IPAddress); err != nil || !a.Is4() {
			return badRequest(fmt.Sprintf("%s.IPAddress: %q is not an IPv4 address", sf, sv.IPAddress))
		}
		if sv.Port < 1 || sv.Port > 65535 {
			return badRequest(fmt.Sprintf("%s.Port: must be 1..65535, got %d", sf, sv.Port))
		}
		key := fmt.Sprintf("%s:%d", sv.IPAddress, sv.Port)
		if seen[key] {
			return badRequest(fmt.Sprintf("%s: duplicate server %s", sf, key))
		}
		seen[key] = true
	}
	hc := &set.HealthCheck
	switch string(hc.Protocol) {
	case "http":
		if hc.Path == "" {
			return badRequest(f + ".HealthCheck.Path: required for http checks")
		}
	case "tcp":
	default:
		return badRequest(fmt.Sprintf("%s.HealthCheck.Protocol: %q is not one of %v", f, hc.Protocol, proxyLBHealthProtocols))
	}
	if hc.DelayLoop == 0 {
		hc.DelayLoop = defaultProxyLBDelayLoop
	}
	if hc.DelayLoop < minProxyLBDelayLoop || hc.DelayLoop > maxProxyLBDelayLoop {
		return badRequest(fmt.Sprintf("%s.HealthCheck.DelayLoop: must be %d..%d seconds, got %d", f, minProxyLBDelayLoop, maxProxyLBDelayLoop, hc.DelayLoop))
	}
	if set.Timeout.InactiveSec == 0 {
		set.Timeout.InactiveSec = defaultProxyLBInactiveSec
	}
	if t := set.Timeout.InactiveSec; t < minProxyLBInactiveSec || t > maxProxyLBInactiveSec {
		return badRequest(fmt.Sprintf("%s.Timeout.InactiveSec: must be %d..%d seconds, got %d", f, minProxyLBInactiveSec, maxProxyLBInactiveSec, t))
	}
	if ss := set.SorryServer; ss.IPAddress != "" || ss.Port != nil {
		if a, err := netip.ParseAddr(ss.IPAddress); err != nil || !a.Is4() {
			return badRequest(fmt.Sprintf("%s.SorryServer.IPAddress: %q is not an IPv4 address", f, ss.IPAddress))
		}
		if ss.Port != nil && (*ss.Port < 1 || *ss.Port > 65535) {
			return badRequest(fmt.Sprintf("%s.SorryServer.Port: must be 1..65535, got %d", f, *ss.Port))
		}
	}
	if le := set.LetsEncrypt; le != nil && le.Enabled {
		if le.CommonName == "" {
			return badRequest(f + ".LetsEncrypt.CommonName: required when Let's Encrypt is enabled")
		}
		if !webPort {
			return badRequest(f + ".LetsEncrypt: needs an http or https bind port")
		}
	}
	if ss := set.StickySession; ss.Enabled && ss.Method != "" && ss.Method != "cookie" {
		return badRequest(fmt.Sprintf("%s.StickySession.Method: %q is not \"cookie\"", f, ss.Method))
	}
	if ka := set.BackendHttpKeepAlive; ka != nil && ka.Mode != "" && !slices.Contains(proxyLBKeepAliveModes, string(ka.Mode)) {
		return badRequest(fmt.Sprintf("%s.BackendHttpKeepAlive.Mode: %q is not one of %v", f, ka.Mode, proxyLBKeepAliveModes))
	}
	return nil
}

// certIn is one certificate as a SetCertificates body carries it. It is
// decoded by hand: naked.ProxyLBCertificate's decoder expects the answer's
// form (CertificateEndDate in the API's own layout), while iaas-api-go
// sends a zero RFC 3339 time in requests.
type certIn struct {
	ServerCertificate       string
	IntermediateCertificate string
	PrivateKey              string
}

func (s *Simulator) plbSetCerts(id types.ID, body []byte) (int, any, *apiErr) {
	p, e := s.plbFor(id)
	if e != nil {
		return 0, nil, e
	}
	var env struct {
		ProxyLB *struct {
			PrimaryCert     *certIn
			AdditionalCerts []*certIn
		}
	}
	if err := json.Unmarshal(body, &env); err != nil || env.ProxyLB == nil {
		// The decoder's message could quote the body, key included.
		return 0, nil, badRequest(`request body must be {"ProxyLB":{"PrimaryCert":{...},"AdditionalCerts":[...]}}`)
	}
	if env.ProxyLB.PrimaryCert == nil {
		return 0, nil, badRequest("ProxyLB.PrimaryCert is required")
	}
	if n := len(env.ProxyLB.AdditionalCerts); n > maxProxyLBAdditionalCerts {
		return 0, nil, badRequest(fmt.Sprintf("ProxyLB.AdditionalCerts: at most %d certificates, got %d", maxProxyLBAdditionalCerts, n))
	}
	certs := &proxyLBCerts{}
	primary, e := checkCert("ProxyLB.PrimaryCert", env.ProxyLB.PrimaryCert)
	if e != nil {
		return 0, nil, e
	}
	certs.Primary = primary
	for i, c := range env.ProxyLB.AdditionalCerts {
		sc, e := checkCert(fmt.Sprintf("ProxyLB.AdditionalCerts[%d]", i), c)
		if e != nil {
			return 0, nil, e
		}
		certs.Additional = append(certs.Additional, sc)
	}
	p.Certs = certs
	return ok(map[string]any{"ProxyLB": renderCerts(certs)})
}

// checkCert parses a certificate and its key and checks that they belong
// together. Its messages name fields, never their contents.
func checkCert(field string, c *certIn) (*storedCert, *apiErr) {
	if c == nil {
		return nil, badRequest(field + ": null entry")
	}
	leaf, e := parseCertPEM(field+".ServerCertificate", c.ServerCertificate)
	if e != nil {
		return nil, e
	}
	if strings.TrimSpace(c.IntermediateCertificate) != "" {
		if _, e := parseCertPEM(field+".IntermediateCertificate", c.IntermediateCertificate); e != nil {
			return nil, e
		}
	}
	pub, e := parseKeyPEM(field+".PrivateKey", c.PrivateKey)
	if e != nil {
		return nil, e
	}
	if k, isKey := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !isKey || !k.Equal(pub) {
		return nil, badRequest(field + ".PrivateKey: does not belong to ServerCertificate")
	}
	return &storedCert{Server: c.ServerCertificate, Intermediate: c.IntermediateCertificate, key: c.PrivateKey,
		CommonName: leaf.Subject.CommonName, AltNames: strings.Join(leaf.DNSNames, ","), NotAfter: leaf.NotAfter}, nil
}

func parseCertPEM(field, text string) (*x509.Certificate, *apiErr) {
	block, _ := pem.Decode([]byte(text))
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, badRequest(field + ": not a PEM certificate")
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, badRequest(field + ": the certificate cannot be parsed")
	}
	return c, nil
}

func parseKeyPEM(field, text string) (crypto.PublicKey, *apiErr) {
	refused := badRequest(field + ": not a PEM private key (PKCS #1, PKCS #8 or SEC 1)")
	block, _ := pem.Decode([]byte(text))
	if block == nil {
		return nil, refused
	}
	var key any
	var err error
	switch block.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	default:
		return nil, refused
	}
	if err != nil {
		return nil, refused
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return k.Public(), nil
	case *ecdsa.PrivateKey:
		return k.Public(), nil
	case ed25519.PrivateKey:
		return k.Public(), nil
	}
	return nil, refused
}

// renderCerts answers the certificates the way naked.ProxyLBCertificate's
// decoder needs them: every field a string (it type-asserts each one).
// PrivateKey is always empty: whether the real API gives the key back is
// not known here, and the simulator never does.
func renderCerts(c *proxyLBCerts) map[string]any {
	one := func(sc *storedCert) map[string]string {
		return map[string]string{"ServerCertificate": sc.Server, "IntermediateCertificate": sc.Intermediate,
			"PrivateKey": "", "CertificateEndDate": sc.NotAfter.UTC().Format(proxyLBCertDateLayout),
			"CertificateCommonName": sc.CommonName, "CertificateAltNames": sc.AltNames}
	}
	out := map[string]any{"PrimaryCert": nil, "AdditionalCerts": []any{}}
	if c == nil {
		return out
	}
	if c.Primary != nil {
		out["PrimaryCert"] = one(c.Primary)
	}
	add := []any{}
	for _, sc := range c.Additional {
		add = append(add, one(sc))
	}
	out["AdditionalCerts"] = add
	return out
}

func (s *Simulator) plbGetCerts(id types.ID) (int, any, *apiErr) {
	p, e := s.plbFor(id)
	if e != nil {
		return 0, nil, e
	}
	return ok(map[string]any{"ProxyLB": renderCerts(p.Certs)})
}

func (s *Simulator) plbDeleteCerts(id types.ID) (int, any, *apiErr) {
	p, e := s.plbFor(id)
	if e != nil {
		return 0, nil, e
	}
	p.Certs = nil
	return ok(map[string]any{})
}

// ProxyLBPlanChange records one ChangePlan: the ELB's old and new IDs.
type ProxyLBPlanChange struct {
	From types.ID `json:"from"`
	To   types.ID `json:"to"`
	Plan int      `json:"plan"`
}

// ProxyLBInfo is the admin view of one ELB (GET /_admin/proxylbs/{id}):
// what the API shows plus certificate metadata, never a private key.
type ProxyLBInfo struct {
	ProxyLB      *naked.ProxyLB    `json:"proxyLB"`
	Certificates []ProxyLBCertInfo `json:"certificates"`
	// LetsEncryptRenewals counts accepted RenewLetsEncryptCert calls.
	LetsEncryptRenewals int `json:"letsEncryptRenewals"`
}

// ProxyLBCertInfo describes a stored certificate; HasKey says a private
// key is stored with it (the key itself is never shown).
type ProxyLBCertInfo struct {
	Primary    bool      `json:"primary"`
	CommonName string    `json:"commonName"`
	AltNames   string    `json:"altNames"`
	NotAfter   time.Time `json:"notAfter"`
	HasKey     bool      `json:"hasKey"`
}

// ProxyLB returns the admin view of ELB id, or false when there is none.
func (s *Simulator) ProxyLB(id types.ID) (*ProxyLBInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.proxyLBByID(id)
	if p == nil {
		return nil, false
	}
	out := &ProxyLBInfo{ProxyLB: s.nakedProxyLB(p), Certificates: []ProxyLBCertInfo{}, LetsEncryptRenewals: p.Renewals}
	if p.Certs != nil {
		for i, sc := range append([]*storedCert{p.Certs.Primary}, p.Certs.Additional...) {
			if sc != nil {
				out.Certificates = append(out.Certificates, ProxyLBCertInfo{Primary: i == 0, CommonName: sc.CommonName,
					AltNames: sc.AltNames, NotAfter: sc.NotAfter, HasKey: sc.key != ""})
			}
		}
	}
	return out, true
}

// FailoverProxyLBVIP moves ELB id to a new VIP, as SAKURA's VIP failover
// may; the FQDN stays. It is refused (409) for an ELB without VIP failover.
func (s *Simulator) FailoverProxyLBVIP(id types.ID) (vip string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, e := s.plbFor(id)
	if e != nil {
		return "", e
	}
	if !p.UseVIPFailover {
		return "", conflict(fmt.Sprintf("ELB %s has no VIP failover", id))
	}
	p.VIP = s.newProxyLBVIP()
	return p.VIP, nil
}

// ProxyLBPlanChanges lists the plan changes so far (old and new IDs), oldest first.
func (s *Simulator) ProxyLBPlanChanges() []ProxyLBPlanChange {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]ProxyLBPlanChange{}, s.proxyLBPlanChanges...)
}
