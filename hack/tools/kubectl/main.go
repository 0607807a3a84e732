// Command kubectl builds the upstream kubectl from the Go module proxy, so that `make run`
// can tell a new user how to look at the local control plane.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubectl/pkg/cmd"
)

func main() {
	os.Exit(cli.Run(cmd.NewDefaultKubectlCommand()))
}
