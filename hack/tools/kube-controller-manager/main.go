// Command kube-controller-manager builds the upstream Kubernetes controller manager from
// the Go module proxy, so that the twin's host runs the real controllers: quota status,
// node lifecycle, garbage collection, namespace deletion, Deployments and ReplicaSets.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	"k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

func main() {
	os.Exit(cli.Run(app.NewControllerManagerCommand()))
}
