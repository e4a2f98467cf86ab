module github.com/sakura-ccm/sakura-cloud-controller-manager/e2e

go 1.26.0
