package test

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// scrapeMetric reads a node's metric from a /metrics URL: the first
// sample line that names the node id and the metric; -1 when absent or
// the endpoint does not answer.
func scrapeMetric(url, node, name string) float64 {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "#") || !strings.Contains(l, name) || !strings.Contains(l, `"`+node+`"`) {
			continue
		}
		f := strings.Fields(l)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			return v
		}
	}
	return -1
}
