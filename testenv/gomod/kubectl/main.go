// Command kubectl is built only when the machine has none: a thin wrapper
// around k8s.io/kubectl at the pinned Kubernetes version.
package main

import (
	"k8s.io/component-base/cli"
	"k8s.io/kubectl/pkg/cmd"
)

func main() {
	cli.RunNoErrOutput(cmd.NewDefaultKubectlCommand())
}
