//go:build tools

// Package tools pins helm's command for the builder: upstream's
// helm.sh/helm/v3/cmd/helm is itself a main package (its root command is not
// exported), so it cannot be called from a main.go of ours. This file only
// makes `go mod tidy` record the requirement; the builder then runs
// `go build helm.sh/helm/v3/cmd/helm` in this module, the upstream command
// unchanged. The build tag keeps the file out of that build.
package tools

import (
	_ "helm.sh/helm/v3/cmd/helm"
)
