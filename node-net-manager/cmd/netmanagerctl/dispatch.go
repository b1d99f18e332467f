package main

import (
	"fmt"
	"io"
	"strings"
)

// A leaf is one command: the words that name it ("ID" stands for a module
// instance's id), what follows them, and what it does.
type leaf struct {
	path    string
	args    string // the synopsis after the path
	summary string
	out     outMode // whether and how it prints data
	run     func(e *env, ids, args []string) error
}

// outMode says whether a command takes -o, and its default format.
type outMode int

const (
	outNone  outMode = iota // prints no data (or prints it as is): no -o
	outTable                // -o table (default) or json
	outJSON                 // -o json (default) or table
)

func (l *leaf) words() []string { return strings.Fields(l.path) }

func (l *leaf) synopsis() string { return strings.TrimSpace(l.path + " " + l.args) }

// match is how far args match a leaf: the words matched, the ids bound,
// and whether the whole path matched.
type match struct {
	l    *leaf
	n    int
	ids  []string
	full bool
}

func matchLeaf(l *leaf, args []string) match {
	m := match{l: l}
	for _, w := range l.words() {
		if m.n >= len(args) {
			return m
		}
		a := args[m.n]
		switch {
		case w == "ID" && isID(a) && !literalAt(args[:m.n], a):
			m.ids = append(m.ids, a)
		case w != a:
			return m
		}
		m.n++
	}
	m.full = true
	return m
}

func isID(a string) bool { return a != "" && !strings.HasPrefix(a, "-") }

// literalAt reports whether a command has the word after prefix: there it
// is that word, not an ID ("sdwan list", not "sdwan ID ...").
func literalAt(prefix []string, word string) bool {
	for i := range leaves {
		ws := leaves[i].words()
		if len(ws) <= len(prefix) || ws[len(prefix)] != word {
			continue
		}
		same := true
		for j, w := range ws[:len(prefix)] {
			same = same && (w == prefix[j] || w == "ID" && isID(prefix[j]))
		}
		if same {
			return true
		}
	}
	return false
}

// resolve finds the command args name. Without one it returns the words
// matched (a group such as "modules" or "firewall 1 rules") and the leaves
// under it, so the caller can print the group's usage.
func resolve(args []string) (best match, group []string, under []*leaf) {
	longest := 0
	for i := range leaves {
		m := matchLeaf(&leaves[i], args)
		switch {
		case m.full && (best.l == nil || m.n > best.n):
			best = m
		case !m.full && m.n > longest:
			longest = m.n
		}
	}
	if best.l != nil && best.n >= longest {
		return best, nil, nil
	}
	group = args[:longest]
	for i := range leaves {
		if m := matchLeaf(&leaves[i], args); m.n == longest && longest > 0 {
			under = append(under, &leaves[i])
		}
	}
	return match{}, group, under
}

// groupName is the group's words with the ids put back as ID.
func groupName(group []string, under []*leaf) string {
	if len(under) == 0 {
		return strings.Join(group, " ")
	}
	return strings.Join(under[0].words()[:len(group)], " ")
}

// printLeaves prints each leaf's synopsis and summary.
func printLeaves(w io.Writer, ls []*leaf) {
	for _, l := range ls {
		s := l.synopsis()
		if len(s) > 78 {
			s = l.path + " FLAGS"
		}
		if len(s) <= 34 {
			fmt.Fprintf(w, "  %-34s  %s\n", s, l.summary)
			continue
		}
		fmt.Fprintf(w, "  %s\n  %-34s  %s\n", s, "", l.summary)
	}
}

func allLeaves() []*leaf {
	out := make([]*leaf, len(leaves))
	for i := range leaves {
		out[i] = &leaves[i]
	}
	return out
}

const globalUsage = `usage: netmanagerctl [--addr HOST:PORT | --socket PATH] [-o table|json] COMMAND [ARGS] [FLAGS]

Global flags (before the command):
  --addr HOST:PORT   the NetManager's HTTP API (default 127.0.0.1:6000)
  --socket PATH      the API's unix socket instead (e.g. /etc/netmanager/netmanager.sock)
  -o table|json      output format of every command that prints data; a command's own
                     -o wins. json is the daemon's JSON, indented. --json is -o json.

Exit status: 0 success, 2 usage error, 3 the daemon refused the request (HTTP 4xx,
or a gRPC refusal; its message is printed), 1 any other failure. doctor exits 1
when the report is unhealthy (a problem of severity error), 0 when it is healthy.

`

func printUsage(w io.Writer) {
	fmt.Fprint(w, globalUsage)
	fmt.Fprintln(w, "Commands (ID is a module instance's id, as modules list shows it):")
	printLeaves(w, allLeaves())
	fmt.Fprintln(w, "\nRun netmanagerctl COMMAND --help for a command's flags.")
}

func helpHint(w io.Writer) { fmt.Fprintln(w, "Run netmanagerctl help for the commands.") }

// printGroup prints the usage of the commands under a group.
func printGroup(w io.Writer, name string, under []*leaf) {
	fmt.Fprintf(w, "usage: netmanagerctl %s ...\n\n", name)
	printLeaves(w, under)
	fmt.Fprintf(w, "\nRun netmanagerctl %s SUBCOMMAND --help for its flags.\n", name)
}

// helpCmd is "help [COMMAND...]": the usage of everything, a group or a command.
func helpCmd(e *env, words []string) error {
	if len(words) == 0 {
		printUsage(e.stdout)
		return nil
	}
	m, group, under := resolve(words)
	switch {
	case m.l != nil && m.n == len(words):
		e.leaf = m.l
		return m.l.run(e, m.ids, []string{"--help"})
	case len(under) > 0 && len(group) == len(words):
		printGroup(e.stdout, groupName(group, under), under)
		return nil
	}
	return usageError{msg: fmt.Sprintf("help: no command %q", strings.Join(words, " "))}
}

// dispatch runs the command args name, or answers for a group.
func dispatch(e *env, args []string) error {
	if args[0] == "help" {
		return helpCmd(e, args[1:])
	}
	m, group, under := resolve(args)
	if m.l != nil {
		e.leaf = m.l
		return m.l.run(e, m.ids, args[m.n:])
	}
	if len(under) == 0 {
		return usageError{msg: fmt.Sprintf("unknown command %q", args[0]), usage: helpHint}
	}
	name := groupName(group, under)
	show := func(w io.Writer) { printGroup(w, name, under) }
	if len(args) > len(group) {
		next := args[len(group)]
		switch {
		case isHelp(next):
			show(e.stdout)
			return nil
		case !strings.HasPrefix(next, "-"):
			return usageError{msg: fmt.Sprintf("%s: unknown subcommand %q", name, next), usage: show}
		}
	}
	return usageError{msg: name + " needs a subcommand", usage: show}
}
