// Command custodian is the compliance recording and transcription gateway.
// This file only dispatches to one file per subcommand.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

var version = "dev"

// command is one subcommand: run gets the arguments after its name.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var commands = map[string]command{}

func register(name, summary string, run func(ctx context.Context, args []string, stdout, stderr io.Writer) error) {
	commands[name] = command{summary: summary, run: run}
}

// subcommand is one verb of a command group such as `recording get`.
type subcommand struct {
	name string
	run  func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// registerGroup registers a command that only dispatches to its
// subcommands, named in the order the usage error lists them.
func registerGroup(name, summary string, subs ...subcommand) {
	register(name, summary, func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		sub, rest := splitCommand(args)
		names := make([]string, len(subs))
		for i, s := range subs {
			if s.name == sub {
				return s.run(ctx, rest, stdout, stderr)
			}
			names[i] = s.name
		}
		return usageErr("%s: want a subcommand: %s", name, strings.Join(names, ", "))
	})
}

// errUsage marks errors that are the caller's fault (exit status 2).
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "custodian: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	if err := cmd.run(ctx, args[1:], stdout, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "custodian %s: %v\n", args[0], err)
		if errors.Is(err, errUsage) {
			return 2
		}
		var ec exitCoder
		if errors.As(err, &ec) {
			return ec.ExitCode()
		}
		return 1
	}
	return 0
}

type exitCoder interface{ ExitCode() int }

func usage(w io.Writer) {
	fmt.Fprintln(w, "Custodian: compliance recording and transcription gateway")
	fmt.Fprintln(w, "\nUsage: custodian <command> [flags]\n\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-22s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nEvery command that works on local state takes --config FILE and --data DIR\n(env CUSTODIAN_CONFIG, CUSTODIAN_DATA). Run `custodian <command> -h` for its flags.")
}

// usageErr formats a usage error.
func usageErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
}

// splitCommand splits "recording get" style nested commands.
func splitCommand(args []string) (string, []string) {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return "", args
	}
	return args[0], args[1:]
}
