package instances

import (
	"fmt"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/sacloud/iaas-api-go/types"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/fakezone"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/providerid"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/servercache"
	"time"
)

const benchNodes = 200

func benchSetup(b *testing.B) (*env, []*v1.Node) {
	e := setup(b)
	fakezone.PutMany(zone, "node", 113300000000, benchNodes)
	nodes := make([]*v1.Node, benchNodes)
	for i := range nodes {
		nodes[i] = node(fmt.Sprintf("node-%03d", i), "")
	}
	return e, nodes
}

// BenchmarkInitialize200Nodes: a fresh controller registers 200 nodes
// (InstanceMetadata for each, matched by name). One op = all 200 nodes.
func BenchmarkInitialize200Nodes(b *testing.B) {
	e, nodes := benchSetup(b)
	start := e.calls()
	for n := 0; n < b.N; n++ {
		e.cache = servercache.NewZones(e.client, []string{zone}, time.Minute) // cold cache each time
		e.cache.SetClock(nowFunc(func() time.Time { return e.now }))
		e.inst = New(e.client, e.cache, nil)
		for _, nd := range nodes {
			if _, err := e.inst.InstanceMetadata(ctx, nd); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(e.calls()-start)/float64(b.N), "api-calls/op")
	b.ReportMetric(float64(e.calls()-start)/float64(b.N)/benchNodes, "api-calls/node")
}

// BenchmarkSteadyStatePass200Nodes: one pass of the node controllers over 200
// registered nodes (InstanceExists + InstanceShutdown + InstanceMetadata), with
// the cache expired at the start of every pass (the worst case; with the 60s
// TTL and 5s lifecycle period most passes cost nothing).
func BenchmarkSteadyStatePass200Nodes(b *testing.B) {
	e, nodes := benchSetup(b)
	for i, nd := range nodes {
		nd.Spec.ProviderID = providerid.Format(zone, types.ID(113300000000+int64(i)))
	}
	start := e.calls()
	for n := 0; n < b.N; n++ {
		e.cache.Invalidate()
		for _, nd := range nodes {
			if ok, err := e.inst.InstanceExists(ctx, nd); !ok || err != nil {
				b.Fatal(ok, err)
			}
			if down, err := e.inst.InstanceShutdown(ctx, nd); down || err != nil {
				b.Fatal(down, err)
			}
			if _, err := e.inst.InstanceMetadata(ctx, nd); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(e.calls()-start)/float64(b.N), "api-calls/op")
	b.ReportMetric(float64(e.calls()-start)/float64(b.N)/benchNodes, "api-calls/node")
}

// BenchmarkInitialize200NodesTwoZones: as BenchmarkInitialize200Nodes with
// 100 nodes in is1a and 100 in is1b, every name looked up in both zones.
func BenchmarkInitialize200NodesTwoZones(b *testing.B) {
	e := setupZones(b)
	fakezone.PutMany("is1a", "a", 113300000000, benchNodes/2)
	fakezone.PutMany("is1b", "b", 113400000000, benchNodes/2)
	nodes := make([]*v1.Node, 0, benchNodes)
	for i := 0; i < benchNodes/2; i++ {
		nodes = append(nodes, node(fmt.Sprintf("a-%03d", i), ""), node(fmt.Sprintf("b-%03d", i), ""))
	}
	start := e.calls()
	for n := 0; n < b.N; n++ {
		e.cache = servercache.NewZones(e.client, []string{"is1a", "is1b"}, time.Minute) // cold caches each time
		e.cache.SetClock(nowFunc(func() time.Time { return e.now }))
		e.inst = New(e.client, e.cache, nil)
		for _, nd := range nodes {
			md, err := e.inst.InstanceMetadata(ctx, nd)
			if err != nil || md.Zone != "is1"+nd.Name[:1] {
				b.Fatal(md, err)
			}
		}
	}
	b.ReportMetric(float64(e.calls()-start)/float64(b.N), "api-calls/op")
	b.ReportMetric(float64(e.calls()-start)/float64(b.N)/benchNodes, "api-calls/node")
}
