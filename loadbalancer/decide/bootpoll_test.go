package decide

import (
	"testing"
	"time"
)

func TestNextBootLook(t *testing.T) {
	s := time.Second
	for _, c := range []struct {
		name         string
		age, typical time.Duration
		want         time.Duration
	}{
		{"just created", 0, 60 * s, 2 * s},
		{"clock skew: created in the future", -time.Hour, 60 * s, 2 * s},
		{"sparse at a quarter of the age", 20 * s, 60 * s, 5 * s},
		{"sparse wait capped", 44 * s, 60 * s, 10 * s},
		{"sparse wait cut to the window's start", 48 * s, 60 * s, 6 * s}, // 12 s capped at 10, then cut to 54 s
		{"never jumps past the dense window", 52 * s, 60 * s, 2 * s},
		{"at least a dense look before the window", 53500 * time.Millisecond, 60 * s, s},
		{"dense from 90%", 54 * s, 60 * s, s},
		{"dense at the expected time", 60 * s, 60 * s, s},
		{"dense until 150% + 10 s", 100 * s, 60 * s, s},
		{"sparse again after the window", 140 * s, 60 * s, 10 * s},
		{"just after the window", 104 * s, 60 * s, 2 * s},
		{"nothing seen yet: a minute assumed", 55 * s, 0, s},
		{"quick boots (tests, demo): dense at once", 2 * s, 2 * s, s},
		{"quick boot seen, a slow one now", 29 * s, 2 * s, 4 * s},
	} {
		if got := NextBootLook(c.age, c.typical); got != c.want {
			t.Errorf("%s: NextBootLook(%v, %v) = %v, want %v", c.name, c.age, c.typical, got, c.want)
		}
	}
}

// Over a whole 60 s boot the looks are few, and the last comes within a
// second of the appliance coming up.
func TestBootLooksOverAMinute(t *testing.T) {
	const boot = 60 * time.Second
	age, looks := 2*time.Second, 0
	for age < boot {
		age += NextBootLook(age, boot)
		looks++
	}
	if late := age - boot; late > DenseBootLook {
		t.Errorf("seen up %v after it came up, want at most %v", late, DenseBootLook)
	}
	if looks > 20 {
		t.Errorf("%d looks over a %v boot, want at most 20", looks, boot)
	}
	t.Logf("%d looks over a %v boot, seen up %v late", looks, boot, age-boot)
}
