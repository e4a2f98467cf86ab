package engine

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/fake"
	"github.com/sacloud/iaas-api-go/types"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/providerid"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/annotations"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/desired"
	v1 "k8s.io/api/core/v1"
)

var blocksSeed = flag.Uint64("blocks.seed", 0, "run TestBlocksAcrossZonesUnderConcurrency with this seed only (0: the fixed set)")

// zoneServers lists one zone's servers from the fake store.
type zoneServers string

func (z zoneServers) List(ctx context.Context) ([]*iaas.Server, error) {
	r, err := fake.NewServerOp().Find(ctx, string(z), nil)
	if err != nil {
		return nil, err
	}
	return r.Servers, nil
}

// addBlockIn makes a router+switch block in zone and returns its switch.
func (e *env) addBlockIn(zone string, maskLen int, tag string) *iaas.Switch {
	e.t.Helper()
	r, err := fake.NewInternetOp().Create(e.ctx, zone, &iaas.InternetCreateRequest{Name: tag, NetworkMaskLen: maskLen, BandWidthMbps: 100, Tags: types.Tags{tag}})
	if err != nil {
		e.t.Fatalf("create router in %s: %v", zone, err)
	}
	sw, err := fake.NewSwitchOp().Read(e.ctx, zone, r.Switch.ID)
	if err != nil {
		e.t.Fatalf("read switch: %v", err)
	}
	return sw
}

// addNodeIn puts a server of zone with a NIC on sw at the block's i-th
// usable address and returns its Node.
func (e *env) addNodeIn(zone, name string, sw *iaas.Switch, i int) *v1.Node {
	p := netip.MustParsePrefix(fmt.Sprintf("%s/%d", sw.Subnets[0].NetworkAddress, sw.Subnets[0].NetworkMaskLen))
	a := p.Addr()
	for range 4 + i {
		a = a.Next()
	}
	s := &iaas.Server{ID: e.id(), Name: name, InstanceStatus: types.ServerInstanceStatuses.Up, Availability: types.Availabilities.Available}
	s.Interfaces = []*iaas.InterfaceView{{ID: e.id(), SwitchID: sw.ID, SwitchScope: types.Scopes.User, UserIPAddress: a.String()}}
	fake.DataStore.Put(fake.ResourceServer, zone, s.ID, s)
	return &v1.Node{ObjectMeta: node(s).ObjectMeta, Spec: v1.NodeSpec{ProviderID: providerid.Format(zone, s.ID)}}
}

// TestBlocksAcrossZonesUnderConcurrency: blocks [a small is1a block A, a
// large is1b block B]; Services are created at once in a random order,
// some naming is1b, some pinning an address of B. Whatever the
// interleaving: each Service gets exactly one appliance, in the zone of
// its block (is1b when it names is1b or pins an address of B); no address
// or VRID is given twice on a block; every address lies in its block; and a
// Service that did not ask for is1b is on B only once A has no room left.
// The seed is printed; -blocks.seed replays one.
func TestBlocksAcrossZonesUnderConcurrency(t *testing.T) {
	seeds := []uint64{1, 2, 3, 4, 5, 6, 7, 8}
	if *blocksSeed != 0 {
		seeds = []uint64{*blocksSeed}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) { blocksUnderConcurrency(t, seed) })
	}
}

func blocksUnderConcurrency(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	e := newEnv(t, 28)
	swA := e.sw // 11 usable: room for 5 appliances beside its one node
	swB := e.addBlockIn("is1b", 26, "block-b")
	nodesA := []*v1.Node{e.addNodeIn(zone, "a-1", swA, 0)}
	nodesB := []*v1.Node{e.addNodeIn("is1b", "b-1", swB, 0), e.addNodeIn("is1b", "b-2", swB, 1)}
	nodes := append(append([]*v1.Node{}, nodesA...), nodesB...)
	e.cfg.Zones = []string{"is1b"}
	e.cfg.Blocks = []string{swA.ID.String(), "is1b/" + swB.ID.String()}
	e.lb = New(Deps{Client: e.client, Servers: zoneServers(zone), OtherZones: map[string]ServerLister{"is1b": zoneServers("is1b")},
		Config: e.cfg, ClusterID: "test", Recorder: e.recorder})

	type want struct {
		svc      *v1.Service
		wantsB   bool // names is1b or pins an address of B
		declared string
	}
	var svcs []want
	pinB := netip.MustParsePrefix(fmt.Sprintf("%s/26", swB.Subnets[0].NetworkAddress)).Addr()
	for range 20 {
		pinB = pinB.Next() // well inside B's usable range
	}
	n := 7 + rng.IntN(6)
	for i := range n {
		s := service(fmt.Sprintf("s%02d", i), 80)
		w := want{svc: s, declared: "no zone"}
		switch rng.IntN(4) {
		case 0:
			s.Annotations[annotations.Zone] = "is1b"
			w.wantsB, w.declared = true, "zone is1b"
		case 1:
			if pinB.IsValid() {
				s.Spec.LoadBalancerIP = pinB.String()
				w.wantsB, w.declared = true, "pins "+pinB.String()
				pinB = pinB.Next()
			}
		}
		svcs = append(svcs, w)
	}
	t.Logf("seed %d: %d Services", seed, n)

	var wg sync.WaitGroup
	errs := make(chan error, n)
	for _, i := range rng.Perm(n) {
		w := svcs[i]
		delay := time.Duration(rng.IntN(3)) * time.Millisecond
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(delay)
			for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
				_, err := e.lb.EnsureLoadBalancer(e.ctx, "test", w.svc, nodes)
				if err == nil {
					return
				}
				if !isRetry(err) {
					errs <- fmt.Errorf("seed %d: %s (%s): %w", seed, w.svc.Name, w.declared, err)
					return
				}
				time.Sleep(time.Millisecond)
			}
			errs <- fmt.Errorf("seed %d: %s never came up", seed, w.svc.Name)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	inZone := map[types.ID]string{}
	var all []*iaas.LoadBalancer
	for _, z := range []string{zone, "is1b"} {
		r, err := fake.NewLoadBalancerOp().Find(e.ctx, z, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, lb := range r.LoadBalancers {
			inZone[lb.ID] = z
			all = append(all, lb)
		}
	}
	blockOf := map[types.ID]netip.Prefix{
		swA.ID: netip.MustParsePrefix(fmt.Sprintf("%s/28", swA.Subnets[0].NetworkAddress)),
		swB.ID: netip.MustParsePrefix(fmt.Sprintf("%s/26", swB.Subnets[0].NetworkAddress)),
	}
	zoneOfSwitch := map[types.ID]string{swA.ID: zone, swB.ID: "is1b"}
	held := map[string]string{}
	vrids := map[string]string{}
	onA := 0
	for _, lb := range all {
		if z := zoneOfSwitch[lb.SwitchID]; inZone[lb.ID] != z {
			t.Errorf("seed %d: appliance %s on switch %s (zone %s) lives in %s", seed, lb.ID, lb.SwitchID, z, inZone[lb.ID])
		}
		if lb.SwitchID == swA.ID {
			onA++
		}
		for _, a := range append(append([]string{}, lb.IPAddresses...), lb.VirtualIPAddresses[0].VirtualIPAddress) {
			k := lb.SwitchID.String() + "/" + a
			if other := held[k]; other != "" {
				t.Errorf("seed %d: address %s on switch %s given to %s and %s", seed, a, lb.SwitchID, other, lb.ID)
			}
			held[k] = lb.ID.String()
			if !blockOf[lb.SwitchID].Contains(netip.MustParseAddr(a)) {
				t.Errorf("seed %d: address %s of %s outside its block %s", seed, a, lb.ID, blockOf[lb.SwitchID])
			}
		}
		k := fmt.Sprintf("%s/%d", lb.SwitchID, lb.VRID)
		if other := vrids[k]; other != "" {
			t.Errorf("seed %d: VRID %d on switch %s given to %s and %s", seed, lb.VRID, lb.SwitchID, other, lb.ID)
		}
		vrids[k] = lb.ID.String()
	}
	aFull := onA >= 5
	for _, w := range svcs {
		var mine []*iaas.LoadBalancer
		for _, lb := range all {
			if desired.HasTags(lb.Tags, desired.ServiceTag(string(w.svc.UID))) {
				mine = append(mine, lb)
			}
		}
		if len(mine) != 1 {
			t.Errorf("seed %d: %s (%s) has %d appliances, want 1", seed, w.svc.Name, w.declared, len(mine))
			continue
		}
		switch onB := mine[0].SwitchID == swB.ID; {
		case w.wantsB && !onB:
			t.Errorf("seed %d: %s (%s) is on is1a's block", seed, w.svc.Name, w.declared)
		case !w.wantsB && onB && !aFull:
			t.Errorf("seed %d: %s (%s) spilled to is1b's block while is1a's holds %d of 5 appliances", seed, w.svc.Name, w.declared, onA)
		}
	}
}
