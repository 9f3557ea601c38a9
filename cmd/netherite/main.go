// Command netherite is the command line of Netherite for Go.
//
//	netherite demo    run the sample workflows and print what happened
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func usage(w io.Writer) {
	fmt.Fprintln(w, `usage: netherite <command> [flags]

commands:
  demo    run the sample workflows (hello sequence, fan-out/fan-in,
          counter entity, bank transfers) and print what happened`)
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "demo":
		fs := flag.NewFlagSet("demo", flag.ContinueOnError)
		fs.SetOutput(stderr)
		if err := fs.Parse(args[1:]); err != nil {
			return 2
		}
		if err := demo(stdout); err != nil {
			fmt.Fprintln(stderr, "netherite demo:", err)
			return 1
		}
		return 0
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "netherite: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}
