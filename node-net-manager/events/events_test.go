package events

import (
	"context"
	"errors"
	"strings"
	"testing"
)

type recorder struct{ log []string }

func (r *recorder) handler(name string, failOn Type, panicOn Type) Handler {
	return func(_ context.Context, ev Event) error {
		r.log = append(r.log, name+":"+string(ev.Type))
		if ev.Type == panicOn {
			panic("boom")
		}
		if ev.Type == failOn {
			return errors.New("refused")
		}
		return nil
	}
}

func created() Event { return Event{Type: ServiceCreated, Service: Service{ServiceName: "a.b.c.d"}} }

func TestDeliveredInSubscriptionOrder(t *testing.T) {
	var b Bus
	r := &recorder{}
	b.Subscribe("one", r.handler("one", "", ""))
	b.Subscribe("two", r.handler("two", "", ""))
	if err := b.Publish(context.Background(), created()); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(r.log, ","); got != "one:ServiceCreated,two:ServiceCreated" {
		t.Fatalf("order: %s", got)
	}
}

func TestFailedCreateIsUndoneInReverse(t *testing.T) {
	var b Bus
	r := &recorder{}
	b.Subscribe("one", r.handler("one", "", ""))
	b.Subscribe("two", r.handler("two", "", ""))
	b.Subscribe("three", r.handler("three", ServiceCreated, ""))
	b.Subscribe("four", r.handler("four", "", ""))
	err := b.Publish(context.Background(), created())
	if err == nil || !strings.Contains(err.Error(), "three") || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("error does not name the subscriber and cause: %v", err)
	}
	want := "one:ServiceCreated,two:ServiceCreated,three:ServiceCreated,two:ServiceRemoved,one:ServiceRemoved"
	if got := strings.Join(r.log, ","); got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func TestPanicIsAnError(t *testing.T) {
	var b Bus
	r := &recorder{}
	b.Subscribe("p", r.handler("p", "", ServiceCreated))
	err := b.Publish(context.Background(), created())
	if err == nil || !strings.Contains(err.Error(), "panic") {
		t.Fatalf("want panic error, got %v", err)
	}
}

func TestRemovedReachesEveryoneDespiteFailures(t *testing.T) {
	var b Bus
	r := &recorder{}
	b.Subscribe("one", r.handler("one", ServiceRemoved, ""))
	b.Subscribe("two", r.handler("two", "", ServiceRemoved))
	b.Subscribe("three", r.handler("three", "", ""))
	err := b.Publish(context.Background(), Event{Type: ServiceRemoved})
	if err == nil || !strings.Contains(err.Error(), "one") || !strings.Contains(err.Error(), "two") {
		t.Fatalf("want both failures reported, got %v", err)
	}
	if len(r.log) != 3 {
		t.Fatalf("not delivered to all: %v", r.log)
	}
}

func TestCancel(t *testing.T) {
	var b Bus
	r := &recorder{}
	cancel := b.Subscribe("one", r.handler("one", "", ""))
	b.Subscribe("two", r.handler("two", "", ""))
	cancel()
	cancel() // idempotent
	_ = b.Publish(context.Background(), created())
	if got := strings.Join(r.log, ","); got != "two:ServiceCreated" {
		t.Fatalf("got %s", got)
	}
}
