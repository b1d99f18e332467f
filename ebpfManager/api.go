package ebpfmanager

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/gorilla/mux"
	"github.com/sirupsen/logrus"

	"github.com/oakestra/netmanager/node-net-manager/errdefs"
	"github.com/oakestra/netmanager/node-net-manager/httpjson"
)

// Register mounts the /ebpf routes on the NetManager's router.
func (m *Manager) Register(r *mux.Router) {
	r.HandleFunc("/ebpf", m.serveList).Methods(http.MethodGet)
	r.HandleFunc("/ebpf", m.serveLoad).Methods(http.MethodPost)
	r.HandleFunc("/ebpf", m.serveDeleteAll).Methods(http.MethodDelete)
	r.HandleFunc("/ebpf/doctor", m.serveDoctor).Methods(http.MethodGet) // doctor_gather.go
	r.HandleFunc("/ebpf/trace", m.serveTrace).Methods(http.MethodGet)   // trace_api.go
	r.HandleFunc("/ebpf/drops", m.serveDrops).Methods(http.MethodGet)   // trace_api.go
	r.HandleFunc("/ebpf/{id}", m.serveGet).Methods(http.MethodGet)
	r.HandleFunc("/ebpf/{id}", m.serveDelete).Methods(http.MethodDelete)
	r.HandleFunc("/ebpf/{id}", m.serveUpdate).Methods(http.MethodPut)
	r.PathPrefix("/ebpf/{id}/").HandlerFunc(m.serveModule)
}

func (m *Manager) serveList(w http.ResponseWriter, _ *http.Request) {
	httpjson.WriteJSON(w, http.StatusOK, m.List())
}

func (m *Manager) serveLoad(w http.ResponseWriter, r *http.Request) {
	var req LoadRequest
	if err := httpjson.DecodeJSON(w, r, &req); err != nil {
		httpjson.WriteError(w, err)
		return
	}
	info, err := m.Load(req)
	if err != nil {
		httpjson.WriteError(w, err)
		return
	}
	httpjson.WriteJSON(w, http.StatusOK, info)
}

func (m *Manager) serveDeleteAll(w http.ResponseWriter, _ *http.Request) {
	if err := m.DeleteAll(); err != nil {
		httpjson.WriteError(w, err)
		return
	}
	httpjson.WriteJSON(w, http.StatusOK, []Info{})
}

func (m *Manager) serveGet(w http.ResponseWriter, r *http.Request) {
	info, err := m.Get(mux.Vars(r)["id"])
	if err != nil {
		httpjson.WriteError(w, err)
		return
	}
	httpjson.WriteJSON(w, http.StatusOK, info)
}

func (m *Manager) serveUpdate(w http.ResponseWriter, r *http.Request) {
	var req UpdateRequest
	if err := httpjson.DecodeJSON(w, r, &req); err != nil {
		httpjson.WriteError(w, err)
		return
	}
	info, err := m.Update(mux.Vars(r)["id"], req)
	if err != nil {
		httpjson.WriteError(w, err)
		return
	}
	httpjson.WriteJSON(w, http.StatusOK, info)
}

func (m *Manager) serveDelete(w http.ResponseWriter, r *http.Request) {
	id := mux.Vars(r)["id"]
	if err := m.Delete(id); err != nil {
		httpjson.WriteError(w, err)
		return
	}
	httpjson.WriteJSON(w, http.StatusOK, map[string]string{"id": id, "state": "deleted"})
}

// serveModule hands /ebpf/{id}/... to the instance's own router, guarded: a
// panicking handler answers 500 and marks the instance failed.
func (m *Manager) serveModule(w http.ResponseWriter, r *http.Request) {
	id := mux.Vars(r)["id"]
	m.mu.Lock()
	in := m.insts[id]
	var router http.Handler
	var state, failure string
	if in != nil {
		router, state, failure = in.router, in.state, in.failure
	}
	m.mu.Unlock()
	if in == nil {
		httpjson.WriteError(w, fmt.Errorf("%w: no module instance %q", errdefs.ErrNotFound, id))
		return
	}
	if state != StateRunning {
		httpjson.WriteJSON(w, http.StatusServiceUnavailable, httpjson.ErrorBody{Error: fmt.Sprintf("module instance %s has failed: %s", id, failure)})
		return
	}
	sub := r.Clone(r.Context())
	sub.URL.Path = "/" + strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, "/ebpf/"+id), "/")
	sub.URL.RawPath = ""
	defer func() {
		if v := recover(); v != nil {
			m.mu.Lock()
			in.fail(fmt.Sprintf("control plane panicked serving %s %s: %v", r.Method, sub.URL.Path, v))
			m.mu.Unlock()
			m.opts.Log.WithFields(logrus.Fields{"id": id, "module": in.name, "path": sub.URL.Path, "panic": v}).Error("module handler panicked; instance marked failed")
			httpjson.WriteJSON(w, http.StatusInternalServerError, httpjson.ErrorBody{Error: fmt.Sprintf("module %s (instance %s) failed serving %s", in.name, id, sub.URL.Path)})
		}
	}()
	router.ServeHTTP(w, sub)
}

// newModuleRouter is an instance's router, answering unknown routes in JSON.
func newModuleRouter(name string) *mux.Router {
	r := mux.NewRouter()
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		httpjson.WriteError(w, fmt.Errorf("%w: module %s has no route %s %s", errdefs.ErrNotFound, name, req.Method, req.URL.Path))
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		httpjson.WriteJSON(w, http.StatusMethodNotAllowed, httpjson.ErrorBody{Error: fmt.Sprintf("module %s: method %s is not allowed on %s", name, req.Method, req.URL.Path)})
	})
	return r
}
