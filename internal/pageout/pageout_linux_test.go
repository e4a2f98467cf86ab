package pageout

import (
	"reflect"
	"runtime"
	"testing"

	"github.com/prometheus/procfs"
)

// The test binary's own read-only mappings, read through procfs: one holds
// this function's code, none is writable, and none is another file's.
func TestReadOnlyMappings(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Linux only")
	}
	self, err := procfs.Self()
	if err != nil {
		t.Fatal(err)
	}
	exe, _ := self.Executable()
	maps, err := self.ProcMaps()
	if err != nil {
		t.Fatal(err)
	}
	rs := ReadOnlyMappings(maps, exe)
	code := reflect.ValueOf(TestReadOnlyMappings).Pointer()
	holds := false
	for _, r := range rs {
		holds = holds || (r.Start <= code && code < r.End)
	}
	if !holds || Size(rs) <= 0 {
		t.Fatalf("read-only mappings of %s %x do not hold the code at %x", exe, rs, code)
	}
	for _, m := range maps {
		if m.Pathname == exe && m.Perms.Write {
			for _, r := range rs {
				if r.Start == m.StartAddr {
					t.Errorf("writable mapping %x listed", r)
				}
			}
		}
	}
	if got := ReadOnlyMappings(maps, exe+"-other"); len(got) != 0 {
		t.Errorf("another file's mappings: %x", got)
	}
}

// Run on the test binary: its file pages leave the RSS, and the program
// keeps running on them (they come back on first touch).
func TestRun(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Linux only")
	}
	before := rssFileKiB(t)
	n, err := Run()
	if err != nil {
		t.Skipf("kernel refused: %v", err)
	}
	after := rssFileKiB(t)
	if n <= 0 || after >= before {
		t.Fatalf("Run() = %d; RssFile %d kB before, %d kB after", n, before, after)
	}
	t.Logf("%d MiB of mappings; RssFile %d kB -> %d kB", n>>20, before, after)
}

func rssFileKiB(t *testing.T) int64 {
	n, err := RSSFile()
	if err != nil {
		t.Fatal(err)
	}
	return n >> 10
}

func TestRSSFile(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Linux only")
	}
	// The test binary runs from its file: some of it is resident.
	if n := rssFileKiB(t); n <= 0 {
		t.Errorf("RssFile %d kB", n)
	}
}
