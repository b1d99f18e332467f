package deploy

import (
	"bytes"
	"slices"

	"github.com/oakestra/netmanager/node-net-manager/events"
	"github.com/oakestra/netmanager/node-net-manager/netenv"
)

// redeploy is what a deploy does about the instance's existing record.
type redeploy int

const (
	deployFresh  redeploy = iota // no record: deploy
	answerSame                   // the same request again: answer with the record
	replaceStale                 // the record's container is gone: tear it down, deploy
	refuseClash                  // another live deployment holds the instance: 409
)

// decideRedeploy chooses, for an instance that may already be deployed, as
// the NodeEngine needs it: it retries a deploy after a failed start without
// undeploying, with the new container's PID. alive says whether the
// record's process still exists.
func decideRedeploy(rec *Record, req Request, ports []netenv.PortMapping, alive bool) redeploy {
	switch {
	case rec == nil:
		return deployFresh
	case rec.Kind != req.Kind:
		return refuseClash
	case rec.Kind == KindContainer && !alive:
		return replaceStale
	case rec.PID == req.PID && slices.Equal(rec.PortMappings, ports) && sameModules(rec.EbpfModules, req.EbpfModules):
		return answerSame
	}
	return refuseClash
}

func sameModules(a, b []events.Module) bool {
	return slices.EqualFunc(a, b, func(x, y events.Module) bool { return x.Name == y.Name && bytes.Equal(x.Config, y.Config) })
}
