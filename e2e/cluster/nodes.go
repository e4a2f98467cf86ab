package cluster

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
)

// Taints and labels the cloud node controllers work with.
const (
	TaintUninitialized = "node.cloudprovider.kubernetes.io/uninitialized"
	TaintShutdown      = "node.cloudprovider.kubernetes.io/shutdown"
	LabelHostname      = "kubernetes.io/hostname"
)

// NodeSpec describes a Node to register.
type NodeSpec struct {
	// Name is the hostname, which is the SAKURA server's name.
	Name string
	// InternalIP, if set, is reported the way kubelet --node-ip would.
	InternalIP string
	// Labels are extra labels.
	Labels map[string]string
}

// RegisterNode creates a Node the way `kubelet --cloud-provider=external`
// registers itself: name = hostname, the hostname label, the uninitialized
// taint, no providerID; then marks it Ready (no kubelet heartbeats here, and
// kube-controller-manager's node-lifecycle controller is off, so it stays so).
func (c *Cluster) RegisterNode(ctx context.Context, spec NodeSpec) (*corev1.Node, error) {
	labels := map[string]string{
		LabelHostname:            spec.Name,
		"kubernetes.io/os":       "linux",
		"kubernetes.io/arch":     "amd64",
		"e2e.sakura-ccm/managed": "true",
	}
	for k, v := range spec.Labels {
		labels[k] = v
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: spec.Name, Labels: labels},
		Spec: corev1.NodeSpec{Taints: []corev1.Taint{{
			Key: TaintUninitialized, Value: "true", Effect: corev1.TaintEffectNoSchedule,
		}}},
	}
	if _, err := c.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("register node %s: %w", spec.Name, err)
	}
	// The CCM and EmulateKubelets may write the Node meanwhile: re-read on
	// conflict and only fill in what is still missing, so their writes stand.
	nodes := c.Client.CoreV1().Nodes()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := nodes.Get(ctx, spec.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		want := readyStatus(spec)
		if !hasCondition(n, corev1.NodeReady) {
			n.Status.Conditions = append(n.Status.Conditions, want.Conditions...)
		}
		if len(n.Status.Addresses) == 0 {
			n.Status.Addresses = want.Addresses
		}
		if n.Status.NodeInfo.KubeletVersion == "" {
			n.Status.NodeInfo = want.NodeInfo
		}
		if len(n.Status.Capacity) == 0 {
			n.Status.Capacity, n.Status.Allocatable = want.Capacity, want.Allocatable
		}
		_, err = nodes.UpdateStatus(ctx, n, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("node %s status: %w", spec.Name, err)
	}
	// Admission adds node.kubernetes.io/not-ready on create; the
	// node-lifecycle controller (off here: nothing heartbeats) would drop it
	// once Ready, so do its part.
	var updated *corev1.Node
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := nodes.Get(ctx, spec.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		updated = n
		var taints []corev1.Taint
		for _, t := range n.Spec.Taints {
			if t.Key != corev1.TaintNodeNotReady {
				taints = append(taints, t)
			}
		}
		if len(taints) == len(n.Spec.Taints) {
			return nil
		}
		n.Spec.Taints = taints
		updated, err = nodes.Update(ctx, n, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("node %s taints: %w", spec.Name, err)
	}
	return updated, nil
}

func readyStatus(spec NodeSpec) corev1.NodeStatus {
	now := metav1.Now()
	st := corev1.NodeStatus{
		Conditions: []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
			Message: "e2e: no kubelet, marked ready by the harness", LastHeartbeatTime: now, LastTransitionTime: now,
		}},
		Addresses: []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: spec.Name}},
		NodeInfo:  corev1.NodeSystemInfo{KubeletVersion: "v1.37.2", OperatingSystem: "linux", Architecture: "amd64"},
		Capacity: corev1.ResourceList{
			corev1.ResourceCPU: mustQuantity("2"), corev1.ResourceMemory: mustQuantity("4Gi"), corev1.ResourcePods: mustQuantity("110"),
		},
	}
	st.Allocatable = st.Capacity
	if spec.InternalIP != "" {
		st.Addresses = append([]corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: spec.InternalIP}}, st.Addresses...)
	}
	return st
}

// DeleteNode deletes a Node and waits until it is gone. Absent is fine.
func (c *Cluster) DeleteNode(ctx context.Context, name string) error {
	err := c.Client.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return Poll(wctx, 200*time.Millisecond, nil, func() (bool, error) {
		_, err := c.Client.CoreV1().Nodes().Get(wctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
}

// DeleteAllNodes removes every Node (between tests sharing a control plane).
func (c *Cluster) DeleteAllNodes(ctx context.Context) error {
	list, err := c.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for _, n := range list.Items {
		if err := c.DeleteNode(ctx, n.Name); err != nil {
			return err
		}
	}
	return nil
}

// EmulateKubelets stands in for the kubelets and kube-controller-manager's
// node-lifecycle controller (neither runs here): every interval it sets each
// Node's Ready condition to True while the simulator has a running server of
// that name, and to Unknown ("Kubelet stopped posting node status") once the
// server is powered off or gone. The CCM's node-lifecycle controller only
// looks at Nodes that are not Ready, exactly as in a real cluster. Runs until
// ctx ends.
func (c *Cluster) EmulateKubelets(ctx context.Context, sim *Simulator, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		up, err := sim.ServersUp(ctx)
		if err == nil {
			c.syncReady(ctx, up)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (c *Cluster) syncReady(ctx context.Context, up map[string]bool) {
	list, err := c.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	for i := range list.Items {
		n := &list.Items[i]
		want, reason, msg := corev1.ConditionTrue, "KubeletReady", "kubelet is posting ready status (emulated)"
		if !up[n.Name] {
			want, reason, msg = corev1.ConditionUnknown, "NodeStatusUnknown", "Kubelet stopped posting node status."
		}
		now := metav1.Now()
		found := false
		for j := range n.Status.Conditions {
			cond := &n.Status.Conditions[j]
			if cond.Type != corev1.NodeReady {
				continue
			}
			found = true
			if cond.Status == want {
				break
			}
			cond.Status, cond.Reason, cond.Message = want, reason, msg
			cond.LastTransitionTime, cond.LastHeartbeatTime = now, now
			found = false // changed: write it below
			break
		}
		if found {
			continue
		}
		if !hasCondition(n, corev1.NodeReady) {
			n.Status.Conditions = append(n.Status.Conditions, corev1.NodeCondition{
				Type: corev1.NodeReady, Status: want, Reason: reason, Message: msg, LastHeartbeatTime: now, LastTransitionTime: now,
			})
		}
		_, _ = c.Client.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
	}
}

func hasCondition(n *corev1.Node, t corev1.NodeConditionType) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == t {
			return true
		}
	}
	return false
}

func mustQuantity(s string) resource.Quantity { return resource.MustParse(s) }
