package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

// Endpoint following: every Service is switched to externalTrafficPolicy:
// Local with a Deployment of two pods on the block's nodes (scheduler and
// kubelets emulated, EndpointSlices from the real controller), then pods are
// moved and readiness blips for a while. The figures are the API calls this
// costs, against a controller that re-syncs a Service on every change of its
// EndpointSlices.

// naiveCallsPerSliceEvent is what re-syncing on every EndpointSlice change
// costs at least: find the appliance, read it for the settings hash,
// UpdateSettings, Config.
const naiveCallsPerSliceEvent = 4

// blockNodes are the nodes with a NIC on the router+switch: the only ones
// that can be real servers.
func (b *bench) blockNodes() []string {
	var out []string
	for i := 1; i <= b.p.NodesOnBlock; i++ {
		out = append(out, serverName(i))
	}
	return out
}

// sliceEvents counts EndpointSlice watch events in the namespace until ctx ends.
func (b *bench) sliceEvents(ctx context.Context, n *atomic.Int64) error {
	w, err := b.kube.DiscoveryV1().EndpointSlices(namespace).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	go func() {
		defer w.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-w.ResultChan():
				if !ok {
					return
				}
				n.Add(1)
			}
		}
	}()
	return nil
}

// phaseEndpointsLocal switches every Service to Local with two ready pods.
func (b *bench) phaseEndpointsLocal(ctx context.Context) error {
	go b.c.EmulatePods(ctx, namespace, b.blockNodes(), 500*time.Millisecond)
	svcs, err := b.kube.CoreV1().Services(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	m, err := b.measure(ctx, settleUsual, settle{5 * time.Second, 2 * time.Minute}, func(*phase) error {
		return b.goLocal(ctx, svcs.Items)
	})
	if err != nil {
		return err
	}
	t := m.tally
	b.rep.add(Row{
		Figure:   fmt.Sprintf("switch %d Services to externalTrafficPolicy: Local, 2 pods each become ready", len(svcs.Items)),
		Measured: fmt.Sprintf("%s; settled in %.0fs", callsStr(t), m.elapsed.Seconds()),
		Naive:    "-",
		Note:     fmt.Sprintf("real servers go from 40 nodes to the pods' nodes; %s", t.OpsString()),
	})
	return nil
}

// goLocal gives each Service a Deployment of two pods and makes it Local,
// then waits for every pod to run.
func (b *bench) goLocal(ctx context.Context, svcs []corev1.Service) error {
	local := []byte(`{"spec":{"externalTrafficPolicy":"Local"}}`)
	for _, s := range svcs {
		d := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: namespace},
			Spec: appsv1.DeploymentSpec{
				Replicas: ptr.To[int32](2),
				Selector: &metav1.LabelSelector{MatchLabels: s.Spec.Selector},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: s.Spec.Selector},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.invalid/app:1"}}},
				},
			},
		}
		if _, err := b.kube.AppsV1().Deployments(namespace).Create(ctx, d, metav1.CreateOptions{}); err != nil {
			return err
		}
		if _, err := b.kube.CoreV1().Services(namespace).Patch(ctx, s.Name, types.MergePatchType, local, metav1.PatchOptions{}); err != nil {
			return err
		}
	}
	want := 2 * len(svcs)
	if err := pollUntil(ctx, 3*time.Minute, time.Second, func() (bool, error) {
		n, err := b.readyPods(ctx)
		return n >= want, err
	}); err != nil {
		return fmt.Errorf("pods never ready: %w", err)
	}
	return nil
}

func (b *bench) readyPods(ctx context.Context) (int, error) {
	l, err := b.kube.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, p := range l.Items {
		if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning {
			n++
		}
	}
	return n, nil
}

// phaseEndpointChurn moves pods and makes readiness blip for a window.
func (b *bench) phaseEndpointChurn(ctx context.Context) error {
	svcs, err := b.kube.CoreV1().Services(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	var events atomic.Int64
	if err := b.sliceEvents(wctx, &events); err != nil {
		return err
	}
	var moves, blips int
	// After the churn, the hold-downs run out and the last re-syncs land.
	m, err := b.measure(ctx, settle{3 * time.Second, 90 * time.Second}, settle{3 * time.Second, 60 * time.Second}, func(*phase) (err error) {
		moves, blips, err = b.churn(ctx, svcs.Items)
		time.Sleep(12 * time.Second)
		return err
	})
	if err != nil {
		return err
	}
	stopWatch()
	t := m.tally
	health := t.ByOp["LoadBalancer.Status"]
	following := t.Total - health
	updated := m.logCount("LoadBalancerUpdated")
	ev := int(events.Load())
	b.rep.add(Row{
		Figure: fmt.Sprintf("endpoint churn, %d Local Services: %d pod moves + %d readiness blips (2 s, under the 10 s hold-down) in %.0fs",
			len(svcs.Items), moves, blips, b.p.ChurnWindow.Seconds()),
		Measured: fmt.Sprintf("%d calls (%d writes) for endpoint following, %.1f per pod move; %d Services re-synced",
			following, t.Writes, float64(following)/float64(max(moves, 1)), updated),
		Naive: fmt.Sprintf("%d (%d EndpointSlice changes × %d)", ev*naiveCallsPerSliceEvent, ev, naiveCallsPerSliceEvent),
		Note:  fmt.Sprintf("phase %.0fs; also %d health Status reads in the phase; %s", m.elapsed.Seconds(), health, t.OpsString()),
	})
	return nil
}

// churn moves one pod and makes another blip every ChurnEvery for the
// churn window, and reports how many of each it did.
func (b *bench) churn(ctx context.Context, svcs []corev1.Service) (moves, blips int, err error) {
	rng := rand.New(rand.NewPCG(7, 7))
	var wg sync.WaitGroup
	defer wg.Wait()
	tick := time.NewTicker(b.p.ChurnEvery)
	defer tick.Stop()
	deadline := time.After(b.p.ChurnWindow)
	for {
		select {
		case <-ctx.Done():
			return moves, blips, ctx.Err()
		case <-deadline:
			return moves, blips, nil // the deferred Wait lets the last blips end
		case <-tick.C:
		}
		// Move: delete one pod; its ReplicaSet starts another, which the
		// emulated scheduler places on the least loaded block node.
		if pod := b.podOf(ctx, svcs[rng.IntN(len(svcs))].Name); pod != "" {
			zero := int64(0)
			if err := b.kube.CoreV1().Pods(namespace).Delete(ctx, pod, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err == nil {
				moves++
			}
		}
		// Blip: one pod of another Service is unready for 2 s, shorter
		// than the hold-down.
		if pod := b.podOf(ctx, svcs[rng.IntN(len(svcs))].Name); pod != "" {
			if err := b.c.SetPodReady(ctx, namespace, pod, false); err == nil {
				blips++
				wg.Add(1)
				go func() {
					defer wg.Done()
					time.Sleep(2 * time.Second)
					_ = b.c.SetPodReady(ctx, namespace, pod, true)
				}()
			}
		}
	}
}

// podOf returns the name of a running pod of app, or "".
func (b *bench) podOf(ctx context.Context, app string) string {
	l, err := b.kube.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		return ""
	}
	for _, p := range l.Items {
		if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning {
			return p.Name
		}
	}
	return ""
}
