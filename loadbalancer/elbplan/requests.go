package elbplan

import (
	"slices"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/types"
)

// Identity is what the caller puts on an ELB beside its settings: the
// name, description and ownership tags, which Plan never compares.
type Identity struct {
	Name        string
	Description string
	Tags        []string
}

// CreateRequest is the create body for spec: the same settings Plan
// would write to an ELB that has none, so a new ELB compares equal to
// spec at once and its first resync writes nothing.
func CreateRequest(spec Spec, id Identity) *iaas.ProxyLBCreateRequest {
	s := settings(spec, &iaas.ProxyLB{})
	return &iaas.ProxyLBCreateRequest{
		Plan:                 spec.Plan,
		Region:               spec.Region,
		UseVIPFailover:       spec.VIPFailover,
		HealthCheck:          s.HealthCheck,
		SorryServer:          s.SorryServer,
		BindPorts:            s.BindPorts,
		Servers:              s.Servers,
		StickySession:        s.StickySession,
		Timeout:              s.Timeout,
		Gzip:                 s.Gzip,
		BackendHttpKeepAlive: s.BackendHttpKeepAlive,
		ProxyProtocol:        s.ProxyProtocol,
		LetsEncrypt:          s.LetsEncrypt,
		Name:                 id.Name,
		Description:          id.Description,
		Tags:                 types.Tags(slices.Clone(id.Tags)),
	}
}

// RetagRequest is the update body that gives have the tags and keeps
// everything else: the API's Update replaces the settings too, so they are
// written back as read, under have's settings hash (a concurrent edit then
// fails the write instead of being undone by it).
func RetagRequest(have *iaas.ProxyLB, tags []string) *iaas.ProxyLBUpdateRequest {
	return &iaas.ProxyLBUpdateRequest{
		HealthCheck:          have.HealthCheck,
		SorryServer:          have.SorryServer,
		BindPorts:            have.BindPorts,
		Servers:              have.Servers,
		Rules:                have.Rules,
		LetsEncrypt:          have.LetsEncrypt,
		StickySession:        have.StickySession,
		Timeout:              have.Timeout,
		Gzip:                 have.Gzip,
		BackendHttpKeepAlive: have.BackendHttpKeepAlive,
		MonitoringSuiteLog:   have.MonitoringSuiteLog,
		ProxyProtocol:        have.ProxyProtocol,
		Syslog:               have.Syslog,
		OriginGuard:          have.OriginGuard,
		StrictRule:           have.StrictRule,
		SettingsHash:         have.SettingsHash,
		Name:                 have.Name,
		Description:          have.Description,
		Tags:                 types.Tags(slices.Clone(tags)),
		IconID:               have.IconID,
	}
}
