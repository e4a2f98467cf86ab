package engine

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/iaas-api-go/types"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/sakuraapi"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/annotations"
	"github.com/sakura-ccm/sakura-cloud-controller-manager/loadbalancer/sweep"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	kubefake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// unlistedCreates hides every appliance it creates from finds and reads,
// as SAKURA's listings may for a while after a create; fail answers the
// next create with that status after making the appliance.
type unlistedCreates struct {
	sakuraapi.LoadBalancerAPI
	mu      sync.Mutex
	hidden  map[types.ID]bool
	creates int
	fail    int
}

func (u *unlistedCreates) Create(ctx context.Context, zone string, req *iaas.LoadBalancerCreateRequest) (*iaas.LoadBalancer, error) {
	lb, err := u.LoadBalancerAPI.Create(ctx, zone, req)
	u.mu.Lock()
	defer u.mu.Unlock()
	u.creates++
	if err == nil {
		u.hidden[lb.ID] = true
	}
	if err == nil && u.fail != 0 {
		code := u.fail
		u.fail = 0
		return nil, iaas.NewAPIError("POST", nil, code, &iaas.APIErrorResponse{ErrorCode: "fault"})
	}
	return lb, err
}

func (u *unlistedCreates) Find(ctx context.Context, zone string, c *iaas.FindCondition) (*iaas.LoadBalancerFindResult, error) {
	r, err := u.LoadBalancerAPI.Find(ctx, zone, c)
	if err != nil {
		return nil, err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	out := *r
	out.LoadBalancers = slices.DeleteFunc(slices.Clone(r.LoadBalancers), func(lb *iaas.LoadBalancer) bool { return u.hidden[lb.ID] })
	out.Total, out.Count = len(out.LoadBalancers), len(out.LoadBalancers)
	return &out, nil
}

func (u *unlistedCreates) Read(ctx context.Context, zone string, id types.ID) (*iaas.LoadBalancer, error) {
	u.mu.Lock()
	hidden := u.hidden[id]
	u.mu.Unlock()
	if hidden {
		return nil, iaas.NewAPIError("GET", nil, http.StatusNotFound, &iaas.APIErrorResponse{ErrorCode: "not_found"})
	}
	return u.LoadBalancerAPI.Read(ctx, zone, id)
}

// TestRestartWhileTheNewApplianceIsUnlisted is issue #18's defect 5: a
// restart (or a leader change) while a new appliance is not listed yet must
// neither create a second appliance for the Service nor give its addresses
// to another Service, whether the create's ID was recorded or its answer
// was lost.
func TestRestartWhileTheNewApplianceIsUnlisted(t *testing.T) {
	for _, c := range []struct {
		name string
		fail int
	}{
		{"created, ID recorded, not listed yet", 0},
		{"create answered 500 after making it: no ID", http.StatusInternalServerError},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, 28)
			nodes := e.addNodes(2, 0)
			web, other := service("web", 80), service("other", 80)
			kube := kubefake.NewClientset(web, other)
			ctx, cancel := context.WithCancel(context.Background())
			t.Cleanup(cancel)
			start := func() {
				e.lb.kube = kube
				e.lb.FollowEndpoints(ctx, kube, FollowOptions{})
			}
			start()
			u := &unlistedCreates{LoadBalancerAPI: e.client.LoadBalancers, hidden: map[types.ID]bool{}, fail: c.fail}
			e.client.LoadBalancers = u
			if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", web, nodes); !isRetry(err) {
				t.Fatalf("first create: want a RetryError, got %v", err)
			}
			if u.creates != 1 {
				t.Fatalf("%d creates", u.creates)
			}

			e.rebuild() // the restart: nothing in memory
			start()
			var cur *v1.Service
			waitFor(t, func() bool {
				s, err := e.lb.follower().services.Services("default").Get("web")
				cur = s
				return err == nil && s.Annotations[annotations.LoadBalancerCreating] != ""
			})
			for i := 0; i < 3; i++ {
				if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", cur, nodes); err == nil {
					t.Fatal("the restarted controller reported a status for an appliance it cannot see")
				}
			}
			if u.creates != 1 {
				t.Fatalf("the restarted controller sent %d creates; the first may still show up", u.creates)
			}
			rec, _, err := annotations.CreateRecordOf(cur)
			if err != nil {
				t.Fatal(err)
			}
			otherCur, err := kube.CoreV1().Services("default").Get(e.ctx, "other", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			_, _ = e.lb.EnsureLoadBalancer(e.ctx, "test", otherCur, nodes)
			for _, lb := range e.lbs() {
				if lb.ID == 0 || u.hidden[lb.ID] {
					continue
				}
				for _, ip := range append(slices.Clone(lb.IPAddresses), lb.VirtualIPAddresses[0].VirtualIPAddress) {
					for _, held := range rec.IPs {
						if ip == held.String() {
							t.Fatalf("other's appliance %s took %s, held by web's unlisted create", lb.ID, ip)
						}
					}
				}
			}
		})
	}
}

// TestStaleNodeListNeverRewritesAnotherMember is issue #18's defect 10
// (torture seed 70840): the service controller's node sync gives b the new
// nodes; a slower, older EnsureLoadBalancer of a still holds the old ones.
// The repair pass must rewrite neither member with a node list the service
// controller did not last pass for that member.
func TestStaleNodeListNeverRewritesAnotherMember(t *testing.T) {
	e := newEnv(t, 27)
	nodes := e.addNodes(3, 0)
	a, b := shared("a", "team", 80), shared("b", "team", 81)
	for _, s := range []*v1.Service{a, b} {
		s.Finalizers = []string{sweep.CleanupFinalizer}
	}
	kube := kubefake.NewClientset(a, b)
	e.lb.kube = kube
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	e.lb.FollowEndpoints(ctx, kube, FollowOptions{})
	waitFor(t, func() bool {
		s, _ := e.lb.follower().services.List(labels.Everything())
		return len(s) == 2
	})
	old, cur := nodes[:2], nodes[1:3]
	e.ensureUp(a, old)
	e.ensureUp(b, old)
	if err := e.lb.UpdateLoadBalancer(e.ctx, "test", b, cur); err != nil { // the node sync
		t.Fatal(err)
	}
	if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", a, old); err != nil { // an older call, finishing late
		t.Fatal(err)
	}
	e.lb.RepairPass(e.ctx)
	var got []string
	for _, v := range entriesOf(e.lbs()[0], b) {
		for _, s := range v.Servers {
			got = append(got, s.IPAddress)
		}
	}
	slices.Sort(got)
	if want := []string{e.ip(1), e.ip(2)}; !slices.Equal(got, want) {
		t.Fatalf("b's real servers %v after the repair pass, want %v (the nodes its last sync passed)", got, want)
	}
}

// The service controller may still ask for a Service that was deleted and
// re-created under its name (its in-memory cache; torture seed 110325).
// The create record names the asking Service's UID, so the API server
// refuses it and no appliance is made for a Service that no longer
// exists: it would belong to no one.
func TestNoApplianceForAServiceReplacedUnderItsName(t *testing.T) {
	e := newEnv(t, 28)
	nodes := e.addNodes(2, 0)
	stale := service("web", 80)
	current := stale.DeepCopy()
	current.UID = "uid-web-again"
	kube := kubefake.NewClientset(current)
	// As the API server does: metadata.uid is immutable, so a patch that
	// names another UID is refused.
	kube.PrependReactor("patch", "services", func(a k8stesting.Action) (bool, runtime.Object, error) {
		var named struct {
			Metadata struct {
				UID string `json:"uid"`
			} `json:"metadata"`
		}
		if json.Unmarshal(a.(k8stesting.PatchAction).GetPatch(), &named) == nil && named.Metadata.UID != "" && named.Metadata.UID != string(current.UID) {
			return true, nil, apierrors.NewInvalid(v1.SchemeGroupVersion.WithKind("Service").GroupKind(), current.Name,
				field.ErrorList{field.Invalid(field.NewPath("metadata", "uid"), named.Metadata.UID, "field is immutable")})
		}
		return false, nil, nil
	})
	e.lb.kube = kube
	_, err := e.lb.EnsureLoadBalancer(e.ctx, "test", stale, nodes)
	if err == nil || !strings.Contains(err.Error(), "deleted or replaced") {
		t.Fatalf("ensuring a replaced Service: %v, want a refusal", err)
	}
	if n := len(e.lbs()); n != 0 {
		t.Fatalf("%d appliances made for a Service that no longer exists", n)
	}
	if _, err := e.lb.EnsureLoadBalancer(e.ctx, "test", current, nodes); err != nil && !isRetry(err) {
		t.Fatalf("the current Service: %v", err)
	}
	if n := len(e.lbs()); n != 1 {
		t.Fatalf("the current Service: %d appliances, want 1", n)
	}
}
