package engine

import (
	"testing"
	"time"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/types"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/decide"
)

// What is remembered per appliance follows the appliances that exist, and
// notices past their repeat time go: the maps do not grow with every
// appliance and Service the process has ever seen.
func TestPruneStateKeepsOnlyListedAppliances(t *testing.T) {
	e := newEnv(t, 27)
	l := e.lb
	l.mem.mu.Lock()
	for _, id := range []types.ID{1, 2} {
		l.mem.pendingConfig[id] = true
		l.mem.reapplied[id] = "hash"
	}
	l.mem.bootSent[3] = time.Now()                                      // just booted, not listed yet
	l.mem.bootSent[4] = time.Now().Add(-decide.BootGrace - time.Minute) // long gone
	l.mem.mu.Unlock()
	l.mem.notices["uid-old/x"] = noticeEntry{subject: "s", at: time.Now().Add(-RepeatNoticeAfter - time.Minute)}
	l.mem.notices["uid-new/x"] = noticeEntry{subject: "s", at: time.Now()}

	l.pruneState(l.exec, []*iaas.LoadBalancer{{ID: 1}})

	if !l.mem.pendingConfig[1] || l.mem.reapplied[1] == "" {
		t.Error("state of a listed appliance was dropped")
	}
	if l.mem.pendingConfig[2] || l.mem.reapplied[2] != "" {
		t.Error("state of an appliance no longer listed was kept")
	}
	if _, ok := l.mem.bootSent[3]; !ok {
		t.Error("a boot sent within BootGrace was dropped")
	}
	if _, ok := l.mem.bootSent[4]; ok {
		t.Error("an old boot of an appliance no longer listed was kept")
	}
	if _, ok := l.mem.notices["uid-old/x"]; ok {
		t.Error("a notice past RepeatNoticeAfter was kept")
	}
	if _, ok := l.mem.notices["uid-new/x"]; !ok {
		t.Error("a recent notice was dropped (it would be repeated)")
	}
}
