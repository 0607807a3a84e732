// Command etcd builds the upstream etcd server from the Go module proxy, the storage
// behind the kube-apiserver that raas tests and `make run` use.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
