package engine

import "errors"

// Event reasons on the Service. They are stable names users can filter on;
// docs/load-balancers.md lists them.
const (
	ReasonInvalidAnnotation       = "InvalidAnnotation"
	ReasonUnsupportedProtocol     = "UnsupportedProtocol"
	ReasonTooManyPorts            = "TooManyPorts"
	ReasonNoAddressBlock          = "NoAddressBlock"
	ReasonAmbiguousAddressBlock   = "AmbiguousAddressBlock"
	ReasonAddressBlockExhausted   = "AddressBlockExhausted"
	ReasonAddressBlockSpilled     = "AddressBlockSpilled"
	ReasonLoadBalancerIPInvalid   = "LoadBalancerIPUnavailable"
	ReasonNodesNotOnSwitch        = "NodesNotOnSwitch"
	ReasonNodesInOtherZone        = "NodesInOtherZone"
	ReasonNodesWithoutServer      = "NodesWithoutServer"
	ReasonTooManyNodes            = "TooManyNodes"
	ReasonTrafficPolicyLocal      = "ExternalTrafficPolicyLocal"
	ReasonChangeNeedsNewAppliance = "ChangeNeedsNewLoadBalancer"
	ReasonCreated                 = "LoadBalancerCreated"
	ReasonUpdated                 = "LoadBalancerUpdated"
	ReasonShuttingDown            = "LoadBalancerShuttingDown"
	ReasonDeleted                 = "LoadBalancerDeleted"
	ReasonDuplicate               = "DuplicateLoadBalancers"
	ReasonAPIError                = "SakuraCloudAPIError"
	ReasonConfigError             = "InvalidLoadBalancerConfig"
	ReasonSharingConflict         = "SharingConflict"
	ReasonSharedApplianceFull     = "SharedLoadBalancerFull"
	ReasonJoinedShared            = "JoinedSharedLoadBalancer"
	ReasonLeftShared              = "LeftSharedLoadBalancer"
	ReasonNoReadyEndpoints        = "NoReadyEndpoints"
	ReasonRealServerDown          = "RealServerDown"
	ReasonRealServerUp            = "RealServerUp"
	ReasonRepaired                = "LoadBalancerRepaired"
	ReasonUnsupportedIPFamily     = "UnsupportedIPFamily"
	ReasonSourceRangesOnNodes     = "SourceRangesOnNodes"
	ReasonAdopted                 = "LoadBalancerAdopted"
	ReasonAdoptRefused            = "AdoptionRefused"
	ReasonPreserved               = "LoadBalancerPreserved"
	// ReasonProxyNetworks: the source networks an enhanced load balancer
	// connects to the nodes from (for their firewalls).
	ReasonProxyNetworks = "ProxyNetworks"
	// ReasonInvalidTLSSecret: a TLS Secret named by elb-tls-secret cannot
	// be used (missing, not readable, wrong type, bad certificate or key).
	ReasonInvalidTLSSecret = "InvalidTLSSecret"
)

// AllReasons lists every reason, for the documentation test.
var AllReasons = []string{
	ReasonInvalidAnnotation, ReasonUnsupportedProtocol, ReasonTooManyPorts,
	ReasonNoAddressBlock, ReasonAmbiguousAddressBlock, ReasonAddressBlockExhausted, ReasonAddressBlockSpilled, ReasonLoadBalancerIPInvalid,
	ReasonNodesNotOnSwitch, ReasonNodesInOtherZone, ReasonNodesWithoutServer, ReasonTooManyNodes, ReasonTrafficPolicyLocal, ReasonChangeNeedsNewAppliance,
	ReasonCreated, ReasonUpdated, ReasonShuttingDown, ReasonDeleted, ReasonDuplicate, ReasonAPIError, ReasonConfigError,
	ReasonSharingConflict, ReasonSharedApplianceFull, ReasonJoinedShared, ReasonLeftShared,
	ReasonNoReadyEndpoints, ReasonRealServerDown, ReasonRealServerUp, ReasonRepaired,
	ReasonUnsupportedIPFamily, ReasonSourceRangesOnNodes,
	ReasonAdopted, ReasonAdoptRefused, ReasonPreserved, ReasonProxyNetworks, ReasonInvalidTLSSecret,
}

// reasonedError carries the Event reason that fits an error made below the
// engine's report step, so the report names the right one.
type reasonedError struct {
	reason string
	err    error
}

func (e *reasonedError) Error() string { return e.err.Error() }
func (e *reasonedError) Unwrap() error { return e.err }

func reasoned(reason string, err error) error { return &reasonedError{reason: reason, err: err} }

// orReason is err with reason unless it already carries one.
func orReason(reason string, err error) error {
	var re *reasonedError
	if errors.As(err, &re) {
		return err
	}
	return reasoned(reason, err)
}

// reasonOf is err's own reason, else fallback.
func reasonOf(err error, fallback string) string {
	var re *reasonedError
	if errors.As(err, &re) {
		return re.reason
	}
	return fallback
}
