package engine

import (
	"testing"

	v1 "k8s.io/api/core/v1"
)

// BenchmarkAPICalls reports API calls (and writes) per lifecycle step over
// iaas-api-go's fake, counted by the shared client. "create" is the call that
// creates (later boot polls are reported as create_poll_calls); "noop" is a
// steady-state resync; "nodechange" replaces one node; "delete" is the whole
// shutdown → delete sequence as the service controller drives it
// (GetLoadBalancer, then EnsureLoadBalancerDeleted). "create_warm" is a second Service's create
// while the switch's inventory of other consumers is still fresh
// (loadBalancer.inventoryTTLSec at its default of 300).
func BenchmarkAPICalls(b *testing.B) {
	var create, createW, warm, poll, noop, noopW, node, nodeW, del, delW float64
	for i := 0; i < b.N; i++ {
		e := newEnv(b, 27)
		e.cfg.InventoryTTLSec = 300
		e.rebuild()
		nodes := e.addNodes(3, 0)
		extra := e.addNodes(1, 3)
		svc := service("web", 80, 443)

		snap := e.client.Stats().Snapshot()
		if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", svc, nodes); !isRetry(err) {
			b.Fatalf("create: %v", err)
		}
		create += float64(calls(e.client, snap))
		w, _ := writes(e.client, snap)
		createW += float64(w)

		snap = e.client.Stats().Snapshot()
		e.ensureUp(svc, nodes)
		poll += float64(calls(e.client, snap))

		second := service("api", 8080)
		snap = e.client.Stats().Snapshot()
		if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", second, nodes); !isRetry(err) {
			b.Fatalf("second create: %v", err)
		}
		warm += float64(calls(e.client, snap))
		e.ensureUp(second, nodes)

		snap = e.client.Stats().Snapshot()
		if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", svc, nodes); err != nil {
			b.Fatal(err)
		}
		noop += float64(calls(e.client, snap))
		w, _ = writes(e.client, snap)
		noopW += float64(w)

		snap = e.client.Stats().Snapshot()
		if err := e.lb.UpdateLoadBalancer(e.ctx, "test", svc, []*v1.Node{nodes[0], nodes[1], extra[0]}); err != nil {
			b.Fatal(err)
		}
		node += float64(calls(e.client, snap))
		w, _ = writes(e.client, snap)
		nodeW += float64(w)

		snap = e.client.Stats().Snapshot()
		e.deleteAsServiceController(svc)
		del += float64(calls(e.client, snap))
		w, _ = writes(e.client, snap)
		delW += float64(w)
		e.deleteAll(second)
	}
	n := float64(b.N)
	b.ReportMetric(create/n, "create_calls")
	b.ReportMetric(createW/n, "create_writes")
	b.ReportMetric(warm/n, "create_warm_calls")
	b.ReportMetric(poll/n, "create_poll_calls")
	b.ReportMetric(noop/n, "noop_calls")
	b.ReportMetric(noopW/n, "noop_writes")
	b.ReportMetric(node/n, "nodechange_calls")
	b.ReportMetric(nodeW/n, "nodechange_writes")
	b.ReportMetric(del/n, "delete_calls")
	b.ReportMetric(delW/n, "delete_writes")
}
