package decide

import (
	"testing"
	"time"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/annotations"
)

func TestCreateWait(t *testing.T) {
	now := time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC)
	grace := 2 * time.Minute
	for _, c := range []struct {
		name string
		at   time.Time
		has  bool
		want time.Duration
	}{
		{"no record: create", time.Time{}, false, 0},
		{"a create 20 s ago, unlisted (restart): wait", now.Add(-20 * time.Second), true, 100 * time.Second},
		{"a create past the grace: create again", now.Add(-3 * time.Minute), true, 0},
		{"exactly at the grace", now.Add(-grace), true, 0},
		{"answered 503 15 s ago: its short grace is over", now.Add(-15 * time.Second), true, 0},
	} {
		rec := annotations.CreateRecord{At: c.at}
		if c.name[:8] == "answered" {
			rec.GraceSec = 10
		}
		if got := CreateWait(rec, c.has, now, grace); got != c.want {
			t.Errorf("%s: wait %v, want %v", c.name, got, c.want)
		}
		if c.has && InFlight(rec, now, grace) != (c.want > 0) {
			t.Errorf("%s: InFlight %v disagrees with the wait", c.name, InFlight(rec, now, grace))
		}
	}
}

func TestReadOfID(t *testing.T) {
	for _, c := range []struct {
		r                  ReadResult
		owned, mine, young bool
		want               IDRead
	}{
		{ReadOK, true, false, false, IDFound},
		{ReadOK, true, true, true, IDFound},
		{ReadFailed, false, true, true, IDError},
		{ReadFailed, false, false, false, IDError},
		{ReadOK, false, false, false, IDIgnore},      // the recorded ID is someone else's now
		{ReadNotFound, false, false, true, IDIgnore}, // recorded, gone
		{ReadOK, false, true, true, IDRelease},       // our create, retagged by someone
		{ReadNotFound, false, true, false, IDRelease},
		// Seeds 3, 41, 52, 55: just made, not readable yet. "None" here
		// made a second ELB.
		{ReadNotFound, false, true, true, IDPending},
	} {
		if got := ReadOfID(c.r, c.owned, c.mine, c.young); got != c.want {
			t.Errorf("ReadOfID(%v, owned %v, mine %v, young %v) = %v, want %v", c.r, c.owned, c.mine, c.young, got, c.want)
		}
	}
}

func TestClearShownAddress(t *testing.T) {
	for _, c := range []struct {
		has, refused  bool
		shown, pinned string
		want          bool
	}{
		{false, true, "203.0.113.25", "203.0.113.37", true}, // seed 900043
		{true, true, "203.0.113.25", "203.0.113.37", false}, // the appliance still serves it
		{false, false, "203.0.113.25", "", false},           // another error: the address is held for the re-create
		{false, true, "", "203.0.113.37", false},            // nothing shown
		{false, true, "203.0.113.37", "203.0.113.37", false},
	} {
		if got := ClearShownAddress(c.has, c.refused, c.shown, c.pinned); got != c.want {
			t.Errorf("ClearShownAddress(%v, %v, %q, %q) = %v", c.has, c.refused, c.shown, c.pinned, got)
		}
	}
}
