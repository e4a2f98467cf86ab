package engine

import (
	"fmt"
	"strings"
	"time"

	"github.com/sacloud/iaas-api-go"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/metrics"
	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
)

// Events on Services, with the de-duplication that keeps standing
// conditions from flooding them.

func (l *Engine) event(svc *v1.Service, warning bool, reason, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	typ := v1.EventTypeNormal
	if warning {
		typ = v1.EventTypeWarning
		klog.Warningf("service %s/%s: %s: %s", svc.Namespace, svc.Name, reason, msg)
	} else {
		klog.Infof("service %s/%s: %s: %s", svc.Namespace, svc.Name, reason, msg)
	}
	if l.recorder != nil {
		l.recorder.Event(svc, typ, reason, msg)
	}
	if reason == ReasonRepaired {
		metrics.CountRepair()
	}
}

// fail records a Warning and returns the error for the service controller.
// The Warning is not repeated while the same error recurs (see warn).
func (l *Engine) fail(svc *v1.Service, reason string, err error) error {
	metrics.CountReconcileError(reason)
	l.warn(svc, reason, err.Error())
	return err
}

// warn records a Warning unless the very same one (reason and message) was
// recorded for this Service within RepeatNoticeAfter: a standing problem
// seen on every reconcile and retry would otherwise add an Event each time.
func (l *Engine) warn(svc *v1.Service, reason, msg string) {
	l.notice(svc, reason+"/warn", []string{msg}, msg)
}

// RepeatNoticeAfter is how often a standing condition (nodes off the switch,
// too many nodes) is reported again while it does not change. Every sync
// would otherwise add an Event and a log line per Service: at 100 Services
// and frequent node updates that is noise that hides real problems.
const RepeatNoticeAfter = time.Hour

// notice records a Warning unless the same condition (key and the nodes it
// is about) was recorded for this Service within RepeatNoticeAfter. key
// separates conditions that share a reason.
func (l *Engine) notice(svc *v1.Service, key string, nodes []string, msg string) {
	l.once(svc, true, key, nodes, msg)
}

// once records an Event of key about subject unless the same was recorded
// for this Service within RepeatNoticeAfter.
func (l *Engine) once(svc *v1.Service, warning bool, key string, nodes []string, msg string) {
	if !l.mem.firstNotice(string(svc.UID)+"/"+key, strings.Join(nodes, ",")) {
		return
	}
	reason, _, _ := strings.Cut(key, "/")
	l.event(svc, warning, reason, "%s", msg)
}

// forgetNotices drops what was reported for a Service that is gone.
func (l *Engine) forgetNotices(uid string) { l.mem.forgetNotices(uid) }

// reportDuplicates warns that more than one appliance carries the
// Service's ownership tags; the oldest is managed.
func (l *Engine) reportDuplicates(svc *v1.Service, lbs []*iaas.LoadBalancer) {
	var ids []string
	for _, o := range lbs[1:] {
		ids = append(ids, o.ID.String())
	}
	l.warn(svc, ReasonDuplicate, fmt.Sprintf("more than one load balancer carries this Service's ownership tags; managing %s, leaving %s alone (delete them by hand if unused)", lbs[0].ID, strings.Join(ids, ", ")))
}
