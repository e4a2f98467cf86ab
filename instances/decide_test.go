package instances

import (
	"errors"
	"strings"
	"testing"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/types"
)

func srv(id int64, name string) *iaas.Server { return &iaas.Server{ID: types.ID(id), Name: name} }

var errOutage = errors.New("listing servers of zone is1b: 503")

func TestDecideName(t *testing.T) {
	for _, tc := range []struct {
		name    string
		answers []nameAnswer
		// wantZone/wantID: the match; wantErr: a substring of the error;
		// neither: no server (nil, nil).
		wantZone string
		wantID   int64
		wantErr  string
		nodeErr  bool // the error is about the node (errNodeMatch), not the API
	}{
		{name: "one zone, one server", answers: []nameAnswer{{zone: "is1a", servers: []*iaas.Server{srv(1, "w")}}},
			wantZone: "is1a", wantID: 1},
		{name: "found in the second zone", answers: []nameAnswer{{zone: "is1a"}, {zone: "is1b", servers: []*iaas.Server{srv(2, "w")}}},
			wantZone: "is1b", wantID: 2},
		{name: "nowhere", answers: []nameAnswer{{zone: "is1a"}, {zone: "is1b"}}},
		{name: "same name in two zones", answers: []nameAnswer{{zone: "is1b", servers: []*iaas.Server{srv(2, "w")}}, {zone: "is1a", servers: []*iaas.Server{srv(1, "w")}}},
			wantErr: `2 servers are named "w" (ID 1 in zone is1a, ID 2 in zone is1b)`, nodeErr: true},
		{name: "twice in one zone", answers: []nameAnswer{{zone: "is1a", servers: []*iaas.Server{srv(4, "w"), srv(3, "w")}}, {zone: "is1b"}},
			wantErr: `2 servers are named "w" (IDs 3, 4 in zone is1a)`, nodeErr: true},
		{name: "other zone failing, its last list has no such name",
			answers:  []nameAnswer{{zone: "is1a", servers: []*iaas.Server{srv(1, "w")}}, {zone: "is1b", err: errOutage, listed: true}},
			wantZone: "is1a", wantID: 1},
		{name: "other zone failing, its last list has the name too",
			answers: []nameAnswer{{zone: "is1a", servers: []*iaas.Server{srv(1, "w")}}, {zone: "is1b", servers: []*iaas.Server{srv(2, "w")}, err: errOutage, listed: true}},
			wantErr: "ID 1 in zone is1a, ID 2 in zone is1b", nodeErr: true},
		{name: "other zone failing and never listed",
			answers: []nameAnswer{{zone: "is1a", servers: []*iaas.Server{srv(1, "w")}}, {zone: "is1b", err: errOutage}},
			wantErr: `cannot rule out a server named "w" in zone is1b, never listed so far: listing servers of zone is1b: 503`},
		{name: "only in the failing zone's last list", answers: []nameAnswer{{zone: "is1a"}, {zone: "is1b", servers: []*iaas.Server{srv(2, "w")}, err: errOutage, listed: true}},
			wantErr: "listing servers of zone is1b: 503"},
		{name: "nowhere, one zone failing", answers: []nameAnswer{{zone: "is1a"}, {zone: "is1b", err: errOutage, listed: true}},
			wantErr: "listing servers of zone is1b: 503"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := decideName("w", tc.answers)
			check(t, m, err, tc.wantZone, tc.wantID, tc.wantErr, tc.nodeErr)
		})
	}
}

func TestDecideID(t *testing.T) {
	for _, tc := range []struct {
		name     string
		answers  []idAnswer
		wantZone string
		wantID   int64
		wantErr  string
		nodeErr  bool
	}{
		{name: "in its zone", answers: []idAnswer{{zone: "is1a", srv: srv(7, "a")}}, wantZone: "is1a", wantID: 7},
		{name: "legacy: in the second zone", answers: []idAnswer{{zone: "is1a"}, {zone: "is1b", srv: srv(7, "a")}}, wantZone: "is1b", wantID: 7},
		{name: "legacy: found although another zone fails", answers: []idAnswer{{zone: "is1a", srv: srv(7, "a")}, {zone: "is1b", err: errOutage}},
			wantZone: "is1a", wantID: 7},
		{name: "legacy: missing and another zone fails", answers: []idAnswer{{zone: "is1a"}, {zone: "is1b", err: errOutage}},
			wantErr: "listing servers of zone is1b: 503"},
		{name: "gone everywhere", answers: []idAnswer{{zone: "is1a"}, {zone: "is1b"}}},
		{name: "replaced in its zone", answers: []idAnswer{{zone: "is1b", replacements: []*iaas.Server{srv(8, "a")}}}, wantZone: "is1b", wantID: 8},
		{name: "replacement found while another zone fails", answers: []idAnswer{{zone: "is1a", replacements: []*iaas.Server{srv(8, "a")}}, {zone: "is1b", err: errOutage}},
			wantErr: "listing servers of zone is1b: 503"},
		{name: "two replacements", answers: []idAnswer{{zone: "is1a", replacements: []*iaas.Server{srv(8, "a")}}, {zone: "is1b", replacements: []*iaas.Server{srv(9, "a")}}},
			wantErr: "server 7 is gone and 2 servers carry @previous-id=7 (ID 8 in zone is1a, ID 9 in zone is1b)", nodeErr: true},
		{name: "one ID in two zones", answers: []idAnswer{{zone: "is1a", srv: srv(7, "a")}, {zone: "is1b", srv: srv(7, "a")}},
			wantErr: "server 7 is listed in several zones (ID 7 in zone is1a, ID 7 in zone is1b)", nodeErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := decideID(7, tc.answers)
			check(t, m, err, tc.wantZone, tc.wantID, tc.wantErr, tc.nodeErr)
		})
	}
}

func check(t *testing.T, m *match, err error, zone string, id int64, wantErr string, nodeErr bool) {
	t.Helper()
	if wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("err = %v, want %q", err, wantErr)
		}
		if errors.Is(err, errNodeMatch) != nodeErr {
			t.Errorf("errNodeMatch = %v, want %v", !nodeErr, nodeErr)
		}
		if m != nil {
			t.Errorf("a match with an error: %+v", m)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if zone == "" {
		if m != nil {
			t.Fatalf("match %s in %s, want none", m.srv.ID, m.zone)
		}
		return
	}
	if m == nil || m.zone != zone || int64(m.srv.ID) != id {
		t.Fatalf("match %+v, want %d in %s", m, id, zone)
	}
}
