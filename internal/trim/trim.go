// Package trim holds the client-go transforms (cache.TransformFunc) of the
// controller's informers: they drop, before an object enters a cache, the
// fields that nothing in this process reads, so each cached Node, Service
// and EndpointSlice costs less memory. docs/memory.md has the numbers.
//
// A field may only go when two things hold, checked against
// k8s.io/cloud-provider v0.37 (cloud-node, cloud-node-lifecycle and service
// controllers) and this repository's own readers:
//
//   - no reader looks at it, and
//   - no write built from a cached copy sends it back, so the server keeps
//     it. Writes computed as a two-way patch between a cached copy and its
//     modified copy (servicehelper.PatchService, nodeutil.PatchNodeStatus,
//     PatchNodeTaints) never mention a field absent from both. Full-object
//     writes need a look each:
//   - metadata.managedFields: the API server keeps the live object's when a
//     request carries none (fieldmanager decodeLiveOrNew), and always for a
//     subresource. Safe on every type.
//   - Node status: the cloud-node controller PUTs the cached Node (without
//     a subresource) when it initializes it; the Node strategy's
//     PrepareForUpdate replaces the whole status by the stored one, so a
//     missing status.images is not a deletion.
//   - Annotations are not dropped from Nodes or Services: that same Node PUT
//     and the repair pass's Service status PUT (UpdateStatus of a cached copy;
//     the Service status strategy resets spec only) send metadata as cached,
//     so a dropped kubectl.kubernetes.io/last-applied-configuration would be
//     deleted on the server.
//
// Every transform is idempotent (client-go may hand an object over twice)
// and mutates in place, which client-go allows since v1.27.
package trim

import (
	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
)

// ManagedFields drops metadata.managedFields from any object. Only the API
// server and server-side apply use them; a Node carries one entry per
// writer (kubelet, kube-controller-manager, this controller, ...) with the
// full set of fields it owns.
func ManagedFields(obj any) (any, error) {
	if m, err := meta.Accessor(obj); err == nil {
		m.SetManagedFields(nil)
	}
	return obj, nil
}

// Node drops managedFields and status.images: the list of container images
// the kubelet reports (up to 50 by default, each with its digests), which
// is for the scheduler. None of the cloud-node, cloud-node-lifecycle or
// service controllers, nor instances/ or loadbalancer/, reads it.
func Node(obj any) (any, error) {
	if n, ok := obj.(*v1.Node); ok {
		n.ManagedFields = nil
		n.Status.Images = nil
		return n, nil
	}
	return ManagedFields(obj)
}

// Service drops managedFields. Its annotations stay (see the package
// comment: the repair pass writes status with a cached copy).
func Service(obj any) (any, error) {
	return ManagedFields(obj)
}

// EndpointSlice keeps what the endpoint follower reads: namespace, name,
// labels (kubernetes.io/service-name) and each endpoint's node name and
// conditions (endpoints.ReadyNodes). It drops managedFields, annotations
// (last-change-trigger-time), and the endpoints' target references, hints
// and deprecated topology. Nothing in this process writes EndpointSlices.
func EndpointSlice(obj any) (any, error) {
	s, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return ManagedFields(obj)
	}
	s.ManagedFields = nil
	s.Annotations = nil
	for i := range s.Endpoints {
		e := &s.Endpoints[i]
		e.TargetRef = nil
		e.Hints = nil
		e.DeprecatedTopology = nil
	}
	return s, nil
}
