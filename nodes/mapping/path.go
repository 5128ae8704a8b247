package mapping

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/schnitzel-stream/schnitzel/packet"
)

// A path names a place in a packet: payload (the whole payload),
// payload.a.b, meta.x, kind or source_id.
type path struct {
	text string
	root string   // payload, meta, kind, source_id
	keys []string // below root
}

var roots = []string{"payload", "meta", "kind", "source_id"}

func parsePath(s string) (path, error) {
	parts := strings.Split(strings.TrimSpace(s), ".")
	p := path{text: s, root: parts[0], keys: parts[1:]}
	if !slices.Contains(roots, p.root) {
		return p, fmt.Errorf("path %q must start with payload, meta, kind or source_id (payload.%s?)", s, s)
	}
	for _, k := range p.keys {
		if k == "" {
			return p, fmt.Errorf("path %q has an empty key", s)
		}
	}
	if (p.root == "kind" || p.root == "source_id") && len(p.keys) > 0 {
		return p, fmt.Errorf("path %q: %s is a string, it has no keys", s, p.root)
	}
	if p.root == "meta" && len(p.keys) == 0 {
		return p, fmt.Errorf("path %q: name a meta key (meta.x); meta itself cannot be replaced", s)
	}
	return p, nil
}

// work is the packet a Mapping is building. Maps it made or cloned for
// this packet are owned and changed in place; any other map is shared
// with the input (fan-out shares packets) and is cloned before a change.
type work struct {
	p     *packet.Packet
	owned []*packet.Map
	grow  int // room a clone gets for new keys (a Mapping's set count)
}

func (w *work) reset(p *packet.Packet) {
	w.p = p.Copy()
	w.owned = w.owned[:0]
}

func (w *work) own(m *packet.Map) *packet.Map {
	if slices.Contains(w.owned, m) {
		return m
	}
	c := m.Clone(max(1, w.grow))
	w.owned = append(w.owned, c)
	return c
}

// object returns the map at the root of p, owned, creating it if absent.
func (w *work) object(p path) (*packet.Map, error) {
	var cur any
	if p.root == "payload" {
		cur = w.p.Payload
	} else {
		cur = w.p.Meta
	}
	var m *packet.Map
	switch x := cur.(type) {
	case *packet.Map:
		if x == nil {
			m = packet.NewMap(1)
			w.owned = append(w.owned, m)
		} else {
			m = w.own(x)
		}
	case nil:
		m = packet.NewMap(1)
		w.owned = append(w.owned, m)
	default:
		return nil, fmt.Errorf("%s is %s, not an object", p.root, typeOf(cur))
	}
	if p.root == "payload" {
		w.p.Payload = m
	} else {
		w.p.Meta = m
	}
	return m, nil
}

// parent walks to the map holding p's last key, owning (and, when create
// is set, creating) every map on the way. It returns nil when create is
// unset and the way does not exist.
func (w *work) parent(p path, create bool) (*packet.Map, error) {
	m, err := w.object(p)
	if err != nil {
		return nil, err
	}
	for i, k := range p.keys[:len(p.keys)-1] {
		v, _ := m.Get(k)
		switch x := v.(type) {
		case *packet.Map:
			c := w.own(x)
			if c != x {
				m.Set(k, c)
			}
			m = c
		case nil:
			if !create {
				return nil, nil
			}
			c := packet.NewMap(1)
			w.owned = append(w.owned, c)
			m.Set(k, c)
			m = c
		default:
			return nil, fmt.Errorf("%s.%s is %s, not an object", p.root, strings.Join(p.keys[:i+1], "."), typeOf(v))
		}
	}
	return m, nil
}

func (w *work) set(p path, v any) error {
	switch p.root {
	case "kind", "source_id":
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("%s must be a string, got %s", p.root, typeOf(v))
		}
		if p.root == "kind" {
			w.p.Kind = s
		} else {
			w.p.SourceID = s
		}
		return nil
	case "payload":
		if len(p.keys) == 0 {
			w.p.Payload = v
			return nil
		}
	}
	m, err := w.parent(p, true)
	if err != nil {
		return err
	}
	m.Set(p.keys[len(p.keys)-1], v)
	return nil
}

// lookup reads p from the packet being built; ok is false when absent.
func (w *work) lookup(p path) (any, bool) {
	var cur any
	switch p.root {
	case "kind":
		return w.p.Kind, true
	case "source_id":
		return w.p.SourceID, true
	case "payload":
		cur = w.p.Payload
	case "meta":
		cur = w.p.Meta
	}
	for _, k := range p.keys {
		m, ok := cur.(*packet.Map)
		if !ok {
			return nil, false
		}
		if cur, ok = m.Get(k); !ok {
			return nil, false
		}
	}
	return cur, true
}

func (w *work) delete(p path) error {
	switch {
	case p.root == "kind" || p.root == "source_id":
		return errors.New("kind and source_id cannot be deleted")
	case p.root == "payload" && len(p.keys) == 0:
		w.p.Payload = nil
		return nil
	}
	if _, ok := w.lookup(p); !ok {
		return nil
	}
	m, err := w.parent(p, false)
	if err != nil || m == nil {
		return err
	}
	m.Delete(p.keys[len(p.keys)-1])
	return nil
}

func (w *work) rename(from, to path) error {
	v, ok := w.lookup(from)
	if !ok {
		return nil
	}
	if err := w.delete(from); err != nil {
		return err
	}
	return w.set(to, v)
}
