// Package e2e holds the SAKURA Cloud API simulator, the local sandbox cluster
// and the end-to-end tests. It is its own module so that the heavy tools and
// test-only code never enter the product's go.mod; product code never imports it.
package e2e
