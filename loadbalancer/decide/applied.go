package decide

import (
	"fmt"
	"slices"

	"github.com/sacloud/iaas-api-go"
)

// Unapplied reports whether the appliance's saved settings differ from the
// configuration it runs, as its Status shows it: each VIP:port with its real
// servers. A Config that failed after its settings were saved leaves such a
// gap, and comparing saved settings with the wanted ones can never see it
// (they agree); this comparison can, after a restart too.
func Unapplied(saved iaas.LoadBalancerVirtualIPAddresses, running []*iaas.LoadBalancerStatus) bool {
	return !slices.Equal(entriesOfSettings(saved), entriesOfStatus(running))
}

// entriesOfSettings and entriesOfStatus list "vip:port" and
// "vip:port/server" for each entry, sorted, so the two can be compared.
func entriesOfSettings(v iaas.LoadBalancerVirtualIPAddresses) []string {
	var out []string
	for _, e := range v {
		if e != nil {
			var ips []string
			for _, s := range e.Servers {
				if s != nil {
					ips = append(ips, s.IPAddress)
				}
			}
			out = appendEntry(out, e.VirtualIPAddress, e.Port.Int(), ips)
		}
	}
	slices.Sort(out)
	return out
}

func entriesOfStatus(v []*iaas.LoadBalancerStatus) []string {
	var out []string
	for _, e := range v {
		if e != nil {
			var ips []string
			for _, s := range e.Servers {
				if s != nil {
					ips = append(ips, s.IPAddress)
				}
			}
			out = appendEntry(out, e.VirtualIPAddress, e.Port.Int(), ips)
		}
	}
	slices.Sort(out)
	return out
}

func appendEntry(out []string, vip string, port int, servers []string) []string {
	at := fmt.Sprintf("%s:%d", vip, port)
	out = append(out, at)
	for _, ip := range servers {
		out = append(out, at+"/"+ip)
	}
	return out
}
