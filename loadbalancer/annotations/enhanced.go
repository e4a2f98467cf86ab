package annotations

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/sacloud/iaas-api-go/types"
	v1 "k8s.io/api/core/v1"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/elbplan"
)

// Enhanced is what the annotations say about a type enhanced Service.
type Enhanced struct {
	ELB elbplan.Options
	// TLSSecrets name the kubernetes.io/tls Secrets (in the Service's
	// namespace) of the https ports' certificates; the first is primary.
	TLSSecrets []string
	// AdoptID is the ELB the Service asks to take over ("" = none).
	AdoptID  string
	NoRepair bool // load-balancer-repair: "false"
	Preserve bool // load-balancer-preserve: "true"
}

// elbAnnotations are the annotations a user sets on a type enhanced
// Service (ELBID is the controller's), in documentation order.
var elbAnnotations = []string{
	ELBPlan, ELBRegion, ELBPortModes, ELBRedirectToHTTPS, ELBHTTP2, ELBSSLPolicy,
	ELBHealthCheckProtocol, ELBHealthCheckPath, ELBHealthCheckHost, ELBHealthCheckInterval,
	ELBProxyProtocol, ELBStickySession, ELBInactivityTimeout, ELBSorryServer, ELBBackendKeepAlive, ELBGzip, ELBVIPFailover, ELBTLSSecret, ELBLetsEncrypt, ELBLetsEncryptAltNames,
}

// optionAnnotation names the annotation that carries each elbplan option,
// so that Validate's errors tell the user what to fix.
var optionAnnotation = map[string]string{
	elbplan.OptPlan:            ELBPlan,
	elbplan.OptRegion:          ELBRegion,
	elbplan.OptMode:            ELBPortModes,
	elbplan.OptPortModes:       ELBPortModes,
	elbplan.OptSSLPolicy:       ELBSSLPolicy,
	elbplan.OptHealthProtocol:  ELBHealthCheckProtocol,
	elbplan.OptHealthPath:      ELBHealthCheckPath,
	elbplan.OptHealthHost:      ELBHealthCheckHost,
	elbplan.OptHealthDelayLoop: ELBHealthCheckInterval,
	elbplan.OptInactiveSec:     ELBInactivityTimeout,
	elbplan.OptSorryServer:     ELBSorryServer,
	elbplan.OptSorryServerPort: ELBSorryServer,
	elbplan.OptKeepAlive:       ELBBackendKeepAlive,
	elbplan.OptRedirectToHTTPS: ELBRedirectToHTTPS,
	elbplan.OptHTTP2:           ELBHTTP2,
	elbplan.OptTLS:             ELBTLSSecret,
	elbplan.OptLetsEncrypt:     ELBLetsEncrypt,
	elbplan.OptLetsEncryptAlt:  ELBLetsEncryptAltNames,
}

// ParseEnhanced reads a type enhanced Service's annotations over defaults
// and, like Parse, returns every problem at once. Each annotation is first
// checked alone, against its Table entry; Options.Validate then judges the
// values together (a path on a tcp check, say) and the cloud-config's plan
// and region, and its errors are named by the annotation to fix. The DSR
// types' annotations are refused: an ELB would silently ignore them.
func ParseEnhanced(svc *v1.Service, d Defaults) (Enhanced, []error) {
	a := svc.Annotations
	var errs []error
	// refused: annotations already reported, whose Validate errors would
	// only repeat the problem.
	refused := map[string]bool{}
	bad := func(name string) {
		refused[name] = true
		errs = append(errs, &Error{Annotation: name, Value: a[name], Allowed: specOf(name).Allowed})
	}
	get := func(name string) (string, bool) {
		v, ok := a[name]
		return strings.TrimSpace(v), ok
	}
	// oneOf matches v case-insensitively and returns the API's spelling.
	oneOf := func(name string, allowed []string) (string, bool) {
		v, ok := get(name)
		if !ok {
			return "", false
		}
		if i := slices.IndexFunc(allowed, func(s string) bool { return strings.EqualFold(s, v) }); i >= 0 {
			return allowed[i], true
		}
		bad(name)
		return "", false
	}
	boolAnn := func(name string, dst *bool) {
		v, ok := get(name)
		if !ok {
			return
		}
		// Strict, as HA: a typo must not read as false.
		switch v {
		case "true":
			*dst = true
		case "false":
			*dst = false
		default:
			bad(name)
		}
	}
	// intAnn checks the range here, not in Validate: Validate reads 0 as
	// "the default", which an annotation saying 0 does not mean.
	intAnn := func(name string, lo, hi int, dst *int) {
		v, ok := get(name)
		if !ok {
			return
		}
		if n, err := strconv.Atoi(v); err == nil && n >= lo && n <= hi {
			*dst = n
		} else {
			bad(name)
		}
	}

	e := Enhanced{ELB: elbplan.Options{
		Plan:   cmp.Or(d.ELBPlan, DefaultELBPlan),
		Region: cmp.Or(strings.ToLower(strings.TrimSpace(d.ELBRegion)), DefaultELBRegion),
	}}
	o := &e.ELB
	if v, ok := get(ELBPlan); ok {
		if n, err := strconv.Atoi(v); err == nil && slices.Contains(types.ProxyLBPlanValues, n) {
			o.Plan = n
		} else {
			bad(ELBPlan)
		}
	}
	if v, ok := oneOf(ELBRegion, types.ProxyLBRegionStrings); ok {
		o.Region = v
	}
	if v, ok := get(ELBPortModes); ok {
		if mode, byPort, ok := parsePortModes(v); ok {
			o.Mode, o.PortModes = mode, byPort
		} else {
			bad(ELBPortModes)
		}
	}
	boolAnn(ELBRedirectToHTTPS, &o.RedirectToHTTPS)
	boolAnn(ELBHTTP2, &o.HTTP2)
	if v, ok := get(ELBSSLPolicy); ok && v != "" {
		if p, ok := oneOf(ELBSSLPolicy, types.ProxyLBSSLPolicies); ok {
			o.SSLPolicy = p
		}
	}
	if v, ok := oneOf(ELBHealthCheckProtocol, types.ProxyLBProtocolStrings); ok {
		o.HealthCheck.Protocol = types.EProxyLBHealthCheckProtocol(v)
	}
	if v, ok := get(ELBHealthCheckPath); ok {
		if strings.HasPrefix(v, "/") && !strings.ContainsAny(v, " \t\r\n") {
			o.HealthCheck.Path = v
		} else {
			bad(ELBHealthCheckPath)
		}
	}
	if v, ok := get(ELBHealthCheckHost); ok {
		if !strings.ContainsAny(v, " \t\r\n/") {
			o.HealthCheck.Host = v
		} else {
			bad(ELBHealthCheckHost)
		}
	}
	intAnn(ELBHealthCheckInterval, elbplan.MinDelayLoop, elbplan.MaxDelayLoop, &o.HealthCheck.DelayLoop)
	boolAnn(ELBProxyProtocol, &o.ProxyProtocol)
	boolAnn(ELBStickySession, &o.StickySession)
	intAnn(ELBInactivityTimeout, elbplan.MinInactiveSec, elbplan.MaxInactiveSec, &o.InactiveSec)
	if v, ok := get(ELBSorryServer); ok && v != "" {
		if addr, port, ok := parseSorryServer(v); ok {
			o.SorryServer, o.SorryServerPort = addr, port
		} else {
			bad(ELBSorryServer)
		}
	}
	if v, ok := oneOf(ELBBackendKeepAlive, types.ProxyLBBackendHttpKeepAliveStrings); ok {
		o.KeepAlive = types.EProxyLBBackendHttpKeepAlive(v)
	}
	boolAnn(ELBGzip, &o.Gzip)
	boolAnn(ELBVIPFailover, &o.VIPFailover)
	if v, ok := get(ELBTLSSecret); ok && v != "" {
		names := splitTags(v)
		valid := len(names) <= 1+elbplan.MaxAdditionalCerts
		for _, n := range names {
			valid = valid && len(validation.IsDNS1123Subdomain(n)) == 0
		}
		if valid {
			e.TLSSecrets, o.TLS = names, true
		} else {
			bad(ELBTLSSecret)
		}
	}

	// Let's Encrypt names are checked by Validate (below), which names
	// these annotations; alternative names alone are refused here.
	if v, ok := get(ELBLetsEncrypt); ok {
		o.LetsEncrypt.CommonName = v
	}
	if v, ok := get(ELBLetsEncryptAltNames); ok && v != "" {
		if o.LetsEncrypt.CommonName == "" {
			refused[ELBLetsEncryptAltNames] = true
			errs = append(errs, &Error{Annotation: ELBLetsEncryptAltNames, Value: a[ELBLetsEncryptAltNames], Allowed: "names only together with " + ELBLetsEncrypt})
		} else {
			o.LetsEncrypt.AltNames = splitTags(v)
		}
	}

	if v, ok := get(AdoptID); ok && v != "" {
		if adoptIDRE.MatchString(v) {
			e.AdoptID = v
		} else {
			bad(AdoptID)
		}
	}

	if v, err := noRepairOf(svc); err != nil {
		errs = append(errs, err)
	} else {
		e.NoRepair = v
	}
	if v, err := PreserveOf(svc); err != nil {
		errs = append(errs, err)
	} else {
		e.Preserve = v
	}
	errs = append(errs, refuseDSR(svc)...)
	if v, ok := get(Type); ok && isELBClass(svc, d) && !strings.EqualFold(v, TypeEnhanced) {
		errs = append(errs, &Error{Annotation: Type, Value: a[Type], Allowed: fmt.Sprintf("%s, or not set: spec.loadBalancerClass %s always gets an Enhanced Load Balancer", TypeEnhanced, d.ELBClass)})
	}

	for _, err := range o.Validate() {
		var oe *elbplan.OptionError
		name := ""
		if errors.As(err, &oe) {
			name = optionAnnotation[oe.Option]
		}
		if name == "" {
			errs = append(errs, err) // an option no annotation carries: never drop it
			continue
		}
		// A path or host is judged against the check protocol: after a
		// refused protocol that judgement would be about the default.
		if refused[name] || (refused[ELBHealthCheckProtocol] && (name == ELBHealthCheckPath || name == ELBHealthCheckHost)) {
			continue
		}
		errs = append(errs, &Error{Annotation: name, Value: oe.Value, Allowed: oe.Allowed})
	}
	return e, errs
}

// parsePortModes reads elb-port-modes: one mode for every port ("http"),
// or port=mode pairs ("80=http,443=https"). Mixing the two forms is
// refused: which would win for a listed port would be a guess.
func parsePortModes(v string) (types.EProxyLBProxyMode, map[int32]types.EProxyLBProxyMode, bool) {
	mode := func(s string) (types.EProxyLBProxyMode, bool) {
		s = strings.ToLower(strings.TrimSpace(s))
		return types.EProxyLBProxyMode(s), slices.Contains(types.ProxyLBProxyModeStrings, s)
	}
	if !strings.Contains(v, "=") {
		m, ok := mode(v)
		return m, nil, ok
	}
	byPort := map[int32]types.EProxyLBProxyMode{}
	for _, entry := range strings.Split(v, ",") {
		if strings.TrimSpace(entry) == "" {
			continue // a trailing comma
		}
		p, m, found := strings.Cut(entry, "=")
		port, err := strconv.Atoi(strings.TrimSpace(p))
		md, okMode := mode(m)
		if !found || err != nil || port < 1 || port > 65535 || !okMode {
			return "", nil, false
		}
		if _, dup := byPort[int32(port)]; dup {
			return "", nil, false
		}
		byPort[int32(port)] = md
	}
	return "", byPort, len(byPort) > 0
}

// parseSorryServer reads an IPv4 address with an optional port (0 = the
// client's port).
func parseSorryServer(v string) (netip.Addr, int, bool) {
	if ip, err := netip.ParseAddr(v); err == nil {
		return ip, 0, ip.Is4()
	}
	ap, err := netip.ParseAddrPort(v)
	if err != nil || !ap.Addr().Is4() || ap.Port() == 0 {
		return netip.Addr{}, 0, false
	}
	return ap.Addr(), int(ap.Port()), true
}

// dsrNote says where a DSR-only annotation applies and, when there is
// one, what a type enhanced Service uses instead.
type dsrNote struct {
	name, types, instead string
}

const (
	dsrTypes    = "types internet and switch"
	switchTypes = "type switch"
)

// elbHealthInstead lists the ELB's health check settings, for the DSR
// health check annotations that have no one equivalent.
var elbHealthInstead = "the ELB's health check has no such setting; it is set with " +
	strings.Join([]string{ELBHealthCheckProtocol, ELBHealthCheckPath, ELBHealthCheckHost, ELBHealthCheckInterval}, ", ")

// dsrOnly are the annotations an ELB has no use for, in Table order.
var dsrOnly = []dsrNote{
	{Plan, dsrTypes, "use " + ELBPlan},
	{HA, dsrTypes, "an ELB has no such setting"},
	{LoadBalancerIP, dsrTypes, "the ELB's VIP is given by SAKURA"},
	{RouterSelector, dsrTypes, "an ELB sits on no router or switch of the cluster; choose its region with " + ELBRegion},
	{SwitchSelector, dsrTypes, "an ELB sits on no router or switch of the cluster; choose its region with " + ELBRegion},
	{IPRange, switchTypes, ""},
	{AssignIPRange, switchTypes, ""},
	{AssignDefaultGateway, switchTypes, ""},
	{Zone, dsrTypes, "choose the ELB's region with " + ELBRegion},
	{SharingKey, dsrTypes, "each type enhanced Service has an ELB of its own"},
	{MixedProtocol, dsrTypes, ""},
	{HealthCheckProtocol, dsrTypes, "use " + ELBHealthCheckProtocol},
	{HealthCheckPath, dsrTypes, "use " + ELBHealthCheckPath},
	{HealthCheckStatus, dsrTypes, elbHealthInstead},
	{HealthzInterval, dsrTypes, "use " + ELBHealthCheckInterval},
	{HealthCheckRetry, dsrTypes, elbHealthInstead},
	{HealthCheckTimeout, dsrTypes, elbHealthInstead},
	{SorryServer, dsrTypes, "use " + ELBSorryServer},
}

// refuseDSR reports the DSR types' annotations set on a type enhanced
// Service. An empty value asks for nothing and is let through.
func refuseDSR(svc *v1.Service) []error {
	var errs []error
	for _, n := range dsrOnly {
		v, ok := svc.Annotations[n.name]
		if !ok || strings.TrimSpace(v) == "" {
			continue
		}
		allowed := "not set: applies to " + n.types + " only"
		if n.instead != "" {
			allowed += "; for type enhanced " + n.instead
		}
		errs = append(errs, &Error{Annotation: n.name, Value: v, Allowed: allowed})
	}
	if svc.Spec.LoadBalancerIP != "" {
		errs = append(errs, &Error{Annotation: "spec.loadBalancerIP", Value: svc.Spec.LoadBalancerIP,
			Allowed: "empty: applies to " + dsrTypes + " only; for type enhanced the ELB's VIP is given by SAKURA"})
	}
	return errs
}

// refuseELB reports the elb-* annotations set on a Service of a DSR type,
// which would otherwise be ignored there. An empty value is let through.
func refuseELB(a map[string]string) []error {
	var errs []error
	for _, name := range elbAnnotations {
		if v, ok := a[name]; ok && strings.TrimSpace(v) != "" {
			errs = append(errs, &Error{Annotation: name, Value: v, Allowed: "not set: applies to type enhanced only"})
		}
	}
	return errs
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ", ")
}
