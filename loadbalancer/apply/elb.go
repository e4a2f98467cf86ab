package apply

import (
	"context"
	"fmt"
	"slices"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/search"
	"github.com/sacloud/iaas-api-go/types"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/sakuraapi"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/decide"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/desired"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/elbplan"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/ipam"
)

// ELBs writes Enhanced Load Balancers, the second appliance kind. Like
// Executor it is the one writer of its kind: every write that could undo
// someone else's change re-reads first and checks the ownership tags it
// was decided on, and settings writes carry the hash they were read with.
type ELBs struct {
	API       sakuraapi.ProxyLBAPI
	ClusterID string
}

// OwnedELB reports whether elb carries every tag.
func OwnedELB(elb *iaas.ProxyLB, tags ...string) bool { return desired.HasTags(elb.Tags, tags...) }

// Find lists the ELBs carrying every tag, oldest first (all pages; the
// tag filter is checked again here, as for appliances).
func (e *ELBs) Find(ctx context.Context, tags ...string) ([]*iaas.ProxyLB, error) {
	cond := &iaas.FindCondition{Filter: search.Filter{search.Key("Tags.Name"): search.TagsAndEqual(tags...)}}
	all, err := ipam.FindAll(ctx, func(ctx context.Context, c *iaas.FindCondition) ([]*iaas.ProxyLB, int, error) {
		r, err := e.API.Find(ctx, c)
		if err != nil {
			return nil, 0, err
		}
		return r.ProxyLBs, r.Total, nil
	}, cond)
	if err != nil {
		return nil, fmt.Errorf("listing enhanced load balancers: %w", err)
	}
	out := slices.DeleteFunc(all, func(elb *iaas.ProxyLB) bool { return elb == nil || !OwnedELB(elb, tags...) })
	slices.SortStableFunc(out, func(a, b *iaas.ProxyLB) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}

// Read reads one ELB.
func (e *ELBs) Read(ctx context.Context, id types.ID) (*iaas.ProxyLB, error) {
	return e.API.Read(ctx, id)
}

// Create sends one create. It is never retried by the client: a create
// whose answer was lost may have made an ELB, which the caller's create
// record makes it wait for.
func (e *ELBs) Create(ctx context.Context, req *iaas.ProxyLBCreateRequest) (*iaas.ProxyLB, error) {
	return e.API.Create(ctx, req)
}

// UpdateSettings writes req, which carries the settings hash of the copy it
// was planned on: SAKURA refuses it when the ELB changed since.
func (e *ELBs) UpdateSettings(ctx context.Context, id types.ID, req *iaas.ProxyLBUpdateSettingsRequest) (*iaas.ProxyLB, error) {
	return e.API.UpdateSettings(ctx, id, req)
}

// ChangePlan changes have's plan after a fresh read shows it still
// carries tags. The answer is the ELB under its new ID.
func (e *ELBs) ChangePlan(ctx context.Context, have *iaas.ProxyLB, req *iaas.ProxyLBChangePlanRequest, tags ...string) (*iaas.ProxyLB, error) {
	cur, err := e.API.Read(ctx, have.ID)
	if err != nil {
		return nil, err
	}
	if !OwnedELB(cur, tags...) {
		return nil, fmt.Errorf("enhanced load balancer %s no longer carries the tags the write was decided on: %w", have.ID, ErrNotOwned)
	}
	return e.API.ChangePlan(ctx, have.ID, req)
}

// Delete deletes the ELB (its certificates go with it) after a fresh
// read shows it still carries tags; one already gone is deleted.
func (e *ELBs) Delete(ctx context.Context, id types.ID, tags ...string) error {
	cur, err := e.API.Read(ctx, id)
	if sakuraapi.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if !OwnedELB(cur, tags...) {
		return fmt.Errorf("enhanced load balancer %s no longer carries the tags the write was decided on: %w", id, ErrNotOwned)
	}
	if err := e.API.Delete(ctx, id); err != nil && !sakuraapi.IsNotFound(err) {
		return err
	}
	return nil
}

// Retag gives the ELB tags in place of its own, keeping every setting,
// after a fresh read shows it still carries owned. It answers the ELB as
// written.
func (e *ELBs) Retag(ctx context.Context, id types.ID, tags []string, owned ...string) (*iaas.ProxyLB, error) {
	cur, err := e.API.Read(ctx, id)
	if err != nil {
		return nil, err
	}
	if !OwnedELB(cur, owned...) {
		return nil, fmt.Errorf("enhanced load balancer %s no longer carries the tags the write was decided on: %w", id, ErrNotOwned)
	}
	return e.API.Update(ctx, id, elbplan.RetagRequest(cur, tags))
}

// Certificates reads the certificates the ELB serves (without keys).
func (e *ELBs) Certificates(ctx context.Context, id types.ID) (*iaas.ProxyLBCertificates, error) {
	return e.API.GetCertificates(ctx, id)
}

// SetCertificates replaces the ELB's certificates after a fresh read shows
// it still carries tags. The request holds private keys: it is never
// logged, and errors name the ELB only.
func (e *ELBs) SetCertificates(ctx context.Context, id types.ID, req *iaas.ProxyLBSetCertificatesRequest, tags ...string) error {
	cur, err := e.API.Read(ctx, id)
	if err != nil {
		return err
	}
	if !OwnedELB(cur, tags...) {
		return fmt.Errorf("enhanced load balancer %s no longer carries the tags the write was decided on: %w", id, ErrNotOwned)
	}
	_, err = e.API.SetCertificates(ctx, id, req)
	return err
}

// Adopt writes tags to the ELB decided on, after a fresh read shows it
// unchanged (decide.StillAdoptableELB), and checks after the write that
// the tags are exactly those written (another writer racing it shows).
// It answers the ELB as adopted.
func (e *ELBs) Adopt(ctx context.Context, decidedOn *iaas.ProxyLB, tags []string) (*iaas.ProxyLB, error) {
	if e.ClusterID == "" || !desired.HasTags(tags, desired.ClusterTag(e.ClusterID)) {
		return nil, fmt.Errorf("enhanced load balancer %s: adopting without this cluster's tag: %w", decidedOn.ID, ErrNotOwned)
	}
	cur, err := e.API.Read(ctx, decidedOn.ID)
	if err != nil {
		return nil, err
	}
	if !decide.StillAdoptableELB(decidedOn, cur) {
		return nil, fmt.Errorf("enhanced load balancer %s changed since the adoption was decided (tags now %v): %w", decidedOn.ID, []string(cur.Tags), ErrAdoptChanged)
	}
	if _, err := e.API.Update(ctx, cur.ID, elbplan.RetagRequest(cur, tags)); err != nil {
		return nil, err
	}
	after, err := e.API.Read(ctx, cur.ID)
	if err != nil {
		return nil, err
	}
	if !decide.SameTags(after.Tags, tags) {
		return nil, fmt.Errorf("enhanced load balancer %s was retagged (%v) right after its adoption: %w", cur.ID, []string(after.Tags), ErrAdoptChanged)
	}
	return after, nil
}
