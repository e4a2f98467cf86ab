package sakurasim

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/search"
	"github.com/sacloud/iaas-api-go/types"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/sakuraapi"
)

// These tests drive the controller's own ProxyLB client
// (internal/sakuraapi, over the unmodified iaas-api-go operations) against
// the simulator over HTTP. The caller has no retries of its own, as in the
// controller: retries are sakuraapi's.

func plbClient() *sakuraapi.Client {
	return sakuraapi.NewFromCaller(noRetryCaller, zone, sakuraapi.Limits{
		RetryMax: 2, RetryWaitMin: time.Millisecond, RetryWaitMax: 2 * time.Millisecond})
}

// plbRequest is a valid create request: an http and an https port in front
// of worker-1 and worker-2's global addresses on the router+switch.
func plbRequest() *iaas.ProxyLBCreateRequest {
	return &iaas.ProxyLBCreateRequest{
		Name: "elb-u1", Tags: types.Tags{"k8s", "service-uid=u1"},
		Plan: types.ProxyLBPlans.CPS100, Region: types.ProxyLBRegions.IS1, UseVIPFailover: true,
		HealthCheck: &iaas.ProxyLBHealthCheck{Protocol: types.ProxyLBProtocols.TCP},
		BindPorts: []*iaas.ProxyLBBindPort{
			{ProxyMode: types.ProxyLBProxyModes.HTTP, Port: 80, RedirectToHTTPS: true},
			{ProxyMode: types.ProxyLBProxyModes.HTTPS, Port: 443, SupportHTTP2: true, SSLPolicy: "TLS-1-2-2021-06"},
		},
		Servers: []*iaas.ProxyLBServer{
			{IPAddress: "203.0.113.20", Port: 30080, Enabled: true},
			{IPAddress: "203.0.113.21", Port: 30080, Enabled: true},
		},
		ProxyProtocol: &iaas.ProxyLBProxyProtocol{Enabled: true},
	}
}

// plbSettings is p's settings as an UpdateSettings request carrying hash.
func plbSettings(p *iaas.ProxyLB, hash string) *iaas.ProxyLBUpdateSettingsRequest {
	return &iaas.ProxyLBUpdateSettingsRequest{HealthCheck: p.HealthCheck, SorryServer: p.SorryServer,
		BindPorts: p.BindPorts, Servers: p.Servers, Rules: p.Rules, LetsEncrypt: p.LetsEncrypt,
		StickySession: p.StickySession, Timeout: p.Timeout, Gzip: p.Gzip, BackendHttpKeepAlive: p.BackendHttpKeepAlive,
		MonitoringSuiteLog: p.MonitoringSuiteLog, ProxyProtocol: p.ProxyProtocol, Syslog: p.Syslog,
		OriginGuard: p.OriginGuard, StrictRule: p.StrictRule, SettingsHash: hash}
}

// selfSigned makes a certificate for cn (and the SAN names) with its key, in PEM.
func selfSigned(t *testing.T, cn string, names ...string) (certPEM, keyPEM string, notAfter time.Time) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	notAfter = time.Now().Add(90 * 24 * time.Hour).UTC().Truncate(time.Second)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})), notAfter
}

func adminPost(t *testing.T, path string) (int, map[string]string) {
	t.Helper()
	resp, err := http.Post(baseURL+path, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]string{}
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func healthOf(t *testing.T, c *sakuraapi.Client, id types.ID) (vip string, status map[string]string) {
	t.Helper()
	h, err := c.ProxyLBs.HealthStatus(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	status = map[string]string{}
	for _, s := range h.Servers {
		status[fmt.Sprintf("%s:%s", s.IPAddress, s.Port)] = string(s.Status)
	}
	return h.CurrentVIP, status
}

func TestProxyLBThroughTheClient(t *testing.T) {
	sim := use(t, sampleTopology(t), Options{})
	c := plbClient()
	ctx := context.Background()

	// create → read → find
	elb, err := c.ProxyLBs.Create(ctx, plbRequest())
	if err != nil {
		t.Fatal(err)
	}
	if elb.ID == 0 || elb.Plan != types.ProxyLBPlans.CPS100 || elb.Region != types.ProxyLBRegions.IS1 ||
		elb.VirtualIPAddress == "" || elb.FQDN == "" || len(elb.ProxyNetworks) != 1 || elb.SettingsHash == "" ||
		elb.Availability != types.Availabilities.Available || len(elb.BindPorts) != 2 || len(elb.Servers) != 2 {
		t.Fatalf("created %+v", elb)
	}
	if elb.HealthCheck.DelayLoop != 10 || elb.Timeout.InactiveSec != 10 {
		t.Errorf("defaults not filled: delay loop %d, inactive %d", elb.HealthCheck.DelayLoop, elb.Timeout.InactiveSec)
	}
	read, err := c.ProxyLBs.Read(ctx, elb.ID)
	if err != nil || read.VirtualIPAddress != elb.VirtualIPAddress || read.SettingsHash != elb.SettingsHash ||
		!read.ProxyProtocol.Enabled || !read.BindPorts[0].RedirectToHTTPS || read.BindPorts[1].SSLPolicy != "TLS-1-2-2021-06" {
		t.Fatalf("read %+v, %v", read, err)
	}
	found, err := c.ProxyLBs.Find(ctx, &iaas.FindCondition{Filter: search.Filter{
		search.Key("Tags.Name"): search.TagsAndEqual("k8s", "service-uid=u1")}})
	if err != nil || found.Total != 1 || found.ProxyLBs[0].ID != elb.ID {
		t.Fatalf("find: %+v %v", found, err)
	}

	// update settings: a stale hash is refused, the current one accepted
	more := plbSettings(read, "0123456789abcdef0123456789abcdef")
	more.Servers = append(more.Servers, &iaas.ProxyLBServer{IPAddress: "203.0.113.22", Port: 30080, Enabled: true})
	if _, err := c.ProxyLBs.UpdateSettings(ctx, elb.ID, more); sakuraapi.StatusCode(err) != http.StatusConflict {
		t.Fatalf("stale hash: %v, want 409", err)
	}
	more.SettingsHash = read.SettingsHash
	upd, err := c.ProxyLBs.UpdateSettings(ctx, elb.ID, more)
	if err != nil || len(upd.Servers) != 3 || upd.SettingsHash == read.SettingsHash {
		t.Fatalf("update settings: %+v %v", upd, err)
	}
	if _, err := c.ProxyLBs.UpdateSettings(ctx, elb.ID, more); sakuraapi.StatusCode(err) != http.StatusConflict {
		t.Fatalf("the hash read before the update is stale now: %v, want 409", err)
	}

	// certificates: set, get (no key comes back), delete
	cert, key, notAfter := selfSigned(t, "www.example.test", "www.example.test", "api.example.test")
	cert2, key2, _ := selfSigned(t, "other.example.test")
	set, err := c.ProxyLBs.SetCertificates(ctx, elb.ID, &iaas.ProxyLBSetCertificatesRequest{
		PrimaryCerts:    &iaas.ProxyLBPrimaryCert{ServerCertificate: cert, PrivateKey: key},
		AdditionalCerts: []*iaas.ProxyLBAdditionalCert{{ServerCertificate: cert2, PrivateKey: key2}}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.ProxyLBs.GetCertificates(ctx, elb.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, certs := range []*iaas.ProxyLBCertificates{set, got} {
		p := certs.PrimaryCert
		if p == nil || p.ServerCertificate != cert || p.CertificateCommonName != "www.example.test" ||
			p.CertificateAltNames != "www.example.test,api.example.test" || !p.CertificateEndDate.Equal(notAfter) ||
			p.PrivateKey != "" || len(certs.AdditionalCerts) != 1 || certs.AdditionalCerts[0].CertificateCommonName != "other.example.test" ||
			certs.AdditionalCerts[0].PrivateKey != "" {
			t.Fatalf("certificates %+v", certs)
		}
	}
	info, _ := sim.ProxyLB(elb.ID)
	state, _ := json.Marshal(sim.Snapshot())
	shown, _ := json.Marshal(info)
	for _, text := range []string{string(state), string(shown)} {
		if strings.Contains(text, "PRIVATE KEY") {
			t.Fatal("a private key is shown by the admin API")
		}
	}
	if len(info.Certificates) != 2 || !info.Certificates[0].HasKey || !info.Certificates[0].Primary {
		t.Errorf("admin certificates %+v", info.Certificates)
	}
	if err := c.ProxyLBs.DeleteCertificates(ctx, elb.ID); err != nil {
		t.Fatal(err)
	}
	if got, err := c.ProxyLBs.GetCertificates(ctx, elb.ID); err != nil || (got.PrimaryCert != nil && got.PrimaryCert.ServerCertificate != "") ||
		len(got.AdditionalCerts) != 0 {
		t.Fatalf("after delete: %+v %v", got, err)
	}

	// health per server: power and the admin override
	vip, status := healthOf(t, c, elb.ID)
	if vip != elb.VirtualIPAddress || len(status) != 3 || status["203.0.113.20:30080"] != "UP" || status["203.0.113.22:30080"] != "UP" {
		t.Fatalf("health %s %v", vip, status)
	}
	if _, err := sim.PowerServer("worker-2", false); err != nil {
		t.Fatal(err)
	}
	if err := sim.SetRealServerHealth("203.0.113.20", 30080, false); err != nil {
		t.Fatal(err)
	}
	if _, status = healthOf(t, c, elb.ID); status["203.0.113.20:30080"] != "DOWN" || status["203.0.113.21:30080"] != "DOWN" ||
		status["203.0.113.22:30080"] != "UP" {
		t.Fatalf("health after worker-2 off and .20 overridden %v", status)
	}

	// VIP failover (admin): the VIP moves, the FQDN stays
	code, moved := adminPost(t, fmt.Sprintf("/_admin/proxylbs/%s/failover", elb.ID))
	if code != http.StatusOK || moved["vip"] == "" || moved["vip"] == elb.VirtualIPAddress || moved["fqdn"] != elb.FQDN {
		t.Fatalf("failover: %d %v", code, moved)
	}
	now, err := c.ProxyLBs.Read(ctx, elb.ID)
	if err != nil || now.VirtualIPAddress != moved["vip"] || now.FQDN != elb.FQDN {
		t.Fatalf("after failover: %+v %v", now, err)
	}
	if vip, _ := healthOf(t, c, elb.ID); vip != moved["vip"] {
		t.Errorf("health CurrentVIP %s, want %s", vip, moved["vip"])
	}

	// plan change: tag the old ID (as helper/plans.ChangeProxyLBPlan does),
	// then ChangePlan answers the ELB under a new ID; the old one is gone
	tags := append(types.Tags{}, now.Tags...)
	tags = append(tags, "@previous-id="+now.ID.String())
	s := plbSettings(now, now.SettingsHash)
	tagged, err := c.ProxyLBs.Update(ctx, now.ID, &iaas.ProxyLBUpdateRequest{Name: now.Name, Tags: tags,
		HealthCheck: s.HealthCheck, SorryServer: s.SorryServer, BindPorts: s.BindPorts, Servers: s.Servers,
		Rules: s.Rules, StickySession: s.StickySession, Timeout: s.Timeout, Gzip: s.Gzip,
		ProxyProtocol: s.ProxyProtocol, Syslog: s.Syslog, SettingsHash: s.SettingsHash})
	if err != nil || len(tagged.Tags) != 3 || tagged.SettingsHash != now.SettingsHash {
		t.Fatalf("tagging: %+v %v", tagged, err)
	}
	changed, err := c.ProxyLBs.ChangePlan(ctx, now.ID, &iaas.ProxyLBChangePlanRequest{
		ServiceClass: types.ProxyLBServiceClass(types.ProxyLBPlans.CPS500, types.ProxyLBRegions.IS1)})
	if err != nil {
		t.Fatal(err)
	}
	if changed.ID == now.ID || changed.Plan != types.ProxyLBPlans.CPS500 || !slices.Contains(changed.Tags, "@previous-id="+now.ID.String()) ||
		changed.VirtualIPAddress != now.VirtualIPAddress || changed.FQDN != now.FQDN {
		t.Fatalf("plan change: %+v", changed)
	}
	if _, err := c.ProxyLBs.Read(ctx, now.ID); !sakuraapi.IsNotFound(err) {
		t.Fatalf("old ID after plan change: %v, want 404", err)
	}
	if pcs := sim.ProxyLBPlanChanges(); len(pcs) != 1 || pcs[0].From != now.ID || pcs[0].To != changed.ID || pcs[0].Plan != 500 {
		t.Errorf("plan changes %+v", pcs)
	}

	// delete: gone with its certificates
	if err := c.ProxyLBs.Delete(ctx, changed.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ProxyLBs.Read(ctx, changed.ID); !sakuraapi.IsNotFound(err) {
		t.Fatalf("read after delete: %v", err)
	}
	if _, err := c.ProxyLBs.GetCertificates(ctx, changed.ID); !sakuraapi.IsNotFound(err) {
		t.Fatalf("certificates after delete: %v", err)
	}

	// both sides counted every operation
	calls := c.Stats().Snapshot()
	ops := sim.Requests().Operations
	for op, n := range map[string]int{"Create": 1, "Read": 4, "Find": 1, "UpdateSettings": 3, "Update": 1,
		"SetCertificates": 1, "GetCertificates": 3, "DeleteCertificates": 1, "HealthStatus": 3, "ChangePlan": 1, "Delete": 1} {
		if total := ops["ProxyLB."+op].Total; total != n {
			t.Errorf("simulator counted %d ProxyLB.%s, want %d (%v)", total, op, n, ops["ProxyLB."+op].ByStatus)
		}
		if sum := calls[sakuraapi.CallKey{Op: "ProxyLB." + op, Result: sakuraapi.ResultOK}] +
			calls[sakuraapi.CallKey{Op: "ProxyLB." + op, Result: sakuraapi.ResultNotFound}] +
			calls[sakuraapi.CallKey{Op: "ProxyLB." + op, Result: sakuraapi.ResultError}]; sum != n {
			t.Errorf("client counted %d ProxyLB.%s, want %d", sum, op, n)
		}
	}
	if got := ops["ProxyLB.UpdateSettings"].ByStatus; got["409"] != 2 || got["200"] != 1 {
		t.Errorf("UpdateSettings answers %v, want two 409 and one 200", got)
	}
}

func TestProxyLBRefusals(t *testing.T) {
	sim := use(t, sampleTopology(t), Options{})
	c := plbClient()
	ctx := context.Background()
	type mutation = func(r *iaas.ProxyLBCreateRequest)
	for _, tc := range []struct {
		name, field string // field: what the refusal must name
		mutate      mutation
	}{
		{"no name", "Name", func(r *iaas.ProxyLBCreateRequest) { r.Name = "" }},
		{"eleven tags", "Tags", func(r *iaas.ProxyLBCreateRequest) {
			r.Tags = types.Tags{"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11"}
		}},
		{"plan 300", "ServiceClass", func(r *iaas.ProxyLBCreateRequest) { r.Plan = 300 }},
		{"region os1", "Status.Region", func(r *iaas.ProxyLBCreateRequest) { r.Region = "os1" }},
		{"no bind port", "BindPorts", func(r *iaas.ProxyLBCreateRequest) { r.BindPorts = nil }},
		{"three bind ports", "BindPorts", func(r *iaas.ProxyLBCreateRequest) {
			r.BindPorts = append(r.BindPorts, &iaas.ProxyLBBindPort{ProxyMode: "tcp", Port: 8080})
		}},
		{"udp", "BindPorts[0].ProxyMode", func(r *iaas.ProxyLBCreateRequest) { r.BindPorts[0].ProxyMode = "udp" }},
		{"port bound twice", "BindPorts[1].Port", func(r *iaas.ProxyLBCreateRequest) { r.BindPorts[1].Port = 80 }},
		{"redirect on https", "BindPorts[1].RedirectToHttps", func(r *iaas.ProxyLBCreateRequest) { r.BindPorts[1].RedirectToHTTPS = true }},
		{"http2 on http", "BindPorts[0].SupportHttp2", func(r *iaas.ProxyLBCreateRequest) { r.BindPorts[0].SupportHTTP2 = true }},
		{"unknown ssl policy", "BindPorts[1].SSLPolicy", func(r *iaas.ProxyLBCreateRequest) { r.BindPorts[1].SSLPolicy = "TLS-1-0" }},
		{"server not IPv4", "Servers[0].IPAddress", func(r *iaas.ProxyLBCreateRequest) { r.Servers[0].IPAddress = "2001:db8::1" }},
		{"server port 0", "Servers[0].Port", func(r *iaas.ProxyLBCreateRequest) { r.Servers[0].Port = 0 }},
		{"duplicate server", "Servers[1]", func(r *iaas.ProxyLBCreateRequest) { r.Servers[1] = r.Servers[0] }},
		{"41 servers", "Servers", func(r *iaas.ProxyLBCreateRequest) {
			r.Servers = nil
			for i := range maxProxyLBServers + 1 {
				r.Servers = append(r.Servers, &iaas.ProxyLBServer{IPAddress: fmt.Sprintf("198.51.100.%d", i+1), Port: 80, Enabled: true})
			}
		}},
		{"health check ping", "HealthCheck.Protocol", func(r *iaas.ProxyLBCreateRequest) { r.HealthCheck.Protocol = "ping" }},
		{"http check, no path", "HealthCheck.Path", func(r *iaas.ProxyLBCreateRequest) { r.HealthCheck.Protocol = "http" }},
		{"delay loop 9", "HealthCheck.DelayLoop", func(r *iaas.ProxyLBCreateRequest) { r.HealthCheck.DelayLoop = 9 }},
		{"delay loop 61", "HealthCheck.DelayLoop", func(r *iaas.ProxyLBCreateRequest) { r.HealthCheck.DelayLoop = 61 }},
		{"timeout 9", "Timeout.InactiveSec", func(r *iaas.ProxyLBCreateRequest) { r.Timeout = &iaas.ProxyLBTimeout{InactiveSec: 9} }},
		{"timeout 601", "Timeout.InactiveSec", func(r *iaas.ProxyLBCreateRequest) { r.Timeout = &iaas.ProxyLBTimeout{InactiveSec: 601} }},
		{"sorry server", "SorryServer.IPAddress", func(r *iaas.ProxyLBCreateRequest) {
			r.SorryServer = &iaas.ProxyLBSorryServer{IPAddress: "x", Port: 80}
		}},
		{"lets encrypt, no CN", "LetsEncrypt.CommonName", func(r *iaas.ProxyLBCreateRequest) {
			r.LetsEncrypt = &iaas.ProxyLBACMESetting{Enabled: true}
		}},
		{"lets encrypt, tcp only", "LetsEncrypt", func(r *iaas.ProxyLBCreateRequest) {
			r.BindPorts = []*iaas.ProxyLBBindPort{{ProxyMode: "tcp", Port: 5432}}
			r.LetsEncrypt = &iaas.ProxyLBACMESetting{Enabled: true, CommonName: "www.example.test"}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := plbRequest()
			tc.mutate(r)
			_, err := c.ProxyLBs.Create(ctx, r)
			if code, ecode := apiStatus(err); code != http.StatusBadRequest || ecode != "bad_request" || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("got %v, want 400 bad_request naming %s", err, tc.field)
			}
		})
	}
	if n := len(sim.Snapshot().ProxyLBs); n != 0 {
		t.Fatalf("%d ELBs made by refused requests", n)
	}

	elb, err := c.ProxyLBs.Create(ctx, plbRequest())
	if err != nil {
		t.Fatal(err)
	}
	// plan changes: an anycast class for an is1 ELB, a plan that is none, the same plan
	for _, class := range []string{"cloud/proxylb/anycast/500", "cloud/proxylb/plain/300", "cloud/proxylb/plain/100"} {
		_, err := c.ProxyLBs.ChangePlan(ctx, elb.ID, &iaas.ProxyLBChangePlanRequest{ServiceClass: class})
		if code, _ := apiStatus(err); code != http.StatusBadRequest {
			t.Errorf("ChangePlan %s: %v, want 400", class, err)
		}
	}
	// Let's Encrypt renewal without Let's Encrypt
	if err := c.ProxyLBs.RenewLetsEncryptCert(ctx, elb.ID); sakuraapi.StatusCode(err) != http.StatusConflict {
		t.Errorf("renewal without Let's Encrypt: %v, want 409", err)
	}
	// failover without VIP failover
	r := plbRequest()
	r.Name, r.UseVIPFailover = "fixed-vip", false
	fixed, err := c.ProxyLBs.Create(ctx, r)
	if err != nil || fixed.FQDN != "" {
		t.Fatalf("without VIP failover: %+v %v", fixed, err)
	}
	if code, _ := adminPost(t, fmt.Sprintf("/_admin/proxylbs/%s/failover", fixed.ID)); code != http.StatusConflict {
		t.Errorf("failover of an ELB without VIP failover: %d, want 409", code)
	}

	// certificates: each refusal names the field, never the key
	cert, key, _ := selfSigned(t, "www.example.test")
	_, otherKey, _ := selfSigned(t, "other.example.test")
	var many []*iaas.ProxyLBAdditionalCert
	for range maxProxyLBAdditionalCerts + 1 {
		many = append(many, &iaas.ProxyLBAdditionalCert{ServerCertificate: cert, PrivateKey: key})
	}
	for name, req := range map[string]*iaas.ProxyLBSetCertificatesRequest{
		"no primary":         {},
		"not PEM":            {PrimaryCerts: &iaas.ProxyLBPrimaryCert{ServerCertificate: "hello", PrivateKey: key}},
		"no key":             {PrimaryCerts: &iaas.ProxyLBPrimaryCert{ServerCertificate: cert}},
		"another's key":      {PrimaryCerts: &iaas.ProxyLBPrimaryCert{ServerCertificate: cert, PrivateKey: otherKey}},
		"bad intermediate":   {PrimaryCerts: &iaas.ProxyLBPrimaryCert{ServerCertificate: cert, PrivateKey: key, IntermediateCertificate: "junk"}},
		"21 additional":      {PrimaryCerts: &iaas.ProxyLBPrimaryCert{ServerCertificate: cert, PrivateKey: key}, AdditionalCerts: many},
		"additional, no key": {PrimaryCerts: &iaas.ProxyLBPrimaryCert{ServerCertificate: cert, PrivateKey: key}, AdditionalCerts: []*iaas.ProxyLBAdditionalCert{{ServerCertificate: cert}}},
	} {
		_, err := c.ProxyLBs.SetCertificates(ctx, elb.ID, req)
		if code, _ := apiStatus(err); code != http.StatusBadRequest {
			t.Errorf("%s: %v, want 400", name, err)
			continue
		}
		if msg := err.Error(); strings.Contains(msg, "PRIVATE KEY") || strings.Contains(msg, "BEGIN") {
			t.Errorf("%s: the refusal shows PEM text", name)
		}
	}
	if info, _ := sim.ProxyLB(elb.ID); len(info.Certificates) != 0 {
		t.Errorf("refused certificates were stored: %+v", info.Certificates)
	}
}

// Faults and retries: sakuraapi retries a 503 or 429 of a read, but not of
// a Create or a ChangePlan; the simulator counts every answer.
func TestProxyLBFaultsAndRetries(t *testing.T) {
	sim := use(t, sampleTopology(t), Options{})
	c := plbClient()
	ctx := context.Background()
	elb, err := c.ProxyLBs.Create(ctx, plbRequest())
	if err != nil {
		t.Fatal(err)
	}
	sim.ResetRequests()
	if err := sim.SetFaults([]FaultRule{
		{Op: "ProxyLB.Read", Status: 503, Times: 1},
		{Op: "ProxyLB.GetCertificates", Status: 429, Times: 1},
		{Op: "ProxyLB.Create", Status: 503, Times: 1},
		{Op: "ProxyLB.ChangePlan", Status: 503, Times: 1},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ProxyLBs.Read(ctx, elb.ID); err != nil {
		t.Fatalf("read with one 503: %v", err)
	}
	if _, err := c.ProxyLBs.GetCertificates(ctx, elb.ID); err != nil {
		t.Fatalf("certificates with one 429: %v", err)
	}
	r := plbRequest()
	r.Name = "second"
	if _, err := c.ProxyLBs.Create(ctx, r); sakuraapi.StatusCode(err) != http.StatusServiceUnavailable {
		t.Fatalf("create with a 503: %v, want the 503 unreplayed", err)
	}
	if _, err := c.ProxyLBs.ChangePlan(ctx, elb.ID, &iaas.ProxyLBChangePlanRequest{
		ServiceClass: types.ProxyLBServiceClass(types.ProxyLBPlans.CPS1000, types.ProxyLBRegions.IS1)}); sakuraapi.StatusCode(err) != http.StatusServiceUnavailable {
		t.Fatalf("plan change with a 503: %v, want the 503 unreplayed", err)
	}
	ops := sim.Requests().Operations
	for op, want := range map[string]map[string]int{
		"ProxyLB.Read":            {"503": 1, "200": 1},
		"ProxyLB.GetCertificates": {"429": 1, "200": 1},
		"ProxyLB.Create":          {"503": 1},
		"ProxyLB.ChangePlan":      {"503": 1},
	} {
		if fmt.Sprint(ops[op].ByStatus) != fmt.Sprint(want) {
			t.Errorf("%s answered %v, want %v", op, ops[op].ByStatus, want)
		}
	}
	retries := c.Stats().Retries()
	if retries[sakuraapi.CallKey{Op: "ProxyLB.Read", Result: sakuraapi.ResultUnavailable}] != 1 ||
		retries[sakuraapi.CallKey{Op: "ProxyLB.GetCertificates", Result: sakuraapi.ResultThrottled}] != 1 {
		t.Errorf("retries %v", retries)
	}
	if st := sim.Snapshot(); len(st.ProxyLBs) != 1 || st.ProxyLBs[0].ID != elb.ID {
		t.Errorf("ELBs after the faults: %+v", st.ProxyLBs)
	}
}

// The wire form: the commonserviceitem envelope, provider class and
// service class as iaas-api-go writes and reads them, served under any
// known zone's path (a global resource), and finds of other classes.
func TestProxyLBWireForm(t *testing.T) {
	sim := use(t, sampleTopology(t), Options{})
	ctx := context.Background()
	elb, err := plbClient().ProxyLBs.Create(ctx, plbRequest())
	if err != nil {
		t.Fatal(err)
	}
	for _, z := range []string{"is1a", "tk1a"} { // tk1a is not a zone this simulator serves
		data, err := caller.Do(ctx, "GET", fmt.Sprintf("%s/%s/api/cloud/1.1/commonserviceitem/%s", baseURL, z, elb.ID), nil)
		if err != nil {
			t.Fatalf("read through %s: %v", z, err)
		}
		var env struct {
			IsOK              bool `json:"is_ok"`
			CommonServiceItem struct {
				ID           int64
				Provider     struct{ Class string }
				ServiceClass string
				Settings     struct {
					ProxyLB struct{ BindPorts []map[string]any }
				}
				Status struct{ Region, VirtualIPAddress, FQDN string }
			}
		}
		if err := json.Unmarshal(data, &env); err != nil {
			t.Fatal(err)
		}
		item := env.CommonServiceItem
		if !env.IsOK || item.ID != int64(elb.ID) || item.Provider.Class != "proxylb" || item.ServiceClass != "cloud/proxylb/plain/100" ||
			len(item.Settings.ProxyLB.BindPorts) != 2 || item.Status.Region != "is1" || item.Status.VirtualIPAddress != elb.VirtualIPAddress {
			t.Errorf("through %s: %s", z, data)
		}
	}
	if _, err := caller.Do(ctx, "GET", fmt.Sprintf("%s/xx9z/api/cloud/1.1/commonserviceitem/%s", baseURL, elb.ID), nil); !sakuraapi.IsNotFound(err) {
		t.Errorf("unknown zone: %v, want 404", err)
	}
	data, err := caller.Do(ctx, "GET", baseURL+`/is1a/api/cloud/1.1/commonserviceitem?{"Filter":{"Provider.Class":"dns"}}`, nil)
	if err != nil || !strings.Contains(string(data), `"Total":0`) {
		t.Errorf("find of another class: %s %v", data, err)
	}
	if ops := sim.Requests().Operations; ops["CommonServiceItem.Find"].Total != 1 || ops["ProxyLB.Read"].Total != 3 {
		t.Errorf("requests %+v", ops)
	}
}

// docs/simulator.md names every ELB operation, admin route and limit.
func TestProxyLBDocsMatchCode(t *testing.T) {
	doc, err := readDoc()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"ProxyLB.Find", "ProxyLB.Create", "ProxyLB.Read", "ProxyLB.Update", "ProxyLB.UpdateSettings",
		"ProxyLB.Delete", "ProxyLB.ChangePlan", "ProxyLB.GetCertificates", "ProxyLB.SetCertificates",
		"ProxyLB.DeleteCertificates", "ProxyLB.RenewLetsEncryptCert", "ProxyLB.HealthStatus", "CommonServiceItem.Find",
		"/_admin/proxylbs/{id}", "/_admin/proxylbs/{id}/failover", "FailoverProxyLBVIP", "ProxyLBPlanChanges", "`proxyLBs`",
		fmt.Sprintf("other than 1 or %d bind ports", maxProxyLBBindPorts),
		fmt.Sprintf("more than %d servers", maxProxyLBServers),
		fmt.Sprintf("delay loop outside %d–%d s", minProxyLBDelayLoop, maxProxyLBDelayLoop),
		fmt.Sprintf("timeout outside %d–%d s", minProxyLBInactiveSec, maxProxyLBInactiveSec),
		fmt.Sprintf("up to %d additional", maxProxyLBAdditionalCerts),
		fmt.Sprintf("stored as %d", defaultProxyLBDelayLoop),
	}
	for _, p := range proxyLBPlans {
		want = append(want, fmt.Sprint(p))
	}
	for _, list := range [][]string{proxyLBRegions, proxyLBProxyModes, proxyLBHealthProtocols, proxyLBKeepAliveModes} {
		for _, v := range list {
			want = append(want, "`"+v+"`")
		}
	}
	flat := strings.Join(strings.Fields(doc), " ")
	for _, w := range want {
		if !strings.Contains(flat, w) { // the doc's line breaks do not matter
			t.Errorf("docs/simulator.md does not mention %q", w)
		}
	}
}
