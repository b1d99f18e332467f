package module

import "testing"

func TestInterfaces(t *testing.T) {
	var s Interfaces
	svc := Attachment{Interface: Interface{Name: "oak1", Ifindex: 7, Service: &Service{Name: "a.b.c.d"}}}
	host := Attachment{Interface: Interface{Name: "eth1", Ifindex: 3}}
	s.Add(svc)
	s.Add(host)
	l := s.List()
	if len(l) != 2 || l[0].Name != "eth1" || l[1].Name != "oak1" {
		t.Fatalf("list %+v", l)
	}
	if l[1].DirectionName(HookEgress) != "ingress" || l[1].DirectionName(HookIngress) != "egress" {
		t.Fatal("service veth directions are the service's view")
	}
	if l[0].DirectionName(HookEgress) != "egress" || l[0].DirectionName(HookIngress) != "ingress" {
		t.Fatal("host interface directions are its own hooks")
	}
	s.Remove(svc)
	if l := s.List(); len(l) != 1 || l[0].Name != "eth1" {
		t.Fatalf("after remove %+v", l)
	}
}
