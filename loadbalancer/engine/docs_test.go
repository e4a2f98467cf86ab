package engine

import (
	"testing"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/doccheck"
)

// Every Event reason is listed in docs/load-balancers.md and explained in
// docs/troubleshooting.md.
func TestDocsListEveryEventReason(t *testing.T) {
	doccheck.MentionsAll(t, "docs/load-balancers.md", "| `%s` |", AllReasons...)
	doccheck.MentionsAll(t, "docs/troubleshooting.md", "`%s`", AllReasons...)
}
