package plugin

import (
	"math"
	"strings"
	"testing"
)

type checkCfg struct {
	Name  string  `yaml:"name" required:"true"`
	Mode  string  `yaml:"mode" enum:"fast,safe"`
	Count int64   `yaml:"count"`
	Wait  Seconds `yaml:"wait_sec"`
}

func (c *checkCfg) Validate() error {
	if c.Count < 0 {
		return Errorf("count", "must be >= 0, got %d", c.Count)
	}
	return nil
}

func TestCheckConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  checkCfg
		want []string // substrings; none means no error
	}{
		{"ok", checkCfg{Name: "a", Mode: "fast"}, nil},
		{"required", checkCfg{Mode: "safe"}, []string{"config.name: required key is missing"}},
		{"enum", checkCfg{Name: "a", Mode: "slow"}, []string{`config.mode: must be one of fast, safe, got "slow"`}},
		{"validate and enum together", checkCfg{Name: "a", Mode: "", Count: -1},
			[]string{`config.mode: must be one of fast, safe, got ""`, "config.count: must be >= 0, got -1"}},
		{"seconds not finite", checkCfg{Name: "a", Mode: "fast", Wait: Seconds(math.Inf(1))},
			[]string{"config.wait_sec: expected a finite number of seconds, got +Inf"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckConfig(&tc.cfg)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("CheckConfig: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("CheckConfig: no error, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}
