package cluster

import (
	"context"
	"fmt"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// EmulatePods stands in for the scheduler and the kubelets for the pods of
// one namespace, or of all with metav1.NamespaceAll (neither runs here), so Deployments behave as in a real
// cluster and kube-controller-manager's EndpointSlice controller publishes
// real endpoints:
//   - a pending pod is bound to the node among nodes with the fewest pods of
//     the namespace (ties by name), like a spreading scheduler;
//   - a bound pod becomes Running and Ready with a pod IP and its node's
//     host IP;
//   - a pod being deleted is removed at once, as a kubelet would after the
//     containers stopped.
//
// Every interval until ctx ends.
func (c *Cluster) EmulatePods(ctx context.Context, namespace string, nodes []string, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	seq := 0
	for {
		seq = c.syncPods(ctx, namespace, nodes, seq)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (c *Cluster) syncPods(ctx context.Context, ns string, nodes []string, seq int) int {
	list, err := c.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return seq
	}
	load := map[string]int{}
	for _, n := range nodes {
		load[n] = 0
	}
	for _, p := range list.Items {
		if p.Spec.NodeName != "" && p.DeletionTimestamp == nil {
			load[p.Spec.NodeName]++
		}
	}
	zero := int64(0)
	for i := range list.Items {
		p := &list.Items[i]
		pods := c.Client.CoreV1().Pods(p.Namespace)
		switch {
		case p.DeletionTimestamp != nil:
			_ = pods.Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
		case p.Spec.NodeName == "":
			node := leastLoaded(load)
			if node == "" {
				continue
			}
			b := &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace}, Target: corev1.ObjectReference{Kind: "Node", Name: node}}
			if err := pods.Bind(ctx, b, metav1.CreateOptions{}); err == nil {
				load[node]++
			}
		case p.Status.Phase != corev1.PodRunning:
			seq++
			now := metav1.Now()
			p.Status.Phase = corev1.PodRunning
			p.Status.PodIP = fmt.Sprintf("10.244.%d.%d", seq/250, seq%250+1)
			p.Status.PodIPs = []corev1.PodIP{{IP: p.Status.PodIP}}
			p.Status.HostIP = c.nodeInternalIP(ctx, p.Spec.NodeName)
			p.Status.StartTime = &now
			p.Status.Conditions = []corev1.PodCondition{
				{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
				{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: now},
				{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
				{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
			}
			p.Status.ContainerStatuses = nil
			for _, ctr := range p.Spec.Containers {
				p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{
					Name: ctr.Name, Image: ctr.Image, Ready: true,
					State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
				})
			}
			_, _ = pods.UpdateStatus(ctx, p, metav1.UpdateOptions{})
		}
	}
	return seq
}

func leastLoaded(load map[string]int) string {
	names := make([]string, 0, len(load))
	for n := range load {
		names = append(names, n)
	}
	sort.Strings(names)
	best := ""
	for _, n := range names {
		if best == "" || load[n] < load[best] {
			best = n
		}
	}
	return best
}

func (c *Cluster) nodeInternalIP(ctx context.Context, name string) string {
	n, err := c.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return ""
	}
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			return a.Address
		}
	}
	return ""
}

// SetPodReady flips a running pod's readiness, as a failing or recovering
// readiness probe would.
func (c *Cluster) SetPodReady(ctx context.Context, namespace, name string, ready bool) error {
	pods := c.Client.CoreV1().Pods(namespace)
	p, err := pods.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	now := metav1.Now()
	for i := range p.Status.Conditions {
		if t := p.Status.Conditions[i].Type; t == corev1.PodReady || t == corev1.ContainersReady {
			p.Status.Conditions[i].Status, p.Status.Conditions[i].LastTransitionTime = status, now
		}
	}
	for i := range p.Status.ContainerStatuses {
		p.Status.ContainerStatuses[i].Ready = ready
	}
	_, err = pods.UpdateStatus(ctx, p, metav1.UpdateOptions{})
	return err
}
