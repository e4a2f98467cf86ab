package zoneview

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/types"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/sakuraapi"
	clocktesting "k8s.io/utils/clock/testing"
)

// zonedAPI answers each zone with its own load balancers, or fails the
// zones in down.
type zonedAPI struct {
	lbs  map[string][]*iaas.LoadBalancer
	down map[string]bool
}

func (a *zonedAPI) Find(_ context.Context, zone string, cond *iaas.FindCondition) (*sakuraapi.ApplianceFindResult, error) {
	if a.down[zone] {
		return nil, errors.New("503 Service Unavailable")
	}
	all := a.lbs[zone]
	r := &sakuraapi.ApplianceFindResult{Total: len(all), From: cond.From}
	for i := cond.From; i < min(cond.From+cond.Count, len(all)); i++ {
		r.LoadBalancers = append(r.LoadBalancers, all[i])
	}
	r.Count = len(r.LoadBalancers)
	return r, nil
}

func tagged(id types.ID, tags ...string) *iaas.LoadBalancer {
	return &iaas.LoadBalancer{ID: id, Tags: tags}
}

// TestBookListerCoversEveryZone: one listing holds the appliances of every
// zone, and the book learns where each lives.
func TestBookListerCoversEveryZone(t *testing.T) {
	api := &zonedAPI{lbs: map[string][]*iaas.LoadBalancer{
		"is1a": {tagged(11, "svc")},
		"is1b": {tagged(21, "svc"), tagged(22, "other")},
	}}
	book := sakuraapi.NewZoneBook("is1a", []string{"is1b"}, nil)
	l := NewBookLister(api, book, clocktesting.NewFakePassiveClock(t0))
	snap, err := l.Get(context.Background(), t0)
	if err != nil {
		t.Fatal(err)
	}
	if got := snap.Owned("svc"); len(got) != 2 || got[0].ID != 11 || got[1].ID != 21 {
		t.Fatalf("owned by svc: %v, want 11 and 21", got)
	}
	if err := snap.ProvesAbsence(); err != nil {
		t.Fatalf("a listing every zone answered: %v", err)
	}
	for id, want := range map[types.ID]string{11: "is1a", 21: "is1b", 22: "is1b"} {
		if z, ok := book.Of(id); !ok || z != want {
			t.Errorf("book says %s lives in %q (known %v), want %s", id, z, ok, want)
		}
	}
}

// TestListingMissingAZoneProvesNoAbsence: with is1b's API down, the
// listing still shows is1a's appliances, but "none of the Service's" is
// no answer (its appliance may be in is1b), and an inventory of an is1b
// switch is refused; is1a's inventory is not held up. With every zone
// down the listing fails.
func TestListingMissingAZoneProvesNoAbsence(t *testing.T) {
	api := &zonedAPI{lbs: map[string][]*iaas.LoadBalancer{"is1a": {tagged(11, "svc")}, "is1b": {tagged(21, "lost")}},
		down: map[string]bool{"is1b": true}}
	book := sakuraapi.NewZoneBook("is1a", []string{"is1b"}, nil)
	clk := clocktesting.NewFakePassiveClock(t0)
	l := NewBookLister(api, book, clk)
	snap, err := l.Get(context.Background(), t0)
	if err != nil {
		t.Fatalf("one zone answered, yet the listing failed: %v", err)
	}
	if got := snap.Owned("svc"); len(got) != 1 {
		t.Errorf("is1a's appliance missing from a listing is1a answered: %v", got)
	}
	err = snap.ProvesAbsence()
	if err == nil || !strings.Contains(err.Error(), "zone is1b") {
		t.Errorf("absence proven by a listing without is1b: %v", err)
	}
	if err := snap.Listed("is1b"); err == nil {
		t.Error("is1b reported listed")
	}
	if err := snap.Listed("is1a"); err != nil {
		t.Errorf("is1a reported unlisted: %v", err)
	}

	api.down["is1a"] = true
	clk.SetTime(t0.Add(time.Second))
	if _, err := l.Get(context.Background(), t0.Add(time.Second)); err == nil {
		t.Error("a listing no zone answered succeeded")
	}
}
