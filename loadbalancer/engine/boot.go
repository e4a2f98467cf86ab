package engine

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
	listing  []*iaas.LoadBalancer // oldest first, as FindOwned answers
	listedAt time.Time
	// listedFor is the one Service a narrow listing (its own appliance
	// only) was made for; "" for a listing of the whole cluster.
	listedFor string
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

// bootingAppliances stands in for exec.FindOwned(uid) while uid waits for a
// boot: it answers from a shared listing of the cluster's appliances at
// most bootListingMaxAge old and made after uid's previous look, making
// that listing when there is none. ok is false when uid waits for no boot,
// its appliance has not been listed yet, the listing failed or does not
// show the appliance; the caller then finds as usual.
//
// The listing must show the awaited appliance to stand in: a shared
// listing may be older than another Service's inventory, which, seeing the
// appliance listed, released its reservation; answering "none" from it
// would let the Service create a second appliance (torture seeds 11, 13
// and 20 found this).
func (l *Engine) bootingAppliances(ctx context.Context, exec *apply.Executor, uid string) (owned []*iaas.LoadBalancer, ok bool) {
	b := &l.boots
	b.mu.Lock()
	w, waiting := b.waiting[uid]
	others := len(b.waiting) - 1
	b.mu.Unlock()
	if !waiting || !w.listed {
		return nil, false
	}

	b.listMu.Lock()
	defer b.listMu.Unlock()
	fresh := l.clock.Since(b.listedAt) < bootListingMaxAge && b.listedAt.After(w.looked)
	if !fresh || (b.listedFor != "" && b.listedFor != uid) {
		var lbs []*iaas.LoadBalancer
		var err error
		listedFor := uid
		if others > 0 {
			// Others wait too: one listing of the cluster serves all.
			lbs, err = exec.FindCluster(ctx)
			listedFor = ""
		} else {
			lbs, err = exec.FindOwned(ctx, uid)
		}
		if err != nil {
			b.listedAt = time.Time{}
			return nil, false
		}
		b.listing = lbs
		b.listedAt, b.listedFor = l.clock.Now(), listedFor
	}
	b.mu.Lock()
	if cur, ok := b.waiting[uid]; ok && cur.id == w.id {
		cur.looked = b.listedAt
		b.waiting[uid] = cur
	}
	b.mu.Unlock()
	shown := false
	for _, lb := range b.listing {
		if apply.Owned(lb, desired.ClusterTag(exec.ClusterID), desired.ServiceTag(uid)) {
			c := *lb // callers set fields on their copy
			owned = append(owned, &c)
			shown = shown || lb.ID == w.id
		}
	}
	return owned, shown
}
