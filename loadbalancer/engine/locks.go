package engine

import "sync"

// The lock order of a reconcile is svc/<uid> → share/<key> → switch/<id>,
// always; no process-wide lock is held across API calls or retries.

// keyedLocks serializes work per key (a Service, a sharing key) without one
// global lock: the service controller and the endpoint follower may sync
// the same Service at once, and members of one key write one appliance.
type keyedLocks struct {
	mu sync.Mutex
	m  map[string]*keyedLock
}

type keyedLock struct {
	mu    sync.Mutex
	users int
}

// lock takes key's lock and returns its release.
func (k *keyedLocks) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyedLock{}
	}
	e := k.m[key]
	if e == nil {
		e = &keyedLock{}
		k.m[key] = e
	}
	e.users++
	k.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		k.mu.Lock()
		if e.users--; e.users == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
}
