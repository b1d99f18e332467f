// Command vtable renders the verifier budget's counts (the JSON lines
// TestVerifierBudget writes to VERIFIER_OUT, one file or many, from the
// machine's kernel and each kernel of the matrix) as a Markdown table: a row
// per program, a column per kernel. `make bench` puts it in
// docs/benchmarks.md.
//
//	go run ./test/verifier/vtable FILE...
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
)

// count mirrors a line of VERIFIER_OUT (verifier.Count).
type count struct {
	Kernel  string `json:"kernel"`
	Object  string `json:"object"`
	Program string `json:"program"`
	Insns   int    `json:"insns"`
	Error   string `json:"error,omitempty"`
}

func main() {
	var all []count
	for _, path := range os.Args[1:] {
		cs, err := read(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "vtable:", err)
			os.Exit(1)
		}
		all = append(all, cs...)
	}
	if len(all) == 0 {
		fmt.Fprintln(os.Stderr, "vtable: no counts (usage: vtable FILE...)")
		os.Exit(2)
	}
	render(os.Stdout, all, 100_000)
}

func read(path string) ([]count, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []count
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		var c count
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		out = append(out, c)
	}
	return out, sc.Err()
}

// render writes the table: kernels as columns in version order, programs
// as rows in name order; a refused program shows "refused" (with the count
// the verifier reached), one over budget is marked.
func render(w io.Writer, cs []count, budget int) {
	var kernels, progs []string
	cell := map[[2]string]string{}
	for _, c := range cs {
		p := c.Object + " " + c.Program
		if !slices.Contains(kernels, c.Kernel) {
			kernels = append(kernels, c.Kernel)
		}
		if !slices.Contains(progs, p) {
			progs = append(progs, p)
		}
		v := group(c.Insns)
		switch {
		case c.Error != "":
			v = "**refused** (" + v + ")"
		case c.Insns > budget:
			v = "**" + v + "** (over)"
		}
		cell[[2]string{p, c.Kernel}] = v
	}
	slices.SortFunc(kernels, compareVersions)
	slices.Sort(progs)
	fmt.Fprintf(w, "| program | %s |\n|---|%s\n", strings.Join(kernels, " | "), strings.Repeat("---|", len(kernels)))
	for _, p := range progs {
		row := make([]string, len(kernels))
		for i, k := range kernels {
			if row[i] = cell[[2]string{p, k}]; row[i] == "" {
				row[i] = "–"
			}
		}
		fmt.Fprintf(w, "| %s | %s |\n", p, strings.Join(row, " | "))
	}
}

// group writes n with thousands separated by commas.
func group(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// compareVersions orders kernel releases by their leading numbers
// (6.1.0-… < 6.12.100… < 6.18.44… < 7.2.13…).
func compareVersions(a, b string) int {
	pa, pb := numbers(a), numbers(b)
	for i := 0; i < len(pa) && i < len(pb); i++ {
		if pa[i] != pb[i] {
			return pa[i] - pb[i]
		}
	}
	if d := len(pa) - len(pb); d != 0 {
		return d
	}
	return strings.Compare(a, b)
}

func numbers(release string) []int {
	var out []int
	for _, f := range strings.FieldsFunc(release, func(r rune) bool { return r < '0' || r > '9' }) {
		n, _ := strconv.Atoi(f)
		out = append(out, n)
		if len(out) == 3 {
			break
		}
	}
	return out
}
