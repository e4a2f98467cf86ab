package topology

import (
	"fmt"
	"net/netip"
	"strings"
)

// Block is one configured address block (a router+switch, or a range on a
// switch), in the order the configuration lists them.
type Block struct {
	ID   string
	Zone string
	// Network is the block's network, when known (HoldingBlock).
	Network netip.Prefix
}

// Pinned is where an address a Service pins or already shows puts it, among
// blocks in configured order.
type Pinned int

const (
	// NotPinned: the Service neither pins nor shows an address (or it is
	// not an IPv4 address); the block is chosen by room (ChooseBlock).
	NotPinned Pinned = iota
	// PinHeld: a block holds the address; the Service keeps to it,
	// whatever its place in the list: its address would change elsewhere.
	PinHeld
	// PinOutside: the Service pins an address that no block holds: refused.
	PinOutside
	// ShownOutside: the address the Service shows is in no block (the list
	// changed since): choose by room, as for a new Service.
	ShownOutside
)

// HoldingBlock says where pinned (an address the Service pins), or else
// shown (the address it shows), puts the Service among blocks: the first
// block whose Network holds it, and which case applies.
func HoldingBlock(blocks []Block, pinned, shown string) (string, Pinned) {
	addr, outside := pinned, PinOutside
	if addr == "" {
		addr, outside = shown, ShownOutside
	}
	a, err := netip.ParseAddr(addr)
	if err != nil || !a.Is4() {
		return "", NotPinned
	}
	for _, b := range blocks {
		if b.Network.IsValid() && b.Network.Contains(a) {
			return b.ID, PinHeld
		}
	}
	return "", outside
}

// ChooseBlock picks the block a new address comes from. free holds each
// block's free addresses; a block missing from it was not counted (its
// zone's API failed, say) and is never chosen, since it may be full.
//
// preferred is the block a Service named; empty means the default, the
// first block. Only the default spills: when it has no free address, the
// next block in configured order with one is chosen and spilled is true.
// A block the Service named is kept to even when full (chosen is empty),
// because putting the address elsewhere would ignore what the Service
// asked for. reason says what happened, for an Event or an error.
func ChooseBlock(blocks []Block, free map[string]int, preferred string) (chosen string, spilled bool, reason string) {
	if len(blocks) == 0 {
		return "", false, "no address block is configured"
	}
	if preferred != "" {
		for _, b := range blocks {
			if b.ID != preferred {
				continue
			}
			if n, ok := free[b.ID]; !ok {
				return "", false, fmt.Sprintf("free addresses of block %s are not known", describe(b))
			} else if n <= 0 {
				return "", false, fmt.Sprintf("block %s, which the Service names, has no free address", describe(b))
			}
			return b.ID, false, fmt.Sprintf("block %s, which the Service names", describe(b))
		}
		return "", false, fmt.Sprintf("no configured block is %s", preferred)
	}
	def := blocks[0]
	if n := free[def.ID]; n > 0 {
		return def.ID, false, fmt.Sprintf("default block %s", describe(def))
	}
	why := fmt.Sprintf("default block %s has no free address", describe(def))
	if _, ok := free[def.ID]; !ok {
		why = fmt.Sprintf("free addresses of default block %s are not known", describe(def))
	}
	var passed []string
	for _, b := range blocks[1:] {
		n, counted := free[b.ID]
		if n > 0 {
			if len(passed) > 0 {
				why += fmt.Sprintf(" (nor %s)", strings.Join(passed, ", "))
			}
			return b.ID, true, fmt.Sprintf("%s; using block %s, next in configured order", why, describe(b))
		}
		if counted {
			passed = append(passed, describe(b)+" full")
		} else {
			passed = append(passed, describe(b)+" not counted")
		}
	}
	if len(passed) > 0 {
		why += fmt.Sprintf(", nor any other: %s", strings.Join(passed, ", "))
	}
	return "", false, why
}

// PlaceAgain says whether a new appliance whose chosen block turned out
// full under the block's lock is placed again rather than refused: the
// blocks are counted one at a time, each under its own lock, so creates
// running at once may fill the block chosen from a count made a moment
// before (the seeded test TestBlocksAcrossZonesUnderConcurrency found
// this). Placing again counts afresh and spills to the next block; an
// address the Service pins or shows names its block, and one block alone
// has nowhere else to go, so those are refused as before.
func PlaceAgain(listedBlocks int, placing bool) bool {
	return listedBlocks > 1 && !placing
}

func describe(b Block) string {
	if b.Zone == "" {
		return b.ID
	}
	return b.ID + " (" + b.Zone + ")"
}
