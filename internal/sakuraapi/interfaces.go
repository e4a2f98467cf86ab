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
