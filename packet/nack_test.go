package packet

import (
	"errors"
	"fmt"
	"testing"
)

func TestPermanent(t *testing.T) {
	base := errors.New("HTTP 400: bad field")
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"plain", base, false},
		{"nil", nil, false},
		{"marked", Permanent(base), true},
		{"wrapped after marking", fmt.Errorf("node %q: %w", "http", Permanent(base)), true},
	} {
		if got := IsPermanent(tc.err); got != tc.want {
			t.Errorf("%s: IsPermanent = %v, want %v", tc.name, got, tc.want)
		}
	}
	if Permanent(nil) != nil {
		t.Error("Permanent(nil) must be nil")
	}
	if !errors.Is(Permanent(base), base) {
		t.Error("Permanent must keep the wrapped error reachable")
	}
	if Permanent(base).Error() != base.Error() {
		t.Error("Permanent must not change the message")
	}
}
