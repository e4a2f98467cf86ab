package pageout

import (
	"reflect"
	"runtime"
	"strings"
	"testing"
)

func TestReadOnlyMappings(t *testing.T) {
	const maps = `00400000-02489000 r-xp 00000000 fe:00 9978325                            /sakura-cloud-controller-manager
02489000-04e4c000 r--p 02089000 fe:00 9978325                            /sakura-cloud-controller-manager
04e4c000-04f1f000 rw-p 04a4c000 fe:00 9978325                            /sakura-cloud-controller-manager
04f1f000-06f71000 rw-p 00000000 00:00 0
7fc0f9d2f000-7fc0f9d31000 r-xp 00000000 00:00 0                          [vdso]
7fc0f9d40000-7fc0f9d41000 r--p 00000000 fe:00 12                         /other binary
zzzz-yyyy r--p 00000000 fe:00 9978325                            /sakura-cloud-controller-manager
`
	got := ReadOnlyMappings(maps, "/sakura-cloud-controller-manager")
	want := []Range{{0x400000, 0x2489000}, {0x2489000, 0x4e4c000}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %x, want %x", got, want)
	}
	if Size(got) != 0x4e4c000-0x400000 {
		t.Errorf("size %d", Size(got))
	}
	if got := ReadOnlyMappings(strings.ReplaceAll(maps, "controller-manager\n", "controller-manager (deleted)\n"), "/sakura-cloud-controller-manager (deleted)"); len(got) != 2 {
		t.Errorf("a replaced binary: %x", got)
	}
	if got := ReadOnlyMappings(maps, "/other binary"); len(got) != 1 {
		t.Errorf("a path with a space: %x", got)
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
	if n, err := rssFile("Name:\tx\nRssAnon:\t   13200 kB\nRssFile:\t   55656 kB\nRssShmem:\t0 kB\n"); n != 55656<<10 || err != nil {
		t.Errorf("%d, %v", n, err)
	}
	if _, err := rssFile("Name:\tx\n"); err == nil {
		t.Error("no RssFile: no error")
	}
}
