package engine

import (
	"github.com/sacloud/iaas-api-go"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/desired"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/plan"
	v1 "k8s.io/api/core/v1"
)

// What a Service's status shows of its appliance.

func isUp(lb *iaas.LoadBalancer) bool {
	return lb.InstanceStatus.IsUp() && lb.Availability.IsAvailable()
}

func vipOf(lb *iaas.LoadBalancer) string {
	for _, v := range lb.VirtualIPAddresses {
		if v != nil && v.VirtualIPAddress != "" {
			return v.VirtualIPAddress
		}
	}
	return ""
}

// statusOf is the Service's status on lb, whose VIP for it is vip.
func statusOf(lb *iaas.LoadBalancer, vip string) *v1.LoadBalancerStatus {
	if !isUp(lb) || vip == "" {
		return &v1.LoadBalancerStatus{}
	}
	mode := v1.LoadBalancerIPModeVIP
	return &v1.LoadBalancerStatus{Ingress: []v1.LoadBalancerIngress{{IP: vip, IPMode: &mode}}}
}

// memberVIP is the VIP of svc's entries on lb ("" when it has none).
func memberVIP(lb *iaas.LoadBalancer, svc *v1.Service) string {
	if desired.SharingKeyOf(lb.Tags) == "" {
		return vipOf(lb)
	}
	mine, _ := plan.SplitEntries(lb.VirtualIPAddresses, desired.RefOf(svc))
	for _, e := range mine {
		if e.VirtualIPAddress != "" {
			return e.VirtualIPAddress
		}
	}
	return ""
}
