package sakuraapi

import (
	"slices"
	"sync"

	"github.com/sacloud/iaas-api-go/types"
)

// ZoneBook says in which zone each appliance lives. Appliance calls take a
// zone, and an appliance answers only in its own (any other zone says 404),
// so every call on an appliance made in another zone than the client's
// must name that zone.
//
// The book is a cache of a fact that never changes (an appliance cannot
// move between zones) and is learnt again after a restart: every listing
// notes the zone it listed, a create notes the zone it was sent to, and an
// appliance the book does not know is looked for in each zone in turn
// (Candidates). Losing it loses nothing but calls.
type ZoneBook struct {
	// Home is the zone of the client (cloud-config zone): the answer for
	// an appliance the book does not know, and the first zone tried.
	Home string
	// Zones are the zones appliances are made in and listed in, Home first.
	Zones []string
	// Known are every zone an appliance of the cluster may be in: Zones,
	// and the cluster's other zones, where an appliance made before a zone
	// was taken out of Zones may still live. A read by ID tries them all.
	Known []string

	mu   sync.Mutex
	seen map[types.ID]string
}

// NewZoneBook is a book for appliances made and listed in zones, which
// may also be found by ID in others (home first in both; repeats dropped).
func NewZoneBook(home string, zones, others []string) *ZoneBook {
	listed := withHome(home, zones)
	return &ZoneBook{Home: home, Zones: listed, Known: withHome(home, append(slices.Clone(listed), others...)), seen: map[types.ID]string{}}
}

func withHome(home string, zones []string) []string {
	all := []string{home}
	for _, z := range zones {
		if z != "" && !slices.Contains(all, z) {
			all = append(all, z)
		}
	}
	return all
}

// Note records that appliance id lives in zone.
func (b *ZoneBook) Note(id types.ID, zone string) {
	if b == nil || id.IsEmpty() || zone == "" {
		return
	}
	b.mu.Lock()
	b.seen[id] = zone
	b.mu.Unlock()
}

// Of is the zone id is known to live in.
func (b *ZoneBook) Of(id types.ID) (string, bool) {
	if b == nil {
		return "", false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	z, ok := b.seen[id]
	return z, ok
}

// ZoneOr is the zone of id, or Home when the book does not know it.
func (b *ZoneBook) ZoneOr(id types.ID, home string) string {
	if z, ok := b.Of(id); ok {
		return z
	}
	if b != nil && b.Home != "" {
		return b.Home
	}
	return home
}

// Candidates are the zones to look for id in: its known zone alone, else
// every known zone, home first.
func (b *ZoneBook) Candidates(id types.ID, home string) []string {
	if z, ok := b.Of(id); ok {
		return []string{z}
	}
	if b == nil || len(b.Known) == 0 {
		return []string{home}
	}
	return slices.Clone(b.Known)
}
