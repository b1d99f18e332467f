package main

import "github.com/oakestra/netmanager/node-net-manager/api"

// collectAudit adds the API's audit trail: every write answered (refused
// ones included, who_kind "none"), and every request refused, by reason.
func collectAudit(e sink, a *api.Audit) {
	for _, w := range a.Writes() {
		e.counter("netmanager_api_writes_total", "API requests that may change state (any method but GET/HEAD/OPTIONS), by method, route group (the path's first segment), status and how the caller was recognised (unix, uid, token; none: refused).",
			float64(w.Count), "method", w.Method, "route_group", w.RouteGroup, "status", w.Status, "who_kind", w.WhoKind)
	}
	for _, r := range a.Refused() {
		e.counter("netmanager_api_refused_total", "API requests refused by the authorization (401, 403), by reason: wrong_token, peer_unknown, peer_not_allowed, no_transport.",
			float64(r.Count), "reason", r.Reason)
	}
}
