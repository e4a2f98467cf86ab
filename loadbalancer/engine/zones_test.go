package engine

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sacloud/iaas-api-go"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/sakuraapi"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/zoneview"
)

// zoneDown lists the appliances of each zone through api, except those of
// zone while down is set.
type zoneDown struct {
	api  sakuraapi.ApplianceAPI
	zone string
	down atomic.Bool
}

func (z *zoneDown) Find(ctx context.Context, zone string, cond *iaas.FindCondition) (*sakuraapi.ApplianceFindResult, error) {
	if zone == z.zone && z.down.Load() {
		return nil, errors.New("503 Service Unavailable")
	}
	return z.api.Find(ctx, zone, cond)
}

// noServers is a zone with no servers.
type noServers struct{}

func (noServers) List(context.Context) ([]*iaas.Server, error) { return nil, nil }

// TestNoCreateWhileAZoneIsUnlisted: appliances may live in is1b too, so
// while is1b's appliances cannot be listed a Service without an appliance
// gets none: it may have one in is1b, and a second would show the
// customer two paid addresses. A Service whose appliance is listed in is1a
// is updated as usual meanwhile. Once is1b answers, the create goes ahead.
func TestNoCreateWhileAZoneIsUnlisted(t *testing.T) {
	e := newEnv(t, 28)
	e.cfg.Zones = []string{"is1b"}
	e.lb = New(Deps{Client: e.client, Servers: fakeServers{}, OtherZones: map[string]ServerLister{"is1b": noServers{}},
		Config: e.cfg, ClusterID: "test", Recorder: e.recorder})
	outage := &zoneDown{api: e.client.Appliances, zone: "is1b"}
	e.lb.zone = zoneview.NewBookLister(outage, e.lb.exec.Zones, e.lb.clock)
	nodes := e.addNodes(3, 0)
	up := service("up", 80)
	e.ensureUp(up, nodes)

	outage.down.Store(true)
	fresh := service("fresh", 80)
	_, err := e.lb.EnsureLoadBalancer(e.ctx, "test", fresh, nodes)
	if err == nil || !strings.Contains(err.Error(), "zone is1b") {
		t.Fatalf("EnsureLoadBalancer while is1b is unlisted: %v, want an error naming is1b", err)
	}
	if n := len(e.lbs()); n != 1 {
		t.Fatalf("%d appliances, want 1: nothing is created while is1b may hold the Service's", n)
	}
	if err := e.lb.UpdateLoadBalancer(e.ctx, "test", up, nodes[:2]); err != nil {
		t.Fatalf("updating an appliance listed in is1a while is1b is unlisted: %v", err)
	}
	if got := len(e.lbs()[0].VirtualIPAddresses[0].Servers); got != 2 {
		t.Fatalf("%d real servers after the update, want 2", got)
	}

	outage.down.Store(false)
	e.ensureUp(fresh, nodes)
	if n := len(e.lbs()); n != 2 {
		t.Fatalf("%d appliances once is1b answers, want 2", n)
	}
}

// TestOtherZoneOutageHoldsNothingWhenNoApplianceLivesThere: a cluster
// whose servers span is1a and is1b but whose load balancers are made in
// is1a only (no loadBalancer.zones) does not list is1b's appliances, so
// is1b's outage holds no create.
func TestOtherZoneOutageHoldsNothingWhenNoApplianceLivesThere(t *testing.T) {
	e := newEnv(t, 28)
	e.lb = New(Deps{Client: e.client, Servers: fakeServers{}, OtherZones: map[string]ServerLister{"is1b": noServers{}},
		Config: e.cfg, ClusterID: "test", Recorder: e.recorder})
	outage := &zoneDown{api: e.client.Appliances, zone: "is1b"}
	outage.down.Store(true)
	e.lb.zone = zoneview.NewBookLister(outage, e.lb.exec.Zones, e.lb.clock)
	e.ensureUp(service("fresh", 80), e.addNodes(2, 0))
	if n := len(e.lbs()); n != 1 {
		t.Fatalf("%d appliances, want 1", n)
	}
}
