// Package netaddr holds the one rule for what counts as a loopback listen
// address, shared by `schnitzel serve` and the HTTP ingest source, so that
// both refuse the same addresses without TLS and credentials.
package netaddr

import (
	"net"
	"strings"
)

// Loopback reports whether host (the host part of a listen address) only
// reaches this machine: "localhost" or a loopback IP. An empty host (every
// interface) is not loopback.
func Loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}
