package instances

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/types"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/providerid"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/servercache"
)

// The functions in this file decide which server a Node is from what each
// zone's cache answered; they call nothing, so every case is a table test.

// match is a node's server and the zone it lives in.
type match struct {
	srv  *iaas.Server
	zone string
}

// hit is one server some zone reported for a lookup.
type hit struct {
	zone string
	srv  *iaas.Server
	// stale: taken from the last list of a zone whose API now fails.
	stale bool
}

// nameAnswer is what one zone said about a name.
type nameAnswer struct {
	zone string
	// servers carry the name: from a fresh list, or with err set from the
	// zone's last successful list (if listed).
	servers []*iaas.Server
	// err: the zone's API failed. listed: it was listed successfully before.
	err    error
	listed bool
}

// decideName picks the server named name from every zone's answer. Two
// servers of that name, in one zone or in two, are an error naming each
// zone and ID, never a guess; a second one in a failing zone's last list
// counts too. A single server from a zone that answered is the match even
// while another zone fails, as long as that zone was listed before and its
// last list had no server of the name: the Nodes of healthy zones are not
// held by another zone's outage. Otherwise a failing zone makes the answer
// an error (never "no such server").
func decideName(name string, answers []nameAnswer) (*match, error) {
	var hits []hit
	var failed []error
	for _, a := range answers {
		for _, s := range a.servers {
			hits = append(hits, hit{zone: a.zone, srv: s, stale: a.err != nil})
		}
		if a.err != nil {
			failed = append(failed, a.err)
			if !a.listed {
				return nil, fmt.Errorf("cannot rule out a server named %q in zone %s, never listed so far: %w", name, a.zone, a.err)
			}
		}
	}
	if len(hits) > 1 {
		return nil, fmt.Errorf("%w: %d servers are named %q (%s); rename all but one, or set spec.providerID to %s<zone>/<ID of this node's server>",
			errNodeMatch, len(hits), name, describeHits(hits), providerid.Prefix)
	}
	if len(hits) == 1 && !hits[0].stale {
		return &match{srv: hits[0].srv, zone: hits[0].zone}, nil
	}
	if len(failed) > 0 {
		return nil, errors.Join(failed...)
	}
	return nil, nil
}

// idAnswer is what one zone said about a server ID.
type idAnswer struct {
	zone string
	// srv has the ID (nil: absent from the zone's list).
	srv *iaas.Server
	// replacements carry @previous-id=<ID>; read only when srv is nil.
	replacements []*iaas.Server
	err          error
}

// decideID picks the server with id, else the one that replaced it
// (@previous-id), from the answers of the zones searched (the providerID's
// zone, or every zone for the legacy form). Any failing zone makes a miss
// an error: the server may be there, so a Node must not look deleted.
func decideID(id types.ID, answers []idAnswer) (*match, error) {
	var direct, repl []hit
	var failed []error
	for _, a := range answers {
		if a.err != nil {
			failed = append(failed, a.err)
			continue
		}
		if a.srv != nil {
			direct = append(direct, hit{zone: a.zone, srv: a.srv})
		}
		for _, s := range a.replacements {
			repl = append(repl, hit{zone: a.zone, srv: s})
		}
	}
	switch {
	case len(direct) == 1:
		return &match{srv: direct[0].srv, zone: direct[0].zone}, nil
	case len(direct) > 1:
		// IDs are unique across zones; an API saying otherwise is not guessed at.
		return nil, fmt.Errorf("%w: server %s is listed in several zones (%s)", errNodeMatch, id, describeHits(direct))
	case len(failed) > 0:
		return nil, errors.Join(failed...)
	}
	switch len(repl) {
	case 0:
		return nil, nil
	case 1:
		return &match{srv: repl[0].srv, zone: repl[0].zone}, nil
	}
	return nil, fmt.Errorf("%w: server %s is gone and %d servers carry %s=%s (%s)",
		errNodeMatch, id, len(repl), servercache.PreviousIDTag, id, describeHits(repl))
}

// describeHits names each server's ID and zone: "IDs 1, 2 in zone is1a"
// when they share a zone, else "ID 1 in zone is1a, ID 2 in zone is1b".
func describeHits(hits []hit) string {
	byZone := map[string][]string{}
	var zones []string
	for _, h := range hits {
		if _, ok := byZone[h.zone]; !ok {
			zones = append(zones, h.zone)
		}
		byZone[h.zone] = append(byZone[h.zone], h.srv.ID.String())
	}
	slices.Sort(zones)
	parts := make([]string, 0, len(zones))
	for _, z := range zones {
		ids := byZone[z]
		slices.Sort(ids)
		word := "ID"
		if len(ids) > 1 {
			word = "IDs"
		}
		parts = append(parts, fmt.Sprintf("%s %s in zone %s", word, strings.Join(ids, ", "), z))
	}
	return strings.Join(parts, ", ")
}
