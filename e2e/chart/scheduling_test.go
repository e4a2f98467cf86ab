package chart

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/e2e/cluster"
)

// A control-plane style: how a distribution labels and taints the nodes of
// its control plane, as they register before any CNI or cloud controller
// ran (so every node also has the not-ready and uninitialized taints).
type cpStyle struct {
	name   string
	labels map[string]string
	taints []corev1.Taint
}

var (
	// kubeadm: the role label with an empty value and the NoSchedule taint;
	// it also keeps control-plane nodes out of external load balancers.
	kubeadmStyle = cpStyle{"kubeadm", map[string]string{
		"node-role.kubernetes.io/control-plane":                   "",
		"node.kubernetes.io/exclude-from-external-load-balancers": "",
	}, []corev1.Taint{{Key: "node-role.kubernetes.io/control-plane", Effect: corev1.TaintEffectNoSchedule}}}
	// k3s: "true" role labels (control-plane, master, and etcd with embedded
	// etcd); servers are not tainted unless asked to be.
	k3sStyle = cpStyle{"k3s", map[string]string{
		"node-role.kubernetes.io/control-plane": "true",
		"node-role.kubernetes.io/master":        "true",
		"node-role.kubernetes.io/etcd":          "true",
	}, nil}
	// RKE2: "true" role labels, and the CriticalAddonsOnly taint its docs
	// recommend for dedicated servers.
	rke2Style = cpStyle{"rke2", map[string]string{
		"node-role.kubernetes.io/control-plane": "true",
		"node-role.kubernetes.io/master":        "true",
		"node-role.kubernetes.io/etcd":          "true",
	}, []corev1.Taint{{Key: "CriticalAddonsOnly", Value: "true", Effect: corev1.TaintEffectNoExecute}}}
)

const workersPerCluster = 2

// addNodes registers prefix-cp-0.. (control plane) and prefix-w-0.. (workers)
// with room for pods, and deletes them when the test ends.
func addNodes(t *testing.T, c *cluster.Cluster, prefix string, style cpStyle, controlPlanes int) (cps, workers []string) {
	t.Helper()
	ctx := context.Background()
	add := func(name string, labels map[string]string, taints []corev1.Taint) {
		all := map[string]string{"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}
		for k, v := range labels {
			all[k] = v
		}
		n := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: all},
			// Admission adds node.kubernetes.io/not-ready:NoSchedule too.
			Spec: corev1.NodeSpec{Taints: append([]corev1.Taint{
				{Key: cluster.TaintUninitialized, Value: "true", Effect: corev1.TaintEffectNoSchedule},
			}, taints...)},
		}
		if _, err := c.Client.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{}); err != nil {
			t.Fatalf("node %s: %v", name, err)
		}
		t.Cleanup(func() { _ = c.Client.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{}) })
		// kube-controller-manager writes new Nodes too: re-read on conflict.
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			n, err := c.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if !slices.ContainsFunc(n.Spec.Taints, func(t corev1.Taint) bool { return t.Key == corev1.TaintNodeNotReady }) {
				// Without the admission plugin, do its part: no CNI yet.
				n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoSchedule})
				if n, err = c.Client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
					return err
				}
			}
			room := corev1.ResourceList{
				corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourceMemory: resource.MustParse("8Gi"),
				corev1.ResourcePods: resource.MustParse("110"),
			}
			n.Status.Capacity, n.Status.Allocatable = room, room
			n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionFalse,
				Reason: "KubeletNotReady", Message: "container runtime network not ready: cni plugin not initialized",
				LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}}
			_, err = c.Client.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
			return err
		})
		if err != nil {
			t.Fatalf("node %s: %v", name, err)
		}
	}
	for i := range controlPlanes {
		name := fmt.Sprintf("%s-cp-%d", prefix, i)
		add(name, style.labels, style.taints)
		cps = append(cps, name)
	}
	for i := range workersPerCluster {
		name := fmt.Sprintf("%s-w-%d", prefix, i)
		add(name, nil, nil)
		workers = append(workers, name)
	}
	return cps, workers
}

// install renders the chart as release and applies it to kube-system; the
// objects and their pods go when the test ends.
func install(t *testing.T, c *cluster.Cluster, release string, args ...string) {
	t.Helper()
	out, err := helm(t, append([]string{"template", release, chartDir(t), "--namespace", "kube-system",
		"--set", "existingSecret=sakura-api"}, args...)...)
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, out)
	}
	manifest := []byte(out)
	if out, err := kubectl(t, c, manifest, "apply", "-f", "-"); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		_, _ = kubectl(t, c, manifest, "delete", "--wait=false", "--ignore-not-found", "-f", "-")
		// No kubelet finishes the pods' termination: remove them outright.
		zero := int64(0)
		_ = c.Client.CoreV1().Pods("kube-system").DeleteCollection(context.Background(),
			metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{LabelSelector: instanceSelector(release)})
	})
}

func instanceSelector(release string) string {
	return "app.kubernetes.io/name=sakura-cloud-controller-manager,app.kubernetes.io/instance=" + release
}

// placement waits until want pods of the release exist and the scheduler has
// bound them all, or fails with why the rest are Pending.
func placement(t *testing.T, c *cluster.Cluster, release string, want int) []corev1.Pod {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var pods []corev1.Pod
	for {
		list, err := c.Client.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{LabelSelector: instanceSelector(release)})
		if err == nil {
			pods = pods[:0]
			bound := 0
			for _, p := range list.Items {
				if p.DeletionTimestamp != nil {
					continue
				}
				pods = append(pods, p)
				if p.Spec.NodeName != "" {
					bound++
				}
			}
			if len(pods) == want && bound == want {
				return pods
			}
		}
		select {
		case <-ctx.Done():
			var why []string
			for _, p := range pods {
				for _, cond := range p.Status.Conditions {
					if cond.Type == corev1.PodScheduled && cond.Status != corev1.ConditionTrue {
						why = append(why, p.Name+": "+cond.Message)
					}
				}
			}
			t.Fatalf("%s: %d pods, want %d all scheduled; pending: %v", release, len(pods), want, why)
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// markReady does the kubelet's part: the pods run and are ready, so the
// disruption controller counts them as healthy.
func markReady(t *testing.T, c *cluster.Cluster, pods []corev1.Pod) {
	t.Helper()
	for _, p := range pods {
		now := metav1.Now()
		p.Status.Phase = corev1.PodRunning
		p.Status.Conditions = []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
		}
		if _, err := c.Client.CoreV1().Pods(p.Namespace).UpdateStatus(context.Background(), &p, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("pod %s status: %v", p.Name, err)
		}
	}
}

// evict asks for the eviction `kubectl drain` asks for; it retries for a while
// when the PodDisruptionBudget refuses (429) so that a budget the disruption
// controller has not computed yet is not mistaken for a refusal.
func evict(c *cluster.Cluster, pod corev1.Pod, patience time.Duration) error {
	deadline := time.Now().Add(patience)
	for {
		err := c.Client.CoreV1().Pods(pod.Namespace).EvictV1(context.Background(), &policyv1.Eviction{
			ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace}})
		if err == nil || !apierrors.IsTooManyRequests(err) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestSchedulesOnEveryControlPlaneStyle installs the chart with its defaults
// next to kubeadm-, k3s- and RKE2-style control planes of one and of three
// nodes (plus workers), lets the real kube-scheduler place it and drains the
// node it landed on: it must run on a control-plane node, never on a worker,
// and nothing of the chart may block the drain.
func TestSchedulesOnEveryControlPlaneStyle(t *testing.T) {
	c := controlPlane(t)
	for _, style := range []cpStyle{kubeadmStyle, k3sStyle, rke2Style} {
		for _, n := range []int{1, 3} {
			name := fmt.Sprintf("%s-%d", style.name, n)
			t.Run(name, func(t *testing.T) {
				cps, _ := addNodes(t, c, "sched-"+name, style, n)
				release := "s-" + name
				install(t, c, release)
				pods := placement(t, c, release, 1)
				if !slices.Contains(cps, pods[0].Spec.NodeName) {
					t.Fatalf("pod on %s, want a control-plane node of %v", pods[0].Spec.NodeName, cps)
				}
				if _, err := c.Client.PolicyV1().PodDisruptionBudgets("kube-system").Get(context.Background(),
					"s-"+name+"-sakura-cloud-controller-manager", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
					t.Errorf("a single replica has a PodDisruptionBudget (%v): it would block kubectl drain", err)
				}
				markReady(t, c, pods)
				if err := evict(c, pods[0], 5*time.Second); err != nil {
					t.Fatalf("draining %s: eviction refused: %v", pods[0].Spec.NodeName, err)
				}
			})
		}
	}
}

// TestSchedulesHighlyAvailable: on three control-plane nodes, three replicas
// of a Deployment, or a DaemonSet, land one per control-plane node; the
// PodDisruptionBudget lets a drain evict one replica but not a second while
// the first is gone.
func TestSchedulesHighlyAvailable(t *testing.T) {
	c := controlPlane(t)
	t.Run("kubeadm-deployment-3", func(t *testing.T) {
		cps, _ := addNodes(t, c, "ha-kubeadm", kubeadmStyle, 3)
		install(t, c, "ha-kubeadm", "--set", "replicaCount=3")
		pods := placement(t, c, "ha-kubeadm", 3)
		assertOnePerNode(t, pods, cps)
		markReady(t, c, pods)
		if err := evict(c, pods[0], 60*time.Second); err != nil {
			t.Fatalf("first eviction refused: %v", err)
		}
		if err := evict(c, pods[1], 0); !apierrors.IsTooManyRequests(err) {
			t.Errorf("second eviction while the first replica is gone: %v, want refused by the PodDisruptionBudget", err)
		}
	})
	for _, style := range []cpStyle{k3sStyle, rke2Style} {
		t.Run(style.name+"-daemonset-3", func(t *testing.T) {
			cps, _ := addNodes(t, c, "ds-"+style.name, style, 3)
			install(t, c, "ds-"+style.name, "--set", "kind=DaemonSet")
			pods := placement(t, c, "ds-"+style.name, 3)
			assertOnePerNode(t, pods, cps)
		})
	}
}

func assertOnePerNode(t *testing.T, pods []corev1.Pod, cps []string) {
	t.Helper()
	var nodes []string
	for _, p := range pods {
		nodes = append(nodes, p.Spec.NodeName)
	}
	slices.Sort(nodes)
	if !slices.Equal(nodes, cps) {
		t.Errorf("pods on %v, want one on each control-plane node %v", nodes, cps)
	}
}

// TestTooManyReplicasStayPending documents the limit the values describe:
// with hostNetwork two replicas never share a node, so a second replica on a
// single control-plane node waits for a port; the scheduler says so.
func TestTooManyReplicasStayPending(t *testing.T) {
	c := controlPlane(t)
	addNodes(t, c, "pend-kubeadm", kubeadmStyle, 1)
	install(t, c, "pend-kubeadm", "--set", "replicaCount=2")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for {
		list, err := c.Client.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{LabelSelector: instanceSelector("pend-kubeadm")})
		if err == nil {
			bound, portMsg := 0, false
			for _, p := range list.Items {
				if p.Spec.NodeName != "" {
					bound++
				}
				for _, cond := range p.Status.Conditions {
					if cond.Type == corev1.PodScheduled && strings.Contains(cond.Message, "free ports") {
						portMsg = true
					}
				}
			}
			if bound == 1 && portMsg {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("want one replica bound and one Pending for free ports")
		case <-time.After(300 * time.Millisecond):
		}
	}
}
