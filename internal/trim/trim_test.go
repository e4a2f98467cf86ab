package trim

import (
	"context"
	"encoding/json"
	"os"
	"reflect"
	"runtime"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	kubefake "k8s.io/client-go/kubernetes/fake"
	servicehelper "k8s.io/cloud-provider/service/helpers"
	nodeutil "k8s.io/component-helpers/node/util"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/endpoints"
)

// Fixtures (testdata/):
//   - node-bench.json, service-bench.json: a Node and a Service read from the
//     API server of `make bench` (200 nodes × 100 Services) mid-run, as the
//     controller's informers receive them;
//   - node-kubelet.json: a worker as a kubelet (containerd, 30 images),
//     kubeadm, kube-controller-manager, Calico and this controller leave it;
//   - service-applied.json: a Service written with `kubectl apply`;
//   - endpointslice.json: the EndpointSlice controller's slice of 3 pods.
func load[T any](t testing.TB, file string) (*T, []byte) {
	t.Helper()
	raw, err := os.ReadFile("testdata/" + file)
	if err != nil {
		t.Fatal(err)
	}
	obj := new(T)
	if err := json.Unmarshal(raw, obj); err != nil {
		t.Fatal(err)
	}
	return obj, raw
}

func TestNodeDropsManagedFieldsAndImagesOnly(t *testing.T) {
	for _, file := range []string{"node-bench.json", "node-kubelet.json"} {
		n, _ := load[v1.Node](t, file)
		if len(n.ManagedFields) == 0 {
			t.Fatalf("%s: fixture has no managedFields", file)
		}
		want := n.DeepCopy()
		want.ManagedFields, want.Status.Images = nil, nil
		got, err := Node(n)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: Node() = %v, %v; want only managedFields and status.images dropped", file, got, err)
		}
		again, _ := Node(got)
		if !reflect.DeepEqual(again, want) {
			t.Errorf("%s: Node() is not idempotent", file)
		}
	}
}

// Services keep every annotation: the repair pass PUTs status from a cached
// copy, and the Service status strategy keeps the metadata sent.
func TestServiceDropsManagedFieldsOnly(t *testing.T) {
	s, _ := load[v1.Service](t, "service-applied.json")
	if s.Annotations[v1.LastAppliedConfigAnnotation] == "" || len(s.ManagedFields) == 0 {
		t.Fatal("fixture lacks the annotation or managedFields")
	}
	want := s.DeepCopy()
	want.ManagedFields = nil
	if got, err := Service(s); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Service() = %v, %v", got, err)
	}
}

func TestEndpointSliceKeepsWhatTheFollowerReads(t *testing.T) {
	s, _ := load[discoveryv1.EndpointSlice](t, "endpointslice.json")
	before := s.DeepCopy()
	got, err := EndpointSlice(s)
	if err != nil {
		t.Fatal(err)
	}
	after := got.(*discoveryv1.EndpointSlice)
	if !reflect.DeepEqual(endpoints.ReadyNodes([]*discoveryv1.EndpointSlice{after}), endpoints.ReadyNodes([]*discoveryv1.EndpointSlice{before})) {
		t.Error("ready nodes changed")
	}
	if after.Namespace != before.Namespace || after.Name != before.Name || !reflect.DeepEqual(after.Labels, before.Labels) {
		t.Error("the slice's key or labels changed")
	}
	if after.ManagedFields != nil || after.Annotations != nil || after.Endpoints[0].TargetRef != nil {
		t.Errorf("not trimmed: %+v", after)
	}
	if again, _ := EndpointSlice(after.DeepCopy()); !reflect.DeepEqual(again, after) {
		t.Error("EndpointSlice() is not idempotent")
	}
}

func TestOtherObjectsLoseManagedFieldsOnly(t *testing.T) {
	cm := &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x", Annotations: map[string]string{"a": "b"},
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "m"}}}}
	for _, f := range []func(any) (any, error){Node, Service, EndpointSlice, ManagedFields} {
		c := cm.DeepCopy()
		if got, err := f(c); err != nil || got.(*v1.ConfigMap).ManagedFields != nil || got.(*v1.ConfigMap).Annotations["a"] != "b" {
			t.Errorf("%v, %v", got, err)
		}
	}
	if got, err := Node("not an object"); got != "not an object" || err != nil {
		t.Errorf("a non-object: %v, %v", got, err)
	}
}

// The controllers' status writes are patches between a cached copy and a
// modified copy: what the transform dropped is absent from both, so the
// patch does not touch it and the stored object keeps it.
func TestStatusPatchesFromTrimmedCopiesKeepTheDroppedFields(t *testing.T) {
	ctx := context.Background()
	stored, _ := load[v1.Node](t, "node-kubelet.json")
	kube := kubefake.NewClientset(stored.DeepCopy())
	cached, _ := Node(stored.DeepCopy())
	old := cached.(*v1.Node)
	changed := old.DeepCopy()
	changed.Status.Addresses = append(changed.Status.Addresses, v1.NodeAddress{Type: v1.NodeInternalIP, Address: "192.168.20.17"})
	_, patch, err := nodeutil.PatchNodeStatus(kube.CoreV1(), types.NodeName(old.Name), old, changed)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(patch), "images") || strings.Contains(string(patch), "managedFields") {
		t.Errorf("node status patch touches a dropped field: %s", patch)
	}
	n, err := kube.CoreV1().Nodes().Get(ctx, old.Name, metav1.GetOptions{})
	if err != nil || len(n.Status.Images) != len(stored.Status.Images) || len(n.Status.Addresses) != 4 {
		t.Errorf("after the patch: %d images (want %d), addresses %v, %v", len(n.Status.Images), len(stored.Status.Images), n.Status.Addresses, err)
	}

	svc, _ := load[v1.Service](t, "service-applied.json")
	kube = kubefake.NewClientset(svc.DeepCopy())
	cachedSvc, _ := Service(svc.DeepCopy())
	oldSvc := cachedSvc.(*v1.Service)
	newSvc := oldSvc.DeepCopy()
	newSvc.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: "203.0.113.45"}}
	if _, err := servicehelper.PatchService(kube.CoreV1(), oldSvc, newSvc); err != nil {
		t.Fatal(err)
	}
	s, err := kube.CoreV1().Services(svc.Namespace).Get(ctx, svc.Name, metav1.GetOptions{})
	if err != nil || len(s.ManagedFields) != len(svc.ManagedFields) || s.Status.LoadBalancer.Ingress[0].IP != "203.0.113.45" {
		t.Errorf("after the patch: %d managedFields (want %d), status %v, %v", len(s.ManagedFields), len(svc.ManagedFields), s.Status, err)
	}
}

// BenchmarkCached reports the heap one cached object keeps (B/object),
// decoded as an informer receives it, as listed and after the transform.
// go test -run '^$' -bench Cached ./internal/trim
func BenchmarkCached(b *testing.B) {
	for _, c := range []struct {
		name      string
		file      string
		newObj    func() any
		transform func(any) (any, error)
	}{
		{"node-bench", "node-bench.json", func() any { return &v1.Node{} }, Node},
		{"node-kubelet", "node-kubelet.json", func() any { return &v1.Node{} }, Node},
		{"service-bench", "service-bench.json", func() any { return &v1.Service{} }, Service},
		{"service-applied", "service-applied.json", func() any { return &v1.Service{} }, Service},
		{"endpointslice", "endpointslice.json", func() any { return &discoveryv1.EndpointSlice{} }, EndpointSlice},
	} {
		raw, err := os.ReadFile("testdata/" + c.file)
		if err != nil {
			b.Fatal(err)
		}
		for _, mode := range []string{"as-listed", "trimmed"} {
			b.Run(c.name+"/"+mode, func(b *testing.B) {
				var t func(any) (any, error)
				if mode == "trimmed" {
					t = c.transform
				}
				var kept float64
				for range b.N {
					kept = keptPerObject(b, raw, c.newObj, t)
				}
				b.ReportMetric(kept, "B/object")
			})
		}
	}
}

// keptPerObject decodes 200 copies of raw, applies t, and returns the heap
// they keep after a GC, per copy.
func keptPerObject(b *testing.B, raw []byte, newObj func() any, t func(any) (any, error)) float64 {
	const n = 200
	objs := make([]any, n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range objs {
		o := newObj()
		if err := json.Unmarshal(raw, o); err != nil {
			b.Fatal(err)
		}
		if t != nil {
			o, _ = t(o)
		}
		objs[i] = o
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(objs)
	return float64(after.HeapAlloc-before.HeapAlloc) / n
}
