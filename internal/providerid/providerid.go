// Package providerid reads and writes Node.spec.providerID for SAKURA Cloud.
package providerid

import (
	"fmt"
	"strings"

	"github.com/sacloud/iaas-api-go/types"
)

// Prefix is the scheme shared with the earlier SAKURA controller.
const Prefix = "sakuracloud://"

// Format returns sakuracloud://<zone>/<id>.
func Format(zone string, id types.ID) string {
	return Prefix + zone + "/" + id.String()
}

// Parse accepts sakuracloud://<zone>/<id> and the legacy sakuracloud://<id>;
// zone is empty for the legacy form.
func Parse(providerID string) (zone string, id types.ID, err error) {
	rest, ok := strings.CutPrefix(providerID, Prefix)
	if !ok {
		return "", 0, fmt.Errorf("providerID %q does not start with %q", providerID, Prefix)
	}
	idPart := rest
	if z, i, found := strings.Cut(rest, "/"); found {
		if z == "" || strings.Contains(i, "/") {
			return "", 0, fmt.Errorf("providerID %q is not %s<zone>/<serverID>", providerID, Prefix)
		}
		zone, idPart = z, i
	}
	id = types.StringID(idPart)
	if id <= 0 || id.String() != idPart {
		return "", 0, fmt.Errorf("providerID %q has no numeric server ID", providerID)
	}
	return zone, id, nil
}
