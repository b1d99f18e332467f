package main

import (
	"strings"
	"testing"
)

func TestRender(t *testing.T) {
	cs := []count{
		{Kernel: "7.2.13+deb14-amd64", Object: "modules/sdwan", Program: "nm_ingress", Error: "permission denied", Insns: 0},
		{Kernel: "6.12.100+deb12-amd64", Object: "modules/firewall", Program: "nm_ingress", Insns: 20071},
		{Kernel: "6.1.0-50-amd64", Object: "modules/firewall", Program: "nm_ingress", Insns: 24767},
		{Kernel: "6.18.44-fc", Object: "modules/firewall", Program: "nm_ingress", Insns: 1000001, Error: "argument list too long"},
		{Kernel: "6.1.0-50-amd64", Object: "modules/sdwan", Program: "nm_ingress", Insns: 100001},
	}
	var b strings.Builder
	render(&b, cs, 100_000)
	want := `| program | 6.1.0-50-amd64 | 6.12.100+deb12-amd64 | 6.18.44-fc | 7.2.13+deb14-amd64 |
|---|---|---|---|---|
| modules/firewall nm_ingress | 24,767 | 20,071 | **refused** (1,000,001) | – |
| modules/sdwan nm_ingress | **100,001** (over) | – | – | **refused** (0) |
`
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
}
