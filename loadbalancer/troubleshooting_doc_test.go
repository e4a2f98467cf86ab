package loadbalancer

import (
	"os"
	"strings"
	"testing"
)

// TestTroubleshootingCoversEveryReason keeps docs/troubleshooting.md in step
// with the Event reasons users see on their Services.
func TestTroubleshootingCoversEveryReason(t *testing.T) {
	doc, err := os.ReadFile("../docs/troubleshooting.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range AllReasons {
		if !strings.Contains(string(doc), "`"+r+"`") {
			t.Errorf("docs/troubleshooting.md does not explain the Event reason %s", r)
		}
	}
}
