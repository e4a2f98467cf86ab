package engine

import (
	"sync"
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

type bootWatch struct {
	mu sync.Mutex
	// waiting: Service UID -> the appliance it waits for.
	waiting map[string]bootWait
	// typical is the last boot seen from create to up (0: none yet).
	typical time.Duration
}

type bootWait struct {
	id      types.ID
	created bool // this process created it, so its boot time is a sample
	// listed: a find has shown the appliance. Until then looks find as
	// usual (a just-created appliance is found through its reservation).
	listed bool
	// looked is when the listing of the last look was made.
	looked time.Time
}

func newBootWatch() bootWatch {
	return bootWatch{waiting: map[string]bootWait{}}
}

// waitForBoot notes that uid's appliance id is booting: just created by
// this process (created), or seen booting by a find.
func (l *Engine) waitForBoot(uid string, id types.ID, created bool) {
	b := &l.boots
	b.mu.Lock()
	defer b.mu.Unlock()
	w, ok := b.waiting[uid]
	if !ok || w.id != id {
		w = bootWait{id: id}
	}
	w.created = w.created || created
	w.listed = w.listed || !created
	b.waiting[uid] = w
}

// bootOver forgets uid's wait. An appliance this process created that came
// up (up true) gives the boot time the next looks aim at.
func (l *Engine) bootOver(uid string, lb *iaas.LoadBalancer, up bool) {
	b := &l.boots
	b.mu.Lock()
	defer b.mu.Unlock()
	w, ok := b.waiting[uid]
	if !ok {
		return
	}
	delete(b.waiting, uid)
	if up && w.created && lb != nil && lb.ID == w.id && !lb.CreatedAt.IsZero() {
		if took := l.clock.Since(lb.CreatedAt); took > 0 && took < 15*time.Minute {
			b.typical = took
		}
	}
}

// nextBootLook is the RetryError delay for an appliance booting since age.
func (l *Engine) nextBootLook(age time.Duration) time.Duration {
	l.boots.mu.Lock()
	typical := l.boots.typical
	l.boots.mu.Unlock()
	return decide.NextBootLook(age, typical)
}

// looked notes that uid's look used a listing made at at: while it waits
// for a boot, its next look needs a newer one.
func (l *Engine) looked(uid string, at time.Time) {
	b := &l.boots
	b.mu.Lock()
	defer b.mu.Unlock()
	if w, ok := b.waiting[uid]; ok && at.After(w.looked) {
		w.looked = at
		b.waiting[uid] = w
	}
}
