package loadbalancer

// Event reasons on the Service. They are stable names users can filter on;
// docs/load-balancers.md lists them.
const (
	ReasonInvalidAnnotation       = "InvalidAnnotation"
	ReasonUnsupportedProtocol     = "UnsupportedProtocol"
	ReasonTooManyPorts            = "TooManyPorts"
	ReasonNoAddressBlock          = "NoAddressBlock"
	ReasonAmbiguousAddressBlock   = "AmbiguousAddressBlock"
	ReasonAddressBlockExhausted   = "AddressBlockExhausted"
	ReasonLoadBalancerIPInvalid   = "LoadBalancerIPUnavailable"
	ReasonNodesNotOnSwitch        = "NodesNotOnSwitch"
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
)

// AllReasons lists every reason, for the documentation test.
var AllReasons = []string{
	ReasonInvalidAnnotation, ReasonUnsupportedProtocol, ReasonTooManyPorts,
	ReasonNoAddressBlock, ReasonAmbiguousAddressBlock, ReasonAddressBlockExhausted, ReasonLoadBalancerIPInvalid,
	ReasonNodesNotOnSwitch, ReasonNodesWithoutServer, ReasonTooManyNodes, ReasonTrafficPolicyLocal, ReasonChangeNeedsNewAppliance,
	ReasonCreated, ReasonUpdated, ReasonShuttingDown, ReasonDeleted, ReasonDuplicate, ReasonAPIError, ReasonConfigError,
	ReasonSharingConflict, ReasonSharedApplianceFull, ReasonJoinedShared, ReasonLeftShared,
	ReasonNoReadyEndpoints, ReasonRealServerDown, ReasonRealServerUp, ReasonRepaired,
}
