// Package config is the NetManager's configuration: defaults, a JSON file, and
// command-line flags that override the file.
package config
