// Command kube-apiserver builds the upstream Kubernetes API server from the Go module
// proxy, so that raas tests and `make run` talk to a real control plane.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
