package sakuraapi

import (
	"context"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/types"
)

// The narrow interfaces below list every SAKURA Cloud operation the controller
// uses, and nothing more: they are the controller's whole API surface. The
// iaas-api-go operations satisfy them, and Client wraps each one so that every
// call is rate limited, retried within bounds and counted in one place.

// ServerAPI reads servers; nodes never write to them.
type ServerAPI interface {
	Find(ctx context.Context, zone string, conditions *iaas.FindCondition) (*iaas.ServerFindResult, error)
	Read(ctx context.Context, zone string, id types.ID) (*iaas.Server, error)
}

// SwitchAPI reads switches and the servers connected to them.
type SwitchAPI interface {
	Find(ctx context.Context, zone string, conditions *iaas.FindCondition) (*iaas.SwitchFindResult, error)
	Read(ctx context.Context, zone string, id types.ID) (*iaas.Switch, error)
	GetServers(ctx context.Context, zone string, id types.ID) (*iaas.SwitchGetServersResult, error)
}

// BridgeAPI reads bridges: the layer-2 joins between switches of different
// zones. A bridge is a regional resource read through any zone's path; its
// BridgeInfo lists every switch on it with the switch's zone.
type BridgeAPI interface {
	Read(ctx context.Context, zone string, id types.ID) (*iaas.Bridge, error)
}

// InternetAPI reads routers (router+switch blocks of global addresses).
type InternetAPI interface {
	Find(ctx context.Context, zone string, conditions *iaas.FindCondition) (*iaas.InternetFindResult, error)
	Read(ctx context.Context, zone string, id types.ID) (*iaas.Internet, error)
}

// LoadBalancerAPI manages DSR load balancer appliances.
type LoadBalancerAPI interface {
	Find(ctx context.Context, zone string, conditions *iaas.FindCondition) (*iaas.LoadBalancerFindResult, error)
	Create(ctx context.Context, zone string, param *iaas.LoadBalancerCreateRequest) (*iaas.LoadBalancer, error)
	Read(ctx context.Context, zone string, id types.ID) (*iaas.LoadBalancer, error)
	Update(ctx context.Context, zone string, id types.ID, param *iaas.LoadBalancerUpdateRequest) (*iaas.LoadBalancer, error)
	UpdateSettings(ctx context.Context, zone string, id types.ID, param *iaas.LoadBalancerUpdateSettingsRequest) (*iaas.LoadBalancer, error)
	Delete(ctx context.Context, zone string, id types.ID) error
	Config(ctx context.Context, zone string, id types.ID) error
	Shutdown(ctx context.Context, zone string, id types.ID, shutdownOption *iaas.ShutdownOption) error
	Boot(ctx context.Context, zone string, id types.ID) error
	Status(ctx context.Context, zone string, id types.ID) (*iaas.LoadBalancerStatusResult, error)
}

// ProxyLBAPI manages Enhanced Load Balancers (ELB; "proxylb" in
// iaas-api-go, a commonserviceitem of provider class "proxylb").
//
// An ELB is a global resource, so no operation takes a zone: iaas-api-go
// builds every global-resource URL with its package variable
// iaas.APIDefaultZone, read at call time (client.go: "is1a" unless set;
// zz_api_ops.go, ProxyLBOp), giving
// {root}/{APIDefaultZone}/api/cloud/1.1/commonserviceitem[/{id}[/...]].
// cloud.NewCaller sets that variable to the configured zone, so the
// controller's ELB calls go out under its own zone's path and one
// process talks about ELBs through one zone only.
type ProxyLBAPI interface {
	Find(ctx context.Context, conditions *iaas.FindCondition) (*iaas.ProxyLBFindResult, error)
	Create(ctx context.Context, param *iaas.ProxyLBCreateRequest) (*iaas.ProxyLB, error)
	Read(ctx context.Context, id types.ID) (*iaas.ProxyLB, error)
	Update(ctx context.Context, id types.ID, param *iaas.ProxyLBUpdateRequest) (*iaas.ProxyLB, error)
	UpdateSettings(ctx context.Context, id types.ID, param *iaas.ProxyLBUpdateSettingsRequest) (*iaas.ProxyLB, error)
	Delete(ctx context.Context, id types.ID) error
	// ChangePlan answers the ELB under its new ID: the API replaces the
	// resource. It writes no @previous-id tag; a caller that must find the
	// ELB again by its old ID tags it first (helper/plans.ChangeProxyLBPlan
	// does so with an Update before the ChangePlan).
	ChangePlan(ctx context.Context, id types.ID, param *iaas.ProxyLBChangePlanRequest) (*iaas.ProxyLB, error)
	GetCertificates(ctx context.Context, id types.ID) (*iaas.ProxyLBCertificates, error)
	SetCertificates(ctx context.Context, id types.ID, param *iaas.ProxyLBSetCertificatesRequest) (*iaas.ProxyLBCertificates, error)
	DeleteCertificates(ctx context.Context, id types.ID) error
	RenewLetsEncryptCert(ctx context.Context, id types.ID) error
	HealthStatus(ctx context.Context, id types.ID) (*iaas.ProxyLBHealth, error)
}
