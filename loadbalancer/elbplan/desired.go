package elbplan

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/sacloud/iaas-api-go/types"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Node is a cluster node as the ELB sees it. The ELB runs on SAKURA's
// network, not on the cluster's switch, so it reaches a node only at a
// global address.
type Node struct {
	Name     string
	GlobalIP netip.Addr // zero when the node has none
}

// Spec is the ELB wanted for one Service, with every default filled in so
// that Plan compares exactly what would be written.
type Spec struct {
	Plan   types.EProxyLBPlan
	Region types.EProxyLBRegion

	BindPorts []BindPort // sorted by Port
	Servers   []Server   // sorted by address, then port

	HealthCheck     HealthCheck // defaults filled
	SorryServer     netip.Addr  // zero = none
	SorryServerPort int         // 0 = the client's port
	ProxyProtocol   bool
	StickySession   bool
	InactiveSec     int
	KeepAlive       types.EProxyLBBackendHttpKeepAlive
	Gzip            bool
	VIPFailover     bool // creation only
	// LetsEncrypt is nil when the Service leaves the ELB's setting alone.
	LetsEncrypt *LetsEncrypt
}

// BindPort is one port the ELB listens on.
type BindPort struct {
	Port            int
	Mode            types.EProxyLBProxyMode
	RedirectToHTTPS bool   // http ports only
	HTTP2           bool   // https ports only
	SSLPolicy       string // https ports only; "" = the ELB's own
}

// Server is one real server: a node's global address and a NodePort.
type Server struct {
	Node string // for messages; not compared
	Addr netip.Addr
	Port int
}

func (s Server) String() string { return netip.AddrPortFrom(s.Addr, uint16(s.Port)).String() }

// ProblemKind says what keeps a Service from getting the ELB it asks for.
type ProblemKind int

const (
	// ProblemOption: an option is invalid (Options.Validate).
	ProblemOption ProblemKind = iota
	// ProblemNoPorts: the Service has no port.
	ProblemNoPorts
	// ProblemProtocol: a port other than TCP; an ELB has no UDP or SCTP.
	ProblemProtocol
	// ProblemTooManyPorts: more ports than an ELB binds (MaxBindPorts).
	ProblemTooManyPorts
	// ProblemNoNodePort: a port without a NodePort, which is the only
	// place the ELB can send its traffic to.
	ProblemNoNodePort
	// ProblemTargetsDiffer: two ports lead to different targets. An ELB
	// server has no bind port of its own (iaas.ProxyLBServer: address,
	// port, group), so either port's traffic reaches either NodePort.
	ProblemTargetsDiffer
	// ProblemOptionMismatch: an option does not fit the Service's ports
	// (a port mode for a port it lacks, a redirect without an http port).
	ProblemOptionMismatch

	// The kinds below leave nodes out; the ELB is still wanted.

	// ProblemNoGlobalIP: nodes without a global IPv4 address.
	ProblemNoGlobalIP
	// ProblemSameGlobalIP: nodes with the address of a node before them
	// by name; the API refuses a server twice.
	ProblemSameGlobalIP
	// ProblemTooManyServers: nodes beyond MaxServers.
	ProblemTooManyServers
)

// Problem is one thing wrong, with a message that names the field, the
// nodes when it leaves nodes out, and what to do.
type Problem struct {
	Kind  ProblemKind
	Msg   string
	Nodes []string // sorted; for the kinds that leave nodes out
}

// Blocking reports whether the problem means no ELB is wanted at all.
func (p Problem) Blocking() bool { return p.Kind < ProblemNoGlobalIP }

// Desired returns the ELB wanted for svc over nodes, and every problem at
// once. When a problem is Blocking the Spec is zero: the caller creates
// nothing and changes nothing, and reports the problems.
//
// Each TCP Service port becomes a bind port on the same number; each node
// with a global address becomes one server per Service port, on that
// port's NodePort. Nodes are taken in name order, so which ones are left
// out beyond MaxServers does not depend on the order they arrive in.
func Desired(svc *v1.Service, nodes []Node, opts Options) (Spec, []Problem) {
	var probs []Problem
	add := func(k ProblemKind, format string, args ...any) {
		probs = append(probs, Problem{Kind: k, Msg: fmt.Sprintf(format, args...)})
	}
	for _, err := range opts.Validate() {
		add(ProblemOption, "%v", err)
	}

	ports := svc.Spec.Ports
	var tcp []v1.ServicePort
	var other, noNodePort []string
	for _, p := range ports {
		if p.Protocol != "" && p.Protocol != v1.ProtocolTCP {
			other = append(other, portLabel(p)+"/"+string(p.Protocol))
			continue
		}
		tcp = append(tcp, p)
		if p.NodePort == 0 {
			noNodePort = append(noNodePort, portLabel(p))
		}
	}
	switch {
	case len(ports) == 0:
		add(ProblemNoPorts, "the Service has no ports")
	case len(ports) > MaxBindPorts:
		add(ProblemTooManyPorts, "the Service has %d ports, an Enhanced Load Balancer binds at most %d; split it into several Services", len(ports), MaxBindPorts)
	}
	if len(other) > 0 {
		add(ProblemProtocol, "port %s: an Enhanced Load Balancer serves TCP only (modes %s); remove the port or serve it with a Service of another type", strings.Join(other, ", "), strings.Join(types.ProxyLBProxyModeStrings, ", "))
	}
	if len(noNodePort) > 0 {
		add(ProblemNoNodePort, "port %s has no nodePort: the Enhanced Load Balancer reaches the Service only through NodePorts; set spec.allocateLoadBalancerNodePorts to true", strings.Join(noNodePort, ", "))
	}
	if len(tcp) == 2 && target(tcp[0]) != target(tcp[1]) {
		add(ProblemTargetsDiffer, "ports %s and %s have different targetPorts (%s, %s): an Enhanced Load Balancer sends either port's traffic to any of its servers; give both the same targetPort or use two Services",
			portLabel(tcp[0]), portLabel(tcp[1]), target(tcp[0]), target(tcp[1]))
	}
	probs = append(probs, mismatches(tcp, opts)...)

	chosen, nodeProbs := realServerNodes(nodes)
	probs = append(probs, nodeProbs...)
	if slices.ContainsFunc(probs, Problem.Blocking) {
		return Spec{}, probs
	}

	spec := Spec{
		Plan:            types.EProxyLBPlan(opts.Plan),
		Region:          types.EProxyLBRegion(opts.Region),
		HealthCheck:     HealthCheck{Protocol: opts.HealthCheck.protocol(), Path: opts.HealthCheck.Path, Host: opts.HealthCheck.Host, DelayLoop: opts.HealthCheck.delayLoop()},
		SorryServer:     opts.SorryServer,
		SorryServerPort: opts.SorryServerPort,
		ProxyProtocol:   opts.ProxyProtocol,
		StickySession:   opts.StickySession,
		InactiveSec:     cmp.Or(opts.InactiveSec, DefaultInactiveSec),
		KeepAlive:       cmp.Or(opts.KeepAlive, DefaultKeepAlive),
		Gzip:            opts.Gzip,
		VIPFailover:     opts.VIPFailover,
	}
	if opts.LetsEncrypt.managed() {
		le := opts.LetsEncrypt
		le.AltNames = slices.Compact(slices.Sorted(slices.Values(le.AltNames)))
		spec.LetsEncrypt = &le
	}
	for _, p := range tcp {
		spec.BindPorts = append(spec.BindPorts, bindPort(int(p.Port), opts))
	}
	slices.SortFunc(spec.BindPorts, func(a, b BindPort) int { return cmp.Compare(a.Port, b.Port) })

	// Whole nodes are kept or left out, so a node never serves one port
	// and not the other.
	perNode := len(tcp)
	if keep := MaxServers / perNode; len(chosen) > keep {
		var names []string
		for _, n := range chosen[keep:] {
			names = append(names, n.Name)
		}
		probs = append(probs, Problem{Kind: ProblemTooManyServers, Nodes: names,
			Msg: fmt.Sprintf("an Enhanced Load Balancer takes at most %d servers (%d per node for %d port(s)); left out: %s", MaxServers, perNode, perNode, strings.Join(names, ", "))})
		chosen = chosen[:keep]
	}
	for _, n := range chosen {
		for _, p := range tcp {
			spec.Servers = append(spec.Servers, Server{Node: n.Name, Addr: n.GlobalIP, Port: int(p.NodePort)})
		}
	}
	sortServers(spec.Servers)
	return spec, probs
}

func bindPort(port int, opts Options) BindPort {
	b := BindPort{Port: port, Mode: opts.modeOf(int32(port))}
	switch b.Mode {
	case types.ProxyLBProxyModes.HTTP:
		b.RedirectToHTTPS = opts.RedirectToHTTPS
	case types.ProxyLBProxyModes.HTTPS:
		b.HTTP2 = opts.HTTP2
		b.SSLPolicy = opts.SSLPolicy
	}
	return b
}

// mismatches lists options that do not fit the ports: the API refuses
// some of them on the wrong port, and the others would do nothing, which
// a user who set them should hear about.
func mismatches(tcp []v1.ServicePort, opts Options) []Problem {
	var out []Problem
	has := map[int32]bool{}
	modes := map[types.EProxyLBProxyMode]bool{}
	for _, p := range tcp {
		has[p.Port] = true
		modes[opts.modeOf(p.Port)] = true
	}
	var unknown []string
	for _, port := range sortedKeys(opts.PortModes) {
		if !has[port] {
			unknown = append(unknown, strconv.Itoa(int(port)))
		}
	}
	if len(unknown) > 0 {
		out = append(out, Problem{Kind: ProblemOptionMismatch, Msg: fmt.Sprintf("option %s names port %s, which the Service does not serve over TCP", OptPortModes, strings.Join(unknown, ", "))})
	}
	need := func(opt string, set bool, mode types.EProxyLBProxyMode) {
		if set && !modes[mode] {
			out = append(out, Problem{Kind: ProblemOptionMismatch, Msg: fmt.Sprintf("option %s applies to %s ports, and no port of the Service has mode %s", opt, mode, mode)})
		}
	}
	need(OptRedirectToHTTPS, opts.RedirectToHTTPS, types.ProxyLBProxyModes.HTTP)
	need(OptHTTP2, opts.HTTP2, types.ProxyLBProxyModes.HTTPS)
	need(OptSSLPolicy, opts.SSLPolicy != "", types.ProxyLBProxyModes.HTTPS)
	need(OptTLS, opts.TLS, types.ProxyLBProxyModes.HTTPS)
	if opts.LetsEncrypt.managed() {
		if !modes[types.ProxyLBProxyModes.HTTP] && !modes[types.ProxyLBProxyModes.HTTPS] {
			out = append(out, Problem{Kind: ProblemOptionMismatch, Msg: fmt.Sprintf("option %s needs an http or https port: SAKURA answers Let's Encrypt's challenge there", OptLetsEncrypt)})
		}
		if opts.TLS {
			// Both would set the primary certificate, each undoing the other.
			out = append(out, Problem{Kind: ProblemOptionMismatch, Msg: fmt.Sprintf("options %s and %s both give the certificate; choose one", OptTLS, OptLetsEncrypt)})
		}
	}
	return out
}

// realServerNodes returns the nodes that can be real servers, by name,
// and the problems of those that cannot.
func realServerNodes(nodes []Node) ([]Node, []Problem) {
	sorted := slices.Clone(nodes)
	slices.SortStableFunc(sorted, func(a, b Node) int { return cmp.Compare(a.Name, b.Name) })
	sorted = slices.CompactFunc(sorted, func(a, b Node) bool { return a.Name == b.Name })
	var out []Node
	var noIP, sameIP []string
	seen := map[netip.Addr]string{}
	for _, n := range sorted {
		if !n.GlobalIP.Is4() {
			// Servers are IPv4: the API's model has no IPv6 fields, and
			// the simulator refuses other addresses.
			noIP = append(noIP, n.Name)
			continue
		}
		if _, dup := seen[n.GlobalIP]; dup {
			sameIP = append(sameIP, n.Name)
			continue
		}
		seen[n.GlobalIP] = n.Name
		out = append(out, n)
	}
	var probs []Problem
	if len(noIP) > 0 {
		probs = append(probs, Problem{Kind: ProblemNoGlobalIP, Nodes: noIP,
			Msg: fmt.Sprintf("node %s has no global IPv4 address, which the Enhanced Load Balancer needs to reach it; left out", strings.Join(noIP, ", "))})
	}
	if len(sameIP) > 0 {
		probs = append(probs, Problem{Kind: ProblemSameGlobalIP, Nodes: sameIP,
			Msg: fmt.Sprintf("node %s has the global address of another node; left out", strings.Join(sameIP, ", "))})
	}
	return out, probs
}

// target is what a port leads to; an unset targetPort means the port
// itself, as the API server fills it in.
func target(p v1.ServicePort) string {
	t := p.TargetPort
	if t.Type == intstr.Int && t.IntVal == 0 {
		return strconv.Itoa(int(p.Port))
	}
	return t.String()
}

func portLabel(p v1.ServicePort) string {
	if p.Name != "" {
		return fmt.Sprintf("%q (%d)", p.Name, p.Port)
	}
	return strconv.Itoa(int(p.Port))
}

func sortServers(s []Server) {
	slices.SortFunc(s, func(a, b Server) int {
		return cmp.Or(a.Addr.Compare(b.Addr), cmp.Compare(a.Port, b.Port))
	})
}
