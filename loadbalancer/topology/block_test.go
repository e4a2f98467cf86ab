package topology

import (
	"net/netip"
	"strings"
	"testing"
)

func TestChooseBlock(t *testing.T) {
	abc := []Block{{ID: "a", Zone: "is1a"}, {ID: "b", Zone: "is1a"}, {ID: "c", Zone: "is1b"}}
	for _, tc := range []struct {
		name      string
		blocks    []Block
		free      map[string]int
		preferred string
		chosen    string
		spilled   bool
		reason    string // a part of the reason
	}{
		{"default has room", abc, map[string]int{"a": 3, "b": 5, "c": 5}, "", "a", false, "default block a (is1a)"},
		{"default full: the next one", abc, map[string]int{"a": 0, "b": 1, "c": 5}, "", "b", true,
			"default block a (is1a) has no free address; using block b (is1a), next in configured order"},
		{"default and next full: the one after", abc, map[string]int{"a": 0, "b": 0, "c": 2}, "", "c", true,
			"(nor b (is1a) full); using block c (is1b)"},
		{"configured order, not ID order", []Block{{ID: "z"}, {ID: "y"}, {ID: "x"}}, map[string]int{"z": 0, "y": 4, "x": 9}, "", "y", true, "using block y"},
		{"default not counted: the next one", abc, map[string]int{"b": 1}, "", "b", true, "free addresses of default block a (is1a) are not known"},
		{"a block not counted is passed over", abc, map[string]int{"a": 0, "c": 1}, "", "c", true, "(nor b (is1a) not counted)"},
		{"every block full", abc, map[string]int{"a": 0, "b": 0, "c": 0}, "", "", false,
			"default block a (is1a) has no free address, nor any other: b (is1a) full, c (is1b) full"},
		{"one block, full", abc[:1], map[string]int{"a": 0}, "", "", false, "default block a (is1a) has no free address"},
		{"named block has room", abc, map[string]int{"a": 5, "b": 1}, "b", "b", false, "block b (is1a), which the Service names"},
		{"named block full: kept to, no spill", abc, map[string]int{"a": 5, "b": 0, "c": 5}, "b", "", false, "which the Service names, has no free address"},
		{"named block not counted", abc, map[string]int{"a": 5}, "c", "", false, "free addresses of block c (is1b) are not known"},
		{"named block not configured", abc, map[string]int{"a": 5}, "d", "", false, "no configured block is d"},
		{"no blocks", nil, nil, "", "", false, "no address block is configured"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			chosen, spilled, reason := ChooseBlock(tc.blocks, tc.free, tc.preferred)
			if chosen != tc.chosen || spilled != tc.spilled {
				t.Errorf("chosen %q spilled %v, want %q %v (reason %q)", chosen, spilled, tc.chosen, tc.spilled, reason)
			}
			if !strings.Contains(reason, tc.reason) {
				t.Errorf("reason %q, want it to contain %q", reason, tc.reason)
			}
		})
	}
}

func TestHoldingBlock(t *testing.T) {
	blocks := []Block{{ID: "a", Network: netip.MustParsePrefix("203.0.113.16/28")}, {ID: "b", Network: netip.MustParsePrefix("203.0.113.32/28")}}
	for _, tc := range []struct {
		name          string
		pinned, shown string
		block         string
		want          Pinned
	}{
		{"nothing pinned or shown", "", "", "", NotPinned},
		{"pinned in the second block: that block, not the first", "203.0.113.40", "", "b", PinHeld},
		{"shown in the first block", "", "203.0.113.20", "a", PinHeld},
		{"the pin wins over what is shown", "203.0.113.40", "203.0.113.20", "b", PinHeld},
		{"pinned outside every block: refused", "198.51.100.7", "", "", PinOutside},
		{"shown outside every block: chosen by room", "", "198.51.100.7", "", ShownOutside},
		{"not an IPv4 address: chosen by room", "", "fd00::1", "", NotPinned},
	} {
		if block, got := HoldingBlock(blocks, tc.pinned, tc.shown); block != tc.block || got != tc.want {
			t.Errorf("%s: %q %v, want %q %v", tc.name, block, got, tc.block, tc.want)
		}
	}
}

// A block that filled up between its count and the create is placed again
// only when another block could take the appliance and no address of the
// Service ties it to this one.
func TestPlaceAgain(t *testing.T) {
	for _, tc := range []struct {
		blocks  int
		placing bool
		want    bool
	}{
		{blocks: 2, want: true},
		{blocks: 3, want: true},
		{blocks: 1, want: false},
		{blocks: 0, want: false},
		{blocks: 2, placing: true, want: false},
	} {
		if got := PlaceAgain(tc.blocks, tc.placing); got != tc.want {
			t.Errorf("PlaceAgain(%d, %v) = %v, want %v", tc.blocks, tc.placing, got, tc.want)
		}
	}
}
