package decide

import (
	"fmt"
	"slices"
	"testing"

	"github.com/sacloud/iaas-api-go"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/desired"
)

const cluster = "c1"

// appliance builds a copy of an appliance as a read returns it: tags for
// the cluster, the sharing key (when key != "") and each member, and one
// entry per member named by its "namespace/name".
func appliance(key string, members map[string]string) *iaas.LoadBalancer {
	lb := &iaas.LoadBalancer{ID: 100, Tags: []string{desired.ClusterTag(cluster)}}
	if key != "" {
		lb.Tags = append(lb.Tags, desired.SharingTag(key))
	}
	uids := make([]string, 0, len(members))
	for uid := range members {
		uids = append(uids, uid)
	}
	slices.Sort(uids)
	for _, uid := range uids {
		lb.Tags = append(lb.Tags, desired.ServiceTag(uid))
		lb.VirtualIPAddresses = append(lb.VirtualIPAddresses, &iaas.LoadBalancerVirtualIPAddress{
			VirtualIPAddress: "192.0.2." + uid, Description: desired.EntryDescriptionPrefix + members[uid]})
	}
	return lb
}

func descriptions(v iaas.LoadBalancerVirtualIPAddresses) []string {
	var out []string
	for _, e := range v {
		out = append(out, e.Description)
	}
	slices.Sort(out)
	return out
}

func TestLeaveAppliance(t *testing.T) {
	ref := desired.ServiceRef{Namespace: "ns", Name: "a"}
	for _, c := range []struct {
		name    string
		lb      *iaas.LoadBalancer
		want    LeaveKind
		members []string
		keep    []string
	}{
		{"own appliance: delete it", appliance("", map[string]string{"10": "ns/a"}), LeaveDelete, []string{"10"}, nil},
		{"last member of a shared one: delete it", appliance("k", map[string]string{"10": "ns/a"}), LeaveDelete, []string{"10"}, nil},
		// The race: the copy read before the key lock showed "10" alone;
		// the fresh read under the lock shows "11", which joined meanwhile.
		{"a member joined since the listing: leave, do not delete", appliance("k", map[string]string{"10": "ns/a", "11": "ns/b"}), LeaveMember, nil, []string{"k8s:ns/b"}},
		{"not a member any more: nothing", appliance("k", map[string]string{"11": "ns/b"}), LeaveNothing, nil, nil},
		// Tagged twice by an older release's re-join (issue #18, defect 3):
		// still its only member, so the appliance goes.
		{"sole member tagged twice: delete it", withTags(appliance("k", map[string]string{"10": "ns/a"}), desired.ServiceTag("10")), LeaveDelete, []string{"10"}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := LeaveAppliance(c.lb, "10", ref)
			if got.Kind != c.want {
				t.Fatalf("kind %v, want %v", got.Kind, c.want)
			}
			if !slices.Equal(got.Members, c.members) {
				t.Errorf("precondition members %v, want %v", got.Members, c.members)
			}
			if c.want == LeaveMember {
				if !slices.Equal(descriptions(got.VIPs), c.keep) || slices.Contains(got.Tags, desired.ServiceTag("10")) || !slices.Contains(got.Tags, desired.ServiceTag("11")) {
					t.Errorf("leave writes tags %v, entries %v", got.Tags, descriptions(got.VIPs))
				}
			}
		})
	}
}

func TestMembersUnchanged(t *testing.T) {
	for _, c := range []struct {
		name  string
		fresh *iaas.LoadBalancer
		want  bool
	}{
		{"same members", appliance("k", map[string]string{"10": "ns/a"}), true},
		{"one left meanwhile", appliance("k", map[string]string{}), true},
		{"one joined meanwhile: refuse", appliance("k", map[string]string{"10": "ns/a", "12": "ns/c"}), false},
	} {
		if got := MembersUnchanged(c.fresh, []string{"10"}); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func TestPruneMembers(t *testing.T) {
	for _, c := range []struct {
		name    string
		lb      *iaas.LoadBalancer
		gone    []string
		claimed map[string]string
		ok      bool
		removed []string
		keep    []string
	}{
		{"vanished member removed, the other kept",
			appliance("k", map[string]string{"1": "ns/a", "2": "ns/b"}), []string{"1"}, map[string]string{"2": "ns/b"},
			true, []string{"1"}, []string{"k8s:ns/b"}},
		// The race: the sweep's older listing knew only "2"; "3" joined
		// after it. The fresh listing claims "3", so its entries stay.
		{"a member that joined after the older listing keeps its entries",
			appliance("k", map[string]string{"1": "ns/a", "2": "ns/b", "3": "ns/c"}), []string{"1"}, map[string]string{"2": "ns/b", "3": "ns/c"},
			true, []string{"1"}, []string{"k8s:ns/b", "k8s:ns/c"}},
		{"a member gone by the old listing but claimed again is kept",
			appliance("k", map[string]string{"1": "ns/a", "2": "ns/b"}), []string{"1"}, map[string]string{"1": "ns/a", "2": "ns/b"},
			false, nil, nil},
		{"an unclaimed member still in its grace period: nothing this time",
			appliance("k", map[string]string{"1": "ns/a", "2": "ns/b", "3": "ns/c"}), []string{"1"}, map[string]string{"2": "ns/b"},
			false, nil, nil},
		{"every member gone: the orphan path, not a prune",
			appliance("k", map[string]string{"1": "ns/a"}), []string{"1"}, map[string]string{},
			false, nil, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, ok := PruneMembers(c.lb, c.gone, c.claimed)
			if ok != c.ok {
				t.Fatalf("ok %v, want %v", ok, c.ok)
			}
			if !ok {
				return
			}
			if !slices.Equal(got.Removed, c.removed) || !slices.Equal(descriptions(got.VIPs), c.keep) {
				t.Errorf("removed %v keep %v, want %v %v", got.Removed, descriptions(got.VIPs), c.removed, c.keep)
			}
			for _, u := range c.removed {
				if slices.Contains(got.Tags, desired.ServiceTag(u)) {
					t.Errorf("tag of removed member %s kept", u)
				}
			}
		})
	}
}

func withTags(lb *iaas.LoadBalancer, tags ...string) *iaas.LoadBalancer {
	lb.Tags = append(lb.Tags, tags...)
	return lb
}

func TestJoinAppliance(t *testing.T) {
	ref := desired.ServiceRef{Namespace: "ns", Name: "a"}
	full := map[string]string{}
	for i := 0; i < desired.MaxSharedMembers; i++ {
		full[fmt.Sprint(20+i)] = fmt.Sprintf("ns/s%d", i)
	}
	fullWithMe := map[string]string{"10": "ns/a"}
	for i := 0; i < desired.MaxSharedMembers-1; i++ {
		fullWithMe[fmt.Sprint(20+i)] = fmt.Sprintf("ns/s%d", i)
	}
	for _, c := range []struct {
		name   string
		lb     *iaas.LoadBalancer
		ports  int
		fits   bool
		others int
	}{
		{"new member", appliance("k", map[string]string{"11": "ns/b"}), 1, true, 1},
		{"re-join after its entries were wiped", withoutEntries(appliance("k", map[string]string{"10": "ns/a"})), 1, true, 0},
		{"re-join with its entries still there", appliance("k", map[string]string{"10": "ns/a", "11": "ns/b"}), 1, true, 1},
		{"no room for another member", appliance("k", full), 1, false, desired.MaxSharedMembers},
		{"a member of a full appliance re-joins", appliance("k", fullWithMe), 1, true, desired.MaxSharedMembers - 1},
		{"too many entries", appliance("k", map[string]string{"11": "ns/b"}), desired.MaxVIPEntries, false, 1},
		{"exactly the entries left", appliance("k", map[string]string{"11": "ns/b"}), desired.MaxVIPEntries - 1, true, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := JoinAppliance(c.lb, "10", ref, c.ports)
			if got.Fits != c.fits || got.Others != c.others {
				t.Fatalf("fits %v others %d, want %v %d", got.Fits, got.Others, c.fits, c.others)
			}
			n := 0
			for _, tag := range got.Tags {
				if tag == desired.ServiceTag("10") {
					n++
				}
			}
			if n != 1 || !slices.Contains(got.Tags, desired.SharingTag("k")) || !slices.Contains(got.Tags, desired.ClusterTag(cluster)) {
				t.Fatalf("tags %v: want the cluster and key tags and the member once", got.Tags)
			}
		})
	}
}

func withoutEntries(lb *iaas.LoadBalancer) *iaas.LoadBalancer {
	lb.VirtualIPAddresses = nil
	return lb
}

func TestUnshared(t *testing.T) {
	tags := []string{desired.ClusterTag(cluster), desired.SharingTag("k"), desired.ServiceTag("10")}
	got := Unshared(tags)
	if !slices.Equal(got, []string{desired.ClusterTag(cluster), desired.ServiceTag("10")}) || len(tags) != 3 {
		t.Fatalf("Unshared(%v) = %v", tags, got)
	}
}

func TestReshare(t *testing.T) {
	tags := func(extra ...string) []string {
		return append([]string{desired.ClusterTag("c"), desired.ServiceTag("u1")}, extra...)
	}
	shared := desired.SharedName("c", "k1")
	cases := []struct {
		name string
		lb   string
		tags []string
		key  string
		want bool
	}{
		{"unshared by its deletion, wanted again", shared, tags(), "k1", true},
		{"still shared", shared, tags(desired.SharingTag("k1")), "k1", false},
		{"the Service asks for no key", shared, tags(), "", false},
		{"another key's appliance", desired.SharedName("c", "k2"), tags(), "k1", false},
		{"its own appliance, key added afterwards: drift, not reshare", "k8s-c-default-web-1234567", tags(), "k1", false},
		{"another member on it", shared, tags(desired.ServiceTag("u2")), "k1", false},
	}
	for _, c := range cases {
		if got := Reshare(c.lb, c.tags, "u1", c.key, shared); got != c.want {
			t.Errorf("%s: Reshare = %v, want %v", c.name, got, c.want)
		}
	}
}
