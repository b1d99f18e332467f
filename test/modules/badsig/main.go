// Command badsig is a test-only module whose New has the wrong signature: the
// eBPF Manager must refuse it with 422 and load nothing.
package main

// New does not match module.NewFunc.
func New() error { return nil }

func main() {}
