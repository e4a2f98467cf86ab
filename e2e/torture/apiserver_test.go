package torture

import (
	"encoding/json"
	"fmt"
	"strconv"
	"sync"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// serviceSemantics gives the fake clientset's Services what a real API
// server guarantees and the product relies on (the plain fake replaces the
// whole stored object on every update):
//   - resourceVersion: every write bumps it, and an update that carries an
//     older one is refused with 409 Conflict (optimistic concurrency);
//   - the status subresource: UpdateStatus changes only the status, an
//     update of the Service itself never does, and neither changes the UID,
//     the creation time or the deletion timestamp;
//   - metadata.uid: a patch that names another UID than the stored
//     Service's is refused (the field is immutable);
//   - finalizers: deleting a Service that has finalizers only sets its
//     deletion timestamp, and the Service goes away when an update leaves
//     it with a deletion timestamp and no finalizers.
func serviceSemantics(c *fake.Clientset) {
	var mu sync.Mutex
	var rv int64 = 1000
	tracker := c.Tracker()
	gvr := v1.SchemeGroupVersion.WithResource("services")
	patch := k8stesting.ObjectReaction(tracker)
	bump := func(s *v1.Service) {
		rv++
		s.ResourceVersion = strconv.FormatInt(rv, 10)
	}
	get := func(ns, name string) (*v1.Service, error) {
		o, err := tracker.Get(gvr, ns, name)
		if err != nil {
			return nil, err
		}
		return o.(*v1.Service).DeepCopy(), nil
	}
	store := func(ns string, s *v1.Service) (runtime.Object, error) {
		if s.DeletionTimestamp != nil && len(s.Finalizers) == 0 {
			return s, tracker.Delete(gvr, ns, s.Name)
		}
		bump(s)
		if err := tracker.Update(gvr, s, ns); err != nil {
			return nil, err
		}
		return s.DeepCopy(), nil
	}
	c.PrependReactor("*", "services", func(a k8stesting.Action) (bool, runtime.Object, error) {
		mu.Lock()
		defer mu.Unlock()
		ns := a.GetNamespace()
		// By verb: an UpdateAction also satisfies CreateAction.
		switch a.GetVerb() {
		case "create":
			s := a.(k8stesting.CreateAction).GetObject().(*v1.Service).DeepCopy()
			s.DeletionTimestamp = nil
			if s.CreationTimestamp.IsZero() {
				s.CreationTimestamp = metav1.Now()
			}
			bump(s)
			if err := tracker.Create(gvr, s, ns); err != nil {
				return true, nil, err
			}
			return true, s.DeepCopy(), nil
		case "update":
			act := a.(k8stesting.UpdateAction)
			in := act.GetObject().(*v1.Service)
			cur, err := get(ns, in.Name)
			if err != nil {
				return true, nil, err
			}
			if in.ResourceVersion != "" && in.ResourceVersion != cur.ResourceVersion {
				return true, nil, apierrors.NewConflict(v1.Resource("services"), in.Name,
					fmt.Errorf("the object has been modified; please apply your changes to the latest version and try again"))
			}
			if in.UID != "" && in.UID != cur.UID {
				return true, nil, apierrors.NewConflict(v1.Resource("services"), in.Name,
					fmt.Errorf("Precondition failed: UID in precondition: %s, UID in object meta: %s", in.UID, cur.UID))
			}
			var next *v1.Service
			if act.GetSubresource() == "status" {
				next = cur
				next.Status = *in.Status.DeepCopy()
			} else {
				next = in.DeepCopy()
				next.Status = cur.Status
				next.UID, next.CreationTimestamp, next.DeletionTimestamp = cur.UID, cur.CreationTimestamp, cur.DeletionTimestamp
			}
			out, err := store(ns, next)
			return true, out, err
		case "patch":
			// A patch that names the UID is refused when the Service of
			// that name has another one, as the API server refuses a
			// change of the immutable metadata.uid.
			pa := a.(k8stesting.PatchAction)
			var named struct {
				Metadata struct {
					UID string `json:"uid"`
				} `json:"metadata"`
			}
			if json.Unmarshal(pa.GetPatch(), &named) == nil && named.Metadata.UID != "" {
				cur, err := get(ns, pa.GetName())
				if err != nil {
					return true, nil, err
				}
				if string(cur.UID) != named.Metadata.UID {
					// What kube-apiserver v1.37 answers (checked by hand).
					return true, nil, apierrors.NewInvalid(v1.SchemeGroupVersion.WithKind("Service").GroupKind(), cur.Name,
						field.ErrorList{field.Invalid(field.NewPath("metadata", "uid"), named.Metadata.UID, "field is immutable")})
				}
			}
			handled, obj, err := patch(a)
			if err != nil || obj == nil {
				return handled, obj, err
			}
			s := obj.(*v1.Service).DeepCopy()
			out, err := store(ns, s)
			return true, out, err
		case "delete":
			cur, err := get(ns, a.(k8stesting.DeleteAction).GetName())
			if err != nil {
				return true, nil, err
			}
			if len(cur.Finalizers) == 0 {
				return true, nil, tracker.Delete(gvr, ns, cur.Name)
			}
			if cur.DeletionTimestamp == nil {
				now := metav1.Now()
				cur.DeletionTimestamp = &now
				_, err = store(ns, cur)
			}
			return true, nil, err
		}
		return false, nil, nil
	})
}
