package api

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/oakestra/netmanager/node-net-manager/httpjson"
)

// Identity is what the authorization asks the kernel and the system: who
// owns a connection, and who is in the API's group. The daemon's asks the
// kernel (cmd/netmanager/listen_peer.go); tests fake it.
type Identity interface {
	// Peer says who is at the other end of c.
	Peer(c net.Conn) Peer
	// Group is the group whose members may use the API on TCP (the
	// unix socket file's group); ok is false when there is none.
	Group() (g Group, ok bool)
	// Member says whether the user uid is a member of group gid.
	Member(uid, gid uint32) bool
}

// Group is a unix group.
type Group struct {
	GID  uint32
	Name string
}

// Access is who may use the API, and the audit trail of what they did.
type Access struct {
	Identity Identity
	// Token is the bearer token a TCP caller may send; "" accepts none.
	Token string
	// TokenFile is where the token is, named in refusals.
	TokenFile string
	Audit     *Audit // nil: nothing is counted
	Log       logrus.FieldLogger
}

type connKey struct{}

// connInfo is one connection and, once asked, its peer.
type connInfo struct {
	conn net.Conn
	once sync.Once
	peer Peer
}

// ConnContext is the http.Server's ConnContext: it records each connection
// for the authorization to ask the kernel about (once per connection).
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, &connInfo{conn: c})
}

// peer is who is at the other end of r's connection.
func (a *Access) peer(r *http.Request) Peer {
	ci, ok := r.Context().Value(connKey{}).(*connInfo)
	if !ok || a.Identity == nil {
		return Peer{Transport: TransportUnknown}
	}
	ci.once.Do(func() { ci.peer = a.Identity.Peer(ci.conn) })
	return ci.peer
}

// isWrite says whether a request may change state: anything but a read.
func isWrite(method string) bool {
	return method != http.MethodGet && method != http.MethodHead && method != http.MethodOptions
}

// Middleware answers only authorized callers (every route but GET
// /healthz), and logs and counts every write with who made it and its
// outcome, and every refusal.
func (a *Access) Middleware(next http.Handler) http.Handler {
	if a.Log == nil {
		a.Log = logrus.StandardLogger()
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == "/healthz" {
			next.ServeHTTP(w, r)
			return
		}
		p := a.peer(r)
		in := AuthInput{Peer: p, Token: checkToken(r.Header.Get("Authorization"), a.Token)}
		g, hasGroup := Group{}, false
		if p.Transport == TransportTCP && p.Known && p.UID != 0 && a.Identity != nil {
			if g, hasGroup = a.Identity.Group(); hasGroup {
				in.InGroup = a.Identity.Member(p.UID, g.GID)
			}
		}
		d := Decide(in)
		if d.Verdict != Allow {
			a.refuse(w, r, d, p)
			return
		}
		if !isWrite(r.Method) {
			next.ServeHTTP(w, r)
			return
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		a.Audit.countWrite(r.Method, routeGroup(r.URL.Path), sw.status, d.WhoKind)
		a.Log.WithFields(whoFields(d.WhoKind, p)).WithFields(logrus.Fields{"method": r.Method, "path": r.URL.Path, "status": sw.status}).
			Info("API write")
	})
}

// refuse answers a refused request (401 or 403), logs and counts it.
func (a *Access) refuse(w http.ResponseWriter, r *http.Request, d Decision, p Peer) {
	status := http.StatusUnauthorized
	if d.Verdict == Forbidden {
		status = http.StatusForbidden
	}
	if isWrite(r.Method) {
		a.Audit.countWrite(r.Method, routeGroup(r.URL.Path), status, "none")
	}
	a.Audit.countRefused(d.Reason)
	a.Log.WithFields(whoFields("none", p)).WithFields(logrus.Fields{"method": r.Method, "path": r.URL.Path, "status": status, "reason": d.Reason}).
		Info("API request refused")
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="netmanager"`)
	}
	httpjson.WriteJSON(w, status, httpjson.ErrorBody{Error: a.rule() + "; " + d.Detail})
}

// rule says who the API on TCP answers.
func (a *Access) rule() string {
	who := []string{"root"}
	if a.Identity != nil {
		if g, ok := a.Identity.Group(); ok {
			who = append(who, fmt.Sprintf("members of group %s (the unix socket's)", groupName(g)))
		}
	}
	if a.Token != "" {
		who = append(who, "a bearer token from "+a.TokenFile)
	}
	s := who[0]
	for i, x := range who[1:] {
		if i == len(who)-2 {
			s += " or " + x
		} else {
			s += ", " + x
		}
	}
	return "the API on TCP answers " + s
}

func groupName(g Group) string {
	if g.Name != "" {
		return g.Name
	}
	return strconv.FormatUint(uint64(g.GID), 10)
}

// whoFields are a caller's log fields.
func whoFields(kind string, p Peer) logrus.Fields {
	f := logrus.Fields{"who": kind, "transport": p.Transport.String()}
	if p.Known {
		f["uid"] = p.UID
		if p.PID != 0 {
			f["pid"] = p.PID
		}
	}
	return f
}

// routeGroups are the first path segments counted by name; any other is
// "other", so a caller cannot grow the metrics without bound.
var routeGroups = map[string]bool{"register": true, "container": true, "docker": true, "unikernel": true, "ebpf": true,
	"services": true, "proxy": true, "version": true, "metrics": true, "openapi.json": true, "healthz": true}

func routeGroup(path string) string {
	seg, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	if routeGroups[seg] {
		return seg
	}
	return "other"
}
