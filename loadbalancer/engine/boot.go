package engine

import (
	"time"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/types"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/decide"
)

// Waiting for boots. While a Service's appliance boots, the service
// controller calls back at the delay of each RetryError (decide.NextBootLook).
// Those looks share one listing: a Service waiting for a boot reads its
// appliance from a listing at most bootListingMaxAge old and made after its
// own previous look (so no look sees what the last one saw), and a hundred
// Services booting at once cost about one list call a second, not a hundred.
// What is kept here is a hint only: without it (after a restart) a sync
// looks the appliance up by its tags as usual.

// bootListingMaxAge is how old a shared listing may be for a boot look.
const bootListingMaxAge = time.Second

type bootWait struct {
	id      types.ID
	created bool // this process created it, so its boot time is a sample
	// listed: a find has shown the appliance. Until then looks find as
	// usual (a just-created appliance is found through its reservation).
	listed bool
	// looked is when the listing of the last look was made.
	looked time.Time
	// since is when the wait began (pruning).
	since time.Time
}

// waitForBoot notes that uid's appliance id is booting: just created by
// this process (created), or seen booting by a find.
func (m *memory) waitForBoot(uid string, id types.ID, created bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	w, ok := m.boots[uid]
	if !ok || w.id != id {
		w = bootWait{id: id, since: m.clock.Now()}
	}
	w.created = w.created || created
	w.listed = w.listed || !created
	m.boots[uid] = w
}

// bootOver forgets uid's wait. An appliance this process created that came
// up (up true) gives the boot time the next looks aim at.
func (m *memory) bootOver(uid string, lb *iaas.LoadBalancer, up bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	w, ok := m.boots[uid]
	if !ok {
		return
	}
	delete(m.boots, uid)
	if up && w.created && lb != nil && lb.ID == w.id && !lb.CreatedAt.IsZero() {
		if took := m.clock.Since(lb.CreatedAt); took > 0 && took < 15*time.Minute {
			m.typicalBoot = took
		}
	}
}

// bootWaitOf is uid's boot wait, if any.
func (m *memory) bootWaitOf(uid string) (bootWait, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	w, ok := m.boots[uid]
	return w, ok
}

// looked notes that uid's look used a listing made at at: while it waits
// for a boot, its next look needs a newer one.
func (m *memory) looked(uid string, at time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if w, ok := m.boots[uid]; ok && at.After(w.looked) {
		w.looked = at
		m.boots[uid] = w
	}
}

// nextBootLook is the RetryError delay for an appliance booting since age.
func (l *Engine) nextBootLook(age time.Duration) time.Duration {
	l.mem.mu.Lock()
	typical := l.mem.typicalBoot
	l.mem.mu.Unlock()
	return decide.NextBootLook(age, typical)
}
