// Package instances implements cloudprovider.InstancesV2 for SAKURA Cloud:
// it matches Nodes to servers and reports their metadata, reading the shared
// server cache instead of calling the API per node.
package instances

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/types"
	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/record"
	cloudprovider "k8s.io/cloud-provider"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/providerid"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/sakuraapi"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/servercache"
)

// Reasons of the Warning Events emitted on Nodes.
const (
	// ReasonDuplicateServerName: several servers carry the node's name and the
	// node has no providerID, so the controller refuses to guess.
	ReasonDuplicateServerName = "DuplicateServerName"
	// ReasonAmbiguousReplacement: the node's server is gone and several servers
	// claim to replace it (@previous-id).
	ReasonAmbiguousReplacement = "AmbiguousReplacementServer"
	// ReasonProviderIDZone: the node's providerID names another zone.
	ReasonProviderIDZone = "ProviderIDInOtherZone"
	// ReasonNoMatchingServer: the node has no providerID and no server of
	// the zone carries its name. The node is kept (InstanceExists says
	// true): the controller never matched it, so nothing says it is gone.
	ReasonNoMatchingServer = "NoMatchingServer"
)

// UnmatchedWarnInterval spaces the Warning Events and log lines about one
// unmatched node: the lifecycle controller asks every 5 s.
const UnmatchedWarnInterval = 10 * time.Minute

// Instances implements cloudprovider.InstancesV2.
type Instances struct {
	client   *sakuraapi.Client
	servers  *servercache.Cache
	zone     string
	recorder record.EventRecorder
	clock    clock.PassiveClock

	mu     sync.Mutex
	warned map[string]time.Time // node UID or name -> last NoMatchingServer warning
}

var _ cloudprovider.InstancesV2 = (*Instances)(nil)

// New returns the InstancesV2 for client's zone; recorder may be nil.
func New(client *sakuraapi.Client, servers *servercache.Cache, recorder record.EventRecorder) *Instances {
	return &Instances{client: client, servers: servers, zone: client.Zone, recorder: recorder,
		clock: clock.RealClock{}, warned: map[string]time.Time{}}
}

// SetClock replaces the clock that spaces the NoMatchingServer warnings (tests).
func (i *Instances) SetClock(c clock.PassiveClock) { i.clock = c }

// SetRecorder sets the event recorder once it exists (after Initialize).
func (i *Instances) SetRecorder(r record.EventRecorder) { i.recorder = r }

// errNodeMatch marks errors that are about the node's configuration, not the API.
var errNodeMatch = errors.New("cannot match node to a server")

// find returns the node's server, or (nil, nil) when there is none. Order:
// providerID (either form) → the server with that ID, else the one that
// replaced it (@previous-id); without a providerID, the server whose name is
// exactly the node's name. A node with a providerID never falls back to its
// name: a re-created server of the same name is another machine.
func (i *Instances) find(ctx context.Context, node *v1.Node) (*iaas.Server, error) {
	if node.Spec.ProviderID != "" {
		zone, id, err := providerid.Parse(node.Spec.ProviderID)
		if err != nil {
			return nil, fmt.Errorf("node %q: %w: %w", node.Name, errNodeMatch, err)
		}
		if zone != "" && zone != i.zone {
			err := fmt.Errorf("node %q: %w: providerID %q is in zone %s, but this controller manages zone %s",
				node.Name, errNodeMatch, node.Spec.ProviderID, zone, i.zone)
			i.warn(node, ReasonProviderIDZone, err)
			return nil, err
		}
		return i.byID(ctx, node, id)
	}
	servers, err := i.servers.ByName(ctx, node.Name)
	if err != nil {
		return nil, fmt.Errorf("node %q: %w", node.Name, err)
	}
	switch len(servers) {
	case 0:
		return nil, nil
	case 1:
		return servers[0], nil
	}
	err = fmt.Errorf("node %q: %w: %d servers are named %q (IDs %s); rename all but one, or set spec.providerID to %s",
		node.Name, errNodeMatch, len(servers), node.Name, idList(servers), providerid.Prefix+i.zone+"/<ID of this node's server>")
	i.warn(node, ReasonDuplicateServerName, err)
	return nil, err
}

func (i *Instances) byID(ctx context.Context, node *v1.Node, id types.ID) (*iaas.Server, error) {
	srv, err := i.servers.ByID(ctx, id)
	if err != nil || srv != nil {
		return srv, wrapNode(node, err)
	}
	repl, err := i.servers.ByPreviousID(ctx, id)
	if err != nil {
		return nil, wrapNode(node, err)
	}
	switch len(repl) {
	case 0:
		return nil, nil
	case 1:
		klog.V(4).InfoS("Following @previous-id", "node", node.Name, "oldID", id, "newID", repl[0].ID)
		return repl[0], nil
	}
	err = fmt.Errorf("node %q: %w: server %s is gone and %d servers carry %s=%s (IDs %s)",
		node.Name, errNodeMatch, id, len(repl), servercache.PreviousIDTag, id, idList(repl))
	i.warn(node, ReasonAmbiguousReplacement, err)
	return nil, err
}

func wrapNode(node *v1.Node, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("node %q: %w", node.Name, err)
}

func idList(servers []*iaas.Server) string {
	ids := make([]string, 0, len(servers))
	for _, s := range servers {
		ids = append(ids, s.ID.String())
	}
	slices.Sort(ids)
	return strings.Join(ids, ", ")
}

func (i *Instances) warn(node *v1.Node, reason string, err error) {
	klog.ErrorS(err, "Node does not match one server", "node", node.Name, "reason", reason)
	if i.recorder != nil {
		i.recorder.Event(node, v1.EventTypeWarning, reason, err.Error())
	}
}

// InstanceExists is false only when the server of a node with a providerID
// is really gone: absent from a list taken after the miss and answered 404
// by a direct read. Any API error is returned as an error, which the node
// lifecycle controller treats as "keep the node": an outage never deletes
// Nodes. A node without a providerID that no server's name matches was never
// matched by this controller: that is a configuration problem (hostname and
// server name differ), not a deleted server, so it is kept (true) and a
// Warning Event says how to fix it.
func (i *Instances) InstanceExists(ctx context.Context, node *v1.Node) (bool, error) {
	srv, err := i.find(ctx, node)
	if err != nil {
		return false, err
	}
	if srv != nil {
		return true, nil
	}
	if node.Spec.ProviderID == "" {
		i.warnUnmatched(node)
		return true, nil
	}
	// Confirm with the API before the node is deleted. Rare (only for gone
	// servers), so it does not weigh on a steady-state pass.
	_, id, _ := providerid.Parse(node.Spec.ProviderID)
	if _, err := i.client.Servers.Read(ctx, i.zone, id); err == nil {
		i.servers.Invalidate()
		return true, nil
	} else if !sakuraapi.IsNotFound(err) {
		return false, fmt.Errorf("node %q: confirming server %s is gone: %w", node.Name, id, err)
	}
	klog.InfoS("Server of node is gone", "node", node.Name, "serverID", id)
	return false, nil
}

// InstanceShutdown is true exactly when the server's instance status is down.
func (i *Instances) InstanceShutdown(ctx context.Context, node *v1.Node) (bool, error) {
	srv, err := i.find(ctx, node)
	if err != nil {
		return false, err
	}
	if srv == nil {
		if node.Spec.ProviderID == "" {
			// Never matched (see InstanceExists): nothing says it is down.
			i.warnUnmatched(node)
			return false, nil
		}
		return false, cloudprovider.InstanceNotFound
	}
	return srv.InstanceStatus == types.ServerInstanceStatuses.Down, nil
}

// InstanceMetadata returns the providerID, instance type, addresses, zone and region.
func (i *Instances) InstanceMetadata(ctx context.Context, node *v1.Node) (*cloudprovider.InstanceMetadata, error) {
	srv, err := i.find(ctx, node)
	if err != nil {
		return nil, err
	}
	if srv == nil {
		if node.Spec.ProviderID == "" {
			// The cloud-node controller keeps the uninitialized taint and
			// retries; the Event tells the operator why.
			return nil, fmt.Errorf("%s: %w", i.warnUnmatched(node), cloudprovider.InstanceNotFound)
		}
		return nil, fmt.Errorf("node %q: no server with ID or @previous-id %s in zone %s: %w",
			node.Name, node.Spec.ProviderID, i.zone, cloudprovider.InstanceNotFound)
	}
	// spec.providerID is immutable once set; keep it (a re-created server is
	// still found through @previous-id).
	pid := node.Spec.ProviderID
	if pid == "" {
		pid = providerid.Format(i.zone, srv.ID)
	}
	return &cloudprovider.InstanceMetadata{
		ProviderID:    pid,
		InstanceType:  InstanceType(srv),
		NodeAddresses: NodeAddresses(srv, node.Name),
		Zone:          i.zone,
		Region:        Region(i.zone),
	}, nil
}

// unmatchedMessage says why a node without a providerID matches no server
// and how to fix it.
func (i *Instances) unmatchedMessage(node *v1.Node) string {
	return fmt.Sprintf("node %q has no spec.providerID and no server in zone %s is named %q; "+
		"the Node is kept but not initialized. Fix: start its kubelet with --provider-id=%s%s/<server ID>, "+
		"or rename its server to %q", node.Name, i.zone, node.Name, providerid.Prefix, i.zone, node.Name)
}

// warnUnmatched logs and records a NoMatchingServer Warning on node, at most
// once per UnmatchedWarnInterval per node, and returns the message.
func (i *Instances) warnUnmatched(node *v1.Node) string {
	msg := i.unmatchedMessage(node)
	key := string(node.UID)
	if key == "" {
		key = node.Name
	}
	now := i.clock.Now()
	i.mu.Lock()
	last, seen := i.warned[key]
	due := !seen || now.Sub(last) >= UnmatchedWarnInterval
	if due {
		i.warned[key] = now
		// Forget nodes not asked about for a while, so deleted ones do not pile up.
		for k, t := range i.warned {
			if now.Sub(t) > 3*UnmatchedWarnInterval {
				delete(i.warned, k)
			}
		}
	}
	i.mu.Unlock()
	if !due {
		klog.V(4).InfoS("Node matches no server; kept", "node", node.Name, "zone", i.zone)
		return msg
	}
	klog.InfoS("Node matches no server; kept, not deleted", "node", node.Name, "zone", i.zone,
		"reason", ReasonNoMatchingServer, "fix", "kubelet --provider-id="+providerid.Prefix+i.zone+"/<server ID>, or rename the server")
	if i.recorder != nil {
		i.recorder.Event(node, v1.EventTypeWarning, ReasonNoMatchingServer, msg)
	}
	return msg
}
