// Package archtest checks the module's dependency rule (docs/architecture.md):
// which packages each package may import. It has only tests.
package archtest
