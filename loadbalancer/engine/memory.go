package engine

import (
	"strings"
	"sync"
	"time"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/types"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/decide"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/ipam"
	"k8s.io/utils/clock"
)

// memory is what this process remembers between reconciles: one type, one
// lock, one pruning rule (prune). All of it may be lost with a restart or a
// leader change without duplicating, leaking or mis-addressing an
// appliance, because what that needs lives in the cloud (tags, the
// description's pending-Config mark) or on the Service (recorded ID, create
// record):
//   - deleting: the Service's finalizer holds deletion until it is done;
//   - pendingConfig, reapplied: the description mark and the repair pass's
//     comparison of saved and running settings find a lost Config;
//   - bootSent: a boot forgotten is sent once more (SAKURA ignores a boot
//     of an appliance that boots);
//   - notices: a standing condition is reported once more;
//   - boots: a wait forgotten makes the next look find the appliance as
//     usual, and the boot time is learned again;
//   - reservations: after a restart the create records on the Services
//     hold the addresses of creates not listed yet.
type memory struct {
	clock clock.PassiveClock

	mu            sync.Mutex
	deleting      map[string]bool     // Service UIDs whose deletion began
	pendingConfig map[types.ID]bool   // appliances with saved, unapplied settings
	reapplied     map[types.ID]string // settings hash last re-applied on suspicion
	bootSent      map[types.ID]time.Time
	notices       map[string]noticeEntry
	// boots: Service UID -> the boot it waits for; typicalBoot is the last
	// boot seen from create to up (0: none yet), where the looks go dense.
	boots       map[string]bootWait
	typicalBoot time.Duration
	// reservations: the addresses of creates and writes in flight, by
	// owner (a Service UID, "share/<key>", "vip/<uid>"), until a listing
	// shows them; ipam.Reservations.Merge decides which still count.
	reservations ipam.Reservations
	// conditions: Service UID -> the condition last written (a key of its
	// fields), so an unchanged one is not written again from an older copy.
	conditions map[string]string
	// health: Service UID -> what the last health poll found for its
	// entries, which the condition shows.
	health map[string]realServerHealth
}

func newMemory(c clock.PassiveClock) *memory {
	return &memory{
		clock:         c,
		deleting:      map[string]bool{},
		pendingConfig: map[types.ID]bool{},
		reapplied:     map[types.ID]string{},
		bootSent:      map[types.ID]time.Time{},
		notices:       map[string]noticeEntry{},
		boots:         map[string]bootWait{},
		reservations:  ipam.Reservations{},
		conditions:    map[string]string{},
		health:        map[string]realServerHealth{},
	}
}

func (m *memory) setDeleting(uid string, on bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if on {
		m.deleting[uid] = true
	} else {
		delete(m.deleting, uid)
	}
}

func (m *memory) isDeleting(uid string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.deleting[uid]
}

func (m *memory) setPending(id types.ID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pendingConfig[id] = true
}

// takePending reports and clears a pending Config of appliance id.
func (m *memory) takePending(id types.ID) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.pendingConfig[id]
	delete(m.pendingConfig, id)
	return p
}

// suspectUnapplied marks lb for Config unless its saved settings (by hash)
// were already applied after such a suspicion.
func (m *memory) suspectUnapplied(lb *iaas.LoadBalancer) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.reapplied[lb.ID] != lb.SettingsHash {
		m.pendingConfig[lb.ID] = true
		m.reapplied[lb.ID] = lb.SettingsHash
	}
}

// markBootSent remembers that this process booted appliance id: while it
// still reads down within decide.BootGrace, it is booting, not stopped.
func (m *memory) markBootSent(id types.ID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.bootSent[id] = m.clock.Now()
}

func (m *memory) forgetBoot(id types.ID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.bootSent, id)
}

func (m *memory) bootSentAt(id types.ID) time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.bootSent[id]
}

type noticeEntry struct {
	subject string
	at      time.Time
}

// firstNotice records that condition id (a Service UID, then a key) about
// subject is reported now, and reports whether it should be: not when the
// same was reported within RepeatNoticeAfter.
func (m *memory) firstNotice(id, subject string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock.Now()
	last, seen := m.notices[id]
	if seen && last.subject == subject && now.Sub(last.at) < RepeatNoticeAfter {
		return false
	}
	m.notices[id] = noticeEntry{subject: subject, at: now}
	return true
}

// forgetNotices drops what was reported for a Service that is gone.
func (m *memory) forgetNotices(uid string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.conditions, uid)
	for id := range m.notices {
		if strings.HasPrefix(id, uid+"/") {
			delete(m.notices, id)
		}
	}
}

// prune is the one pruning rule: what is remembered per appliance goes when
// a complete listing of the cluster (keep) no longer shows the appliance,
// and notices go once old enough to be repeated anyway. Without it the maps
// grow with every appliance and Service the process has ever seen. A boot
// sent within decide.BootGrace stays (its appliance may be missing from the
// listing only for a moment).
func (m *memory) prune(keep map[types.ID]bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock.Now()
	for id := range m.pendingConfig {
		if !keep[id] {
			delete(m.pendingConfig, id)
		}
	}
	for id := range m.reapplied {
		if !keep[id] {
			delete(m.reapplied, id)
		}
	}
	for id, at := range m.bootSent {
		if !keep[id] && now.Sub(at) > decide.BootGrace {
			delete(m.bootSent, id)
		}
	}
	for uid, w := range m.boots {
		if !keep[w.id] && now.Sub(w.since) > decide.BootGrace {
			delete(m.boots, uid)
		}
	}
	for owner, r := range m.reservations {
		if now.Sub(r.At) > CreateVisibilityGrace {
			delete(m.reservations, owner) // Merge would drop it too
		}
	}
	for k, n := range m.notices {
		if now.Sub(n.at) > RepeatNoticeAfter {
			delete(m.notices, k)
		}
	}
}

// reserve holds r's addresses for owner from now until a listing shows them.
func (m *memory) reserve(owner string, r ipam.Reservation) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r.At = m.clock.Now()
	m.reservations[owner] = r
}

// reservation is owner's outstanding reservation.
func (m *memory) reservation(owner string) (ipam.Reservation, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.reservations[owner]
	return r, ok
}

// release forgets owner's reservation (its appliance is listed, or gone).
func (m *memory) release(owner string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.reservations, owner)
}

// reservationsOn is a copy of the reservations on switchID.
func (m *memory) reservationsOn(switchID types.ID) ipam.Reservations {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.reservations.On(switchID)
}

// mergeReservations adds the reservations on switchID that u does not show
// yet to u, and forgets those it shows or that are older than maxAge.
func (m *memory) mergeReservations(u *ipam.Usage, switchID types.ID, maxAge time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reservations.Merge(u, switchID, m.clock.Now(), maxAge)
}

// wroteCondition records key as uid's condition and reports whether it
// differs from the one recorded before.
func (m *memory) wroteCondition(uid, key string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.conditions[uid] == key {
		return false
	}
	m.conditions[uid] = key
	return true
}

// forgetCondition drops uid's record (its write failed).
func (m *memory) forgetCondition(uid string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.conditions, uid)
}

// setHealth records what the health poll found for uid and returns what
// was recorded before.
func (m *memory) setHealth(uid string, h realServerHealth) (before realServerHealth) {
	m.mu.Lock()
	defer m.mu.Unlock()
	before = m.health[uid]
	if h.Total == 0 {
		delete(m.health, uid)
	} else {
		m.health[uid] = h
	}
	return before
}

// healthOf is what the last health poll found for uid.
func (m *memory) healthOf(uid string) realServerHealth {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.health[uid]
}
