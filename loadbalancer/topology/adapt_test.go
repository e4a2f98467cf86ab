package topology

import (
	"reflect"
	"testing"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/types"
)

func TestFromSwitch(t *testing.T) {
	for _, tc := range []struct {
		name string
		sw   *iaas.Switch
		want Switch
	}{
		{"bridged", &iaas.Switch{ID: 113100000011, BridgeID: 113100000001}, Switch{ID: "113100000011", Zone: "is1b", BridgeID: "113100000001"}},
		{"no bridge", &iaas.Switch{ID: 113100000012}, Switch{ID: "113100000012", Zone: "is1b"}},
	} {
		if got := FromSwitch("is1b", tc.sw); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestFromServer(t *testing.T) {
	sv := &iaas.Server{ID: 113100000021, Name: "b3", Zone: &iaas.ZoneInfo{Name: "is1b"},
		Interfaces: []*iaas.InterfaceView{
			{SwitchID: 113100000002, SwitchScope: types.Scopes.Shared, IPAddress: "203.0.113.23"},
			{SwitchID: 113100000011, SwitchScope: types.Scopes.User, UserIPAddress: "192.168.0.23"},
			nil,
			{}, // a NIC on no switch
			{SwitchID: 113100000012, SwitchScope: types.Scopes.User, UserIPAddress: "192.168.1.23"},
		}}
	want := Server{ID: "113100000021", Name: "b3", Zone: "is1b",
		NICs: []NIC{{"113100000011", "192.168.0.23"}, {"113100000012", "192.168.1.23"}}}
	if got := FromServer("is1a", sv); !reflect.DeepEqual(got, want) {
		t.Errorf("%+v\nwant %+v", got, want)
	}
	// Without a zone in the answer, the zone listed under is used.
	if got := FromServer("is1a", &iaas.Server{ID: 5, Name: "x"}); got.Zone != "is1a" || got.NICs != nil {
		t.Errorf("no zone in the answer: %+v", got)
	}
}
