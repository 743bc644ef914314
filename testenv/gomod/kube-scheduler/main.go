// Command kube-scheduler is a thin wrapper around the upstream entry point of
// k8s.io/kubernetes, built from Go modules at the pinned version.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-scheduler/app"
)

func main() {
	os.Exit(cli.Run(app.NewSchedulerCommand()))
}
