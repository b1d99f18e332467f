package api

import (
	"crypto/subtle"
	"fmt"
	"strings"
)

// Transport is how a request reached the API.
type Transport int

const (
	// TransportUnknown is a request whose connection the listener did
	// not record (ConnContext was not used): nobody vouches for it.
	TransportUnknown Transport = iota
	// TransportUnix is the unix socket: its file permissions decide who
	// connects, so every caller that got through is allowed.
	TransportUnix
	// TransportTCP is the loopback TCP listener.
	TransportTCP
	// TransportTLS is the TCP listener over TLS (tlsCert, tlsKey,
	// tlsClientCA): its handshake verified the caller's client
	// certificate before any request.
	TransportTLS
)

func (t Transport) String() string {
	switch t {
	case TransportUnix:
		return "unix"
	case TransportTCP:
		return "tcp"
	case TransportTLS:
		return "tls"
	}
	return "unknown"
}

// Peer is who is at the other end of a request's connection, as the kernel
// says (SO_PEERCRED on the unix socket, sock_diag on loopback TCP).
type Peer struct {
	Transport Transport
	// Known says the kernel named the process's user: UID (and, on the
	// unix socket, PID) are valid.
	Known bool
	UID   uint32
	PID   int32 // 0 when not known (TCP)
	// Why is, when not Known, why the kernel could not tell.
	Why string
}

// TokenCheck is what a request's Authorization header says.
type TokenCheck int

const (
	TokenNone  TokenCheck = iota // no Authorization header
	TokenRight                   // Bearer and the token
	TokenWrong                   // anything else
)

// checkToken compares the request's Authorization header with the token in
// constant time; an empty token matches nothing.
func checkToken(header, token string) TokenCheck {
	if header == "" {
		return TokenNone
	}
	got, ok := strings.CutPrefix(header, "Bearer ")
	if !ok || token == "" || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(token)) != 1 {
		return TokenWrong
	}
	return TokenRight
}

// AuthInput is everything the authorization decision depends on.
type AuthInput struct {
	Peer Peer
	// InGroup says Peer.UID is a member of the API's group (the unix
	// socket file's group); false when there is none.
	InGroup bool
	Token   TokenCheck
}

// Verdict is the outcome of the decision.
type Verdict int

const (
	Allow        Verdict = iota
	Unauthorized         // no or wrong credentials, or a peer the kernel cannot name (401)
	Forbidden            // a known peer that is not allowed (403)
)

// Decision is the verdict with who the caller is (for the audit trail) or
// why it is refused.
type Decision struct {
	Verdict Verdict
	// WhoKind is how the caller was recognised: unix (the socket's
	// peer), uid (a loopback TCP peer the kernel named), token, or cert
	// (a client certificate the TLS listener verified).
	WhoKind string
	// Reason is a refusal's class, a metrics label: wrong_token,
	// peer_unknown, peer_not_allowed, no_transport.
	Reason string
	// Detail is, for a refusal, what the caller's connection was: it ends
	// the error message.
	Detail string
}

// Refusal reasons (Decision.Reason).
const (
	ReasonWrongToken     = "wrong_token"
	ReasonPeerUnknown    = "peer_unknown"
	ReasonPeerNotAllowed = "peer_not_allowed"
	ReasonNoTransport    = "no_transport"
)

// Decide says whether a request may use the API. The unix socket's
// callers are allowed (its file permissions chose them), as are those of
// the TLS listener (its handshake verified their client certificates). On TCP: a bearer
// token, when sent, decides alone (right: allowed; wrong: 401); without
// one, the connection's process must run as root or as a member of the
// API's group (403 otherwise), and a process the kernel cannot name is 401.
func Decide(in AuthInput) Decision {
	switch in.Peer.Transport {
	case TransportUnix:
		return Decision{Verdict: Allow, WhoKind: "unix"}
	case TransportTLS:
		return Decision{Verdict: Allow, WhoKind: "cert"}
	case TransportTCP:
	default:
		return Decision{Verdict: Unauthorized, Reason: ReasonNoTransport, Detail: "the daemon did not record this request's connection"}
	}
	switch in.Token {
	case TokenRight:
		return Decision{Verdict: Allow, WhoKind: "token"}
	case TokenWrong:
		return Decision{Verdict: Unauthorized, Reason: ReasonWrongToken, Detail: "the Authorization header is not \"Bearer \" and the token"}
	}
	if !in.Peer.Known {
		return Decision{Verdict: Unauthorized, Reason: ReasonPeerUnknown, Detail: "the kernel could not tell which user this connection's process runs as: " + in.Peer.Why}
	}
	if in.Peer.UID == 0 || in.InGroup {
		return Decision{Verdict: Allow, WhoKind: "uid"}
	}
	return Decision{Verdict: Forbidden, Reason: ReasonPeerNotAllowed, Detail: fmt.Sprintf("this connection's process runs as uid %d", in.Peer.UID)}
}
