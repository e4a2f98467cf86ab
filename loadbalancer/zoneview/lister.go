package zoneview

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/search"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/sakuraapi"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/ipam"
	"k8s.io/utils/clock"
)

// Lister lists the appliances of one or more zones for whoever asks,
// sharing listings: at most one is under way at a time, and every caller
// that can use it waits for it rather than starting another.
type Lister struct {
	api   sakuraapi.ApplianceAPI
	zones []string
	// book, when set, learns the zone of every appliance listed.
	book  *sakuraapi.ZoneBook
	clock clock.PassiveClock

	mu       sync.Mutex
	last     *Snapshot // the newest listing that succeeded
	inFlight *listing  // the listing under way, if any
}

// listing is one listing under way; done is closed when it ends.
type listing struct {
	started time.Time
	done    chan struct{}
	snap    *Snapshot
	err     error
}

// NewLister lists zone's appliances through api, timing listings on clk.
func NewLister(api sakuraapi.ApplianceAPI, zone string, clk clock.PassiveClock) *Lister {
	return &Lister{api: api, zones: []string{zone}, clock: clk}
}

// NewBookLister lists the appliances of every zone of book through api,
// noting in book where each lives. A listing some zones answered is a
// snapshot that says which did not (Snapshot.ProvesAbsence); one that no
// zone answered fails.
func NewBookLister(api sakuraapi.ApplianceAPI, book *sakuraapi.ZoneBook, clk clock.PassiveClock) *Lister {
	return &Lister{api: api, zones: book.Zones, book: book, clock: clk}
}

// Get returns a listing that started at or after notBefore: the last one
// if it is recent enough, the one under way if it started late enough,
// else a new one, made once the one under way (if any) has ended. A
// notBefore in the future asks for a listing started from now on.
//
// A failed listing is reported to the callers that waited for it and
// then forgotten: the next Get lists again.
//
// The listing runs apart from the caller's context (its values are kept):
// others may be waiting for it, and a caller that gives up only stops
// waiting. The client bounds each attempt and its retries.
func (l *Lister) Get(ctx context.Context, notBefore time.Time) (*Snapshot, error) {
	if now := l.clock.Now(); notBefore.After(now) {
		notBefore = now
	}
	for {
		l.mu.Lock()
		if l.last != nil && !l.last.At.Before(notBefore) {
			snap := l.last
			l.mu.Unlock()
			return snap, nil
		}
		f := l.inFlight
		if f == nil {
			f = &listing{started: l.clock.Now(), done: make(chan struct{})}
			l.inFlight = f
			go l.list(context.WithoutCancel(ctx), f)
		}
		l.mu.Unlock()

		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-f.done:
		}
		if f.started.Before(notBefore) {
			continue // too old for this caller; the next one will do
		}
		return f.snap, f.err
	}
}

// Last returns the newest listing that succeeded, or nil.
func (l *Lister) Last() *Snapshot {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last
}

// byID pages the listing in ID order, so that pages do not shift but for
// appliances deleted while they are read.
var byID = search.SortKeys{search.SortKeyAsc("ID")}

func (l *Lister) list(ctx context.Context, f *listing) {
	var all sakuraapi.Appliances
	unlisted := map[string]error{}
	for _, zone := range l.zones {
		var got sakuraapi.Appliances
		err := ipam.FindPages(ctx, func(ctx context.Context, cond *iaas.FindCondition) (int, int, error) {
			r, err := l.api.Find(ctx, zone, cond)
			if err != nil {
				return 0, 0, err
			}
			got.Add(&r.Appliances)
			return r.Count, r.Total, nil
		}, &iaas.FindCondition{Sort: byID})
		if err != nil {
			unlisted[zone] = err
			continue
		}
		for _, lb := range got.LoadBalancers {
			if lb != nil {
				l.book.Note(lb.ID, zone)
			}
		}
		all.Add(&got)
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	if len(unlisted) == len(l.zones) {
		var errs []error
		for _, zone := range l.zones {
			errs = append(errs, fmt.Errorf("listing the appliances of zone %s: %w", zone, unlisted[zone]))
		}
		f.err = errors.Join(errs...)
	} else {
		f.snap = NewSnapshot(f.started, all)
		if len(unlisted) > 0 {
			f.snap = f.snap.WithUnlisted(unlisted)
		}
		if l.last == nil || l.last.At.Before(f.started) {
			l.last = f.snap
		}
	}
	l.inFlight = nil
	close(f.done)
}
