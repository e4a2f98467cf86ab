package sakuraapi

import "github.com/sacloud/iaas-api-go"

// UseServerOp puts op under c's policy (budget, bounded retry, counting) in
// place of the library's server operations. It exists for tests that need a
// server API the library's fake lacks (its Find ignores Total and lists in
// random order, so it cannot page); production code never calls it.
func (c *Client) UseServerOp(op iaas.ServerAPI) {
	c.Servers = &serverOp{c, op}
}

// UseProxyLBOp puts op under c's policy in place of the library's ELB
// operations, for tests of that policy; production code never calls it.
func (c *Client) UseProxyLBOp(op iaas.ProxyLBAPI) {
	c.ProxyLBs = &proxyLBOp{c, op}
}
