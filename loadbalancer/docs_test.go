package loadbalancer

import (
	"os"
	"strings"
	"testing"
)

// Every Event reason is documented in docs/load-balancers.md.
func TestDocsListEveryEventReason(t *testing.T) {
	raw, err := os.ReadFile("../docs/load-balancers.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range AllReasons {
		if !strings.Contains(string(raw), "| `"+r+"` |") {
			t.Errorf("docs/load-balancers.md does not list Event reason %s", r)
		}
	}
}
