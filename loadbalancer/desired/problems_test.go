package desired

import (
	"testing"

	v1 "k8s.io/api/core/v1"
)

func TestCheckServiceNamesEveryProblem(t *testing.T) {
	tcp := v1.ServicePort{Name: "http", Port: 80, Protocol: v1.ProtocolTCP}
	udp := v1.ServicePort{Name: "game", Port: 7777, Protocol: v1.ProtocolUDP}
	v4, v6 := v1.IPv4Protocol, v1.IPv6Protocol
	cases := []struct {
		name string
		spec v1.ServiceSpec
		want []ProblemKind
	}{
		{"tcp, families unset", v1.ServiceSpec{Ports: []v1.ServicePort{tcp}}, nil},
		{"tcp, IPv4", v1.ServiceSpec{Ports: []v1.ServicePort{tcp}, IPFamilies: []v1.IPFamily{v4}}, nil},
		{"tcp, dual-stack: served on IPv4", v1.ServiceSpec{Ports: []v1.ServicePort{tcp}, IPFamilies: []v1.IPFamily{v6, v4}}, nil},
		{"udp", v1.ServiceSpec{Ports: []v1.ServicePort{tcp, udp}}, []ProblemKind{ProblemProtocol}},
		{"IPv6 only", v1.ServiceSpec{Ports: []v1.ServicePort{tcp}, IPFamilies: []v1.IPFamily{v6}}, []ProblemKind{ProblemIPFamily}},
		{"udp and IPv6 only: both", v1.ServiceSpec{Ports: []v1.ServicePort{udp}, IPFamilies: []v1.IPFamily{v6}}, []ProblemKind{ProblemProtocol, ProblemIPFamily}},
		{"no ports", v1.ServiceSpec{}, []ProblemKind{ProblemNoPorts}},
	}
	for _, c := range cases {
		var got []ProblemKind
		for _, p := range CheckService(&v1.Service{Spec: c.spec}, false) {
			got = append(got, p.Kind)
			if p.Msg == "" {
				t.Errorf("%s: a problem without a message", c.name)
			}
		}
		if len(got) != len(c.want) {
			t.Errorf("%s: problems %v, want %v", c.name, got, c.want)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("%s: problems %v, want %v", c.name, got, c.want)
			}
		}
	}
	if !DualStack(&v1.Service{Spec: v1.ServiceSpec{IPFamilies: []v1.IPFamily{v4, v6}}}) || DualStack(&v1.Service{Spec: v1.ServiceSpec{IPFamilies: []v1.IPFamily{v4}}}) {
		t.Error("DualStack")
	}
}

// With the opt-in, the TCP ports of a mixed Service are served and the
// others left out; a Service with no TCP port is still refused.
func TestServeTCPOnly(t *testing.T) {
	tcp := v1.ServicePort{Name: "query", Port: 27015, Protocol: v1.ProtocolTCP}
	udp := v1.ServicePort{Name: "game", Port: 27015, Protocol: v1.ProtocolUDP}
	mixed := &v1.Service{Spec: v1.ServiceSpec{Ports: []v1.ServicePort{tcp, udp}}}
	if p := CheckService(mixed, true); len(p) != 0 {
		t.Errorf("mixed with the opt-in: %v", p)
	}
	if p := CheckService(mixed, false); len(p) != 1 || p[0].Kind != ProblemProtocol {
		t.Errorf("mixed without the opt-in: %v", p)
	}
	if p := CheckService(&v1.Service{Spec: v1.ServiceSpec{Ports: []v1.ServicePort{udp}}}, true); len(p) != 1 || p[0].Kind != ProblemProtocol {
		t.Errorf("UDP only with the opt-in: %v", p)
	}
	served, skipped := TCPPorts(mixed)
	if len(served.Spec.Ports) != 1 || served.Spec.Ports[0] != tcp || len(skipped) != 1 || skipped[0] != udp || len(mixed.Spec.Ports) != 2 {
		t.Errorf("TCPPorts: %v %v (the Service itself: %v)", served.Spec.Ports, skipped, mixed.Spec.Ports)
	}
}
