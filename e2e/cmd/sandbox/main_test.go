package main

import (
	"strings"
	"testing"
)

func TestPrintState(t *testing.T) {
	state := `{"zone":"is1a","loadBalancers":[{"ID":113100000018,"Name":"k8s-web","Tags":["k8s.usacloud.jp/cluster=sandbox"],
	  "Instance":{"Status":"up"},"Remark":{"Servers":[{"IPAddress":"203.0.113.13"}]},
	  "Settings":{"LoadBalancer":[{"VirtualIPAddress":"203.0.113.9","Port":"80","Servers":[{"IPAddress":"203.0.113.10","Enabled":"True"},{"IPAddress":"203.0.113.11","Enabled":"True"}]}]}}]}`
	var b strings.Builder
	if err := printState(&b, []byte(state)); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"1 load balancer", "k8s-web", "113100000018", "up", "203.0.113.13", "203.0.113.9:80", "203.0.113.10,203.0.113.11", "k8s.usacloud.jp/cluster=sandbox"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if err := printState(&b, []byte("not json")); err == nil {
		t.Error("want an error for a bad state")
	}
}
