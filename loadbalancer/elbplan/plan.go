package elbplan

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/types"
)

// Drift is one difference that cannot be changed in place.
type Drift struct {
	Field string
	Have  string
	Want  string
}

func (d Drift) String() string { return fmt.Sprintf("%s is %s, wanted %s", d.Field, d.Have, d.Want) }

// Changes is what must be written to make an observed ELB the Spec. The
// zero value means nothing: no write at all.
type Changes struct {
	// NewELB: there is no ELB, or it differs in what cannot change in
	// place (Why says what). Nothing else is set: the caller creates a new
	// ELB from the Spec and decides what becomes of the old one.
	NewELB bool
	Why    []Drift

	// Settings is the full UpdateSettings body (the API replaces all
	// settings) with the SettingsHash of the observed ELB, so a
	// concurrent edit makes the write fail instead of being lost; nil when
	// the settings are as wanted. Diff says, for humans, what it changes.
	Settings *iaas.ProxyLBUpdateSettingsRequest
	Diff     []string

	// ChangePlan asks for another plan; nil when the plan is as wanted.
	// The API answers the ELB under a new ID. Write Settings first: its
	// hash was read from the ID the ELB has before the plan change.
	ChangePlan *iaas.ProxyLBChangePlanRequest

	// Kept are differences that cannot change in place but do not stop
	// the rest from being written (VIP failover): the caller reports them.
	Kept []Drift
}

// None reports whether nothing must be written.
func (c Changes) None() bool { return !c.NewELB && c.Settings == nil && c.ChangePlan == nil }

// Plan compares spec, as Desired returns it without a blocking problem,
// with the observed ELB have (nil: there is none).
// Servers and bind ports are compared as sets, so the order the API lists
// them in never causes a write. Name, description and tags are neither
// compared nor written: ownership tags belong to the caller, and the
// settings write cannot carry them.
func Plan(spec Spec, have *iaas.ProxyLB) Changes {
	if have == nil {
		return Changes{NewELB: true}
	}
	if have.Region != spec.Region {
		return Changes{NewELB: true, Why: []Drift{{Field: "region", Have: orNone(string(have.Region)), Want: string(spec.Region)}}}
	}
	var c Changes
	if diff := diffSettings(spec, have); len(diff) > 0 {
		c.Settings = settings(spec, have)
		c.Diff = diff
	}
	if have.UseVIPFailover != spec.VIPFailover {
		c.Kept = append(c.Kept, Drift{Field: "VIP failover", Have: strconv.FormatBool(have.UseVIPFailover), Want: strconv.FormatBool(spec.VIPFailover)})
	}
	if have.Plan != spec.Plan {
		c.ChangePlan = &iaas.ProxyLBChangePlanRequest{ServiceClass: types.ProxyLBServiceClass(spec.Plan, spec.Region)}
	}
	return c
}

// settings renders spec as the API's settings. What Spec does not model
// (rules, Let's Encrypt, syslog, monitoring log, origin guard, strict
// rule) is taken from have unchanged: a full write must not erase it.
func settings(spec Spec, have *iaas.ProxyLB) *iaas.ProxyLBUpdateSettingsRequest {
	hc := spec.HealthCheck
	req := &iaas.ProxyLBUpdateSettingsRequest{
		HealthCheck:          &iaas.ProxyLBHealthCheck{Protocol: hc.Protocol, DelayLoop: hc.DelayLoop},
		SorryServer:          &iaas.ProxyLBSorryServer{},
		StickySession:        &iaas.ProxyLBStickySession{Enabled: spec.StickySession},
		Timeout:              &iaas.ProxyLBTimeout{InactiveSec: spec.InactiveSec},
		Gzip:                 &iaas.ProxyLBGzip{Enabled: spec.Gzip},
		BackendHttpKeepAlive: &iaas.ProxyLBBackendHttpKeepAlive{Mode: spec.KeepAlive},
		ProxyProtocol:        &iaas.ProxyLBProxyProtocol{Enabled: spec.ProxyProtocol},
		Rules:                have.Rules,
		LetsEncrypt:          have.LetsEncrypt,
		Syslog:               have.Syslog,
		MonitoringSuiteLog:   have.MonitoringSuiteLog,
		OriginGuard:          have.OriginGuard,
		StrictRule:           have.StrictRule,
		SettingsHash:         have.SettingsHash,
	}
	if hc.Protocol == types.ProxyLBProtocols.HTTP {
		req.HealthCheck.Path, req.HealthCheck.Host = hc.Path, hc.Host
	}
	if le := spec.LetsEncrypt; le != nil {
		req.LetsEncrypt = &iaas.ProxyLBACMESetting{CommonName: le.CommonName, Enabled: true, SubjectAltNames: slices.Clone(le.AltNames)}
	}
	if spec.SorryServer.IsValid() {
		req.SorryServer = &iaas.ProxyLBSorryServer{IPAddress: spec.SorryServer.String(), Port: spec.SorryServerPort}
	}
	if spec.StickySession {
		req.StickySession.Method = StickyMethod
	}
	haveBind := bindPortsByPort(have.BindPorts)
	for _, b := range spec.BindPorts {
		policy := b.SSLPolicy
		if policy == "" && b.Mode == types.ProxyLBProxyModes.HTTPS {
			// Left to the ELB: keep what it has rather than clear it.
			if h := haveBind[b.Port]; h != nil && h.ProxyMode == b.Mode {
				policy = h.SSLPolicy
			}
		}
		req.BindPorts = append(req.BindPorts, &iaas.ProxyLBBindPort{
			ProxyMode: b.Mode, Port: b.Port, RedirectToHTTPS: b.RedirectToHTTPS, SupportHTTP2: b.HTTP2, SSLPolicy: policy,
		})
	}
	for _, s := range spec.Servers {
		// Enabled explicitly: a server written without it would not serve.
		req.Servers = append(req.Servers, &iaas.ProxyLBServer{IPAddress: s.Addr.String(), Port: s.Port, Enabled: true})
	}
	return req
}

// diffSettings lists how have's settings differ from spec, sorted within
// each part so the same difference always reads the same. Values the API
// fills in for zero (interval, timeout, keep-alive) compare as filled.
func diffSettings(spec Spec, have *iaas.ProxyLB) []string {
	var d []string
	d = append(d, diffBindPorts(spec.BindPorts, have.BindPorts)...)
	d = append(d, diffServers(spec.Servers, have.Servers)...)

	hc, hh := spec.HealthCheck, have.HealthCheck
	if hh == nil {
		hh = &iaas.ProxyLBHealthCheck{}
	}
	if hh.Protocol != hc.Protocol || cmp.Or(hh.DelayLoop, DefaultDelayLoop) != hc.DelayLoop ||
		(hc.Protocol == types.ProxyLBProtocols.HTTP && (hh.Path != hc.Path || hh.Host != hc.Host)) {
		d = append(d, fmt.Sprintf("health check %s -> %s", describeCheck(*hh), describeCheck(iaas.ProxyLBHealthCheck{Protocol: hc.Protocol, Path: hc.Path, Host: hc.Host, DelayLoop: hc.DelayLoop})))
	}

	wantSorry := ""
	if spec.SorryServer.IsValid() {
		wantSorry = sorryString(spec.SorryServer.String(), spec.SorryServerPort)
	}
	haveSorry := ""
	if s := have.SorryServer; s != nil && s.IPAddress != "" {
		haveSorry = sorryString(s.IPAddress, s.Port)
	}
	if haveSorry != wantSorry {
		d = append(d, fmt.Sprintf("sorry server %s -> %s", orNone(haveSorry), orNone(wantSorry)))
	}

	haveSticky := "off"
	if st := have.StickySession; st != nil && st.Enabled {
		haveSticky = "by " + orNone(st.Method)
	}
	wantSticky := "off"
	if spec.StickySession {
		wantSticky = "by " + StickyMethod
	}
	if haveSticky != wantSticky {
		d = append(d, fmt.Sprintf("sticky session %s -> %s", haveSticky, wantSticky))
	}
	haveTimeout := 0
	if have.Timeout != nil {
		haveTimeout = have.Timeout.InactiveSec
	}
	if t := cmp.Or(haveTimeout, DefaultInactiveSec); t != spec.InactiveSec {
		d = append(d, fmt.Sprintf("inactivity timeout %d -> %d", t, spec.InactiveSec))
	}
	var haveKeepAlive types.EProxyLBBackendHttpKeepAlive
	if have.BackendHttpKeepAlive != nil {
		haveKeepAlive = have.BackendHttpKeepAlive.Mode
	}
	if k := cmp.Or(haveKeepAlive, DefaultKeepAlive); k != spec.KeepAlive {
		d = append(d, fmt.Sprintf("backend keep-alive %s -> %s", k, spec.KeepAlive))
	}
	if h := have.ProxyProtocol != nil && have.ProxyProtocol.Enabled; h != spec.ProxyProtocol {
		d = append(d, fmt.Sprintf("PROXY protocol %t -> %t", h, spec.ProxyProtocol))
	}
	if want := spec.LetsEncrypt; want != nil {
		if h := observedLetsEncrypt(have.LetsEncrypt); h.String() != want.String() {
			d = append(d, fmt.Sprintf("let's encrypt %s -> %s", h, want))
		}
	}
	if h := have.Gzip != nil && have.Gzip.Enabled; h != spec.Gzip {
		d = append(d, fmt.Sprintf("gzip %t -> %t", h, spec.Gzip))
	}
	return d
}

func diffBindPorts(want []BindPort, have []*iaas.ProxyLBBindPort) []string {
	var d []string
	byPort := bindPortsByPort(have)
	for _, w := range want {
		h := byPort[w.Port]
		if h == nil {
			d = append(d, fmt.Sprintf("add port %d (%s)", w.Port, w.Mode))
			continue
		}
		at := "port " + strconv.Itoa(w.Port)
		if h.ProxyMode != w.Mode {
			d = append(d, fmt.Sprintf("%s: mode %s -> %s", at, h.ProxyMode, w.Mode))
		}
		if h.RedirectToHTTPS != w.RedirectToHTTPS {
			d = append(d, fmt.Sprintf("%s: redirect to https %t -> %t", at, h.RedirectToHTTPS, w.RedirectToHTTPS))
		}
		if h.SupportHTTP2 != w.HTTP2 {
			d = append(d, fmt.Sprintf("%s: http2 %t -> %t", at, h.SupportHTTP2, w.HTTP2))
		}
		// "" leaves the policy to the ELB, whatever it shows.
		if w.SSLPolicy != "" && h.SSLPolicy != w.SSLPolicy {
			d = append(d, fmt.Sprintf("%s: ssl policy %s -> %s", at, orNone(h.SSLPolicy), w.SSLPolicy))
		}
		if len(h.AddResponseHeader) > 0 {
			d = append(d, fmt.Sprintf("%s: remove %d response header(s) the controller did not set", at, len(h.AddResponseHeader)))
		}
	}
	wanted := map[int]bool{}
	for _, w := range want {
		wanted[w.Port] = true
	}
	var gone []int
	for p := range byPort {
		if !wanted[p] {
			gone = append(gone, p)
		}
	}
	slices.Sort(gone)
	for _, p := range gone {
		d = append(d, fmt.Sprintf("remove port %d (%s)", p, byPort[p].ProxyMode))
	}
	return d
}

func diffServers(want []Server, have []*iaas.ProxyLBServer) []string {
	var d []string
	haveBy := map[string]*iaas.ProxyLBServer{}
	for _, h := range have {
		if h != nil {
			haveBy[serverKey(h.IPAddress, h.Port)] = h
		}
	}
	wanted := map[string]bool{}
	for _, w := range want {
		k := w.String()
		wanted[k] = true
		h := haveBy[k]
		switch {
		case h == nil:
			d = append(d, "add server "+k)
		case !h.Enabled || h.ServerGroup != "" || h.ProxySSL:
			d = append(d, fmt.Sprintf("server %s: enabled %t, group %q, proxy ssl %t -> enabled, no group, no proxy ssl", k, h.Enabled, h.ServerGroup, h.ProxySSL))
		}
	}
	var gone []string
	for k := range haveBy {
		if !wanted[k] {
			gone = append(gone, "remove server "+k)
		}
	}
	slices.Sort(gone)
	return append(d, gone...)
}

// serverKey renders an observed server like Server.String, so that one
// written as "192.0.2.1" and read back the same compare equal; an address
// that does not parse is kept as given and so never matches a wanted one.
func serverKey(ip string, port int) string {
	if a, err := netip.ParseAddr(ip); err == nil {
		return Server{Addr: a, Port: port}.String()
	}
	return ip + ":" + strconv.Itoa(port)
}

func bindPortsByPort(have []*iaas.ProxyLBBindPort) map[int]*iaas.ProxyLBBindPort {
	out := map[int]*iaas.ProxyLBBindPort{}
	for _, h := range have {
		if h != nil {
			out[h.Port] = h
		}
	}
	return out
}

func describeCheck(h iaas.ProxyLBHealthCheck) string {
	s := fmt.Sprintf("%s every %ds", orNone(string(h.Protocol)), cmp.Or(h.DelayLoop, DefaultDelayLoop))
	if h.Protocol == types.ProxyLBProtocols.HTTP {
		s += fmt.Sprintf(" path %q host %q", h.Path, h.Host)
	}
	return s
}

func sorryString(ip string, port int) string {
	if port == 0 {
		return ip
	}
	return ip + ":" + strconv.Itoa(port)
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// observedLetsEncrypt reads the ELB's setting as a LetsEncrypt (zero when
// off), alternative names sorted so their order never causes a write.
func observedLetsEncrypt(h *iaas.ProxyLBACMESetting) LetsEncrypt {
	if h == nil || !h.Enabled {
		return LetsEncrypt{}
	}
	return LetsEncrypt{CommonName: h.CommonName, AltNames: slices.Compact(slices.Sorted(slices.Values(h.SubjectAltNames)))}
}
