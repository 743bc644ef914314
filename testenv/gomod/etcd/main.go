// Command etcd is a thin wrapper around the upstream etcd server entry point,
// built from Go modules at the version pinned in testenv/versions.py.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
