package decide

import "time"

// Looking at a booting appliance. A new SAKURA load balancer takes about a
// minute to come up, and the Service gets its address only at the first look
// after that. Looking every second all along would cost 60 reads per boot;
// looking at a quarter of its age (at most every 10 s) costs about a dozen
// but finds it up to 10 s late. So the controller looks sparsely until the
// appliance nears the boot time it saw last, then every second for a while.

const (
	// DefaultBootTime is the boot time assumed until one has been seen.
	DefaultBootTime = 60 * time.Second
	// DenseBootLook is the spacing of looks near the expected boot time.
	DenseBootLook = time.Second
	// MinBootLook and MaxBootLook bound the sparse looks.
	MinBootLook = 2 * time.Second
	MaxBootLook = 10 * time.Second
)

// NextBootLook is how long to wait before looking again at an appliance
// that has been booting for age, when the last boot seen took typical (0:
// none seen yet). Looks are dense from 90% of typical to 150% of it plus
// 10 s (boots vary), sparse elsewhere, and a sparse wait never jumps past
// the start of the dense window.
func NextBootLook(age, typical time.Duration) time.Duration {
	if typical <= 0 {
		typical = DefaultBootTime
	}
	start := typical * 9 / 10
	end := typical*3/2 + 10*time.Second
	switch {
	case age >= start && age <= end:
		return DenseBootLook
	case age > end:
		return clamp((age-end)/4, MinBootLook, MaxBootLook)
	}
	d := clamp(age/4, MinBootLook, MaxBootLook)
	if left := start - age; d > left {
		d = max(left, DenseBootLook)
	}
	return d
}

func clamp(d, lo, hi time.Duration) time.Duration { return min(max(d, lo), hi) }
