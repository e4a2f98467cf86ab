package sakurasim

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/sacloud/iaas-api-go/naked"
	"github.com/sacloud/iaas-api-go/types"
)

// applianceEnvelope is the request body of appliance writes.
type applianceEnvelope struct {
	Appliance json.RawMessage
}

func decodeAppliance(body []byte) (json.RawMessage, *naked.LoadBalancer, map[string]json.RawMessage, *apiErr) {
	var env applianceEnvelope
	if err := json.Unmarshal(body, &env); err != nil || len(env.Appliance) == 0 || string(env.Appliance) == "null" {
		return nil, nil, nil, badRequest("request body must be {\"Appliance\":{...}}")
	}
	var lb naked.LoadBalancer
	if err := json.Unmarshal(env.Appliance, &lb); err != nil {
		return nil, nil, nil, badRequest("invalid Appliance: " + err.Error())
	}
	keys := map[string]json.RawMessage{}
	_ = json.Unmarshal(env.Appliance, &keys)
	return env.Appliance, &lb, keys, nil
}

func settingsOf(n *naked.LoadBalancer) []*naked.LoadBalancerSetting {
	if n.Settings == nil {
		return nil
	}
	return n.Settings.LoadBalancer
}

func (s *Simulator) lbCreate(zone string, body []byte) (int, any, *apiErr) {
	raw, n, _, e := decodeAppliance(body)
	if e != nil {
		return 0, nil, e
	}
	if n.Class != "loadbalancer" {
		return 0, nil, badRequest(fmt.Sprintf("Class: the simulator only creates \"loadbalancer\" appliances, got %q", n.Class))
	}
	now := s.now()
	lb := &loadBalancer{created: true, Name: n.Name, Description: n.Description, Tags: n.Tags, CreatedAt: now, ModifiedAt: now,
		Availability: types.Availabilities.Migrating, Settings: cloneSettings(settingsOf(n))}
	if n.Remark != nil {
		if n.Remark.Switch != nil {
			lb.SwitchID = n.Remark.Switch.ID
		}
		if n.Remark.Plan != nil {
			lb.PlanID = n.Remark.Plan.ID
		}
		if n.Remark.VRRP != nil {
			lb.VRID = n.Remark.VRRP.VRID
		}
		if n.Remark.Network != nil {
			lb.MaskLen = n.Remark.Network.NetworkMaskLen
			lb.DefaultRoute = n.Remark.Network.DefaultRoute
		}
		for _, sv := range n.Remark.Servers {
			if sv != nil {
				lb.IPs = append(lb.IPs, sv.IPAddress)
			}
		}
	}
	if lb.PlanID == 0 && n.Plan != nil {
		lb.PlanID = n.Plan.ID
	}
	c := s.newConflicts()
	if e := s.validateNewLB(lb, zone, raw, c); e != nil {
		return 0, nil, e
	}
	lb.ID = s.newID()
	s.record(c, "LoadBalancer.Create", lb.ID)
	for range lb.IPs {
		lb.NICIDs = append(lb.NICIDs, s.newID())
	}
	lb.Hash = settingsHash(lb.Settings)
	// The created settings are what the appliance runs once it has booted;
	// later changes need Config.
	lb.apply()
	lb.PendingTo, lb.PendingAt = types.ServerInstanceStatuses.Up, now.Add(s.bootDelay)
	s.lbs = append(s.lbs, lb)
	s.settle() // a zero boot delay makes it available at once
	// Creating an appliance is asynchronous: the real API answers Success
	// "Accepted" (iaas-api-go's types.APIResult and libsacloud's interface{}
	// Success both accept it; see docs/simulator.md).
	return http.StatusCreated, map[string]any{"is_ok": true, "Success": "Accepted", "Appliance": wireLB(s.nakedLB(lb))}, nil
}

func (s *Simulator) lbForRead(id types.ID) (*loadBalancer, *apiErr) {
	lb := s.lbByID(id)
	if lb == nil {
		return nil, notFound(fmt.Sprintf("appliance %s not found", id))
	}
	if s.hiddenByCreateWindow(lb) {
		return nil, notFound(fmt.Sprintf("appliance %s not found", id))
	}
	return lb, nil
}

// lbForWrite refuses operations on an appliance that is still being created.
func (s *Simulator) lbForWrite(id types.ID) (*loadBalancer, *apiErr) {
	lb, e := s.lbForRead(id)
	if e != nil {
		return nil, e
	}
	if lb.Availability == types.Availabilities.Migrating {
		return nil, stillCreating(fmt.Sprintf("appliance %s is still being created", id))
	}
	return lb, nil
}

func (s *Simulator) lbUpdate(id types.ID, body []byte, settingsOnly bool) (int, any, *apiErr) {
	lb, e := s.lbForRead(id)
	if e != nil {
		return 0, nil, e
	}
	raw, n, keys, e := decodeAppliance(body)
	if e != nil {
		return 0, nil, e
	}
	if e := immutableCheck(lb, n); e != nil {
		return 0, nil, e
	}
	if n.SettingsHash != "" && n.SettingsHash != lb.Hash {
		return 0, nil, conflict(fmt.Sprintf("SettingsHash: %s is stale; the settings were changed since they were read (current %s)", n.SettingsHash, lb.Hash))
	}
	newSettings := lb.Settings
	c := s.newConflicts()
	if _, has := keys["Settings"]; has {
		newSettings = cloneSettings(settingsOf(n))
		if e := s.validateSettings(lb, newSettings, raw, c); e != nil {
			return 0, nil, e
		}
	}
	name, desc, tags := lb.Name, lb.Description, lb.Tags
	if !settingsOnly {
		var e *apiErr
		if name, desc, tags, e = updateCommon(keys, n.Name, n.Description, n.Tags, name, desc, tags); e != nil {
			return 0, nil, e
		}
		if _, has := keys["Tags"]; has {
			c.tags("Tags", tags)
		}
	}
	op := "LoadBalancer.Update"
	if settingsOnly {
		op = "LoadBalancer.UpdateSettings"
	}
	s.record(c, op, lb.ID)
	lb.Name, lb.Description, lb.Tags, lb.Settings = name, desc, tags, newSettings
	lb.Hash = settingsHash(lb.Settings)
	lb.ModifiedAt = s.now()
	return ok(map[string]any{"Appliance": wireLB(s.nakedLB(lb))})
}

// immutableCheck refuses changes to what cannot change after create.
func immutableCheck(lb *loadBalancer, n *naked.LoadBalancer) *apiErr {
	imm := func(field string) *apiErr {
		return badRequest(field + ": cannot be changed after create (create a new load balancer instead)")
	}
	if n.Class != "" && n.Class != "loadbalancer" {
		return imm("Class")
	}
	if n.Plan != nil && n.Plan.ID != 0 && n.Plan.ID != lb.PlanID {
		return imm("Plan.ID")
	}
	r := n.Remark
	if r == nil {
		return nil
	}
	if r.Switch != nil && r.Switch.ID != 0 && r.Switch.ID != lb.SwitchID {
		return imm("Remark.Switch.ID")
	}
	if r.Plan != nil && r.Plan.ID != 0 && r.Plan.ID != lb.PlanID {
		return imm("Remark.Plan.ID")
	}
	if r.VRRP != nil && r.VRRP.VRID != 0 && r.VRRP.VRID != lb.VRID {
		return imm("Remark.VRRP.VRID")
	}
	if r.Network != nil {
		if r.Network.NetworkMaskLen != 0 && r.Network.NetworkMaskLen != lb.MaskLen {
			return imm("Remark.Network.NetworkMaskLen")
		}
		if r.Network.DefaultRoute != "" && r.Network.DefaultRoute != lb.DefaultRoute {
			return imm("Remark.Network.DefaultRoute")
		}
	}
	if len(r.Servers) > 0 {
		var ips []string
		for _, sv := range r.Servers {
			if sv != nil && sv.IPAddress != "" {
				ips = append(ips, sv.IPAddress)
			}
		}
		if len(ips) > 0 && fmt.Sprint(ips) != fmt.Sprint(lb.IPs) {
			return imm("Remark.Servers")
		}
	}
	return nil
}

func (s *Simulator) lbDelete(id types.ID) (int, any, *apiErr) {
	lb, e := s.lbForWrite(id)
	if e != nil {
		return 0, nil, e
	}
	if lb.Status == types.ServerInstanceStatuses.Up || lb.PendingTo == types.ServerInstanceStatuses.Up {
		return 0, nil, conflict(fmt.Sprintf("appliance %s is running; shut it down and wait until it is down before deleting", id))
	}
	out := wireLB(s.nakedLB(lb))
	for i, x := range s.lbs {
		if x == lb {
			s.lbs = append(s.lbs[:i], s.lbs[i+1:]...)
			break
		}
	}
	return ok(map[string]any{"Appliance": out})
}

func (s *Simulator) lbPower(id types.ID, on bool, body []byte) (int, any, *apiErr) {
	lb, e := s.lbForWrite(id)
	if e != nil {
		return 0, nil, e
	}
	if !on && len(body) > 0 {
		var opt struct{ Force bool }
		if err := json.Unmarshal(body, &opt); err != nil {
			return 0, nil, badRequest("invalid shutdown option: " + err.Error())
		}
	}
	now := s.now()
	target := types.ServerInstanceStatuses.Down
	delay := s.bootDelay / 2
	if on {
		target, delay = types.ServerInstanceStatuses.Up, s.bootDelay
	}
	// Power answers carry Success as a bool: libsacloud decodes them into
	// sacloud.ResultFlagValue{Success bool} and fails on a string.
	answer := map[string]any{"is_ok": true, "Success": true}
	if lb.PendingTo == "" && lb.Status == target {
		return http.StatusAccepted, answer, nil
	}
	lb.PendingTo, lb.PendingAt = target, now.Add(delay)
	s.settle()
	return http.StatusAccepted, answer, nil
}

// lbConfig applies the saved settings to the running appliance (PUT
// appliance/{id}/config). Only a running appliance can be configured: while
// it is being created the answer is 409 still_creating, while it is down,
// booting or shutting down 409 conflict.
func (s *Simulator) lbConfig(id types.ID) (int, any, *apiErr) {
	lb, e := s.lbForWrite(id)
	if e != nil {
		return 0, nil, e
	}
	if !lb.running() {
		state := string(lb.Status)
		if lb.PendingTo != "" {
			state = "changing to " + string(lb.PendingTo)
		}
		if state == "" {
			state = "not running"
		}
		return 0, nil, conflict(fmt.Sprintf("appliance %s is not running (%s); boot it and wait until it is up before applying its settings", id, state))
	}
	lb.apply()
	return ok(map[string]any{})
}

// lbStatus answers per-VIP, per-real-server health of the applied
// configuration (saved settings that Config has not applied do not show).
// While the appliance is still being created it answers 409 still_creating
// (like Config); while it is down it has nothing to report and answers an
// empty list.
func (s *Simulator) lbStatus(id types.ID) (int, any, *apiErr) {
	lb, e := s.lbForWrite(id)
	if e != nil {
		return 0, nil, e
	}
	out := []*naked.LoadBalancerStatus{}
	if lb.Status == types.ServerInstanceStatuses.Up {
		for _, v := range lb.Applied {
			st := &naked.LoadBalancerStatus{VirtualIPAddress: v.VirtualIPAddress, Port: v.Port}
			for _, rs := range v.Servers {
				port := rs.Port
				if port == 0 {
					port = v.Port
				}
				status := types.EServerInstanceStatus("DOWN")
				if rs.Enabled.Bool() && s.serverUp(lb.SwitchID, rs.IPAddress) && !s.forcedDown(rs.IPAddress, port.Int()) {
					status = "UP"
				}
				st.Servers = append(st.Servers, &naked.LoadBalancerServerStatus{Status: status, IPAddress: rs.IPAddress, Port: port})
			}
			out = append(out, st)
		}
	}
	return http.StatusOK, map[string]any{"Total": len(out), "From": 0, "Count": len(out), "LoadBalancer": out}, nil
}

// updateCommon applies the Name, Description and Tags an update carries
// (keys: the fields present in its body) over the current ones, as every
// appliance kind's update does.
func updateCommon(keys map[string]json.RawMessage, newName, newDesc string, newTags []string, name, desc string, tags []string) (string, string, []string, *apiErr) {
	if _, has := keys["Name"]; has {
		if newName == "" {
			return "", "", nil, badRequest("Name: must not be empty")
		}
		name = newName
	}
	if _, has := keys["Description"]; has {
		desc = newDesc
	}
	if _, has := keys["Tags"]; has {
		if len(newTags) > maxTags {
			return "", "", nil, badRequest(fmt.Sprintf("Tags: at most %d tags (got %d)", maxTags, len(newTags)))
		}
		tags = newTags
	}
	return name, desc, tags, nil
}
