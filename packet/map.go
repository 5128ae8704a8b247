package packet

// Map is an insertion-ordered string-keyed object: the Go form of a JSON
// object or a YAML mapping. Upstream is Python, whose dicts keep insertion
// order, and its PrintSink output depends on that order, so payloads and
// meta use Map instead of a Go map.
//
// Lookups are linear: packet objects are small (a handful of keys), where a
// slice beats hashing and allocates once.
type Map struct {
	kv []KV
}

// KV is one entry of a Map.
type KV struct {
	Key   string
	Value any
}

// NewMap returns an empty Map with room for n entries.
func NewMap(n int) *Map { return &Map{kv: make([]KV, 0, n)} }

// MapOf builds a Map from alternating keys and values: MapOf("a", 1, "b", 2).
// It panics on an odd count or a non-string key; it is meant for literals.
func MapOf(kv ...any) *Map {
	if len(kv)%2 != 0 {
		panic("packet.MapOf: odd argument count")
	}
	m := NewMap(len(kv) / 2)
	for i := 0; i < len(kv); i += 2 {
		m.Set(kv[i].(string), kv[i+1])
	}
	return m
}

// Len returns the number of entries; a nil Map is empty.
func (m *Map) Len() int {
	if m == nil {
		return 0
	}
	return len(m.kv)
}

// Get returns the value stored under key.
func (m *Map) Get(key string) (any, bool) {
	if m == nil {
		return nil, false
	}
	for i := range m.kv {
		if m.kv[i].Key == key {
			return m.kv[i].Value, true
		}
	}
	return nil, false
}

// Set stores value under key, keeping the key's position if it exists and
// appending it otherwise (Python dict semantics).
func (m *Map) Set(key string, value any) {
	for i := range m.kv {
		if m.kv[i].Key == key {
			m.kv[i].Value = value
			return
		}
	}
	m.kv = append(m.kv, KV{key, value})
}

// AppendNew adds an entry whose key the caller knows is not in m: Set
// without the linear scan, for decoders that index keys themselves (the
// graph loader, where a hostile file may hold a mapping of 50,000 keys).
func (m *Map) AppendNew(key string, value any) {
	m.kv = append(m.kv, KV{key, value})
}

// Delete removes key, keeping the order of the others.
func (m *Map) Delete(key string) {
	if m == nil {
		return
	}
	for i := range m.kv {
		if m.kv[i].Key == key {
			m.kv = append(m.kv[:i], m.kv[i+1:]...)
			return
		}
	}
}

// Entries returns the entries in order. The slice is the Map's own: do not
// modify it.
func (m *Map) Entries() []KV {
	if m == nil {
		return nil
	}
	return m.kv
}

// Keys returns the keys in order.
func (m *Map) Keys() []string {
	if m == nil {
		return nil
	}
	keys := make([]string, len(m.kv))
	for i, e := range m.kv {
		keys[i] = e.Key
	}
	return keys
}

// Clone returns a shallow copy with extra capacity for grow more entries;
// a nil Map clones to an empty one.
func (m *Map) Clone(grow int) *Map {
	if m == nil {
		return NewMap(grow)
	}
	c := &Map{kv: make([]KV, len(m.kv), len(m.kv)+grow)}
	copy(c.kv, m.kv)
	return c
}

// DeepClone copies nested Maps and slices too, so that the copy can be
// mutated without touching packets that share the original (fan-out shares).
func (m *Map) DeepClone() *Map {
	if m == nil {
		return nil
	}
	c := &Map{kv: make([]KV, len(m.kv))}
	for i, e := range m.kv {
		c.kv[i] = KV{e.Key, DeepCopy(e.Value)}
	}
	return c
}

// DeepCopy copies JSON-like values (Maps and []any) recursively; other
// values are returned as they are.
func DeepCopy(v any) any {
	switch x := v.(type) {
	case *Map:
		return x.DeepClone()
	case []any:
		c := make([]any, len(x))
		for i := range x {
			c[i] = DeepCopy(x[i])
		}
		return c
	default:
		return v
	}
}

// GetString returns m[key] when it is a string.
func (m *Map) GetString(key string) (string, bool) {
	v, ok := m.Get(key)
	if !ok {
		return "", false
	}
	s, ok := v.(string)
	return s, ok
}
