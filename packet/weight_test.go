package packet

import "testing"

// A bytes payload weighs its length, so a graph of large blobs is bounded
// by bytes in its inboxes like a graph of frames.
func TestWeightBytesPayload(t *testing.T) {
	p := New("bytes", "s", make([]byte, 1000), "", nil)
	if got := Weight(p); got != 1000 {
		t.Errorf("Weight = %d, want 1000", got)
	}
	p.Payload = MapOf("ref", MapOf("size_bytes", int64(1000)))
	if got := Weight(p); got != 0 {
		t.Errorf("Weight of a ref = %d, want 0", got)
	}
}
