package doctor

import (
	"fmt"
	"os"
	"regexp"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// graphScan is the part of a graph file doctor reads by itself: plugin
// names and node configs. Full validation is the injected validator's job.
type graphScan struct {
	Version any    `yaml:"version"`
	Job     string `yaml:"job"`
	Nodes   []struct {
		ID     string         `yaml:"id"`
		Plugin string         `yaml:"plugin"`
		Config map[string]any `yaml:"config"`
	} `yaml:"nodes"`
}

func scanGraph(path string) (graphScan, error) {
	var g graphScan
	data, err := os.ReadFile(path)
	if err != nil {
		return g, fmt.Errorf("read graph %s: %w", path, err)
	}
	if err := yaml.Unmarshal(data, &g); err != nil {
		return g, fmt.Errorf("graph %s: %w", path, err)
	}
	return g, nil
}

func (g graphScan) plugins() []string {
	var out []string
	if g.Job != "" {
		out = append(out, g.Job)
	}
	for _, n := range g.Nodes {
		if n.Plugin != "" {
			out = append(out, n.Plugin)
		}
	}
	return out
}

// envRE matches OmegaConf's ${oc.env:VAR} and ${oc.env:VAR,default}.
var envRE = regexp.MustCompile(`\$\{oc\.env:([A-Za-z_][A-Za-z0-9_]*)(?:,([^}]*))?\}`)

func interpolate(s string, getenv func(string) string) string {
	return envRE.ReplaceAllStringFunc(s, func(m string) string {
		sub := envRE.FindStringSubmatch(m)
		if v := getenv(sub[1]); v != "" {
			return v
		}
		return strings.TrimSpace(sub[2])
	})
}
