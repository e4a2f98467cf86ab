package memlimit

import (
	"strings"
	"testing"
)

func env(kv ...string) func(string) (string, bool) {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestDecide(t *testing.T) {
	for _, c := range []struct {
		name  string
		env   func(string) (string, bool)
		bytes int64
		why   string
		err   string
	}{
		{"chart default 256Mi", env("MEMORY_LIMIT_MIB", "256"), 256 << 20 * 7 / 10, "", ""},
		{"spaces", env("MEMORY_LIMIT_MIB", " 512\n"), 512 << 20 * 7 / 10, "", ""},
		{"1 MiB", env("MEMORY_LIMIT_MIB", "1"), 1 << 20 * 7 / 10, "", ""},
		{"GOMEMLIMIT wins", env("GOMEMLIMIT", "150MiB", "MEMORY_LIMIT_MIB", "256"), 0, "GOMEMLIMIT is set", ""},
		{"GOMEMLIMIT=off wins", env("GOMEMLIMIT", "off", "MEMORY_LIMIT_MIB", "256"), 0, "GOMEMLIMIT is set", ""},
		{"empty GOMEMLIMIT is unset", env("GOMEMLIMIT", "", "MEMORY_LIMIT_MIB", "100"), 100 << 20 * 7 / 10, "", ""},
		{"nothing", env(), 0, "MEMORY_LIMIT_MIB is not set", ""},
		{"empty", env("MEMORY_LIMIT_MIB", ""), 0, "MEMORY_LIMIT_MIB is not set", ""},
		{"a quantity, not MiB", env("MEMORY_LIMIT_MIB", "256Mi"), 0, "", "not a positive whole number"},
		{"zero", env("MEMORY_LIMIT_MIB", "0"), 0, "", "not a positive whole number"},
		{"negative", env("MEMORY_LIMIT_MIB", "-5"), 0, "", "not a positive whole number"},
		{"too large", env("MEMORY_LIMIT_MIB", "99999999999999"), 0, "", "too large"},
	} {
		d, err := Decide(c.env)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) || d.Bytes != 0 {
				t.Errorf("%s: %+v, %v; want an error with %q", c.name, d, err, c.err)
			}
			continue
		}
		if err != nil || d.Bytes != c.bytes || d.Why != c.why {
			t.Errorf("%s: %+v, %v; want %d bytes, why %q", c.name, d, err, c.bytes, c.why)
		}
	}
	if d, _ := Decide(env("MEMORY_LIMIT_MIB", "256")); d.Bytes>>20 != 179 || d.ContainerMiB != 256 {
		t.Errorf("256 MiB: %+v, want 179 MiB (docs/memory.md)", d)
	}
}
