package instances

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/sacloud/iaas-api-go"
	v1 "k8s.io/api/core/v1"
)

// cgnat is RFC 6598 shared address space: not routable on the Internet, so
// treated like RFC 1918 space.
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// AddressType classifies one NIC address: InternalIP for private ranges
// (RFC 1918, RFC 6598 100.64/10, IPv6 ULA fc00::/7), ExternalIP for global
// addresses, and "" for addresses that identify nothing (loopback,
// link-local, unspecified, multicast, unparsable).
func AddressType(addr string) v1.NodeAddressType {
	ip, err := netip.ParseAddr(strings.TrimSpace(addr))
	if err != nil {
		return ""
	}
	ip = ip.Unmap()
	switch {
	case ip.IsLoopback(), ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast(), ip.IsMulticast(), ip.IsUnspecified():
		return ""
	case ip.IsPrivate(), cgnat.Contains(ip):
		return v1.NodeInternalIP
	default:
		return v1.NodeExternalIP
	}
}

// NodeAddresses returns the addresses of every NIC of srv, not only the first:
// a NIC on the shared segment carries its (global) address in IPAddress, a NIC
// on a switch or router+switch carries the address the user set in
// UserIPAddress. Internal addresses come first, then external ones, then the
// node name as Hostname.
func NodeAddresses(srv *iaas.Server, nodeName string) []v1.NodeAddress {
	var internal, external []v1.NodeAddress
	seen := map[string]bool{}
	for _, nic := range srv.Interfaces {
		if nic == nil {
			continue
		}
		for _, a := range []string{nic.UserIPAddress, nic.IPAddress} {
			a = strings.TrimSpace(a)
			if a == "" || seen[a] {
				continue
			}
			seen[a] = true
			switch AddressType(a) {
			case v1.NodeInternalIP:
				internal = append(internal, v1.NodeAddress{Type: v1.NodeInternalIP, Address: a})
			case v1.NodeExternalIP:
				external = append(external, v1.NodeAddress{Type: v1.NodeExternalIP, Address: a})
			}
		}
	}
	out := append(internal, external...)
	if nodeName != "" {
		out = append(out, v1.NodeAddress{Type: v1.NodeHostName, Address: nodeName})
	}
	return out
}

// InstanceType names the plan: <cpu>core-<mem>gb, plus -<n>gpu for GPU plans
// (e.g. 4core-8gb, 8core-64gb-1gpu). Empty when the plan is unknown.
func InstanceType(srv *iaas.Server) string {
	if srv.CPU <= 0 || srv.MemoryMB <= 0 {
		return ""
	}
	t := fmt.Sprintf("%dcore-%dgb", srv.CPU, srv.GetMemoryGB())
	if srv.GPU > 0 {
		t += fmt.Sprintf("-%dgpu", srv.GPU)
	}
	return t
}

// Region derives the region code from a zone name by dropping its trailing
// letter (is1a → is1, tk1v → tk1); the API's own region name is Japanese text.
func Region(zone string) string {
	if n := len(zone); n > 1 && zone[n-1] >= 'a' && zone[n-1] <= 'z' && zone[n-2] >= '0' && zone[n-2] <= '9' {
		return zone[:n-1]
	}
	return zone
}
