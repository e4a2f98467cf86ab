package annotations

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"time"

	v1 "k8s.io/api/core/v1"
)

// CreateRecord is what LoadBalancerCreating holds: a create the controller
// sent (or was about to send) for the Service. It lives on the Service, not
// in memory, because a create whose answer was lost, or whose appliance
// listings do not show yet, must be waited for after a restart too.
type CreateRecord struct {
	At       time.Time    `json:"at"`
	SwitchID string       `json:"switchID"`
	IPs      []netip.Addr `json:"ips"`
	VRID     int          `json:"vrid,omitempty"`
	// SharingKey is set when the appliance is created for a sharing key:
	// the key's other members wait for it too.
	SharingKey string `json:"sharingKey,omitempty"`
	// GraceSec, when set, shortens how long the create is waited for: a
	// create answered 503 came back from SAKURA's front end, most likely
	// before anything was made.
	GraceSec int `json:"graceSec,omitempty"`
	// Kind is KindELB for an Enhanced Load Balancer's create ("" for a
	// DSR appliance's): its deletion must look for an ELB even if the
	// Service's type annotation changed since.
	Kind string `json:"kind,omitempty"`
}

// KindELB marks a CreateRecord of an Enhanced Load Balancer.
const KindELB = "elb"

// Value renders r as the annotation's value.
func (r CreateRecord) Value() string {
	b, _ := json.Marshal(r) // plain fields only: cannot fail
	return string(b)
}

// CreateRecordOf reads svc's LoadBalancerCreating; ok is false when there
// is none. A value that does not parse is reported: it is the controller's
// own, so someone changed it, and it cannot be trusted to say "no create".
func CreateRecordOf(svc *v1.Service) (r CreateRecord, ok bool, err error) {
	raw, has := svc.Annotations[LoadBalancerCreating]
	if !has || raw == "" {
		return r, false, nil
	}
	if err := json.Unmarshal([]byte(raw), &r); err != nil || r.At.IsZero() {
		return CreateRecord{}, false, fmt.Errorf("annotation %s: %q is not the record the controller writes; remove the annotation", LoadBalancerCreating, raw)
	}
	return r, true, nil
}
