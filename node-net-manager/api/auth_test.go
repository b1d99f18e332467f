package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/oakestra/netmanager/node-net-manager/deploy"
	"github.com/oakestra/netmanager/node-net-manager/httpjson"
)

func TestDecide(t *testing.T) {
	tcp := func(uid uint32) Peer { return Peer{Transport: TransportTCP, Known: true, UID: uid} }
	unknown := Peer{Transport: TransportTCP, Why: "no such socket"}
	for _, c := range []struct {
		name    string
		in      AuthInput
		verdict Verdict
		who     string
		reason  string
	}{
		{"unix socket, any user", AuthInput{Peer: Peer{Transport: TransportUnix, Known: true, UID: 1000}}, Allow, "unix", ""},
		{"TLS, a verified client certificate", AuthInput{Peer: Peer{Transport: TransportTLS, Known: true}}, Allow, "cert", ""},
		{"unix socket, peer unknown", AuthInput{Peer: Peer{Transport: TransportUnix}}, Allow, "unix", ""},
		{"unix socket, wrong token", AuthInput{Peer: Peer{Transport: TransportUnix}, Token: TokenWrong}, Allow, "unix", ""},
		{"tcp root", AuthInput{Peer: tcp(0)}, Allow, "uid", ""},
		{"tcp group member", AuthInput{Peer: tcp(1000), InGroup: true}, Allow, "uid", ""},
		{"tcp other user", AuthInput{Peer: tcp(65534)}, Forbidden, "", ReasonPeerNotAllowed},
		{"tcp other user, right token", AuthInput{Peer: tcp(65534), Token: TokenRight}, Allow, "token", ""},
		{"tcp other user, wrong token", AuthInput{Peer: tcp(65534), Token: TokenWrong}, Unauthorized, "", ReasonWrongToken},
		{"tcp root, wrong token", AuthInput{Peer: tcp(0), Token: TokenWrong}, Unauthorized, "", ReasonWrongToken},
		{"tcp unknown peer", AuthInput{Peer: unknown}, Unauthorized, "", ReasonPeerUnknown},
		{"tcp unknown peer, right token", AuthInput{Peer: unknown, Token: TokenRight}, Allow, "token", ""},
		{"tcp unknown peer in no group", AuthInput{Peer: unknown, InGroup: true}, Unauthorized, "", ReasonPeerUnknown},
		{"no transport recorded", AuthInput{Peer: Peer{Known: true}}, Unauthorized, "", ReasonNoTransport},
		{"no transport, right token", AuthInput{Token: TokenRight}, Unauthorized, "", ReasonNoTransport},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := Decide(c.in)
			if d.Verdict != c.verdict || d.WhoKind != c.who || d.Reason != c.reason {
				t.Errorf("Decide(%+v) = %+v, want verdict %d who %q reason %q", c.in, d, c.verdict, c.who, c.reason)
			}
		})
	}
}

func TestCheckToken(t *testing.T) {
	for _, c := range []struct {
		header, token string
		want          TokenCheck
	}{
		{"", "s3cret", TokenNone},
		{"Bearer s3cret", "s3cret", TokenRight},
		{"Bearer s3cret ", "s3cret", TokenRight},
		{"Bearer s3cre", "s3cret", TokenWrong},
		{"Bearer s3cretx", "s3cret", TokenWrong},
		{"bearer s3cret", "s3cret", TokenWrong},
		{"Basic s3cret", "s3cret", TokenWrong},
		{"s3cret", "s3cret", TokenWrong},
		{"Bearer ", "", TokenWrong}, // no token configured: nothing matches
		{"Bearer", "", TokenWrong},
	} {
		if got := checkToken(c.header, c.token); got != c.want {
			t.Errorf("checkToken(%q, %q) = %d, want %d", c.header, c.token, got, c.want)
		}
	}
}

// fakeIdentity answers every connection with peer, and says members of
// group 1234 ("netmanager") are the users in members.
type fakeIdentity struct {
	peer    Peer
	members map[uint32]bool
	asked   int
}

func (f *fakeIdentity) Peer(net.Conn) Peer { f.asked++; return f.peer }
func (f *fakeIdentity) Group() (Group, bool) {
	return Group{GID: 1234, Name: "netmanager"}, true
}
func (f *fakeIdentity) Member(uid, gid uint32) bool { return gid == 1234 && f.members[uid] }

// authRouter is a router with Access over fake, with a write route of the
// eBPF Manager's kind mounted after NewRouter, as the daemon does.
func authRouter(fake *fakeIdentity) (http.Handler, *fakeDeployer, *Audit, *test.Hook) {
	log, hook := test.NewNullLogger()
	log.SetLevel(logrus.DebugLevel)
	fd := &fakeDeployer{recs: map[string]deploy.Record{}}
	audit := &Audit{}
	r := NewRouter(Options{Deployer: fd, Log: log, Access: &Access{Identity: fake, Token: "s3cret", TokenFile: "/etc/netmanager/token", Audit: audit, Log: log}})
	r.PathPrefix("/ebpf").Subrouter().HandleFunc("/{id}/rules", func(w http.ResponseWriter, _ *http.Request) {
		httpjson.WriteJSON(w, http.StatusCreated, map[string]string{"ok": "yes"})
	}).Methods(http.MethodPost)
	return r, fd, audit, hook
}

// serve sends one request as if on a connection the listener recorded.
func serve(h http.Handler, method, path, body, authz string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	req = req.WithContext(ConnContext(context.Background(), nil))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

const deployBody = `{"pid": 42, "serviceName": "app.ns.svc.ns", "instanceNumber": 0}`

func TestAccessRefusesOnEveryRoute(t *testing.T) {
	fake := &fakeIdentity{peer: Peer{Transport: TransportTCP, Known: true, UID: 65534}}
	h, fd, audit, _ := authRouter(fake)
	for _, c := range []struct{ method, path, body, authz string }{
		{"POST", "/container/deploy", deployBody, ""},
		{"POST", "/container/deploy", deployBody, "Bearer wrong"},
		{"POST", "/register", `{"client_id": "x"}`, ""},
		{"GET", "/services", "", ""},
		{"GET", "/version", "", ""},
		{"POST", "/ebpf/1/rules", `{}`, ""},       // mounted after NewRouter, in a subrouter
		{"DELETE", "/healthz", "", ""},            // method not allowed
		{"DELETE", "/ebpf", "", ""},               // no such route here
		{"GET", "/nosuch", "", "Bearer s3cretX"},  // not found
		{"HEAD", "/services", "", "Bearer s3cre"}, // a read with a wrong token
	} {
		w := serve(h, c.method, c.path, c.body, c.authz)
		want := http.StatusForbidden
		if c.authz != "" {
			want = http.StatusUnauthorized
		}
		if w.Code != want {
			t.Errorf("%s %s (%q): %d %s, want %d", c.method, c.path, c.authz, w.Code, w.Body, want)
		}
		var eb httpjson.ErrorBody
		if err := json.Unmarshal(w.Body.Bytes(), &eb); err != nil && c.method != "HEAD" {
			t.Errorf("%s %s: body %q: %v", c.method, c.path, w.Body, err)
		}
		if c.method != "HEAD" && !strings.HasPrefix(eb.Error, "the API on TCP answers root, members of group netmanager (the unix socket's) or a bearer token from /etc/netmanager/token; ") {
			t.Errorf("%s %s: message %q", c.method, c.path, eb.Error)
		}
	}
	if len(fd.recs) != 0 || fd.last.ServiceName != "" {
		t.Errorf("a refused deploy reached the deployer: %+v", fd.last)
	}
	if w := serve(h, "POST", "/container/deploy", deployBody, ""); !strings.HasSuffix(strings.TrimSpace(w.Body.String()), `this connection's process runs as uid 65534"}`) {
		t.Errorf("403 does not name the uid: %s", w.Body)
	}
	if w := serve(h, "GET", "/healthz", "", ""); w.Code != http.StatusOK {
		t.Errorf("GET /healthz: %d, want 200 for anyone", w.Code)
	}
	refused := audit.Refused()
	want := []RefusedCount{{ReasonNoTransport, 0}, {ReasonPeerNotAllowed, 8}, {ReasonPeerUnknown, 0}, {ReasonWrongToken, 3}}
	if !slices.Equal(refused, want) {
		t.Errorf("refused counts: %+v", refused)
	}
}

func TestAccessAllows(t *testing.T) {
	for _, c := range []struct {
		name  string
		peer  Peer
		authz string
		who   string
	}{
		{"root on tcp", Peer{Transport: TransportTCP, Known: true, UID: 0}, "", "uid"},
		{"group member on tcp", Peer{Transport: TransportTCP, Known: true, UID: 1000}, "", "uid"},
		{"token on tcp", Peer{Transport: TransportTCP, Known: true, UID: 65534}, "Bearer s3cret", "token"},
		{"token, peer unknown", Peer{Transport: TransportTCP, Why: "gone"}, "Bearer s3cret", "token"},
		{"unix socket", Peer{Transport: TransportUnix, Known: true, UID: 1001, PID: 77}, "", "unix"},
	} {
		t.Run(c.name, func(t *testing.T) {
			fake := &fakeIdentity{peer: c.peer, members: map[uint32]bool{1000: true}}
			h, fd, audit, hook := authRouter(fake)
			if w := serve(h, "POST", "/container/deploy", deployBody, c.authz); w.Code != http.StatusOK {
				t.Fatalf("deploy: %d %s", w.Code, w.Body)
			}
			if len(fd.recs) != 1 {
				t.Errorf("the deploy did not reach the deployer")
			}
			if w := serve(h, "POST", "/ebpf/3/rules", "{}", c.authz); w.Code != http.StatusCreated {
				t.Fatalf("module route: %d %s", w.Code, w.Body)
			}
			if w := serve(h, "GET", "/services", "", c.authz); w.Code != http.StatusOK {
				t.Fatalf("services: %d %s", w.Code, w.Body)
			}
			want := []WriteCount{
				{WriteKey{"POST", "container", "200", c.who}, 1},
				{WriteKey{"POST", "ebpf", "201", c.who}, 1},
			}
			if got := audit.Writes(); len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
				t.Errorf("writes: %+v, want %+v", got, want)
			}
			var writes []*logrus.Entry
			for _, e := range hook.AllEntries() {
				if e.Message == "API write" {
					writes = append(writes, e)
				}
			}
			if len(writes) != 2 || writes[0].Level != logrus.InfoLevel || writes[0].Data["who"] != c.who ||
				writes[0].Data["path"] != "/container/deploy" || writes[0].Data["status"] != 200 || writes[1].Data["status"] != 201 {
				t.Errorf("audit log: %+v", writes)
			}
			if c.peer.Known && writes[0].Data["uid"] != c.peer.UID {
				t.Errorf("audit log names uid %v, want %d", writes[0].Data["uid"], c.peer.UID)
			}
			if c.peer.PID != 0 && writes[0].Data["pid"] != c.peer.PID {
				t.Errorf("audit log names pid %v, want %d", writes[0].Data["pid"], c.peer.PID)
			}
		})
	}
}

// A connection's peer is asked once, however many requests it carries.
func TestAccessAsksOncePerConnection(t *testing.T) {
	fake := &fakeIdentity{peer: Peer{Transport: TransportTCP, Known: true}}
	h, _, _, _ := authRouter(fake)
	ctx := ConnContext(context.Background(), nil)
	for range 3 {
		req := httptest.NewRequest("GET", "/services", nil).WithContext(ctx)
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	if fake.asked != 1 {
		t.Errorf("peer asked %d times for one connection, want 1", fake.asked)
	}
}

// A request whose connection was not recorded is refused.
func TestAccessWithoutConnContext(t *testing.T) {
	h, _, _, _ := authRouter(&fakeIdentity{peer: Peer{Transport: TransportUnix}})
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("POST", "/container/deploy", bytes.NewBufferString(deployBody)))
	if w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), "did not record") {
		t.Errorf("%d %s", w.Code, w.Body)
	}
}
