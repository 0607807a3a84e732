// Command raas reconciles tenant definitions from a Git repository onto a host cluster:
// one vcluster with KubeRay per tenant, and Volcano queues and policies for their Ray
// workloads. See `raas --help`.
package main

import (
	"errors"
	"fmt"
	"os"
	"time"
)

func main() {
	err := newRootCommand(time.Now).Execute()
	var exit *exitError
	switch {
	case errors.As(err, &exit):
		if exit.msg != "" {
			fmt.Fprintln(os.Stderr, "raas:", exit.msg)
		}
		os.Exit(exit.code)
	case err != nil:
		fmt.Fprintln(os.Stderr, "raas:", err)
		os.Exit(2)
	}
}

// exitError ends the command with a given exit code, for commands whose code carries
// meaning (validate, diff).
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }
