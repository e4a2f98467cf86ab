package elbplan

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/sacloud/iaas-api-go/types"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func svc(ports ...v1.ServicePort) *v1.Service {
	return &v1.Service{Spec: v1.ServiceSpec{Type: v1.ServiceTypeLoadBalancer, Ports: ports}}
}

func tcpPort(name string, port, nodePort int32) v1.ServicePort {
	return v1.ServicePort{Name: name, Port: port, NodePort: nodePort, Protocol: v1.ProtocolTCP, TargetPort: intstr.FromInt32(8080)}
}

func node(name, ip string) Node {
	n := Node{Name: name}
	if ip != "" {
		n.GlobalIP = netip.MustParseAddr(ip)
	}
	return n
}

// manyNodes returns n nodes named node-00…, each with its own address,
// in reverse name order so that sorting is what makes the result.
func manyNodes(n int) []Node {
	var out []Node
	for i := n - 1; i >= 0; i-- {
		out = append(out, node(fmt.Sprintf("node-%02d", i), fmt.Sprintf("203.0.113.%d", i+1)))
	}
	return out
}

func kindsOf(ps []Problem) []ProblemKind {
	var k []ProblemKind
	for _, p := range ps {
		k = append(k, p.Kind)
	}
	return k
}

func serverStrings(s []Server) []string {
	var out []string
	for _, x := range s {
		out = append(out, x.Node+"@"+x.String())
	}
	return out
}

func TestDesired(t *testing.T) {
	web := tcpPort("web", 80, 30080)
	cases := []struct {
		name  string
		svc   *v1.Service
		nodes []Node
		opts  Options
		kinds []ProblemKind
		// nodes named by the problems, in order (nil: no check)
		problemNodes [][]string
		check        func(t *testing.T, s Spec)
	}{
		{
			name: "one tcp port: bind port, servers on the NodePort, defaults filled",
			svc:  svc(web), nodes: []Node{node("b", "203.0.113.2"), node("a", "203.0.113.1")}, opts: valid(),
			check: func(t *testing.T, s Spec) {
				if s.Plan != 100 || s.Region != "is1" {
					t.Errorf("plan/region %v %v", s.Plan, s.Region)
				}
				if !slices.Equal(s.BindPorts, []BindPort{{Port: 80, Mode: "tcp"}}) {
					t.Errorf("bind ports %+v", s.BindPorts)
				}
				if got := serverStrings(s.Servers); !slices.Equal(got, []string{"a@203.0.113.1:30080", "b@203.0.113.2:30080"}) {
					t.Errorf("servers %v", got)
				}
				if s.HealthCheck != (HealthCheck{Protocol: "tcp", DelayLoop: DefaultDelayLoop}) || s.InactiveSec != DefaultInactiveSec || s.KeepAlive != DefaultKeepAlive {
					t.Errorf("defaults not filled: %+v", s)
				}
			},
		},
		{
			name:  "two ports: one server per node per NodePort, modes and their per-mode options",
			svc:   svc(tcpPort("https", 443, 30443), tcpPort("http", 80, 30080)),
			nodes: []Node{node("a", "203.0.113.1")},
			opts: valid(func(o *Options) {
				o.Mode = "http"
				o.PortModes = map[int32]types.EProxyLBProxyMode{443: "https"}
				o.RedirectToHTTPS, o.HTTP2, o.SSLPolicy = true, true, "TLS-1-2-2021-06"
			}),
			check: func(t *testing.T, s Spec) {
				want := []BindPort{
					{Port: 80, Mode: "http", RedirectToHTTPS: true},
					{Port: 443, Mode: "https", HTTP2: true, SSLPolicy: "TLS-1-2-2021-06"},
				}
				if !slices.Equal(s.BindPorts, want) {
					t.Errorf("bind ports %+v, want %+v", s.BindPorts, want)
				}
				if got := serverStrings(s.Servers); !slices.Equal(got, []string{"a@203.0.113.1:30080", "a@203.0.113.1:30443"}) {
					t.Errorf("servers %v", got)
				}
			},
		},
		{
			name: "options carried into the spec",
			svc:  svc(web), opts: valid(func(o *Options) {
				o.Plan, o.Region = 5000, "anycast"
				o.HealthCheck = HealthCheck{Protocol: "http", Path: "/hz", Host: "h.example", DelayLoop: 30}
				o.ProxyProtocol, o.StickySession, o.Gzip, o.InactiveSec, o.KeepAlive = true, true, true, 120, "aggressive"
				o.SorryServer, o.SorryServerPort = netip.MustParseAddr("198.51.100.7"), 8080
			}),
			check: func(t *testing.T, s Spec) {
				want := Spec{Plan: 5000, Region: "anycast", BindPorts: []BindPort{{Port: 80, Mode: "tcp"}},
					HealthCheck: HealthCheck{Protocol: "http", Path: "/hz", Host: "h.example", DelayLoop: 30},
					SorryServer: netip.MustParseAddr("198.51.100.7"), SorryServerPort: 8080,
					ProxyProtocol: true, StickySession: true, Gzip: true, InactiveSec: 120, KeepAlive: "aggressive"}
				if fmt.Sprint(s) != fmt.Sprint(want) {
					t.Errorf("spec\n %+v\nwant\n %+v", s, want)
				}
			},
		},
		{
			name:  "mixed protocols: nothing wanted",
			svc:   svc(web, v1.ServicePort{Name: "dns", Port: 53, NodePort: 30053, Protocol: v1.ProtocolUDP}),
			nodes: []Node{node("a", "203.0.113.1")}, opts: valid(),
			kinds: []ProblemKind{ProblemProtocol},
		},
		{
			name: "SCTP alone", svc: svc(v1.ServicePort{Port: 9, NodePort: 30009, Protocol: v1.ProtocolSCTP}), opts: valid(),
			kinds: []ProblemKind{ProblemProtocol},
		},
		{
			name:  "three ports: too many, nothing wanted",
			svc:   svc(tcpPort("a", 80, 30080), tcpPort("b", 443, 30443), tcpPort("c", 8080, 30808)),
			nodes: []Node{node("a", "203.0.113.1")}, opts: valid(),
			kinds: []ProblemKind{ProblemTooManyPorts},
		},
		{name: "no ports", svc: svc(), opts: valid(), kinds: []ProblemKind{ProblemNoPorts}},
		{
			name: "NodePort 0: nothing wanted",
			svc:  svc(tcpPort("web", 80, 0)), nodes: []Node{node("a", "203.0.113.1")}, opts: valid(),
			kinds: []ProblemKind{ProblemNoNodePort},
		},
		{
			name:  "two ports with different targets: the ELB cannot keep them apart",
			svc:   svc(tcpPort("web", 80, 30080), v1.ServicePort{Name: "admin", Port: 443, NodePort: 30443, Protocol: v1.ProtocolTCP, TargetPort: intstr.FromString("admin")}),
			opts:  valid(),
			kinds: []ProblemKind{ProblemTargetsDiffer},
		},
		{
			name:  "unset targetPorts mean the port itself, so 80 and 443 differ",
			svc:   svc(v1.ServicePort{Port: 80, NodePort: 30080}, v1.ServicePort{Port: 443, NodePort: 30443}),
			opts:  valid(),
			kinds: []ProblemKind{ProblemTargetsDiffer},
		},
		{
			name: "invalid option: nothing wanted",
			svc:  svc(web), opts: valid(func(o *Options) { o.Region = "os1" }),
			kinds: []ProblemKind{ProblemOption},
		},
		{
			name: "port mode for a port the Service lacks",
			svc:  svc(web), opts: valid(func(o *Options) { o.PortModes = map[int32]types.EProxyLBProxyMode{8443: "https"} }),
			kinds: []ProblemKind{ProblemOptionMismatch},
		},
		{
			name: "redirect without an http port, http2 and ssl policy without an https port",
			svc:  svc(web), opts: valid(func(o *Options) { o.RedirectToHTTPS, o.HTTP2, o.SSLPolicy = true, true, "TLS-1-3-2021-06" }),
			kinds: []ProblemKind{ProblemOptionMismatch, ProblemOptionMismatch, ProblemOptionMismatch},
		},
		{
			name: "let's encrypt without an http or https port, and beside a TLS Secret",
			svc:  svc(web), opts: valid(func(o *Options) { o.LetsEncrypt = LetsEncrypt{CommonName: "www.example.com"}; o.TLS = true }),
			kinds: []ProblemKind{ProblemOptionMismatch, ProblemOptionMismatch, ProblemOptionMismatch},
		},
		{
			name: "let's encrypt names are DNS names",
			svc:  svc(web), opts: valid(func(o *Options) {
				o.Mode = "http"
				o.LetsEncrypt = LetsEncrypt{CommonName: "WWW.example.com", AltNames: []string{"a b"}}
			}),
			kinds: []ProblemKind{ProblemOption, ProblemOption},
		},
		{
			name: "let's encrypt on an http port: alt names sorted and deduplicated",
			svc:  svc(web), opts: valid(func(o *Options) {
				o.Mode = "http"
				o.LetsEncrypt = LetsEncrypt{CommonName: "www.example.com", AltNames: []string{"b.example.com", "a.example.com", "b.example.com"}}
			}),
			check: func(t *testing.T, s Spec) {
				if s.LetsEncrypt == nil || s.LetsEncrypt.String() != "www.example.com (a.example.com, b.example.com)" {
					t.Errorf("let's encrypt %v", s.LetsEncrypt)
				}
			},
		},
		{
			name:  "nodes without a global IPv4 address are left out, named",
			svc:   svc(web),
			nodes: []Node{node("c", ""), node("a", "203.0.113.1"), node("b", "2001:db8::2")},
			opts:  valid(),
			kinds: []ProblemKind{ProblemNoGlobalIP}, problemNodes: [][]string{{"b", "c"}},
			check: func(t *testing.T, s Spec) {
				if got := serverStrings(s.Servers); !slices.Equal(got, []string{"a@203.0.113.1:30080"}) {
					t.Errorf("servers %v", got)
				}
			},
		},
		{
			name: "no node has a global address: the ELB is still wanted, with no servers",
			svc:  svc(web), nodes: []Node{node("a", "")}, opts: valid(),
			kinds: []ProblemKind{ProblemNoGlobalIP}, problemNodes: [][]string{{"a"}},
			check: func(t *testing.T, s Spec) {
				if len(s.Servers) != 0 || len(s.BindPorts) != 1 {
					t.Errorf("spec %+v", s)
				}
			},
		},
		{
			name: "two nodes with one address: the later by name is left out",
			svc:  svc(web), nodes: []Node{node("b", "203.0.113.1"), node("a", "203.0.113.1")}, opts: valid(),
			kinds: []ProblemKind{ProblemSameGlobalIP}, problemNodes: [][]string{{"b"}},
			check: func(t *testing.T, s Spec) {
				if got := serverStrings(s.Servers); !slices.Equal(got, []string{"a@203.0.113.1:30080"}) {
					t.Errorf("servers %v", got)
				}
			},
		},
		{
			name: "a node listed twice is one server",
			svc:  svc(web), nodes: []Node{node("a", "203.0.113.1"), node("a", "203.0.113.1")}, opts: valid(),
			check: func(t *testing.T, s Spec) {
				if len(s.Servers) != 1 {
					t.Errorf("servers %v", serverStrings(s.Servers))
				}
			},
		},
		{
			name: "41 nodes, one port: 40 servers, the last by name left out",
			svc:  svc(web), nodes: manyNodes(41), opts: valid(),
			kinds: []ProblemKind{ProblemTooManyServers}, problemNodes: [][]string{{"node-40"}},
			check: func(t *testing.T, s Spec) {
				if len(s.Servers) != MaxServers {
					t.Fatalf("%d servers", len(s.Servers))
				}
				for _, sv := range s.Servers {
					if sv.Node == "node-40" {
						t.Errorf("node-40 kept")
					}
				}
			},
		},
		{
			name: "41 nodes, two ports: 20 whole nodes",
			svc:  svc(tcpPort("http", 80, 30080), tcpPort("https", 443, 30443)), nodes: manyNodes(41), opts: valid(),
			kinds: []ProblemKind{ProblemTooManyServers},
			check: func(t *testing.T, s Spec) {
				if len(s.Servers) != MaxServers {
					t.Fatalf("%d servers", len(s.Servers))
				}
				perNode := map[string]int{}
				for _, sv := range s.Servers {
					perNode[sv.Node]++
				}
				if len(perNode) != 20 || perNode["node-19"] != 2 || perNode["node-20"] != 0 {
					t.Errorf("servers per node %v", perNode)
				}
			},
		},
		{
			name: "40 nodes fit",
			svc:  svc(web), nodes: manyNodes(40), opts: valid(),
			check: func(t *testing.T, s Spec) {
				if len(s.Servers) != 40 {
					t.Errorf("%d servers", len(s.Servers))
				}
			},
		},
		{
			name:  "every problem at once",
			svc:   svc(tcpPort("web", 80, 0), v1.ServicePort{Port: 53, NodePort: 30053, Protocol: v1.ProtocolUDP}),
			nodes: []Node{node("a", "")},
			opts:  valid(func(o *Options) { o.Plan = 1; o.RedirectToHTTPS = true }),
			kinds: []ProblemKind{ProblemOption, ProblemProtocol, ProblemNoNodePort, ProblemOptionMismatch, ProblemNoGlobalIP},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			spec, probs := Desired(c.svc, c.nodes, c.opts)
			if got := kindsOf(probs); !slices.Equal(got, c.kinds) {
				t.Fatalf("problems %v, want %v (%+v)", got, c.kinds, probs)
			}
			blocked := false
			for i, p := range probs {
				if p.Msg == "" {
					t.Errorf("problem %d has no message", i)
				}
				for _, n := range p.Nodes {
					if !strings.Contains(p.Msg, n) {
						t.Errorf("message %q does not name node %s", p.Msg, n)
					}
				}
				if c.problemNodes != nil && !slices.Equal(p.Nodes, c.problemNodes[i]) {
					t.Errorf("problem %d names nodes %v, want %v", i, p.Nodes, c.problemNodes[i])
				}
				blocked = blocked || p.Blocking()
			}
			if blocked {
				if fmt.Sprint(spec) != fmt.Sprint(Spec{}) {
					t.Errorf("a blocking problem, yet a spec: %+v", spec)
				}
				return
			}
			if len(spec.BindPorts) == 0 {
				t.Fatalf("no blocking problem, yet no bind port: %+v", spec)
			}
			if c.check != nil {
				c.check(t, spec)
			}
		})
	}
}

// Which problems stop the ELB is part of the contract with the engine:
// node problems leave nodes out, all others want nothing.
func TestProblemBlocking(t *testing.T) {
	for k := ProblemOption; k <= ProblemTooManyServers; k++ {
		want := k != ProblemNoGlobalIP && k != ProblemSameGlobalIP && k != ProblemTooManyServers
		if got := (Problem{Kind: k}).Blocking(); got != want {
			t.Errorf("kind %d: blocking %t, want %t", k, got, want)
		}
	}
}

// The nodes' order does not change the spec.
func TestDesiredIgnoresNodeOrder(t *testing.T) {
	nodes := manyNodes(45)
	a, _ := Desired(svc(tcpPort("web", 80, 30080)), nodes, valid())
	slices.Reverse(nodes)
	b, _ := Desired(svc(tcpPort("web", 80, 30080)), nodes, valid())
	if !slices.Equal(a.Servers, b.Servers) {
		t.Errorf("order changed the servers:\n%v\n%v", serverStrings(a.Servers), serverStrings(b.Servers))
	}
}
