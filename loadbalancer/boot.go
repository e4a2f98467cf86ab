package loadbalancer

import (
	"context"
	"sync"
	"time"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/types"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/apply"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/decide"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/desired"
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

	// listMu makes one listing at a time; the others reuse its answer.
	listMu   sync.Mutex
	listing  map[types.ID]*iaas.LoadBalancer
	listedAt time.Time
	// listedFor is the one Service a narrow listing (its own appliance
	// only) was made for; "" for a listing of the whole cluster.
	listedFor string
}

type bootWait struct {
	id      types.ID
	created bool // this process created it, so its boot time is a sample
	// looked is when the listing of the last look was made.
	looked time.Time
}

func newBootWatch() bootWatch {
	return bootWatch{waiting: map[string]bootWait{}}
}

// waitForBoot notes that uid's appliance id is booting.
func (l *LoadBalancer) waitForBoot(uid string, id types.ID, created bool) {
	b := &l.boots
	b.mu.Lock()
	defer b.mu.Unlock()
	w, ok := b.waiting[uid]
	if !ok || w.id != id {
		w = bootWait{id: id}
	}
	w.created = w.created || created
	b.waiting[uid] = w
}

// bootOver forgets uid's wait. An appliance this process created that came
// up (up true) gives the boot time the next looks aim at.
func (l *LoadBalancer) bootOver(uid string, lb *iaas.LoadBalancer, up bool) {
	b := &l.boots
	b.mu.Lock()
	defer b.mu.Unlock()
	w, ok := b.waiting[uid]
	if !ok {
		return
	}
	delete(b.waiting, uid)
	if up && w.created && lb != nil && lb.ID == w.id && !lb.CreatedAt.IsZero() {
		if took := time.Since(lb.CreatedAt); took > 0 && took < 15*time.Minute {
			b.typical = took
		}
	}
}

// nextBootLook is the RetryError delay for an appliance booting since age.
func (l *LoadBalancer) nextBootLook(age time.Duration) time.Duration {
	l.boots.mu.Lock()
	typical := l.boots.typical
	l.boots.mu.Unlock()
	return decide.NextBootLook(age, typical)
}

// bootingAppliance returns uid's appliance from a shared listing at most
// bootListingMaxAge old, when uid is waiting for a boot and the listing
// shows the appliance. Otherwise (no wait, not listed, the listing failed)
// it returns nil, and the caller looks the appliance up as usual.
func (l *LoadBalancer) bootingAppliance(ctx context.Context, exec *apply.Executor, uid string) *iaas.LoadBalancer {
	b := &l.boots
	b.mu.Lock()
	w, ok := b.waiting[uid]
	others := len(b.waiting) - 1
	b.mu.Unlock()
	if !ok {
		return nil
	}

	b.listMu.Lock()
	defer b.listMu.Unlock()
	fresh := time.Since(b.listedAt) < bootListingMaxAge && b.listedAt.After(w.looked)
	if !fresh || (b.listedFor != "" && b.listedFor != uid) {
		var lbs []*iaas.LoadBalancer
		var err error
		for_ := uid
		if others > 0 {
			// Others wait too: one listing of the cluster serves all.
			lbs, err = exec.FindCluster(ctx)
			for_ = ""
		} else {
			lbs, err = exec.FindOwned(ctx, uid)
		}
		if err != nil {
			b.listedAt = time.Time{}
			return nil
		}
		b.listing = make(map[types.ID]*iaas.LoadBalancer, len(lbs))
		for _, lb := range lbs {
			b.listing[lb.ID] = lb
		}
		b.listedAt, b.listedFor = time.Now(), for_
	}
	b.mu.Lock()
	if cur, ok := b.waiting[uid]; ok && cur.id == w.id {
		cur.looked = b.listedAt
		b.waiting[uid] = cur
	}
	b.mu.Unlock()
	lb, ok := b.listing[w.id]
	if !ok || !apply.Owned(lb, desired.ClusterTag(exec.ClusterID), desired.ServiceTag(uid)) {
		return nil
	}
	c := *lb // callers set fields on their copy
	return &c
}
