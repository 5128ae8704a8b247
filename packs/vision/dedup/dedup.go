// Package dedup suppresses repeated events: per key
// camera_id:event_type:track_id a cooldown (monotonic clock) during which
// repeats are dropped, except that a change of severity always passes.
// It is upstream's CooldownStore/DedupController (policy/dedup.py) with an
// injectable clock.
package dedup

import (
	"time"

	"github.com/schnitzel-stream/schnitzel/packet"
)

// Store is the cooldown state. It is not safe for concurrent use; a node
// processes one packet at a time.
type Store struct {
	Cooldown      time.Duration
	PruneInterval int
	// Now returns a monotonic instant; nil uses time.Now (whose Sub is
	// monotonic in Go).
	Now func() time.Time

	last  map[string]entry
	count int
}

type entry struct {
	at       time.Time
	severity string // tagged: "" = none stored
}

// New returns a Store.
func New(cooldown time.Duration, pruneInterval int) *Store {
	return &Store{Cooldown: cooldown, PruneInterval: pruneInterval, last: map[string]entry{}}
}

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Key returns the dedup key of an event payload and false when the event
// has no (truthy) camera_id or event_type, which upstream never
// deduplicates. Values render as Python's str().
func Key(payload *packet.Map) (string, bool) {
	cam, _ := payload.Get("camera_id")
	et, _ := payload.Get("event_type")
	if !packet.Truthy(cam) || !packet.Truthy(et) {
		return "", false
	}
	track := "na"
	if t, ok := payload.Get("track_id"); ok && t != nil {
		track = packet.PyStr(t)
	}
	return packet.PyStr(cam) + ":" + packet.PyStr(et) + ":" + track, true
}

// Allow decides for one event payload and counts the call for pruning.
func (s *Store) Allow(payload *packet.Map) bool {
	key, ok := Key(payload)
	if !ok {
		return true
	}
	sev, hasSev := payload.Get("severity")
	allowed := s.allow(key, severityTag(sev, hasSev))
	s.tick()
	return allowed
}

// severityTag keeps Python's equality between severities of different
// types apart ("1" != 1) while storing them as strings; "" means none.
func severityTag(v any, has bool) string {
	if !has || v == nil {
		return ""
	}
	if str, ok := v.(string); ok {
		return "s" + str
	}
	if f, ok := numeric(v); ok { // 1 == 1.0 == True in Python
		return "n" + packet.PyFloat(f)
	}
	return "o" + packet.PyStr(v)
}

func numeric(v any) (float64, bool) {
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case float64:
		return x, true
	case bool:
		if x {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

func (s *Store) allow(key, sev string) bool {
	if s.last == nil {
		s.last = map[string]entry{}
	}
	e, known := s.last[key]
	if sev != "" && known && e.severity != "" && e.severity != sev {
		s.last[key] = entry{at: s.now(), severity: sev}
		return true
	}
	now := s.now()
	if !known {
		s.last[key] = entry{at: now, severity: sev}
		return true
	}
	if now.Sub(e.at) < s.Cooldown {
		return false
	}
	if sev == "" {
		sev = e.severity
	}
	s.last[key] = entry{at: now, severity: sev}
	return true
}

func (s *Store) tick() {
	s.count++
	if s.count%max(1, s.PruneInterval) == 0 {
		s.prune()
	}
}

// prune forgets keys whose cooldown has passed, so that the store does not
// grow with the number of tracks ever seen.
func (s *Store) prune() {
	if s.Cooldown <= 0 {
		return
	}
	now := s.now()
	for k, e := range s.last {
		if now.Sub(e.at) > s.Cooldown {
			delete(s.last, k)
		}
	}
}

// Len returns the number of keys held.
func (s *Store) Len() int { return len(s.last) }
