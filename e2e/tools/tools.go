//go:build tools

// Package tools pins the Kubernetes control-plane binaries that the sandbox and
// the end-to-end tests build from the Go module proxy. They live in their own
// module so the product's go.mod never carries k8s.io/kubernetes.
package tools

import (
	_ "helm.sh/helm/v3/cmd/helm"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
