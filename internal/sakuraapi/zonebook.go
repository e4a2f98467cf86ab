package sakuraapi

import (
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
	// Zones are every zone appliances may live in, Home first.
	Zones []string

	mu   sync.Mutex
	seen map[types.ID]string
}

// NewZoneBook is a book for appliances of zones (home first; home is added
// when missing).
func NewZoneBook(home string, zones []string) *ZoneBook {
	all := []string{home}
	for _, z := range zones {
		if z != "" && z != home && !containsString(all, z) {
			all = append(all, z)
		}
	}
	return &ZoneBook{Home: home, Zones: all, seen: map[types.ID]string{}}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
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
// every zone, home first.
func (b *ZoneBook) Candidates(id types.ID, home string) []string {
	if z, ok := b.Of(id); ok {
		return []string{z}
	}
	if b == nil || len(b.Zones) == 0 {
		return []string{home}
	}
	return append([]string(nil), b.Zones...)
}
