package instances

import (
	"testing"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/doccheck"
)

// Every Event reason on Nodes is explained in docs/troubleshooting.md.
func TestTroubleshootingCoversEveryReason(t *testing.T) {
	doccheck.MentionsAll(t, "docs/troubleshooting.md", "`%s`",
		ReasonDuplicateServerName, ReasonAmbiguousReplacement, ReasonProviderIDZone, ReasonNoMatchingServer)
}
