// Package memo computes a value once per key and keeps it, for artifacts that are costly
// to load and shared by many tenants, such as a chart or a KubeRay base per version.
package memo

import "sync"

// Map holds one value, or error, per key. The zero Map is ready to use and safe for
// concurrent use; callers asking for a key being computed wait for it.
type Map[K comparable, V any] struct {
	mu      sync.Mutex
	entries map[K]*entry[V]
}

type entry[V any] struct {
	once  sync.Once
	value V
	err   error
}

// Get returns the value for key, computing it with compute the first time it is asked
// for. An error is kept like a value: the key is not computed again.
func (m *Map[K, V]) Get(key K, compute func() (V, error)) (V, error) {
	m.mu.Lock()
	if m.entries == nil {
		m.entries = map[K]*entry[V]{}
	}
	e, ok := m.entries[key]
	if !ok {
		e = &entry[V]{}
		m.entries[key] = e
	}
	m.mu.Unlock()
	e.once.Do(func() { e.value, e.err = compute() })
	return e.value, e.err
}
