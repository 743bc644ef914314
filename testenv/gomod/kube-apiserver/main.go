// Command kube-apiserver is a thin wrapper around the upstream entry point of
// k8s.io/kubernetes, so that the binary is built from Go modules at the
// version pinned in testenv/versions.py.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
