// Package elbplan decides what SAKURA's Enhanced Load Balancer (ELB,
// "proxylb" in iaas-api-go) should look like for a Service, and what must
// be written to an observed ELB to get there. It is the ELB kind's
// counterpart of the DSR packages desired and plan: pure (no API calls,
// no Kubernetes client, no clock, no package state), so table tests cover
// every branch.
//
// The engine's ELB kind (loadbalancer/engine/elb.go) calls it with the
// options annotations.ParseEnhanced reads (docs/architecture.md, Two kinds
// of appliance).
package elbplan

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/sacloud/iaas-api-go/types"
)

// Limits of one ELB. The enumerations (plans, regions, modes, health check
// protocols, SSL policies, keep-alive modes) are iaas-api-go v1.29.3's
// types/proxylb_*.go values and are used from there; the numbers below are
// from SAKURA's manual and the Terraform providers, the same as the
// simulator's (e2e/sakurasim/proxylb.go), kept here once each.
const (
	// MaxBindPorts: an ELB listens on one or two ports.
	MaxBindPorts = 2
	// MaxServers: real servers of one ELB.
	MaxServers = 40

	// Health check interval (DelayLoop), seconds.
	MinDelayLoop     = 10
	MaxDelayLoop     = 60
	DefaultDelayLoop = 10 // what the API stores for 0

	// Inactivity timeout (Timeout.InactiveSec), seconds.
	MinInactiveSec     = 10
	MaxInactiveSec     = 600
	DefaultInactiveSec = 10 // what the API stores for 0

	// StickyMethod is the one sticky-session method the API knows.
	StickyMethod = "cookie"

	// DefaultMode serves a port as plain TCP: it is the only mode that
	// needs neither HTTP in the backend nor a certificate.
	DefaultMode = types.EProxyLBProxyMode("tcp")
	// DefaultHealthProtocol checks that the server's port accepts a
	// connection. kube-proxy listens on every NodePort, so unlike the DSR
	// appliance's check (on the VIP's port) it needs nothing on the node.
	DefaultHealthProtocol = types.EProxyLBHealthCheckProtocol("tcp")
	// DefaultKeepAlive is the keep-alive mode written when none is asked
	// for, so the settings written and the settings compared agree.
	DefaultKeepAlive = types.EProxyLBBackendHttpKeepAlive("safe")
)

// Options are the ELB settings a Service asks for, already typed. Zero
// values mean the defaults above, except Plan and Region, which the caller
// must choose (the engine will take them from the cloud-config).
type Options struct {
	// Plan in connections per second (types.ProxyLBPlanValues).
	Plan int
	// Region: is1, tk1 or anycast. It cannot change in place.
	Region string

	// Mode serves every Service port not in PortModes ("" = DefaultMode).
	Mode types.EProxyLBProxyMode
	// PortModes overrides Mode by Service port number.
	PortModes map[int32]types.EProxyLBProxyMode
	// RedirectToHTTPS applies to http ports.
	RedirectToHTTPS bool
	// HTTP2 and SSLPolicy apply to https ports; SSLPolicy "" leaves the
	// policy to the ELB.
	HTTP2     bool
	SSLPolicy string

	HealthCheck HealthCheck

	ProxyProtocol bool // PROXY protocol v2 towards the servers
	StickySession bool // by cookie
	InactiveSec   int  // 0 = DefaultInactiveSec
	// SorryServer takes the traffic when no server is up; zero = none.
	// SorryServerPort 0 keeps the client's port.
	SorryServer     netip.Addr
	SorryServerPort int
	KeepAlive       types.EProxyLBBackendHttpKeepAlive // "" = DefaultKeepAlive
	Gzip            bool
	// TLS: the Service gives certificates for its https ports (from
	// Secrets, set by the caller beside the settings).
	TLS bool
	// LetsEncrypt has SAKURA get and renew the certificate from Let's
	// Encrypt; a zero CommonName leaves the ELB's setting as it is.
	LetsEncrypt LetsEncrypt
	// VIPFailover lets SAKURA move the VIP to another address when its
	// site fails; clients then follow the FQDN. Set at creation only.
	VIPFailover bool
}

// LetsEncrypt is the ELB's Let's Encrypt setting: the names the
// certificate is for. SAKURA answers the ACME challenge on the ELB's http
// or https port, so the names must resolve to the ELB.
type LetsEncrypt struct {
	CommonName string
	AltNames   []string // sorted, without duplicates
}

func (le LetsEncrypt) managed() bool { return le.CommonName != "" }

func (le LetsEncrypt) String() string {
	if !le.managed() {
		return "off"
	}
	if len(le.AltNames) == 0 {
		return le.CommonName
	}
	return le.CommonName + " (" + strings.Join(le.AltNames, ", ") + ")"
}

// HealthCheck is run by the ELB against each server on the server's own
// port: the API has no separate health check port.
type HealthCheck struct {
	Protocol  types.EProxyLBHealthCheckProtocol // "" = DefaultHealthProtocol
	Path      string                            // http only, required there
	Host      string                            // http only, optional Host header
	DelayLoop int                               // seconds; 0 = DefaultDelayLoop
}

// OptionError names the option, the value given and what is allowed.
type OptionError struct {
	Option  string
	Value   string
	Allowed string
}

func (e *OptionError) Error() string {
	return fmt.Sprintf("option %s: invalid value %q (allowed: %s)", e.Option, e.Value, e.Allowed)
}

// Option names used in errors; the annotations will map to them.
const (
	OptPlan            = "plan"
	OptRegion          = "region"
	OptMode            = "mode"
	OptPortModes       = "port-modes"
	OptSSLPolicy       = "ssl-policy"
	OptHealthProtocol  = "health-check-protocol"
	OptHealthPath      = "health-check-path"
	OptHealthHost      = "health-check-host"
	OptHealthDelayLoop = "health-check-interval"
	OptInactiveSec     = "inactivity-timeout"
	OptSorryServer     = "sorry-server"
	OptSorryServerPort = "sorry-server-port"
	OptKeepAlive       = "backend-keep-alive"
	OptRedirectToHTTPS = "redirect-to-https"
	OptHTTP2           = "http2"
	OptTLS             = "tls-secret"
	OptLetsEncrypt     = "letsencrypt-common-name"
	OptLetsEncryptAlt  = "letsencrypt-alt-names"
)

// Validate lists every invalid option at once, in a fixed order, so a user
// fixing one is not told about the next only afterwards. Whether an option
// fits the Service's ports (redirect without an http port, say) is for
// Desired, which sees the ports.
func (o Options) Validate() []error {
	var errs []error
	bad := func(opt, value, allowed string) {
		errs = append(errs, &OptionError{Option: opt, Value: value, Allowed: allowed})
	}
	if !slices.Contains(types.ProxyLBPlanValues, o.Plan) {
		bad(OptPlan, strconv.Itoa(o.Plan), "connections per second, one of "+joinInts(types.ProxyLBPlanValues))
	}
	if !slices.Contains(types.ProxyLBRegionStrings, o.Region) {
		bad(OptRegion, o.Region, strings.Join(types.ProxyLBRegionStrings, ", "))
	}
	if o.Mode != "" && !validMode(o.Mode) {
		bad(OptMode, string(o.Mode), strings.Join(types.ProxyLBProxyModeStrings, ", "))
	}
	for _, port := range sortedKeys(o.PortModes) {
		m := o.PortModes[port]
		if port < 1 || port > 65535 {
			bad(OptPortModes, fmt.Sprintf("%d=%s", port, m), "a Service port number 1-65535")
		}
		if !validMode(m) {
			bad(OptPortModes, fmt.Sprintf("%d=%s", port, m), "mode "+strings.Join(types.ProxyLBProxyModeStrings, ", "))
		}
	}
	if o.SSLPolicy != "" && !slices.Contains(types.ProxyLBSSLPolicies, o.SSLPolicy) {
		bad(OptSSLPolicy, o.SSLPolicy, strings.Join(types.ProxyLBSSLPolicies, ", ")+", or empty for the ELB's own")
	}
	errs = append(errs, o.HealthCheck.validate()...)
	if o.InactiveSec != 0 && (o.InactiveSec < MinInactiveSec || o.InactiveSec > MaxInactiveSec) {
		bad(OptInactiveSec, strconv.Itoa(o.InactiveSec), fmt.Sprintf("%d-%d seconds", MinInactiveSec, MaxInactiveSec))
	}
	if o.SorryServer.IsValid() && !o.SorryServer.Is4() {
		bad(OptSorryServer, o.SorryServer.String(), "an IPv4 address")
	}
	if o.SorryServerPort < 0 || o.SorryServerPort > 65535 {
		bad(OptSorryServerPort, strconv.Itoa(o.SorryServerPort), "1-65535, or 0 for the client's port")
	} else if o.SorryServerPort != 0 && !o.SorryServer.IsValid() {
		bad(OptSorryServerPort, strconv.Itoa(o.SorryServerPort), "a port only together with a sorry server address")
	}
	if le := o.LetsEncrypt; le.managed() || len(le.AltNames) > 0 {
		if len(validation.IsDNS1123Subdomain(le.CommonName)) > 0 {
			bad(OptLetsEncrypt, le.CommonName, "a lowercase DNS name that resolves to the ELB")
		}
		for _, n := range le.AltNames {
			if len(validation.IsDNS1123Subdomain(n)) > 0 {
				bad(OptLetsEncryptAlt, n, "lowercase DNS names that resolve to the ELB, beside a common name")
			}
		}
	}
	if o.KeepAlive != "" && !slices.Contains(types.ProxyLBBackendHttpKeepAliveStrings, string(o.KeepAlive)) {
		bad(OptKeepAlive, string(o.KeepAlive), strings.Join(types.ProxyLBBackendHttpKeepAliveStrings, ", "))
	}
	return errs
}

func (h HealthCheck) validate() []error {
	var errs []error
	bad := func(opt, value, allowed string) {
		errs = append(errs, &OptionError{Option: opt, Value: value, Allowed: allowed})
	}
	switch h.protocol() {
	case types.ProxyLBProtocols.HTTP:
		if !strings.HasPrefix(h.Path, "/") {
			bad(OptHealthPath, h.Path, `a path starting with "/" (required for http checks)`)
		}
		if strings.ContainsAny(h.Host, " \t\r\n/") {
			bad(OptHealthHost, h.Host, "a host name, or empty")
		}
	case types.ProxyLBProtocols.TCP:
		// A path or host on a tcp check would be dropped silently; say so.
		if h.Path != "" {
			bad(OptHealthPath, h.Path, "empty unless the check protocol is http")
		}
		if h.Host != "" {
			bad(OptHealthHost, h.Host, "empty unless the check protocol is http")
		}
	default:
		bad(OptHealthProtocol, string(h.Protocol), strings.Join(types.ProxyLBProtocolStrings, ", "))
	}
	if h.DelayLoop != 0 && (h.DelayLoop < MinDelayLoop || h.DelayLoop > MaxDelayLoop) {
		bad(OptHealthDelayLoop, strconv.Itoa(h.DelayLoop), fmt.Sprintf("%d-%d seconds", MinDelayLoop, MaxDelayLoop))
	}
	return errs
}

func (h HealthCheck) protocol() types.EProxyLBHealthCheckProtocol {
	return cmp.Or(h.Protocol, DefaultHealthProtocol)
}

func (h HealthCheck) delayLoop() int { return cmp.Or(h.DelayLoop, DefaultDelayLoop) }

// modeOf is the mode of one Service port.
func (o Options) modeOf(port int32) types.EProxyLBProxyMode {
	if m, ok := o.PortModes[port]; ok {
		return m
	}
	return cmp.Or(o.Mode, DefaultMode)
}

func validMode(m types.EProxyLBProxyMode) bool {
	return slices.Contains(types.ProxyLBProxyModeStrings, string(m))
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ", ")
}

func sortedKeys[V any](m map[int32]V) []int32 {
	keys := make([]int32, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
