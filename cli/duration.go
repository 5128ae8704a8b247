package cli

import (
	"fmt"
	"strconv"
	"time"
)

// secondsOrDuration is a duration flag that also takes a plain number of
// seconds ("5", "2.5"), as config keys (*_sec) and env variables do.
type secondsOrDuration struct{ d *time.Duration }

func (v secondsOrDuration) String() string {
	if v.d == nil || *v.d == 0 {
		return "" // 0 means "derive it": no default to show
	}
	return v.d.String()
}

func (v secondsOrDuration) Set(s string) error {
	if sec, err := strconv.ParseFloat(s, 64); err == nil {
		if sec != sec || sec > float64(1<<62)/1e9 || sec < -float64(1<<62)/1e9 {
			return fmt.Errorf("%q is out of range", s)
		}
		*v.d = time.Duration(sec * float64(time.Second))
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is neither a number of seconds nor a duration such as 5s or 500ms", s)
	}
	*v.d = d
	return nil
}

func (secondsOrDuration) Type() string { return "duration" }
