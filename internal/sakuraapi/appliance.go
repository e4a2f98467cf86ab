package sakuraapi

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/mapconv"
	"github.com/sacloud/iaas-api-go/naked"
)

// ApplianceAPI lists the appliances of a zone, every class in one listing.
//
// SAKURA Cloud keeps load balancers, VPC routers, databases, NFS and mobile
// gateways in one `appliance` collection; each class's Find in iaas-api-go
// is that collection with a Class filter. Listing it without the filter
// answers in one call what would otherwise take five (issue #18).
type ApplianceAPI interface {
	Find(ctx context.Context, zone string, cond *iaas.FindCondition) (*ApplianceFindResult, error)
}

// Appliances are appliances split by class, in the order the API listed them.
type Appliances struct {
	LoadBalancers  []*iaas.LoadBalancer
	VPCRouters     []*iaas.VPCRouter
	Databases      []*iaas.Database
	NFS            []*iaas.NFS
	MobileGateways []*iaas.MobileGateway
}

// Add appends other's appliances to a.
func (a *Appliances) Add(other *Appliances) {
	a.LoadBalancers = append(a.LoadBalancers, other.LoadBalancers...)
	a.VPCRouters = append(a.VPCRouters, other.VPCRouters...)
	a.Databases = append(a.Databases, other.Databases...)
	a.NFS = append(a.NFS, other.NFS...)
	a.MobileGateways = append(a.MobileGateways, other.MobileGateways...)
}

// ApplianceFindResult is one page of the appliance listing.
type ApplianceFindResult struct {
	// Total is how many appliances match, of every class.
	Total int
	// From is the page's offset; Count is how many appliances the page
	// held, those of classes not kept below included, so that paging
	// advances by Count and not by what was kept.
	From, Count int
	Appliances
}

// Appliance classes as the API names them in each appliance's Class.
const (
	ClassLoadBalancer  = "loadbalancer"
	ClassVPCRouter     = "vpcrouter"
	ClassDatabase      = "database"
	ClassNFS           = "nfs"
	ClassMobileGateway = "mobilegateway"
)

// applianceCollection lists the appliance collection over the caller.
//
// iaas-api-go has no operation for the whole collection, and its decoding
// (transformFindResults) is unexported. The public route to the same
// conversion is the one that function takes: each element is decoded into
// the library's naked type of its class, and mapconv.ConvertFrom turns an
// envelope of them into the class's public FindResult, whose mapconv tags
// hold the field mapping. So every field comes out exactly as the class's
// own Find would give it, without mapping a field by hand. (Serving the
// fetched JSON to each class op through a shim APICaller would take the
// same path, but it would hand the ops to the library's factory, which its
// fake mode replaces.)
type applianceCollection struct {
	caller iaas.APICaller
}

func (o *applianceCollection) Find(ctx context.Context, zone string, cond *iaas.FindCondition) (*ApplianceFindResult, error) {
	if cond == nil {
		cond = &iaas.FindCondition{}
	}
	// The class finds send the same condition (their envelope is
	// FindCondition's fields) plus a Class filter, which is left out here.
	url := fmt.Sprintf("%s/%s/api/cloud/1.1/appliance", iaas.SakuraCloudAPIRoot, zone)
	data, err := o.caller.Do(ctx, "GET", url, cond)
	if err != nil {
		return nil, err
	}
	return decodeAppliances(data)
}

// decodeAppliances decodes an answer of the appliance listing, keeping
// the classes of Appliances and skipping the others.
func decodeAppliances(data []byte) (*ApplianceFindResult, error) {
	var page struct {
		Total, From, Count int
		Appliances         []json.RawMessage
	}
	if err := json.Unmarshal(data, &page); err != nil {
		return nil, fmt.Errorf("decoding the appliance listing: %w", err)
	}
	byClass := map[string][]json.RawMessage{}
	for _, raw := range page.Appliances {
		var head struct{ Class string }
		if err := json.Unmarshal(raw, &head); err != nil {
			return nil, fmt.Errorf("decoding the appliance listing: %w", err)
		}
		byClass[head.Class] = append(byClass[head.Class], raw)
	}
	out := &ApplianceFindResult{Total: page.Total, From: page.From, Count: len(page.Appliances)}
	var lbs iaas.LoadBalancerFindResult
	var vrs iaas.VPCRouterFindResult
	var dbs iaas.DatabaseFindResult
	var nfs iaas.NFSFindResult
	var mgws iaas.MobileGatewayFindResult
	for _, err := range []error{
		convertClass[naked.LoadBalancer](byClass[ClassLoadBalancer], &lbs),
		convertClass[naked.VPCRouter](byClass[ClassVPCRouter], &vrs),
		convertClass[naked.Database](byClass[ClassDatabase], &dbs),
		convertClass[naked.NFS](byClass[ClassNFS], &nfs),
		convertClass[naked.MobileGateway](byClass[ClassMobileGateway], &mgws),
	} {
		if err != nil {
			return nil, fmt.Errorf("decoding the appliance listing: %w", err)
		}
	}
	out.LoadBalancers, out.VPCRouters, out.Databases = lbs.LoadBalancers, vrs.VPCRouters, dbs.Databases
	out.NFS, out.MobileGateways = nfs.NFS, mgws.MobileGateways
	return out, nil
}

// convertClass decodes the elements of one class into naked type N and
// converts them into result, a class's FindResult, the way that class's
// Find does.
func convertClass[N any](raws []json.RawMessage, result any) error {
	if len(raws) == 0 {
		return nil
	}
	envelope := struct{ Appliances []*N }{}
	for _, raw := range raws {
		n := new(N)
		if err := json.Unmarshal(raw, n); err != nil {
			return err
		}
		envelope.Appliances = append(envelope.Appliances, n)
	}
	return mapconv.ConvertFrom(&envelope, result)
}

// appliancesByClass answers the appliance listing with the five class
// finds. It serves iaas-api-go's fake mode (a Client built without a
// caller), which keeps each class apart and has no appliance collection;
// every class is listed whole, so a page holds everything and paging ends
// after it.
//
// Load balancers are listed through the Client's LoadBalancers as it is at
// the time of the call (uncounted when it is the Client's own operation):
// tests that replace it, to hide an appliance from listings, hide it from
// this listing too.
type appliancesByClass struct {
	c    *Client
	vrs  iaas.VPCRouterAPI
	dbs  iaas.DatabaseAPI
	nfs  iaas.NFSAPI
	mgws iaas.MobileGatewayAPI
}

func (o *appliancesByClass) Find(ctx context.Context, zone string, cond *iaas.FindCondition) (*ApplianceFindResult, error) {
	var all iaas.FindCondition
	if cond != nil {
		all.Filter, all.Sort = cond.Filter, cond.Sort
	}
	out := &ApplianceFindResult{}
	if cond != nil && cond.From > 0 {
		return out, nil // the first page held everything
	}
	findLBs := o.c.LoadBalancers.Find
	if own, ok := o.c.LoadBalancers.(*loadBalancerOp); ok {
		findLBs = own.op.Find
	}
	lbs, err := findLBs(ctx, zone, &all)
	if err != nil {
		return nil, err
	}
	vrs, err := o.vrs.Find(ctx, zone, &all)
	if err != nil {
		return nil, err
	}
	dbs, err := o.dbs.Find(ctx, zone, &all)
	if err != nil {
		return nil, err
	}
	nfs, err := o.nfs.Find(ctx, zone, &all)
	if err != nil {
		return nil, err
	}
	mgws, err := o.mgws.Find(ctx, zone, &all)
	if err != nil {
		return nil, err
	}
	out.LoadBalancers, out.VPCRouters, out.Databases = lbs.LoadBalancers, vrs.VPCRouters, dbs.Databases
	out.NFS, out.MobileGateways = nfs.NFS, mgws.MobileGateways
	out.Count = len(out.LoadBalancers) + len(out.VPCRouters) + len(out.Databases) + len(out.NFS) + len(out.MobileGateways)
	out.Total = out.Count
	return out, nil
}
