package api

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"sync"
	"time"

	"github.com/gorilla/mux"
	"github.com/sirupsen/logrus"

	"github.com/oakestra/netmanager/node-net-manager/cluster"
	"github.com/oakestra/netmanager/node-net-manager/deploy"
	"github.com/oakestra/netmanager/node-net-manager/errdefs"
	"github.com/oakestra/netmanager/node-net-manager/events"
	"github.com/oakestra/netmanager/node-net-manager/httpjson"
)

// Deployer is what the routes need from the deploy manager.
type Deployer interface {
	Deploy(ctx context.Context, req deploy.Request) (deploy.Record, error)
	Undeploy(ctx context.Context, kind deploy.Kind, serviceName string, instance int) error
	List() []deploy.Record
}

// Registrar joins the node to its cluster at POST /register.
type Registrar interface {
	Register(ctx context.Context, clientID, clusterAddress string) (cluster.Registered, error)
	// ClientID is the id the node joined its cluster as, also when that
	// happened at start rather than through the API ("" when it has not).
	ClientID() string
	// Leave ends the node's registration for a NodeEngine that registers
	// under a new id, when the one before it is gone (none of the node's
	// instances is alive): it removes their deployments and leaves the
	// cluster, returning how many it removed. While one is alive it changes
	// nothing and the error (errdefs.ErrConflict) names it.
	Leave(ctx context.Context) (removed int, err error)
}

// Options configures the router.
type Options struct {
	Deployer Deployer
	// Registrar, when set, connects a registration that names a cluster;
	// without it (or without cluster_address) the node stays standalone.
	Registrar Registrar
	Version   string
	// Kernel is what GET /version reports of the kernel: its release and
	// the features the daemon probed at start (nil: not probed).
	Kernel *KernelInfo
	Log    logrus.FieldLogger
	// Access, when set, answers only authorized callers on every route
	// (the eBPF Manager's and modules', mounted later, and the not-found
	// and method-not-allowed answers included) and keeps the audit trail;
	// nil lets every request through (unit tests; the daemon sets it).
	Access *Access
}

// VersionInfo is the answer of GET /version.
type VersionInfo struct {
	Version string      `json:"version"`
	Go      string      `json:"go"`
	Kernel  *KernelInfo `json:"kernel,omitempty"`
}

// KernelInfo is the kernel as the daemon probed it at start.
type KernelInfo struct {
	Release string `json:"release"`
	// Features says, by name, whether the kernel offers each probed
	// feature; a masked one (Masked) is false.
	Features map[string]bool `json:"features"`
	// Masked lists the features the daemon treats as missing because it
	// was told to (NETMANAGER_MASK_FEATURES, a test hook).
	Masked []string `json:"masked,omitempty"`
	// Inconclusive holds, with why, the probes that could not tell; their
	// features are reported false.
	Inconclusive map[string]string `json:"inconclusive,omitempty"`
}

type server struct {
	opts Options
	mu   sync.Mutex
	reg  *Registration
}

// Registration is what the NodeEngine told the NetManager at POST /register.
type Registration struct {
	ClientID       string `json:"client_id"`
	ClusterAddress string `json:"cluster_address"`
	ClusterPort    int    `json:"cluster_port,omitempty"`
	Mode           string `json:"mode"`             // standalone or cluster
	Broker         string `json:"broker,omitempty"` // cluster mode: the MQTT broker
	// Subnet and SubnetV6 are, in cluster mode, the node subnets in use: the
	// cluster's, unless the node could not move to it (see docs/cluster.md).
	Subnet   string `json:"subnet,omitempty"`
	SubnetV6 string `json:"subnetv6,omitempty"`
	// ClusterSubnet and ClusterSubnetV6 are the first addresses the cluster gave.
	ClusterSubnet   string `json:"clusterSubnet,omitempty"`
	ClusterSubnetV6 string `json:"clusterSubnetV6,omitempty"`
}

// NewRouter returns the API's router. Further route sets (the eBPF Manager's)
// are added to it by their owners.
func NewRouter(opts Options) *mux.Router {
	if opts.Log == nil {
		opts.Log = logrus.StandardLogger()
	}
	s := &server{opts: opts}
	r := mux.NewRouter()
	r.Use(s.recoverer, s.logger, limitBody)
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		httpjson.WriteError(w, fmt.Errorf("%w: no route %s %s", errdefs.ErrNotFound, r.Method, r.URL.Path))
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		httpjson.WriteJSON(w, http.StatusMethodNotAllowed, httpjson.ErrorBody{Error: fmt.Sprintf("method %s is not allowed on %s", r.Method, r.URL.Path)})
	})
	if opts.Access != nil { // outermost; mux runs no middleware on the two answers above
		r.Use(opts.Access.Middleware)
		r.NotFoundHandler = opts.Access.Middleware(r.NotFoundHandler)
		r.MethodNotAllowedHandler = opts.Access.Middleware(r.MethodNotAllowedHandler)
	}
	r.HandleFunc("/register", s.register).Methods(http.MethodPost)
	r.HandleFunc("/container/deploy", s.deploy(deploy.KindContainer)).Methods(http.MethodPost)
	r.HandleFunc("/container/undeploy", s.undeploy(deploy.KindContainer)).Methods(http.MethodPost)
	// Older NodeEngines undeploy a container here; upstream still serves it.
	r.HandleFunc("/docker/undeploy", s.undeploy(deploy.KindContainer)).Methods(http.MethodPost)
	r.HandleFunc("/unikernel/deploy", s.deploy(deploy.KindUnikernel)).Methods(http.MethodPost)
	r.HandleFunc("/unikernel/undeploy", s.undeploy(deploy.KindUnikernel)).Methods(http.MethodPost)
	r.HandleFunc("/services", s.services).Methods(http.MethodGet)
	r.HandleFunc("/healthz", s.healthz).Methods(http.MethodGet)
	r.HandleFunc("/version", s.version).Methods(http.MethodGet)
	r.HandleFunc("/openapi.json", serveOpenAPI).Methods(http.MethodGet)
	return r
}

// DeployBody is the body of POST /container/deploy and /unikernel/deploy.
type DeployBody struct {
	PID            *int            `json:"pid"`
	ServiceName    string          `json:"serviceName"`
	InstanceNumber *int            `json:"instanceNumber"`
	PortMappings   string          `json:"portMappings"`
	EbpfModules    []events.Module `json:"ebpfModules,omitempty"`
}

// DeployResponse is what the NodeEngine reads back from a deploy.
type DeployResponse struct {
	ServiceName string `json:"serviceName"`
	NsAddress   string `json:"nsAddress"`
	NsAddressV6 string `json:"nsAddressv6"`
}

// UndeployBody is the body of the undeploy routes; the NodeEngine also sends pid -1.
type UndeployBody struct {
	ServiceName    string `json:"serviceName"`
	InstanceNumber *int   `json:"instanceNumber"`
}

// decodeWithInstance decodes a body that must name an instanceNumber; it
// answers the error itself and reports whether the handler goes on.
func decodeWithInstance(w http.ResponseWriter, r *http.Request, body any, inst **int) bool {
	err := httpjson.DecodeJSON(w, r, body)
	if err == nil && *inst == nil {
		err = fmt.Errorf("%w: instanceNumber is required", errdefs.ErrInvalid)
	}
	if err != nil {
		httpjson.WriteError(w, err)
		return false
	}
	return true
}

func (s *server) deploy(kind deploy.Kind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var b DeployBody
		if !decodeWithInstance(w, r, &b, &b.InstanceNumber) {
			return
		}
		req := deploy.Request{Kind: kind, ServiceName: b.ServiceName, Instance: *b.InstanceNumber, PortMappings: b.PortMappings, EbpfModules: b.EbpfModules}
		if b.PID != nil {
			req.PID = *b.PID
		} else if kind == deploy.KindContainer {
			httpjson.WriteError(w, fmt.Errorf("%w: pid is required for a container deploy", errdefs.ErrInvalid))
			return
		}
		rec, err := s.opts.Deployer.Deploy(r.Context(), req)
		if err != nil {
			httpjson.WriteError(w, err)
			return
		}
		resp := DeployResponse{ServiceName: rec.ServiceName, NsAddress: rec.NsAddress.String()}
		if rec.NsAddressV6.IsValid() {
			resp.NsAddressV6 = rec.NsAddressV6.String()
		}
		httpjson.WriteJSON(w, http.StatusOK, resp)
	}
}

func (s *server) undeploy(kind deploy.Kind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var b UndeployBody
		if !decodeWithInstance(w, r, &b, &b.InstanceNumber) {
			return
		}
		if err := s.opts.Deployer.Undeploy(r.Context(), kind, b.ServiceName, *b.InstanceNumber); err != nil {
			httpjson.WriteError(w, err)
			return
		}
		httpjson.WriteJSON(w, http.StatusOK, map[string]any{"serviceName": b.ServiceName, "instanceNumber": *b.InstanceNumber})
	}
}

func (s *server) register(w http.ResponseWriter, r *http.Request) {
	var b Registration
	if err := httpjson.DecodeJSON(w, r, &b); err != nil {
		httpjson.WriteError(w, err)
		return
	}
	if b.ClientID == "" {
		httpjson.WriteError(w, fmt.Errorf("%w: client_id is required", errdefs.ErrInvalid))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.registeredAs()
	switch decideRegister(cur, b.ClientID, s.opts.Registrar != nil) {
	case refuseOther:
		httpjson.WriteError(w, fmt.Errorf("%w: this node is already registered as %q", errdefs.ErrConflict, cur))
		return
	case reregister:
		if err := s.leave(r.Context(), cur, b.ClientID); err != nil {
			httpjson.WriteError(w, err)
			return
		}
	}
	b.Mode = "standalone"
	if b.ClusterAddress != "" && s.opts.Registrar != nil {
		reg, err := s.opts.Registrar.Register(r.Context(), b.ClientID, b.ClusterAddress)
		if err != nil {
			httpjson.WriteError(w, fmt.Errorf("register with the cluster: %w", err))
			return
		}
		b.Mode, b.Broker, b.ClusterSubnet, b.ClusterSubnetV6 = "cluster", reg.Broker, reg.Subnet.Address, reg.Subnet.AddressV6
		if reg.NodeSubnet.IsValid() {
			b.Subnet = reg.NodeSubnet.String()
		}
		if reg.NodeSubnetV6.IsValid() {
			b.SubnetV6 = reg.NodeSubnetV6.String()
		}
	}
	s.reg = &b
	s.opts.Log.WithFields(logrus.Fields{"client_id": b.ClientID, "cluster": b.ClusterAddress, "mode": b.Mode}).Info("node registered")
	httpjson.WriteJSON(w, http.StatusOK, b)
}

// registeredAs is the id the node is registered as: with its cluster (also
// from the start's flags), else at POST /register; "" when it is not. The
// caller holds mu.
func (s *server) registeredAs() string {
	if s.opts.Registrar != nil {
		if id := s.opts.Registrar.ClientID(); id != "" {
			return id
		}
	}
	if s.reg != nil {
		return s.reg.ClientID
	}
	return ""
}

// registerStep is what POST /register does about the node's registration.
type registerStep int

const (
	registerAs  registerStep = iota // not registered, or the same id again: register
	reregister                      // another id: a restarted NodeEngine, if the one before is gone
	refuseOther                     // another id, and no Registrar to tell whether the one before is gone
)

// decideRegister chooses for a registration as next on a node registered as
// cur ("" when it is not); canLeave says whether a Registrar can end cur.
func decideRegister(cur, next string, canLeave bool) registerStep {
	switch {
	case cur == "" || cur == next:
		return registerAs
	case canLeave:
		return reregister
	}
	return refuseOther
}

// leave ends the registration as cur for a NodeEngine registering as next;
// the node is unregistered afterwards, also when the registration as next
// then fails. The caller holds mu.
func (s *server) leave(ctx context.Context, cur, next string) error {
	removed, err := s.opts.Registrar.Leave(ctx)
	if err != nil {
		return fmt.Errorf("this node is already registered as %q; %q takes over once none of its instances runs: %w", cur, next, err)
	}
	s.reg = nil
	s.opts.Log.WithFields(logrus.Fields{"old_client_id": cur, "client_id": next, "stale_removed": removed}).
		Info("re-registration: the previous NodeEngine is gone; removed its deployments and left the cluster")
	return nil
}

func (s *server) services(w http.ResponseWriter, _ *http.Request) {
	httpjson.WriteJSON(w, http.StatusOK, s.opts.Deployer.List())
}

func (s *server) healthz(w http.ResponseWriter, _ *http.Request) {
	httpjson.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *server) version(w http.ResponseWriter, _ *http.Request) {
	httpjson.WriteJSON(w, http.StatusOK, VersionInfo{Version: s.opts.Version, Go: runtime.Version(), Kernel: s.opts.Kernel})
}

// limitBody caps every request body, the eBPF Manager's and modules' routes
// included, at httpjson.MaxBody: reading past it fails (httpjson.DecodeJSON answers 413).
func limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, httpjson.MaxBody)
		next.ServeHTTP(w, r)
	})
}

func (s *server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.opts.Log.WithFields(logrus.Fields{"method": r.Method, "path": r.URL.Path, "panic": v}).Error("handler panicked")
				httpjson.WriteJSON(w, http.StatusInternalServerError, httpjson.ErrorBody{Error: fmt.Sprintf("internal error handling %s %s", r.Method, r.URL.Path)})
			}
		}()
		next.ServeHTTP(w, r)
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (sw *statusWriter) WriteHeader(code int) {
	sw.status = code
	sw.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the server's writer: a
// streaming answer (GET /ebpf/trace, /ebpf/drops) flushes line by line.
func (sw *statusWriter) Unwrap() http.ResponseWriter { return sw.ResponseWriter }

func (s *server) logger(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		s.opts.Log.WithFields(logrus.Fields{"method": r.Method, "path": r.URL.Path, "status": sw.status, "took": time.Since(start).String()}).Debug("request")
	})
}
