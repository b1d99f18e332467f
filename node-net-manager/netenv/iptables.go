package netenv

import (
	"fmt"
	"os/exec"
	"strings"
)

// Chains the NetManager owns; it never edits rules outside them except for
// the single jump into each.
const (
	chainDNAT    = "NETMANAGER-DNAT"
	chainMasq    = "NETMANAGER-POSTROUTING"
	chainForward = "NETMANAGER-FORWARD"
)

// ipt runs iptables or ip6tables.
type ipt struct{ bin string }

func (t ipt) run(args ...string) error {
	out, err := exec.Command(t.bin, append([]string{"-w", "10"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", t.bin, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// exists reports whether a rule is present (iptables -C).
func (t ipt) exists(table, chain string, rule ...string) bool {
	args := append([]string{"-t", table, "-C", chain}, rule...)
	return exec.Command(t.bin, append([]string{"-w", "10"}, args...)...).Run() == nil
}

// ensureChain creates an empty chain, flushing it if it exists.
func (t ipt) ensureChain(table, chain string) error {
	if err := t.run("-t", table, "-N", chain); err != nil {
		if ferr := t.run("-t", table, "-F", chain); ferr != nil {
			return err
		}
	}
	return nil
}

// ensureRule appends (or with insert, prepends) a rule unless it is present.
func (t ipt) ensureRule(table, chain string, insert bool, rule ...string) error {
	if t.exists(table, chain, rule...) {
		return nil
	}
	op := "-A"
	if insert {
		op = "-I"
	}
	return t.run(append([]string{"-t", table, op, chain}, rule...)...)
}

// deleteRule removes a rule; an absent rule is not an error.
func (t ipt) deleteRule(table, chain string, rule ...string) error {
	if !t.exists(table, chain, rule...) {
		return nil
	}
	return t.run(append([]string{"-t", table, "-D", chain}, rule...)...)
}

// deleteChain flushes and removes a chain; an absent chain is not an error.
func (t ipt) deleteChain(table, chain string) error {
	if t.run("-t", table, "-F", chain) != nil {
		return nil
	}
	return t.run("-t", table, "-X", chain)
}

// jump is a rule in a built-in chain that sends traffic into one of ours.
type jump struct {
	table, from string
	insert      bool
	rule        []string
}
