package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/oakestra/netmanager/node-net-manager/client"
)

// env is what a command runs with.
type env struct {
	ctx            context.Context
	c              *client.Client
	where          string // the API's address, for errors
	stdout, stderr io.Writer
	global         string // -o given before the command, "" if none
	grpc           string // sdwan --grpc
	leaf           *leaf  // the command running
	format         string // its output format, once its flags are parsed
}

// usageError is a bad command line (exit 2); usage, when set, prints the
// usage of the command concerned after the message.
type usageError struct {
	msg   string
	usage func(io.Writer)
}

func (e usageError) Error() string { return e.msg }

// errUsage is a usage error of the running command.
func (e *env) errUsage(format string, args ...any) error {
	l := e.leaf
	return usageError{msg: fmt.Sprintf(format, args...), usage: func(w io.Writer) {
		fmt.Fprintf(w, "usage: netmanagerctl %s\n", l.synopsis())
		fmt.Fprintf(w, "Run netmanagerctl %s --help for its flags.\n", l.path)
	}}
}

// errHelp is a help request answered (exit 0).
var errHelp = errors.New("help shown")

// formatValue is the value of -o.
type formatValue struct{ p *string }

func (f formatValue) String() string {
	if f.p == nil {
		return ""
	}
	return *f.p
}

func (f formatValue) Set(s string) error {
	if s != "table" && s != "json" {
		return fmt.Errorf("%q is not table or json", s)
	}
	*f.p = s
	return nil
}

// flags returns the running command's flag set, with -o (and, when alias
// is set, --json for -o json) if the command prints data.
func (e *env) flags(alias bool) *flag.FlagSet {
	fs := flag.NewFlagSet("netmanagerctl "+e.leaf.path, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if e.leaf.out == outNone {
		return fs
	}
	e.format = "table"
	if e.leaf.out == outJSON {
		e.format = "json"
	}
	if e.global != "" {
		e.format = e.global
	}
	fs.Var(formatValue{&e.format}, "o", "output format: table or json (the daemon's JSON, indented)")
	if alias {
		fs.BoolFunc("json", "the same as -o json", func(string) error { e.format = "json"; return nil })
	}
	return fs
}

// parse parses the command's flags, which may come before, between and
// after its positional arguments, and checks there are want of those (any
// number when want < 0). A help request prints the command's help.
func (e *env) parse(fs *flag.FlagSet, args []string, want int) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				e.printLeafHelp(e.stdout, fs)
				return nil, errHelp
			}
			return nil, e.errUsage("%v", err)
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if want >= 0 && len(pos) != want {
		if len(pos) > want {
			return nil, e.errUsage("%s: unexpected argument %q", e.leaf.path, pos[want])
		}
		return nil, e.errUsage("%s: missing arguments: %s", e.leaf.path, e.leaf.args)
	}
	return pos, nil
}

// printLeafHelp prints the running command's usage and flags.
func (e *env) printLeafHelp(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: netmanagerctl %s\n\n%s\n", e.leaf.synopsis(), e.leaf.summary)
	var flags bytes.Buffer
	fs.SetOutput(&flags)
	fs.PrintDefaults()
	if flags.Len() > 0 {
		fmt.Fprintf(w, "\nflags:\n%s", flags.String())
	}
}

// call wraps a failure to reach the daemon; the daemon's own answers
// (*client.Error) pass as they are.
func (e *env) call(err error) error {
	var ce *client.Error
	if err == nil || errors.As(err, &ce) {
		return err
	}
	return fmt.Errorf("cannot reach the NetManager at %s: %w", e.where, err)
}

// renderer prints a 2xx answer's JSON for people.
type renderer func(w io.Writer, data []byte) error

// show GETs path and prints the answer.
func (e *env) show(path string, r renderer) error {
	return e.send("GET", path, nil, r)
}

// send sends body (nil: none) and prints the answer: its JSON indented
// with -o json, else through r.
func (e *env) send(method, path string, body []byte, r renderer) error {
	data, err := e.c.Send(e.ctx, method, path, body)
	if err != nil {
		return e.call(err)
	}
	return e.print(data, r)
}

func (e *env) print(data []byte, r renderer) error {
	if e.format == "json" {
		return writeIndented(e.stdout, data)
	}
	if err := r(e.stdout, data); err != nil {
		return fmt.Errorf("bad answer from the NetManager: %w", err)
	}
	return nil
}

// writeIndented writes JSON indented by two spaces.
func writeIndented(w io.Writer, data []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, bytes.TrimSpace(data), "", "  "); err != nil {
		return fmt.Errorf("bad answer from the NetManager: not JSON: %w", err)
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}

// readInput reads a file, or standard input for "-".
func readInput(path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(os.Stdin)
	}
	return os.ReadFile(path)
}

func isHelp(arg string) bool { return slices.Contains([]string{"-h", "-help", "--help", "help"}, arg) }
