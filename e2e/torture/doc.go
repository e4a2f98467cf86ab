// Package torture is a seeded, randomized torture test of the load balancer
// controller, run against the SAKURA Cloud API simulator (e2e/sakurasim).
//
// Each seed builds a fresh simulator (testdata/topology.yaml: a /26
// router+switch block in is1a, six nodes on it, three appliances and a VPC
// router that are not the cluster's; a second zone, is1b, whose switch is
// bridged to the block with two more nodes, and a third is1b node on an
// unbridged switch; every node also has a shared-segment NIC with a global
// address, where an Enhanced Load Balancer reaches it) and a fake
// Kubernetes API, and runs the product's
// provider (cloud.New, Initialize, LoadBalancer, InstancesV2) behind an
// emulation of the k8s.io/cloud-provider v0.37.2 service controller
// (svcctl_test.go follows controllers/service/controller.go function by
// function: finalizer, GetLoadBalancer before EnsureLoadBalancerDeleted,
// RetryError re-queues, node syncs that retry through the service queue)
// and of the cloud-node and cloud-node-lifecycle controllers. Concurrent
// actors then play a script drawn from the seed (actors_test.go): three
// Service actors (create, ports, annotations, loadBalancerIP pins, sharing
// keys, externalTrafficPolicy, type changes, invalid annotations, endpoint
// churn, delete and re-create under the same name; -torture.elb of the
// Services they create, 0.25 by default, are of type enhanced: an Enhanced
// Load Balancer, whose elb-plan they change), a node actor (servers
// and Nodes added and removed, exclusion label, plan changes, kubelets that
// stop reporting while their server stays), out-of-band
// damage through the API with a separate client (shutdown, delete, settings
// edits; an ELB deleted or a server taken out of it), simulator fault rules
// (500/409/429/503/423, drops, answers lost
// after the change, latency beyond the client's timeout, a Config that
// fails once after its UpdateSettings, is1b's whole API down, the same on
// ELB operations: ProxyLB.Create, ChangePlan, ...) and take-overs (the controller is
// stopped mid-flight and a second one continues on the same simulator, at
// once: a new leader may meet an appliance SAKURA does not list yet). A
// defect actor (defects_test.go, -torture.defects) plays what issue #18's
// defects need: joins of one sharing key on the same listing, a member
// pinning another member's VIP, a sole member's entries wiped, a join
// racing the last member's delete, restarts while a new appliance is
// unlisted, while a Config hangs after its UpdateSettings (each kind of
// setting) and after a Service was deleted with its appliance down, and
// UpdateSettings answered 503 after it was done (replayed into a 409).
//
// The simulator accepts and stores what SAKURA is not known to refuse (an
// address already in use, a duplicate tag; -torture.strict refuses them),
// so a controller that relies on a refusal leaves what the checks see.
// The checks excuse nothing but a refusal announced with its Event while
// its reason holds (check_test.go; the ELB invariants in elb_test.go).
//
// Then the settle phase clears the faults and keeps the controllers running
// until everything is quiet and the invariants of check_test.go hold for a
// while, or -torture.settle passes; what does not hold is reported with the
// seed, a one-line replay command and the seed's trace.
//
// One seed in four (-torture.loop) runs the product's own Service loop
// (cloud-config serviceController: own, started through
// Cloud.StartServiceLoop on the fake API's informers) instead of the
// emulated upstream service controller: the same actors and checks then
// hold the own loop to the same invariants, its retry waits compressed like
// the upstream loop's.
//
// Time is compressed: the service controller's waits (RetryAfter, its
// 5 s..300 s backoff) are divided by 1000, the simulator boots appliances
// in a few milliseconds, and the provider's server cache runs on a clock
// 100 times faster when it offers SetClock. The product's own timers (the
// endpoint follower's 1 s debounce, the repair pass, configured to its
// shortest interval of 1 s, grace periods of minutes) run in real time, so
// a grace period longer than the settle phase shows as a failure.
//
// The fake Kubernetes API keeps what a real API server keeps for Services
// (apiserver_test.go): resource versions with conflicts, the status
// subresource, and deletion with finalizers; the product writes to it too.
//
// The seed fixes the script; the interleaving of the actors, the
// controllers and the simulator is left to the scheduler, so a failure may
// need -torture.repeat to show again. -torture.minimize shrinks a failing
// seed to the shortest failing prefix of its script and then leaves out
// every slot it can (-torture.actions, -torture.skip in the replay line);
// -torture.tracedir keeps the full report of every failing run.
//
//	cd e2e && go test ./torture -run TestTorture -torture.seeds=200
//	cd e2e && go test ./torture -run TestTorture -torture.seed=17 -v
//	cd e2e && go test ./torture -run TestTorture -torture.seed=17 -torture.repeat=4 -torture.minimize
//	make torture SEEDS=2000 TORTURE_FLAGS='-torture.tracedir=/tmp/torture'
//
// Everything lives in test files; this file only carries the documentation.
package torture
