package providerid

import (
	"testing"

	"github.com/sacloud/iaas-api-go/types"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in       string
		zone     string
		id       types.ID
		wantsErr bool
	}{
		{in: "sakuracloud://is1a/113000000001", zone: "is1a", id: 113000000001},
		{in: "sakuracloud://113000000001", zone: "", id: 113000000001},
		{in: "aws:///us-east-1a/i-123", wantsErr: true},
		{in: "sakuracloud://", wantsErr: true},
		{in: "sakuracloud://is1a/", wantsErr: true},
		{in: "sakuracloud:///113", wantsErr: true},
		{in: "sakuracloud://is1a/abc", wantsErr: true},
		{in: "sakuracloud://is1a/1/2", wantsErr: true},
		{in: "sakuracloud://-5", wantsErr: true},
	}
	for _, tt := range tests {
		zone, id, err := Parse(tt.in)
		if tt.wantsErr {
			if err == nil {
				t.Errorf("Parse(%q) = %q, %v; want an error", tt.in, zone, id)
			}
			continue
		}
		if err != nil || zone != tt.zone || id != tt.id {
			t.Errorf("Parse(%q) = %q, %v, %v; want %q, %v", tt.in, zone, id, err, tt.zone, tt.id)
		}
	}
}

func TestFormatRoundTrip(t *testing.T) {
	got := Format("tk1b", 123456789012)
	if got != "sakuracloud://tk1b/123456789012" {
		t.Fatalf("Format = %q", got)
	}
	zone, id, err := Parse(got)
	if err != nil || zone != "tk1b" || id != 123456789012 {
		t.Fatalf("round trip gave %q %v %v", zone, id, err)
	}
}
