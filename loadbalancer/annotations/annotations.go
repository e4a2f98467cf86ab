// Package annotations is the one typed place for the Service annotations the
// load balancer controller reads: their names, defaults, allowed values and
// parsers. docs/annotations.md is checked against Table by a test.
package annotations

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/sacloud/iaas-api-go/types"
	v1 "k8s.io/api/core/v1"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/elbplan"
)

// Prefix is shared with the earlier SAKURA controller so users keep their manifests.
const Prefix = "k8s.usacloud.jp/"

// Annotation names. Names that existed in the earlier controller keep their meaning.
const (
	Type                = Prefix + "load-balancer-type"
	HA                  = Prefix + "load-balancer-ha"
	Plan                = Prefix + "load-balancer-plan"
	HealthzInterval     = Prefix + "load-balancer-healthz-interval"
	HealthCheckProtocol = Prefix + "load-balancer-healthcheck-protocol"
	HealthCheckPath     = Prefix + "load-balancer-healthcheck-path"
	HealthCheckStatus   = Prefix + "load-balancer-healthcheck-status"
	HealthCheckRetry    = Prefix + "load-balancer-healthcheck-retry"
	HealthCheckTimeout  = Prefix + "load-balancer-healthcheck-timeout"
	SorryServer         = Prefix + "load-balancer-sorry-server"
	LoadBalancerIP      = Prefix + "load-balancer-ip"
	RouterSelector      = Prefix + "router-selector"
	SwitchSelector      = Prefix + "switch-selector"
	SharingKey          = Prefix + "load-balancer-sharing-key"
	// Zone names the zone the appliance is made in (its block's zone).
	Zone   = Prefix + "load-balancer-zone"
	Repair = Prefix + "load-balancer-repair"
	// MixedProtocol says what happens to a Service with TCP and other
	// ports: refuse it whole (the default), or serve its TCP ports.
	MixedProtocol = Prefix + "load-balancer-mixed-protocol"
	// AdoptID names an existing appliance the Service takes over, keeping
	// its VIP (after checks: see decide.AdoptByID).
	AdoptID = Prefix + "load-balancer-adopt-id"
	// Preserve keeps the appliance, untagged, when the Service is deleted.
	Preserve = Prefix + "load-balancer-preserve"
	// LoadBalancerID is written by the controller, not by users: the ID of
	// the appliance created for the Service, so that the appliance is found
	// (and deleted) even while listings do not show it yet.
	LoadBalancerID = Prefix + "load-balancer-id"
	// LoadBalancerCreating is written by the controller, not by users,
	// before every create: when, on which switch, and with which addresses
	// and VRID (a CreateRecord). A restarted controller or a new leader
	// reads it to wait for a create that may be in flight instead of
	// creating a second appliance, and to keep its addresses from others.
	LoadBalancerCreating = Prefix + "load-balancer-creating"
	// Type switch only (names and meanings of the earlier controller).
	IPRange              = Prefix + "load-balancer-ip-range"
	AssignIPRange        = Prefix + "load-balancer-assign-ip-range"
	AssignDefaultGateway = Prefix + "load-balancer-assign-default-gateway"

	// Type enhanced only: SAKURA's Enhanced Load Balancer (ELB), a proxy
	// with settings of its own; the DSR annotations above do not apply to
	// it (ParseEnhanced refuses them) and these do not apply to the DSR
	// types (Parse refuses them), so no setting is silently ignored.
	ELBPlan                = Prefix + "elb-plan"
	ELBRegion              = Prefix + "elb-region"
	ELBPortModes           = Prefix + "elb-port-modes"
	ELBRedirectToHTTPS     = Prefix + "elb-redirect-to-https"
	ELBHTTP2               = Prefix + "elb-http2"
	ELBSSLPolicy           = Prefix + "elb-ssl-policy"
	ELBHealthCheckProtocol = Prefix + "elb-health-check-protocol"
	ELBHealthCheckPath     = Prefix + "elb-health-check-path"
	ELBHealthCheckHost     = Prefix + "elb-health-check-host"
	ELBHealthCheckInterval = Prefix + "elb-health-check-interval"
	ELBProxyProtocol       = Prefix + "elb-proxy-protocol"
	ELBStickySession       = Prefix + "elb-sticky-session"
	ELBInactivityTimeout   = Prefix + "elb-inactivity-timeout"
	ELBSorryServer         = Prefix + "elb-sorry-server"
	ELBBackendKeepAlive    = Prefix + "elb-backend-keep-alive"
	ELBGzip                = Prefix + "elb-gzip"
	ELBVIPFailover         = Prefix + "elb-vip-failover"
	ELBTLSSecret           = Prefix + "elb-tls-secret"
	ELBLetsEncrypt         = Prefix + "elb-letsencrypt-common-name"
	ELBLetsEncryptAltNames = Prefix + "elb-letsencrypt-alt-names"
	// ELBID is written by the controller, not by users: the ID of the ELB
	// created for the Service, found by it as an appliance is found by
	// LoadBalancerID.
	ELBID = Prefix + "elb-id"
)

// Values and bounds. Numbers that come from SAKURA's manual live here so they
// are easy to change.
const (
	TypeInternet = "internet"
	TypeSwitch   = "switch"
	TypeEnhanced = "enhanced"

	MixedRefuse   = "refuse"
	MixedServeTCP = "serve-tcp"

	PlanStandard = "standard"
	PlanHighSpec = "highspec"
	planPremium  = "premium" // earlier controller's name for highspec

	ProtocolPing  = "ping"
	ProtocolTCP   = "tcp"
	ProtocolHTTP  = "http"
	ProtocolHTTPS = "https"

	MinInterval, MaxInterval, DefaultInterval = 10, 60, 10
	MinRetry, MaxRetry                        = 1, 5
	MinTimeout, MaxTimeout                    = 1, 30
	MinStatus, MaxStatus, DefaultStatus       = 100, 599, 200
	DefaultPath                               = "/"
	// MaxSharingKeyLen keeps the sharing-key tag short; the key is part of
	// a tag and of the appliance's name.
	MaxSharingKeyLen = 32
	// MinAssignBits: an assign range is at most a /16 (ipam lists its candidates).
	MinAssignBits = 16

	// DefaultELBRegion and DefaultELBPlan (connections per second) apply
	// when the cloud-config gives none (Defaults' zero values). The plan is
	// types.ProxyLBPlans.CPS100, the smallest, spelled as a constant
	// because iaas-api-go's is a variable (a test keeps them equal).
	DefaultELBRegion = "is1"
	DefaultELBPlan   = 100
)

// Spec documents one annotation. Table is the single source for docs.
type Spec struct {
	Name    string
	Default string
	Allowed string
	Meaning string
}

// Table lists every annotation, in documentation order.
var Table = []Spec{
	{Type, TypeInternet + " (or config `type`)", "internet, switch, enhanced", "Where the VIP comes from: internet = a global address of a router+switch block; switch = a private address on a plain switch (needs ip-range and assign-ip-range); enhanced = SAKURA's Enhanced Load Balancer (ELB), a proxy whose global VIP SAKURA gives (set with the elb-* annotations). Cannot change in place."},
	{Plan, PlanStandard + " (or config `plan`)", "standard, highspec, premium (= highspec)", "Appliance plan. Cannot change in place: a change is reported, not applied."},
	{HA, "false (or config `ha`)", "true, false", "Redundant pair (two appliance addresses and a VRRP VRID). Cannot change in place."},
	{LoadBalancerIP, "(none)", "an IPv4 address of the block", "Pins the VIP; same as spec.loadBalancerIP (which wins if both are set). Must be in the block and free."},
	{RouterSelector, "(none; or config `routerSelector`)", "comma-separated tags", "Tags the router (of the router+switch block) must carry."},
	{SwitchSelector, "(none; or config `switchSelector`)", "comma-separated tags", "Tags the switch must carry: the router+switch's switch (internet), or the plain switch (switch)."},
	{IPRange, "(none; or config `ipRange`)", "an IPv4 CIDR, mask /8-/30, e.g. 192.168.0.0/24", "Type switch, required: the switch's network. Its mask becomes the appliance's; its network and broadcast addresses are never handed out. Cannot change in place."},
	{AssignIPRange, "(none; or config `assignIPRange`)", "an IPv4 CIDR inside ip-range, mask /16-/30, e.g. 192.168.0.192/27", "Type switch, required: where the appliance's own addresses and VIPs may be taken from (SAKURA does not know every address used on a plain switch, so the controller only takes addresses you give it)."},
	{AssignDefaultGateway, "(none; or config `assignDefaultGateway`)", "an IPv4 address inside ip-range", "Type switch: the appliance's default route (e.g. a VPC router on the switch); never handed out. Empty: no default route. Cannot change in place."},
	{Zone, "the zone of the block (config `zone`, or the zone a `blocks` entry names)", "config `zone` or one of `loadBalancer.zones`, e.g. is1a, is1b", "The zone the appliance is made in: its block is chosen among the switches of that zone (the `blocks` entries of that zone, or the selectors, IDs or nodes' switches looked up there). Its real servers are the nodes that reach its switch, there or across a bridge. Cannot change in place: a change is reported as drift, and the appliance stays where it is."},
	{SharingKey, "(none: the Service gets its own appliance)", fmt.Sprintf("1-%d lowercase letters, digits and '-', starting and ending with a letter or digit", MaxSharingKeyLen), "Services with the same key share one appliance, each with its own VIP, up to the appliance's 20 VIP+port entries and 8 Services. Plan, HA, type and block must agree; a Service that disagrees gets a SharingConflict Event and the running appliance is left as it is. The appliance is deleted with its last Service. Cannot change in place."},
	{Repair, "true", "true, false", "false: the repair pass leaves this Service's appliance as it is (for maintenance by hand): it is not re-created, booted or rewritten when it differs from the Service. Updates the Service itself asks for still apply."},
	{MixedProtocol, MixedRefuse, "refuse, serve-tcp", "A Service with UDP or SCTP ports beside TCP ones (a game server's UDP port beside TCP query ports): refuse = nothing is created and the Service's condition and an UnsupportedProtocol Event say why; serve-tcp = the TCP ports are served, and each other port appears in status.loadBalancer.ingress[].ports[] with the error k8s.usacloud.jp/UnsupportedProtocol (the appliance serves TCP only)."},
	{AdoptID, "(none)", "the numeric ID of a load balancer in the zone (type enhanced: of an Enhanced Load Balancer), e.g. 113601234567", "Adopt this existing load balancer (type enhanced: Enhanced Load Balancer, which must be in the region the Service asks for) instead of creating one: it keeps its VIP and appliance, gets this cluster's and this Service's ownership tags, and its entries and real servers are brought in line with the Service. Refused (Warning AdoptionRefused, nothing written or created) when it does not exist, sits on another switch than the Service may use, belongs to another Service or cluster (ownership tags), is shared, or its VIP is shown by another Service. Ignored once the Service has a load balancer; if that one is later deleted outside the controller, the repair pass creates a new one as for any Service (on the address the Service shows, when still free)."},
	{Preserve, "false", "true, false", "true: when the Service is deleted (or stops being of type LoadBalancer), the controller removes its ownership tags and leaves the load balancer running with its VIP and entries instead of deleting it (Event LoadBalancerPreserved gives its ID, to adopt it again with load-balancer-adopt-id). On a shared load balancer only the last Service leaving preserves it; earlier ones leave as usual."},
	{LoadBalancerID, "(set by the controller)", "the appliance's ID", "Written by the controller after it creates the appliance; read to find it before listings show it, after a restart or a leader change. Do not set or change it."},
	{LoadBalancerCreating, "(set by the controller)", "JSON: time, switch, addresses and VRID of the last create", "Written by the controller before it creates an appliance; for a while after (the visibility grace, 2 minutes) a restarted controller or a new leader waits for that create instead of creating a second appliance, and no other Service gets its addresses. Do not set or change it."},
	{HealthCheckProtocol, ProtocolPing, "ping, tcp, http, https", "Health check of each real server. ping is the safe default: kube-proxy does not listen on nodeIP:port."},
	{HealthCheckPath, DefaultPath, "a path starting with /", "Request path for http/https checks."},
	{HealthCheckStatus, strconv.Itoa(DefaultStatus), "100-599", "Expected HTTP status for http/https checks."},
	{HealthzInterval, strconv.Itoa(DefaultInterval), fmt.Sprintf("%d-%d (seconds)", MinInterval, MaxInterval), "Health check interval (DelayLoop)."},
	{HealthCheckRetry, "(API default)", fmt.Sprintf("%d-%d", MinRetry, MaxRetry), "Failed checks before a real server is taken out."},
	{HealthCheckTimeout, "(API default)", fmt.Sprintf("%d-%d (seconds)", MinTimeout, MaxTimeout), "Connect timeout of one check."},
	{SorryServer, "(none)", "an IPv4 address", "Server that answers when every real server is down."},
	{ELBPlan, strconv.Itoa(DefaultELBPlan) + " (or config `elbPlan`)", joinInts(types.ProxyLBPlanValues) + " (connections per second)", "Type enhanced: the ELB's plan. Changes in place."},
	{ELBRegion, DefaultELBRegion + " (or config `elbRegion`)", strings.Join(types.ProxyLBRegionStrings, ", "), "Type enhanced: where the ELB runs: is1 (Ishikari), tk1 (Tokyo) or anycast. Cannot change in place: a change is reported as drift, and the ELB is kept as it is."},
	{ELBPortModes, string(elbplan.DefaultMode), "one mode for every port (" + strings.Join(types.ProxyLBProxyModeStrings, ", ") + "), or port=mode pairs, e.g. 80=http,443=https", "Type enhanced: how the ELB serves each Service port: tcp passes connections through; http and https end HTTP at the ELB (https needs a certificate on the ELB). Ports missing from a list are served as tcp."},
	{ELBRedirectToHTTPS, "false", "true, false", "Type enhanced: http ports answer with a redirect to https."},
	{ELBHTTP2, "false", "true, false", "Type enhanced: https ports offer HTTP/2."},
	{ELBSSLPolicy, "(none: the ELB's own)", strings.Join(types.ProxyLBSSLPolicies, ", ") + ", or empty", "Type enhanced: TLS versions and ciphers of https ports."},
	{ELBHealthCheckProtocol, string(elbplan.DefaultHealthProtocol), strings.Join(types.ProxyLBProtocolStrings, ", "), "Type enhanced: health check of each node on its NodePort: tcp = the port accepts a connection (kube-proxy listens on every NodePort, so nothing else is needed); http = an HTTP request for elb-health-check-path."},
	{ELBHealthCheckPath, "(none)", "a path starting with /; required with protocol http, not allowed with tcp", "Type enhanced: request path of http checks."},
	{ELBHealthCheckHost, "(none)", "a host name; with protocol http only", "Type enhanced: Host header of http checks."},
	{ELBHealthCheckInterval, strconv.Itoa(elbplan.DefaultDelayLoop), fmt.Sprintf("%d-%d (seconds)", elbplan.MinDelayLoop, elbplan.MaxDelayLoop), "Type enhanced: seconds between two health checks of a node."},
	{ELBProxyProtocol, "false", "true, false", "Type enhanced: the ELB speaks PROXY protocol v2 to the nodes, so a server that understands it sees the client's address."},
	{ELBStickySession, "false", "true, false", "Type enhanced: a client keeps the node it was first sent to, by " + elbplan.StickyMethod + "."},
	{ELBInactivityTimeout, strconv.Itoa(elbplan.DefaultInactiveSec), fmt.Sprintf("%d-%d (seconds)", elbplan.MinInactiveSec, elbplan.MaxInactiveSec), "Type enhanced: seconds after which an idle connection is closed."},
	{ELBSorryServer, "(none)", "an IPv4 address, or IPv4:port (without a port: the client's)", "Type enhanced: server that answers when every node is down."},
	{ELBBackendKeepAlive, string(elbplan.DefaultKeepAlive), strings.Join(types.ProxyLBBackendHttpKeepAliveStrings, ", "), "Type enhanced: HTTP keep-alive towards the nodes: safe keeps a connection to a node open only while the client's is; aggressive keeps it open always."},
	{ELBGzip, "false", "true, false", "Type enhanced: responses of http and https ports are compressed with gzip."},
	{ELBTLSSecret, "(none: the certificates set on the ELB by hand, if any, are kept)", fmt.Sprintf("comma-separated names of kubernetes.io/tls Secrets in the Service's namespace, at most %d", 1+elbplan.MaxAdditionalCerts), "Type enhanced: the certificates of the https ports. The first Secret's is the primary certificate, the others are served by SNI. tls.crt is the server certificate followed by its intermediates, tls.key its key. They are set again when a Secret changes (by the next repair pass). Needs an https port (elb-port-modes) and the chart's rbac.secretNamespaces to cover the namespace. Removing the annotation leaves the certificates on the ELB."},
	{ELBLetsEncrypt, "(none: the ELB's own Let's Encrypt setting, if any, is kept)", "a lowercase DNS name that resolves to the ELB", "Type enhanced: SAKURA gets the certificate of the https ports from Let's Encrypt for this name, and renews it. Needs an http or https port (SAKURA answers the challenge there); not with elb-tls-secret. Removing the annotation leaves the setting on the ELB."},
	{ELBLetsEncryptAltNames, "(none)", "comma-separated lowercase DNS names that resolve to the ELB", "Type enhanced: further names of the Let's Encrypt certificate; needs elb-letsencrypt-common-name."},
	{ELBVIPFailover, "false", "true, false", "Type enhanced: SAKURA may move the VIP to another address when the ELB's site fails; the Service's status then follows it, and clients should use the hostname (the ELB's FQDN) rather than the address. Set at creation only: a change is reported as drift (ChangeNeedsNewLoadBalancer) and the ELB is kept."},
	{ELBID, "(set by the controller)", "the ELB's ID", "Type enhanced: written by the controller after it creates the ELB; read to find it before listings show it, after a restart or a leader change. Do not set or change it."},
}

// Defaults are the cluster-wide values from the cloud-config that an
// annotation overrides.
type Defaults struct {
	Type           string
	Plan           string
	HA             bool
	RouterSelector []string
	SwitchSelector []string
	// Type switch: network, assign range and gateway (strings as in the
	// cloud-config; validated together with the annotations).
	IPRange              string
	AssignIPRange        string
	AssignDefaultGateway string
	// Zones are the zones a Service may name (cloud-config zone and
	// loadBalancer.zones); empty: the annotation is refused.
	Zones []string
	// Type enhanced: plan (connections per second) and region of new
	// ELBs; zero values mean DefaultELBPlan and DefaultELBRegion.
	ELBPlan   int
	ELBRegion string
	// ELBClass is the spec.loadBalancerClass whose Services are of type
	// enhanced whatever their annotation ("" none).
	ELBClass string
}

// HealthCheck is the parsed health check. Zero Retry/Timeout mean "leave to the API".
type HealthCheck struct {
	Protocol string
	Path     string // http/https only
	Status   int    // http/https only
	Interval int
	Retry    int
	Timeout  int
}

// Options is everything the annotations (and defaults) say about one Service.
type Options struct {
	Type           string
	Plan           string
	HA             bool
	IP             string // pinned VIP, "" = allocate
	RouterSelector []string
	SwitchSelector []string
	HealthCheck    HealthCheck
	SorryServer    string
	// SharingKey is "" for an appliance of its own.
	SharingKey string
	// Zone is the zone the Service names for its appliance ("": its
	// block's zone).
	Zone string
	// NoRepair opts the Service out of the repair pass.
	NoRepair bool
	// ServeTCPOnly: serve the TCP ports of a Service that has others too.
	ServeTCPOnly bool
	// AdoptID is the appliance the Service asks to adopt ("" = none).
	AdoptID string
	// Preserve keeps the appliance when the Service goes.
	Preserve bool
	// Private is set for Type switch only (zero otherwise).
	Private Private
}

// Private is the validated network of a type switch load balancer.
type Private struct {
	Network netip.Prefix // masked
	Assign  netip.Prefix // masked, inside Network
	Gateway netip.Addr   // invalid = no default route
}

// Error names the annotation, the value given and what is allowed.
type Error struct {
	Annotation string
	Value      string
	Allowed    string
}

func (e *Error) Error() string {
	return fmt.Sprintf("annotation %s: invalid value %q (allowed: %s)", e.Annotation, e.Value, e.Allowed)
}

// Parse reads the Service's annotations over defaults. It returns every
// invalid annotation, not just the first, so one Event can name them all.
func Parse(svc *v1.Service, d Defaults) (Options, []error) {
	a := svc.Annotations
	var errs []error
	bad := func(name, allowed string) {
		errs = append(errs, &Error{Annotation: name, Value: a[name], Allowed: allowed})
	}
	get := func(name string) (string, bool) {
		v, ok := a[name]
		return strings.TrimSpace(v), ok
	}
	o := Options{
		Type:           orDefault(d.Type, TypeInternet),
		Plan:           orDefault(d.Plan, PlanStandard),
		HA:             d.HA,
		RouterSelector: d.RouterSelector,
		SwitchSelector: d.SwitchSelector,
		HealthCheck:    HealthCheck{Protocol: ProtocolPing, Interval: DefaultInterval},
	}
	if p, err := normalizePlan(o.Plan); err == nil {
		o.Plan = p
	}

	if v, ok := get(Type); ok {
		switch strings.ToLower(v) {
		case TypeInternet, TypeSwitch, TypeEnhanced:
			o.Type = strings.ToLower(v)
		default:
			bad(Type, specOf(Type).Allowed)
		}
	}
	if v, ok := get(Plan); ok {
		if p, err := normalizePlan(v); err == nil {
			o.Plan = p
		} else {
			bad(Plan, specOf(Plan).Allowed)
		}
	}
	if v, ok := get(Zone); ok {
		if slices.Contains(d.Zones, v) {
			o.Zone = v
		} else {
			bad(Zone, "one of the zones load balancers are made in (cloud-config zone and loadBalancer.zones): "+strings.Join(d.Zones, ", "))
		}
	}
	if v, err := noRepairOf(svc); err != nil {
		errs = append(errs, err)
	} else {
		o.NoRepair = v
	}
	if v, ok := get(MixedProtocol); ok {
		switch v {
		case MixedRefuse:
		case MixedServeTCP:
			o.ServeTCPOnly = true
		default:
			bad(MixedProtocol, specOf(MixedProtocol).Allowed)
		}
	}
	if v, ok := get(AdoptID); ok && v != "" {
		if adoptIDRE.MatchString(v) {
			o.AdoptID = v
		} else {
			bad(AdoptID, specOf(AdoptID).Allowed)
		}
	}
	if v, err := PreserveOf(svc); err != nil {
		errs = append(errs, err)
	} else {
		o.Preserve = v
	}
	if v, ok := get(HA); ok {
		// Strict: the earlier controller treated any non-empty value as true.
		switch v {
		case "true":
			o.HA = true
		case "false":
			o.HA = false
		default:
			bad(HA, specOf(HA).Allowed)
		}
	}
	if v, ok := get(LoadBalancerIP); ok && v != "" {
		if ip, err := netip.ParseAddr(v); err == nil && ip.Is4() {
			o.IP = ip.String()
		} else {
			bad(LoadBalancerIP, specOf(LoadBalancerIP).Allowed)
		}
	}
	if svc.Spec.LoadBalancerIP != "" {
		if ip, err := netip.ParseAddr(svc.Spec.LoadBalancerIP); err == nil && ip.Is4() {
			o.IP = ip.String()
		} else {
			errs = append(errs, &Error{Annotation: "spec.loadBalancerIP", Value: svc.Spec.LoadBalancerIP, Allowed: "an IPv4 address of the block"})
		}
	}
	if v, ok := get(RouterSelector); ok {
		o.RouterSelector = splitTags(v)
	}
	if v, ok := get(SwitchSelector); ok {
		o.SwitchSelector = splitTags(v)
	}
	if v, ok := get(HealthCheckProtocol); ok {
		switch strings.ToLower(v) {
		case ProtocolPing, ProtocolTCP, ProtocolHTTP, ProtocolHTTPS:
			o.HealthCheck.Protocol = strings.ToLower(v)
		default:
			bad(HealthCheckProtocol, specOf(HealthCheckProtocol).Allowed)
		}
	}
	isHTTP := o.HealthCheck.Protocol == ProtocolHTTP || o.HealthCheck.Protocol == ProtocolHTTPS
	if isHTTP {
		o.HealthCheck.Path, o.HealthCheck.Status = DefaultPath, DefaultStatus
	}
	if v, ok := get(HealthCheckPath); ok {
		if !strings.HasPrefix(v, "/") || strings.ContainsAny(v, " \t\r\n") {
			bad(HealthCheckPath, specOf(HealthCheckPath).Allowed)
		} else if isHTTP {
			o.HealthCheck.Path = v
		}
	}
	intAnn := func(name string, lo, hi int, dst *int, apply bool) {
		v, ok := get(name)
		if !ok {
			return
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			bad(name, specOf(name).Allowed)
			return
		}
		if apply {
			*dst = n
		}
	}
	intAnn(HealthCheckStatus, MinStatus, MaxStatus, &o.HealthCheck.Status, isHTTP)
	intAnn(HealthzInterval, MinInterval, MaxInterval, &o.HealthCheck.Interval, true)
	intAnn(HealthCheckRetry, MinRetry, MaxRetry, &o.HealthCheck.Retry, true)
	intAnn(HealthCheckTimeout, MinTimeout, MaxTimeout, &o.HealthCheck.Timeout, true)
	if v, ok := get(SorryServer); ok && v != "" {
		if ip, err := netip.ParseAddr(v); err == nil && ip.Is4() {
			o.SorryServer = ip.String()
		} else {
			bad(SorryServer, specOf(SorryServer).Allowed)
		}
	}
	if v, ok := get(SharingKey); ok {
		if sharingKeyRE.MatchString(v) {
			o.SharingKey = v
		} else {
			bad(SharingKey, specOf(SharingKey).Allowed)
		}
	}
	errs = append(errs, parsePrivate(a, d, &o)...)
	// Only for a valid DSR type: with a mistyped type, which annotations
	// apply is unknown, and the type's own error says what to fix.
	if t := TypeOf(svc, d); t == TypeInternet || t == TypeSwitch {
		errs = append(errs, refuseELB(a)...)
	}
	return o, errs
}

// TypeOf is the type svc asks for, so the caller knows which parser to
// use: the annotation as written (lowercased, trimmed, even when invalid:
// Parse reports it), else the cloud-config's type, else internet.
func TypeOf(svc *v1.Service, d Defaults) string {
	if isELBClass(svc, d) {
		return TypeEnhanced // ParseEnhanced refuses a type annotation that says otherwise
	}
	if v, ok := svc.Annotations[Type]; ok {
		return strings.ToLower(strings.TrimSpace(v))
	}
	return orDefault(d.Type, TypeInternet)
}

func isELBClass(svc *v1.Service, d Defaults) bool {
	c := svc.Spec.LoadBalancerClass
	return c != nil && d.ELBClass != "" && *c == d.ELBClass
}

// adoptIDRE: SAKURA resource IDs are decimal numbers (12 digits today).
var adoptIDRE = regexp.MustCompile(`^[1-9][0-9]{0,18}$`)

// noRepairOf reads the repair annotation: true when the Service opts out
// of the repair pass.
func noRepairOf(svc *v1.Service) (bool, error) {
	v, ok := svc.Annotations[Repair]
	if !ok {
		return false, nil
	}
	switch strings.TrimSpace(v) {
	case "true":
		return false, nil
	case "false":
		return true, nil
	}
	return false, &Error{Annotation: Repair, Value: v, Allowed: specOf(Repair).Allowed}
}

// PreserveOf reads the preserve annotation alone: the deletion path reads
// it without parsing the rest (a Service being deleted need not be valid).
func PreserveOf(svc *v1.Service) (bool, error) {
	v, ok := svc.Annotations[Preserve]
	if !ok {
		return false, nil
	}
	switch strings.TrimSpace(v) {
	case "true":
		return true, nil
	case "false", "":
		return false, nil
	}
	return false, &Error{Annotation: Preserve, Value: v, Allowed: specOf(Preserve).Allowed}
}

// source names where a value came from, for messages.
type source struct {
	annotation, configKey string
}

func (s source) name(fromAnnotation bool) string {
	if fromAnnotation {
		return "annotation " + s.annotation
	}
	return "cloud-config " + s.configKey + " (override it with annotation " + s.annotation + ")"
}

// RelationError is a valid value that does not fit another one.
type RelationError struct {
	Annotation string // the annotation to fix (named even when the value came from the config)
	Msg        string
}

func (e *RelationError) Error() string { return e.Msg }

// parsePrivate validates the type switch annotations (and their config
// defaults). Syntax is checked whatever the type, so a typo is reported
// before someone switches the type; relations and presence only for switch.
func parsePrivate(a map[string]string, d Defaults, o *Options) []error {
	var errs []error
	pick := func(name, def string) (string, bool) {
		if v, ok := a[name]; ok {
			return strings.TrimSpace(v), true
		}
		return strings.TrimSpace(def), false
	}
	srcIP := source{IPRange, "loadBalancer.ipRange"}
	srcAssign := source{AssignIPRange, "loadBalancer.assignIPRange"}
	srcGW := source{AssignDefaultGateway, "loadBalancer.assignDefaultGateway"}
	ipV, ipAnn := pick(IPRange, d.IPRange)
	asV, asAnn := pick(AssignIPRange, d.AssignIPRange)
	gwV, gwAnn := pick(AssignDefaultGateway, d.AssignDefaultGateway)
	isSwitch := o.Type == TypeSwitch
	var p Private
	var ipOK, asOK, gwOK bool
	parsePrefix := func(v string) (netip.Prefix, bool) {
		pf, err := netip.ParsePrefix(v)
		if err != nil || !pf.Addr().Is4() || pf.Bits() < 8 || pf.Bits() > 30 {
			return netip.Prefix{}, false
		}
		return pf.Masked(), true
	}
	invalid := func(src source, fromAnn bool, v, allowed string) {
		if !fromAnn && !isSwitch {
			return // a config default only matters to Services of type switch
		}
		errs = append(errs, &RelationError{Annotation: src.annotation,
			Msg: fmt.Sprintf("%s: invalid value %q (allowed: %s)", src.name(fromAnn), v, allowed)})
	}
	if ipV != "" {
		if p.Network, ipOK = parsePrefix(ipV); !ipOK {
			invalid(srcIP, ipAnn, ipV, specOf(IPRange).Allowed)
		}
	} else if isSwitch {
		errs = append(errs, &RelationError{Annotation: IPRange, Msg: fmt.Sprintf("annotation %s (or cloud-config %s) is required with %s: %s; give the switch's network, e.g. 192.168.0.0/24", IPRange, srcIP.configKey, Type, TypeSwitch)})
	}
	if asV != "" {
		if p.Assign, asOK = parsePrefix(asV); !asOK || p.Assign.Bits() < MinAssignBits {
			asOK = false
			invalid(srcAssign, asAnn, asV, specOf(AssignIPRange).Allowed)
		}
	} else if isSwitch {
		errs = append(errs, &RelationError{Annotation: AssignIPRange, Msg: fmt.Sprintf("annotation %s (or cloud-config %s) is required with %s: %s; give the part of the network the controller may take addresses from, e.g. 192.168.0.192/27", AssignIPRange, srcAssign.configKey, Type, TypeSwitch)})
	}
	if gwV != "" {
		g, err := netip.ParseAddr(gwV)
		if gwOK = err == nil && g.Is4(); gwOK {
			p.Gateway = g
		} else {
			invalid(srcGW, gwAnn, gwV, specOf(AssignDefaultGateway).Allowed)
		}
	}
	if !isSwitch {
		return errs
	}
	if ipOK && asOK && !(p.Network.Contains(p.Assign.Addr()) && p.Assign.Bits() >= p.Network.Bits()) {
		src, fromAnn := srcAssign, asAnn
		if !asAnn && ipAnn {
			src, fromAnn = srcIP, ipAnn
		}
		errs = append(errs, &RelationError{Annotation: src.annotation, Msg: fmt.Sprintf("%s: assign range %s is not inside ip-range %s", src.name(fromAnn), p.Assign, p.Network)})
	}
	if ipOK && gwOK {
		last := lastAddr(p.Network)
		if !p.Network.Contains(p.Gateway) || p.Gateway == p.Network.Addr() || p.Gateway == last {
			errs = append(errs, &RelationError{Annotation: AssignDefaultGateway, Msg: fmt.Sprintf("%s: gateway %s is not a host address of ip-range %s", srcGW.name(gwAnn), p.Gateway, p.Network)})
		}
	}
	if v, ok := a[RouterSelector]; ok && strings.TrimSpace(v) != "" {
		errs = append(errs, &RelationError{Annotation: RouterSelector, Msg: fmt.Sprintf("annotation %s: not allowed with %s: %s (a plain switch has no router); use %s to choose the switch", RouterSelector, Type, TypeSwitch, SwitchSelector)})
	}
	if len(errs) == 0 {
		o.Private = p
		o.RouterSelector = nil // config router selectors describe internet blocks
	}
	return errs
}

// lastAddr is the broadcast address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v |= uint32(1)<<(32-p.Bits()) - 1
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// NormalizePlan maps a plan name (annotation or config) to standard|highspec.
func NormalizePlan(v string) (string, error) { return normalizePlan(v) }

func normalizePlan(v string) (string, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case PlanStandard:
		return PlanStandard, nil
	case PlanHighSpec, planPremium:
		return PlanHighSpec, nil
	}
	return "", fmt.Errorf("plan %q: allowed %s", v, specOf(Plan).Allowed)
}

func specOf(name string) Spec {
	for _, s := range Table {
		if s.Name == name {
			return s
		}
	}
	panic("annotations: no spec for " + name)
}

var sharingKeyRE = regexp.MustCompile(fmt.Sprintf(`^[a-z0-9]([a-z0-9-]{0,%d}[a-z0-9])?$`, MaxSharingKeyLen-2))

func splitTags(v string) []string {
	var out []string
	for _, t := range strings.Split(v, ",") {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	return out
}

func orDefault(v, d string) string {
	if v == "" {
		return d
	}
	return strings.ToLower(v)
}
