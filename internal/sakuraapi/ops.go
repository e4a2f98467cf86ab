package sakuraapi

import (
	"context"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/types"
)

// Each wrapper below forwards to iaas-api-go through Client.call. They are
// deliberately mechanical: the policy lives in call, not here.

// do runs fn through c.call and returns its value.
func do[T any](ctx context.Context, c *Client, op string, fn func(ctx context.Context) (T, error)) (T, error) {
	var out T
	err := c.call(ctx, op, func(ctx context.Context) error {
		var err error
		out, err = fn(ctx)
		return err
	})
	return out, err
}

type serverOp struct {
	c  *Client
	op iaas.ServerAPI
}

func (s *serverOp) Find(ctx context.Context, zone string, cond *iaas.FindCondition) (*iaas.ServerFindResult, error) {
	return do(ctx, s.c, "Server.Find", func(ctx context.Context) (*iaas.ServerFindResult, error) { return s.op.Find(ctx, zone, cond) })
}

func (s *serverOp) Read(ctx context.Context, zone string, id types.ID) (*iaas.Server, error) {
	return do(ctx, s.c, "Server.Read", func(ctx context.Context) (*iaas.Server, error) { return s.op.Read(ctx, zone, id) })
}

type switchOp struct {
	c  *Client
	op iaas.SwitchAPI
}

func (s *switchOp) Find(ctx context.Context, zone string, cond *iaas.FindCondition) (*iaas.SwitchFindResult, error) {
	return do(ctx, s.c, "Switch.Find", func(ctx context.Context) (*iaas.SwitchFindResult, error) { return s.op.Find(ctx, zone, cond) })
}

func (s *switchOp) Read(ctx context.Context, zone string, id types.ID) (*iaas.Switch, error) {
	return do(ctx, s.c, "Switch.Read", func(ctx context.Context) (*iaas.Switch, error) { return s.op.Read(ctx, zone, id) })
}

func (s *switchOp) GetServers(ctx context.Context, zone string, id types.ID) (*iaas.SwitchGetServersResult, error) {
	return do(ctx, s.c, "Switch.GetServers", func(ctx context.Context) (*iaas.SwitchGetServersResult, error) { return s.op.GetServers(ctx, zone, id) })
}

type bridgeOp struct {
	c  *Client
	op iaas.BridgeAPI
}

func (s *bridgeOp) Read(ctx context.Context, zone string, id types.ID) (*iaas.Bridge, error) {
	return do(ctx, s.c, "Bridge.Read", func(ctx context.Context) (*iaas.Bridge, error) { return s.op.Read(ctx, zone, id) })
}

type internetOp struct {
	c  *Client
	op iaas.InternetAPI
}

func (s *internetOp) Find(ctx context.Context, zone string, cond *iaas.FindCondition) (*iaas.InternetFindResult, error) {
	return do(ctx, s.c, "Internet.Find", func(ctx context.Context) (*iaas.InternetFindResult, error) { return s.op.Find(ctx, zone, cond) })
}

func (s *internetOp) Read(ctx context.Context, zone string, id types.ID) (*iaas.Internet, error) {
	return do(ctx, s.c, "Internet.Read", func(ctx context.Context) (*iaas.Internet, error) { return s.op.Read(ctx, zone, id) })
}

type loadBalancerOp struct {
	c  *Client
	op iaas.LoadBalancerAPI
}

func (s *loadBalancerOp) Find(ctx context.Context, zone string, cond *iaas.FindCondition) (*iaas.LoadBalancerFindResult, error) {
	return do(ctx, s.c, "LoadBalancer.Find", func(ctx context.Context) (*iaas.LoadBalancerFindResult, error) { return s.op.Find(ctx, zone, cond) })
}

func (s *loadBalancerOp) Create(ctx context.Context, zone string, p *iaas.LoadBalancerCreateRequest) (*iaas.LoadBalancer, error) {
	var out *iaas.LoadBalancer
	err := s.c.callNoReplay(ctx, "LoadBalancer.Create", func(ctx context.Context) error {
		var err error
		out, err = s.op.Create(ctx, zone, p)
		return err
	})
	return out, err
}

func (s *loadBalancerOp) Read(ctx context.Context, zone string, id types.ID) (*iaas.LoadBalancer, error) {
	return do(ctx, s.c, "LoadBalancer.Read", func(ctx context.Context) (*iaas.LoadBalancer, error) { return s.op.Read(ctx, zone, id) })
}

func (s *loadBalancerOp) Update(ctx context.Context, zone string, id types.ID, p *iaas.LoadBalancerUpdateRequest) (*iaas.LoadBalancer, error) {
	return do(ctx, s.c, "LoadBalancer.Update", func(ctx context.Context) (*iaas.LoadBalancer, error) { return s.op.Update(ctx, zone, id, p) })
}

func (s *loadBalancerOp) UpdateSettings(ctx context.Context, zone string, id types.ID, p *iaas.LoadBalancerUpdateSettingsRequest) (*iaas.LoadBalancer, error) {
	return do(ctx, s.c, "LoadBalancer.UpdateSettings", func(ctx context.Context) (*iaas.LoadBalancer, error) {
		return s.op.UpdateSettings(ctx, zone, id, p)
	})
}

func (s *loadBalancerOp) Delete(ctx context.Context, zone string, id types.ID) error {
	return s.c.call(ctx, "LoadBalancer.Delete", func(ctx context.Context) error { return s.op.Delete(ctx, zone, id) })
}

func (s *loadBalancerOp) Config(ctx context.Context, zone string, id types.ID) error {
	return s.c.call(ctx, "LoadBalancer.Config", func(ctx context.Context) error { return s.op.Config(ctx, zone, id) })
}

func (s *loadBalancerOp) Shutdown(ctx context.Context, zone string, id types.ID, o *iaas.ShutdownOption) error {
	return s.c.call(ctx, "LoadBalancer.Shutdown", func(ctx context.Context) error { return s.op.Shutdown(ctx, zone, id, o) })
}

func (s *loadBalancerOp) Boot(ctx context.Context, zone string, id types.ID) error {
	return s.c.call(ctx, "LoadBalancer.Boot", func(ctx context.Context) error { return s.op.Boot(ctx, zone, id) })
}

func (s *loadBalancerOp) Status(ctx context.Context, zone string, id types.ID) (*iaas.LoadBalancerStatusResult, error) {
	return do(ctx, s.c, "LoadBalancer.Status", func(ctx context.Context) (*iaas.LoadBalancerStatusResult, error) { return s.op.Status(ctx, zone, id) })
}

type applianceOp struct {
	c  *Client
	op ApplianceAPI
}

func (s *applianceOp) Find(ctx context.Context, zone string, cond *iaas.FindCondition) (*ApplianceFindResult, error) {
	return do(ctx, s.c, "Appliance.Find", func(ctx context.Context) (*ApplianceFindResult, error) { return s.op.Find(ctx, zone, cond) })
}

type proxyLBOp struct {
	c  *Client
	op iaas.ProxyLBAPI
}

// noReplay runs fn through c.callNoReplay and returns its value.
func noReplay[T any](ctx context.Context, c *Client, op string, fn func(ctx context.Context) (T, error)) (T, error) {
	var out T
	err := c.callNoReplay(ctx, op, func(ctx context.Context) error {
		var err error
		out, err = fn(ctx)
		return err
	})
	return out, err
}

func (s *proxyLBOp) Find(ctx context.Context, cond *iaas.FindCondition) (*iaas.ProxyLBFindResult, error) {
	return do(ctx, s.c, "ProxyLB.Find", func(ctx context.Context) (*iaas.ProxyLBFindResult, error) { return s.op.Find(ctx, cond) })
}

// Create is not replayed blindly: a lost answer may hide an ELB that was made.
func (s *proxyLBOp) Create(ctx context.Context, p *iaas.ProxyLBCreateRequest) (*iaas.ProxyLB, error) {
	return noReplay(ctx, s.c, "ProxyLB.Create", func(ctx context.Context) (*iaas.ProxyLB, error) { return s.op.Create(ctx, p) })
}

func (s *proxyLBOp) Read(ctx context.Context, id types.ID) (*iaas.ProxyLB, error) {
	return do(ctx, s.c, "ProxyLB.Read", func(ctx context.Context) (*iaas.ProxyLB, error) { return s.op.Read(ctx, id) })
}

func (s *proxyLBOp) Update(ctx context.Context, id types.ID, p *iaas.ProxyLBUpdateRequest) (*iaas.ProxyLB, error) {
	return do(ctx, s.c, "ProxyLB.Update", func(ctx context.Context) (*iaas.ProxyLB, error) { return s.op.Update(ctx, id, p) })
}

func (s *proxyLBOp) UpdateSettings(ctx context.Context, id types.ID, p *iaas.ProxyLBUpdateSettingsRequest) (*iaas.ProxyLB, error) {
	return do(ctx, s.c, "ProxyLB.UpdateSettings", func(ctx context.Context) (*iaas.ProxyLB, error) { return s.op.UpdateSettings(ctx, id, p) })
}

func (s *proxyLBOp) Delete(ctx context.Context, id types.ID) error {
	return s.c.call(ctx, "ProxyLB.Delete", func(ctx context.Context) error { return s.op.Delete(ctx, id) })
}

// ChangePlan is not replayed blindly either: a carried-out attempt moves
// the ELB to a new ID, and a replay's 404 for the old one would read as
// "gone". The caller looks for the ELB (by its @previous-id tag) instead.
func (s *proxyLBOp) ChangePlan(ctx context.Context, id types.ID, p *iaas.ProxyLBChangePlanRequest) (*iaas.ProxyLB, error) {
	return noReplay(ctx, s.c, "ProxyLB.ChangePlan", func(ctx context.Context) (*iaas.ProxyLB, error) { return s.op.ChangePlan(ctx, id, p) })
}

func (s *proxyLBOp) GetCertificates(ctx context.Context, id types.ID) (*iaas.ProxyLBCertificates, error) {
	return do(ctx, s.c, "ProxyLB.GetCertificates", func(ctx context.Context) (*iaas.ProxyLBCertificates, error) { return s.op.GetCertificates(ctx, id) })
}

// SetCertificates replaces every certificate with the same body each time,
// so a replay is harmless.
func (s *proxyLBOp) SetCertificates(ctx context.Context, id types.ID, p *iaas.ProxyLBSetCertificatesRequest) (*iaas.ProxyLBCertificates, error) {
	return do(ctx, s.c, "ProxyLB.SetCertificates", func(ctx context.Context) (*iaas.ProxyLBCertificates, error) {
		return s.op.SetCertificates(ctx, id, p)
	})
}

func (s *proxyLBOp) DeleteCertificates(ctx context.Context, id types.ID) error {
	return s.c.call(ctx, "ProxyLB.DeleteCertificates", func(ctx context.Context) error { return s.op.DeleteCertificates(ctx, id) })
}

func (s *proxyLBOp) RenewLetsEncryptCert(ctx context.Context, id types.ID) error {
	return s.c.call(ctx, "ProxyLB.RenewLetsEncryptCert", func(ctx context.Context) error { return s.op.RenewLetsEncryptCert(ctx, id) })
}

func (s *proxyLBOp) HealthStatus(ctx context.Context, id types.ID) (*iaas.ProxyLBHealth, error) {
	return do(ctx, s.c, "ProxyLB.HealthStatus", func(ctx context.Context) (*iaas.ProxyLBHealth, error) { return s.op.HealthStatus(ctx, id) })
}
