// Command kube-scheduler builds the upstream Kubernetes scheduler from the Go module
// proxy, so that the twin's host binds default-scheduler pods to its simulated nodes.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	"k8s.io/kubernetes/cmd/kube-scheduler/app"
)

func main() {
	os.Exit(cli.Run(app.NewSchedulerCommand()))
}
