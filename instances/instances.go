// Package instances implements cloudprovider.InstancesV2 for SAKURA Cloud:
// it matches Nodes to servers and reports their metadata, reading the shared
// server cache instead of calling the API per node.
package instances

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

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

// Instances implements cloudprovider.InstancesV2 over the caches of every
// zone of the cluster.
type Instances struct {
	client   *sakuraapi.Client
	zones    *servercache.Zones
	recorder record.EventRecorder
	clock    clock.PassiveClock

	mu     sync.Mutex
	warned map[string]time.Time // node UID or name -> last NoMatchingServer warning
}

var _ cloudprovider.InstancesV2 = (*Instances)(nil)

// New returns the InstancesV2 for the zones of servers; recorder may be nil.
func New(client *sakuraapi.Client, servers *servercache.Zones, recorder record.EventRecorder) *Instances {
	return &Instances{client: client, zones: servers, recorder: recorder,
		clock: clock.RealClock{}, warned: map[string]time.Time{}}
}

// SetClock replaces the clock that spaces the NoMatchingServer warnings (tests).
func (i *Instances) SetClock(c clock.PassiveClock) { i.clock = c }

// SetRecorder sets the event recorder once it exists (after Initialize).
func (i *Instances) SetRecorder(r record.EventRecorder) { i.recorder = r }

// errNodeMatch marks errors that are about the node's configuration, not the API.
var errNodeMatch = errors.New("cannot match node to a server")

// find returns the node's server and its zone, or (nil, nil) when there is
// none. Order: providerID → the server with that ID, else the one that
// replaced it (@previous-id), in the providerID's zone or, for the legacy
// form without a zone, in every zone; without a providerID, the server
// whose name is exactly the node's name, in any zone (decideName). A node
// with a providerID never falls back to its name: a re-created server of
// the same name is another machine.
func (i *Instances) find(ctx context.Context, node *v1.Node) (*match, error) {
	var (
		m      *match
		err    error
		reason = ReasonDuplicateServerName
	)
	if node.Spec.ProviderID != "" {
		m, reason, err = i.findByProviderID(ctx, node)
	} else {
		m, err = decideName(node.Name, eachZone(i.zones.All(), func(c *servercache.Cache) nameAnswer {
			return nameLookup(ctx, c, node.Name)
		}))
	}
	if err == nil {
		return m, nil
	}
	err = fmt.Errorf("node %q: %w", node.Name, err)
	if reason != "" && errors.Is(err, errNodeMatch) {
		i.warn(node, reason, err)
	}
	return nil, err
}

// findByProviderID also returns the Event reason of a node-match error
// ("" when the error needs no Event, e.g. a malformed providerID).
func (i *Instances) findByProviderID(ctx context.Context, node *v1.Node) (*match, string, error) {
	zone, id, err := providerid.Parse(node.Spec.ProviderID)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %w", errNodeMatch, err)
	}
	caches := i.zones.All()
	if zone != "" {
		c := i.zones.Zone(zone)
		if c == nil {
			return nil, ReasonProviderIDZone, fmt.Errorf("%w: providerID %q is in zone %s, but this controller manages %s",
				errNodeMatch, node.Spec.ProviderID, zone, i.zoneWords())
		}
		caches = []*servercache.Cache{c}
	}
	m, err := decideID(id, eachZone(caches, func(c *servercache.Cache) idAnswer { return idLookup(ctx, c, id) }))
	return m, ReasonAmbiguousReplacement, err
}

// eachZone asks every cache at once, so that a slow zone costs its own wait
// and not the sum of all; answers keep the caches' order.
func eachZone[T any](caches []*servercache.Cache, ask func(*servercache.Cache) T) []T {
	out := make([]T, len(caches))
	if len(caches) == 1 {
		out[0] = ask(caches[0])
		return out
	}
	var wg sync.WaitGroup
	for n, c := range caches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[n] = ask(c)
		}()
	}
	wg.Wait()
	return out
}

func nameLookup(ctx context.Context, c *servercache.Cache, name string) nameAnswer {
	servers, err := c.ByName(ctx, name)
	if err == nil {
		return nameAnswer{zone: c.Zone(), servers: servers}
	}
	last, at, listed := c.LastListedByName(name)
	if listed {
		klog.V(4).InfoS("Zone failing; looking for the name in its last list", "zone", c.Zone(), "listedAt", at, "name", name)
	}
	return nameAnswer{zone: c.Zone(), servers: last, err: err, listed: listed}
}

func idLookup(ctx context.Context, c *servercache.Cache, id types.ID) idAnswer {
	srv, err := c.ByID(ctx, id)
	if err != nil || srv != nil {
		return idAnswer{zone: c.Zone(), srv: srv, err: err}
	}
	repl, err := c.ByPreviousID(ctx, id)
	if len(repl) == 1 {
		klog.V(4).InfoS("Following @previous-id", "zone", c.Zone(), "oldID", id, "newID", repl[0].ID)
	}
	return idAnswer{zone: c.Zone(), replacements: repl, err: err}
}

// zoneWords names the cluster's zones for messages: "zone is1a" or "zones is1a, is1b".
func (i *Instances) zoneWords() string {
	names := i.zones.Names()
	if len(names) == 1 {
		return "zone " + names[0]
	}
	return "zones " + strings.Join(names, ", ")
}

// providerIDHint is the providerID a kubelet should be given.
func (i *Instances) providerIDHint() string {
	if names := i.zones.Names(); len(names) == 1 {
		return providerid.Prefix + names[0] + "/<server ID>"
	}
	return providerid.Prefix + "<zone>/<server ID>"
}

func (i *Instances) warn(node *v1.Node, reason string, err error) {
	klog.ErrorS(err, "Node does not match one server", "node", node.Name, "reason", reason)
	if i.recorder != nil {
		i.recorder.Event(node, v1.EventTypeWarning, reason, err.Error())
	}
}

// InstanceExists is false only when the server of a node with a providerID
// is really gone: absent from a list taken after the miss and answered 404
// by a direct read, in its zone (in every zone for the legacy providerID).
// Any API error, in any zone searched, is returned as an error, which the
// node lifecycle controller treats as "keep the node": an outage never
// deletes Nodes. A node without a providerID that no server's name matches
// was never matched by this controller: that is a configuration problem
// (hostname and server name differ), not a deleted server, so it is kept
// (true) and a Warning Event says how to fix it.
func (i *Instances) InstanceExists(ctx context.Context, node *v1.Node) (bool, error) {
	m, err := i.find(ctx, node)
	if err != nil {
		return false, err
	}
	if m != nil {
		return true, nil
	}
	if node.Spec.ProviderID == "" {
		i.warnUnmatched(node)
		return true, nil
	}
	// Confirm with the API before the node is deleted. Rare (only for gone
	// servers), so it does not weigh on a steady-state pass.
	zone, id, _ := providerid.Parse(node.Spec.ProviderID)
	caches := i.zones.All()
	if zone != "" {
		caches = []*servercache.Cache{i.zones.Zone(zone)}
	}
	for _, c := range caches {
		if _, err := i.client.Servers.Read(ctx, c.Zone(), id); err == nil {
			c.Invalidate()
			return true, nil
		} else if !sakuraapi.IsNotFound(err) {
			return false, fmt.Errorf("node %q: confirming server %s is gone from zone %s: %w", node.Name, id, c.Zone(), err)
		}
	}
	klog.InfoS("Server of node is gone", "node", node.Name, "serverID", id, "zones", i.zones.Names())
	return false, nil
}

// InstanceShutdown is true exactly when the server's instance status is down.
func (i *Instances) InstanceShutdown(ctx context.Context, node *v1.Node) (bool, error) {
	m, err := i.find(ctx, node)
	if err != nil {
		return false, err
	}
	if m == nil {
		if node.Spec.ProviderID == "" {
			// Never matched (see InstanceExists): nothing says it is down.
			i.warnUnmatched(node)
			return false, nil
		}
		return false, cloudprovider.InstanceNotFound
	}
	return m.srv.InstanceStatus == types.ServerInstanceStatuses.Down, nil
}

// InstanceMetadata returns the providerID, instance type, addresses, and the
// zone and region of the node's server.
func (i *Instances) InstanceMetadata(ctx context.Context, node *v1.Node) (*cloudprovider.InstanceMetadata, error) {
	m, err := i.find(ctx, node)
	if err != nil {
		return nil, err
	}
	if m == nil {
		if node.Spec.ProviderID == "" {
			// The cloud-node controller keeps the uninitialized taint and
			// retries; the Event tells the operator why.
			return nil, fmt.Errorf("%s: %w", i.warnUnmatched(node), cloudprovider.InstanceNotFound)
		}
		return nil, fmt.Errorf("node %q: no server with ID or @previous-id %s in %s: %w",
			node.Name, node.Spec.ProviderID, i.zoneWords(), cloudprovider.InstanceNotFound)
	}
	// spec.providerID is immutable once set; keep it (a re-created server is
	// still found through @previous-id).
	pid := node.Spec.ProviderID
	if pid == "" {
		pid = providerid.Format(m.zone, m.srv.ID)
	}
	return &cloudprovider.InstanceMetadata{
		ProviderID:    pid,
		InstanceType:  InstanceType(m.srv),
		NodeAddresses: NodeAddresses(m.srv, node.Name),
		Zone:          m.zone,
		Region:        Region(m.zone),
	}, nil
}

// unmatchedMessage says why a node without a providerID matches no server
// and how to fix it.
func (i *Instances) unmatchedMessage(node *v1.Node) string {
	return fmt.Sprintf("node %q has no spec.providerID and no server in %s is named %q; "+
		"the Node is kept but not initialized. Fix: start its kubelet with --provider-id=%s, "+
		"or rename its server to %q", node.Name, i.zoneWords(), node.Name, i.providerIDHint(), node.Name)
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
		klog.V(4).InfoS("Node matches no server; kept", "node", node.Name, "zones", i.zones.Names())
		return msg
	}
	klog.InfoS("Node matches no server; kept, not deleted", "node", node.Name, "zones", i.zones.Names(),
		"reason", ReasonNoMatchingServer, "fix", "kubelet --provider-id="+i.providerIDHint()+", or rename the server")
	if i.recorder != nil {
		i.recorder.Event(node, v1.EventTypeWarning, ReasonNoMatchingServer, msg)
	}
	return msg
}
