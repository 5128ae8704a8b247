//go:build !unix

package graph

import "os"

func openGraph(path string) (*os.File, error) { return os.Open(path) }
