// Command netmanager is the Oakestra NetManager daemon: it wires services on this
// worker node into the node network and serves the NodeEngine's HTTP API.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/gorilla/mux"
	"github.com/sirupsen/logrus"

	ebpfmanager "github.com/oakestra/netmanager/ebpfManager"
	"github.com/oakestra/netmanager/ebpfManager/kernel"
	"github.com/oakestra/netmanager/node-net-manager/api"
	"github.com/oakestra/netmanager/node-net-manager/cluster"
	"github.com/oakestra/netmanager/node-net-manager/config"
	"github.com/oakestra/netmanager/node-net-manager/deploy"
	"github.com/oakestra/netmanager/node-net-manager/errdefs"
	"github.com/oakestra/netmanager/node-net-manager/events"
	"github.com/oakestra/netmanager/node-net-manager/httpjson"
	"github.com/oakestra/netmanager/node-net-manager/netenv"
	"github.com/oakestra/netmanager/node-net-manager/proxy"
	"github.com/oakestra/netmanager/node-net-manager/table"
	"github.com/oakestra/netmanager/node-net-manager/version"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	cfg, err := config.Load(args, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "netmanager:", err)
		return 2
	}
	n, err := cfg.Validate()
	if err != nil {
		fmt.Fprintln(os.Stderr, "netmanager: config:", err)
		return 2
	}
	log := logrus.New()
	log.SetFormatter(&logrus.TextFormatter{FullTimestamp: true, TimestampFormat: "2006-01-02T15:04:05.000Z07:00"})
	lvl, _ := logrus.ParseLevel(cfg.LogLevel)
	log.SetLevel(lvl)
	if cfg.ModulesDir == "" {
		cfg.ModulesDir = defaultModulesDir()
	}
	mask, err := featureMask(os.Getenv(maskEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, "netmanager:", err)
		return 2
	}
	if err := serve(cfg, n, mask, log); err != nil {
		log.WithError(err).Error("netmanager stopped with an error")
		return 1
	}
	return 0
}

// defaultModulesDir is build/modules next to build/bin in a checkout, else the
// installed location.
func defaultModulesDir() string {
	if exe, err := os.Executable(); err == nil {
		dir := filepath.Join(filepath.Dir(exe), "..", "modules")
		if st, err := os.Stat(dir); err == nil && st.IsDir() {
			return filepath.Clean(dir)
		}
	}
	return "/usr/lib/netmanager/modules"
}

func serve(cfg config.Config, n config.Network, mask []string, log *logrus.Logger) (err error) {
	// From the start: a signal while the node is set up, or the moment the
	// API answers, waits for the shutdown path instead of killing the daemon
	// with its node half made.
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigc)
	if err := os.MkdirAll(cfg.StateDir, 0o755); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	access, closeAccess, err := apiAccess(cfg, log) // listen.go
	if err != nil {
		return err
	}
	defer closeAccess()
	prober, kernelInfo := probeKernel(mask, log)
	if n, err = nodeNetwork(cfg, n); err != nil {
		return err
	}
	env := netenv.New(netenv.Options{Net: n, StateDir: cfg.StateDir, Persist: cfg.Persist, Log: log})
	if err := env.Setup(); err != nil {
		return fmt.Errorf("set up node network: %w", err)
	}
	log.WithFields(logrus.Fields{"bridge": n.Bridge, "subnet": n.NodeSubnet, "subnetv6": n.NodeSubnetV6}).Info("node network ready")
	tab, err := table.NewStandalone(table.Options{Range: n.ServiceRange, RangeV6: n.ServiceRangeV6, Node: table.Node{IP: n.NodeIP, Port: n.TunnelPort}})
	if err != nil {
		return errors.Join(err, env.Teardown())
	}
	bus := &events.Bus{}
	var em *ebpfmanager.Manager // set below; deploys that ask for modules need it
	acceptModules := func(mods []events.Module) error {
		if em == nil {
			return fmt.Errorf("%w: ebpfModules requested but the eBPF Manager is disabled on this node", errdefs.ErrUnprocessable)
		}
		return em.AcceptModules(mods)
	}
	mgr, err := deploy.New(deploy.Options{Net: n, Env: env, Table: tab, Bus: bus, Log: log, AcceptModules: acceptModules,
		StatePath: filepath.Join(cfg.StateDir, "services.json")})
	if err != nil {
		return errors.Join(err, env.Teardown())
	}
	// In cluster mode the proxy's table is the cluster's (ctab), asked on a
	// miss and refreshed on a job's update; before registration, the node's.
	var ctab *cluster.Table
	mq, _ := cfg.MQTT() // validated: MQTT over TLS and credentials, when set
	link := cluster.NewLink(cluster.LinkOptions{Services: mgr.Services, Node: netip.AddrPortFrom(n.NodeIP, uint16(n.TunnelPort)), Log: log,
		Client: cluster.Options{OnUpdate: func(job string) { ctab.Refresh(job) }, TLS: mq.TLS, Username: mq.Username, Password: mq.Password}, OnRegistered: func(jobs []string) { ctab.RefreshAll(jobs) }})
	interest, _ := cfg.Interest() // validated
	// the node subnets now, for the cluster table's checks (subnets.go)
	subnets := trackSubnets(mgr)
	ctab = cluster.NewTable(cluster.TableOptions{Local: tab, Link: link, Ranges: n.ServiceRanges(), NodeSubnets: subnets.Prefixes, ReleaseAfter: interest, Log: log, OnChange: func() {
		if em == nil {
			return
		}
		if err := em.ServicesChanged(); err != nil {
			log.WithError(err).Warn("eBPF modules: the cluster's table changed")
		}
	}})
	defer link.Close()
	defer ctab.Close() // its releases end before the link does
	bus.Subscribe("cluster", link.HandleEvent)
	bus.Subscribe("cluster table", ctab.HandleEvent)
	reg := &registrar{link: link, mgr: subnets, log: log}
	counted := &countingDeployer{Deployer: mgr}
	view := servicesView{Deployer: counted, clustered: func() bool { return link.Client() != nil }, cached: func(job string) []table.Entry {
		es, _ := ctab.Cached(context.Background(), table.Query{ServiceName: job})
		return es
	}}
	router := api.NewRouter(api.Options{Deployer: view, Registrar: reg, Version: version.Version, Kernel: kernelInfo, Log: log, Access: access})
	ps := parts{cfg: cfg, net: n, env: env, table: tab, resolver: ctab, deploy: mgr, bus: bus, router: router, prober: prober, log: log, moves: &addressMover{}}
	em, stopStats := mountEBPFManager(ps)
	defer stopStats()
	stopProxy, proxyStats, err := startProxy(ps)
	if err != nil {
		if em != nil {
			err = errors.Join(err, em.Close())
		}
		return errors.Join(err, env.Teardown())
	}
	msrc := metricsSources{log: log, version: version.Version, services: mgr.List, api: counted, proxy: proxyStats, audit: access.Audit, cluster: ctab}
	if em != nil {
		msrc.ebpf = em.Metrics
	}
	router.Handle("/metrics", metricsHandler(msrc)).Methods(http.MethodGet)
	defer func() { err = errors.Join(err, shutdown(ps, em, stopProxy)) }()
	defer followAddress(ps, em, link)() // stops before the shutdown
	if err := restore(cfg, em, mgr, log); err != nil {
		return err
	}
	if cfg.ClusterAddress != "" {
		r, err := reg.Register(context.Background(), cfg.ClientID, cfg.ClusterAddress)
		if err != nil {
			return fmt.Errorf("register with the cluster: %w", err)
		}
		log.WithFields(logrus.Fields{"broker": r.Broker, "subnet": r.NodeSubnet}).Info("registered with the cluster")
	}
	return serveAPI(cfg, router, sigc, log)
}

// restore takes back what the previous run left with persist (the module
// instances first: the services' events adopt their attachments), or
// removes what it left without.
func restore(cfg config.Config, em *ebpfmanager.Manager, mgr *deploy.Manager, log *logrus.Logger) error {
	if cfg.Persist {
		if em != nil { // before the services: their events adopt the module attachments
			n, err := em.Readopt()
			if err != nil {
				log.WithError(err).Warn("eBPF Manager: taking back the previous run's module instances")
			}
			log.WithField("instances", n).Info("took back the module instances of the previous run")
		}
		n, err := mgr.Readopt(context.Background())
		if err != nil {
			return err
		}
		log.WithField("services", n).Info("re-adopted the services of the previous run")
		if em != nil {
			em.Reconcile() // each drift is logged
		}
	} else if n, err := mgr.CleanupSaved(); err != nil {
		log.WithError(err).Warn("could not clean up after the previous run")
	} else if n > 0 {
		log.WithField("services", n).Warn("removed what the previous run's services left behind")
	}
	return nil
}

// serveAPI serves the API on its listeners until a signal or a listener's
// failure, then stops it.
func serveAPI(cfg config.Config, router http.Handler, sigc <-chan os.Signal, log *logrus.Logger) (err error) {
	lns, err := listen(cfg)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           router,
		ConnContext:       api.ConnContext, // who is at the other end (api.Access)
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		// A deploy or a module load (verifier, SLA modules) answers well
		// within this; a client that stops reading does not hold a
		// connection longer.
		WriteTimeout: 2 * time.Minute,
		IdleTimeout:  2 * time.Minute,
	}
	errc := make(chan error, len(lns))
	for _, ln := range lns {
		log.WithField("addr", ln.Addr().String()).Info("API listening")
		go func(ln net.Listener) { errc <- srv.Serve(ln) }(ln)
	}
	select {
	case s := <-sigc:
		log.WithField("signal", s.String()).Info("shutting down")
	case err = <-errc:
		err = fmt.Errorf("API server: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if serr := srv.Shutdown(ctx); serr != nil {
		err = errors.Join(err, fmt.Errorf("stop API: %w", serr))
	}
	if cfg.Socket != "" {
		_ = os.Remove(cfg.Socket)
	}
	return err
}

// mountEBPFManager starts the eBPF Manager and mounts its routes, or, when
// it cannot start, routes that say why; stopStats turns the kernel's BPF
// stats off again.
func mountEBPFManager(ps parts) (em *ebpfmanager.Manager, stopStats func()) {
	em, stats, err := startEBPFManager(ps)
	stopStats = func() {}
	if stats != nil {
		stopStats = func() { stats.Close() }
	}
	if err != nil {
		ps.log.WithError(err).Warn("eBPF Manager disabled: modules cannot be loaded on this node")
		disabledEBPF(ps.router, err)
		return nil, stopStats
	}
	em.Register(ps.router)
	return em, stopStats
}

// shutdown stops the proxy, then leaves the node as it is for the next start
// (persist) or removes what the daemon made.
func shutdown(ps parts, em *ebpfmanager.Manager, stopProxy func()) (err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stopProxy()
	if ps.cfg.Persist {
		if em != nil {
			err = em.Release()
		}
		ps.log.Info("persist: services, bridge, rules and module programs stay for the next start")
		return err
	}
	if em != nil {
		err = em.Close()
	}
	err = errors.Join(err, ps.deploy.Close(ctx), ps.env.Teardown())
	if err == nil {
		ps.log.Info("node network removed")
	}
	return err
}

// nodeNetwork completes the network settings from the node: the node IP,
// when not configured, is the default route's source address; with persist,
// the subnet an earlier run adopted from its cluster is kept, for the
// services it re-adopts are addressed in it.
func nodeNetwork(cfg config.Config, n config.Network) (config.Network, error) {
	if !n.NodeIPSet {
		if a, ok := netenv.OutboundAddr(); ok {
			n.NodeIP = a
		}
	}
	if !cfg.Persist {
		return n, nil
	}
	v4, v6, ok, err := netenv.SavedSubnet(cfg.StateDir)
	if err != nil || !ok {
		return n, err
	}
	out, err := n.WithSubnets(v4, v6)
	if err != nil {
		return n, fmt.Errorf("the subnet the previous run adopted: %w", err)
	}
	return out, nil
}

// rcuExpediter returns the RCU expediter of expediteAttach, after putting
// back the kernel's switch when an earlier run was killed with it on
// (whatever the setting now). It is best effort: what fails is logged, and
// the daemon goes on (its attaches then wait normal grace periods).
func rcuExpediter(cfg config.Config, log *logrus.Logger) *kernel.Expediter {
	warn := func(err error) {
		log.WithError(err).Warn("expediteAttach: a window of expedited RCU grace periods failed; later TCX attaches wait normal ones (~10 ms)")
	}
	e, err := kernel.NewExpediter(kernel.ExpediterOptions{Marker: filepath.Join(cfg.StateDir, "rcu-expedited"), OnError: warn})
	if err != nil {
		log.WithError(err).Warn("expediteAttach: no RCU expediter")
		return nil
	}
	repaired, err := e.Repair()
	switch {
	case err != nil:
		log.WithError(err).Error("expediteAttach: an earlier run stopped with RCU grace periods expedited, and the switch could not be put back")
	case repaired:
		log.WithField("path", kernel.DefaultRCUExpedited).Warn("an earlier run stopped with RCU grace periods expedited: put back to 0")
	}
	return e
}

// expediteAttach gives k the expediter when expediteAttach asks for it and
// k attaches with TCX.
func expediteAttach(k *kernel.Kernel, e *kernel.Expediter, cfg config.Config, log *logrus.Logger) {
	if e == nil || !cfg.ExpediteAttach || k.Mode() != ebpfmanager.ModeTCX {
		return
	}
	if err := e.Err(); err != nil {
		log.WithError(err).Warn("expediteAttach: cannot expedite RCU grace periods; every TCX attach and detach waits a normal one (~10 ms)")
		return
	}
	k.Expedite(e)
}

// startEBPFManager creates the eBPF Manager and subscribes it to service events.
// With bpfStats, the kernel's BPF run-time stats stay on until stats is
// closed.
func startEBPFManager(d parts) (_ *ebpfmanager.Manager, stats io.Closer, err error) {
	cfg, log := d.cfg, d.log
	exp := rcuExpediter(cfg, log)                        // repairs first, even when the kernel cannot be used
	k, err := kernel.NewWithProber(cfg.TCMode, d.prober) // nil: it tries probing itself, and says why it cannot
	if err != nil {
		return nil, nil, err
	}
	expediteAttach(k, exp, cfg, log)
	mounted, err := kernel.EnsureBPFFS(cfg.PinDir)
	if err != nil {
		return nil, nil, err
	}
	if cfg.BPFStats {
		if stats, err = kernel.EnableRunStats(); err != nil {
			return nil, nil, fmt.Errorf("bpfStats: %w", err)
		}
		log.Info("bpfStats: the kernel's BPF run-time stats are on")
	}
	if mounted {
		log.WithField("path", kernel.DefaultBPFFS).Info("mounted the bpf file system (it stays mounted)")
	}
	self := netip.AddrPortFrom(d.net.NodeIP, uint16(d.net.TunnelPort)) // this node's tunnel end
	em, err := ebpfmanager.New(ebpfmanager.Options{Kernel: k, Plugins: kernel.Plugins{}, ModulesDir: cfg.ModulesDir, PinDir: cfg.PinDir,
		Store: kernel.StateFile{Path: filepath.Join(cfg.StateDir, "ebpf.json")}, Persist: cfg.Persist,
		Services: d.deploy.Services, Table: ebpfmanager.ServiceTable{Source: cachedTable{d.resolver}, Self: self}, Tunnel: self, ServiceRanges: d.net.ServiceRanges(),
		RunStats: stats != nil, SLA: slaPolicy(cfg.SLA), Log: log})
	if err != nil {
		if stats != nil {
			stats.Close() // nothing reads them
		}
		return nil, nil, err
	}
	d.bus.Subscribe("ebpf-manager", em.HandleEvent)
	log.WithFields(logrus.Fields{"mode": k.Mode(), "modules": cfg.ModulesDir, "pins": cfg.PinDir}).Info("eBPF Manager ready")
	return em, stats, nil
}

// parts are the daemon's pieces the eBPF Manager and the proxy start with.
type parts struct {
	cfg   config.Config
	net   config.Network
	env   *netenv.Env
	table *table.Standalone
	// resolver is the table behind both proxies: the cluster's in cluster
	// mode, the node's own before.
	resolver *cluster.Table
	deploy   *deploy.Manager
	bus      *events.Bus
	router   *mux.Router
	prober   *kernel.Prober // the kernel's features, probed at start; nil if they could not be
	log      *logrus.Logger
	moves    *addressMover // what follows the node's address (address.go)
}

// cachedTable is the cluster table as modules read it: what it has, never
// waiting for the cluster (the user-space proxy asks it).
type cachedTable struct{ *cluster.Table }

func (c cachedTable) Lookup(ctx context.Context, q table.Query) ([]table.Entry, error) {
	return c.Cached(ctx, q)
}

// startProxy runs the user-space service proxy on its TUN device and the
// inter-node tunnel (UDP on nodeIP:tunnelPort), forgets the sessions of
// removed services, and serves its counters at GET /proxy. The returned
// function stops it; stats is nil when the proxy is off.
func startProxy(d parts) (stop func(), stats func() proxy.Stats, err error) {
	if !d.cfg.Proxy {
		d.router.HandleFunc("/proxy", func(w http.ResponseWriter, _ *http.Request) {
			httpjson.WriteJSON(w, http.StatusOK, map[string]any{"enabled": false})
		}).Methods(http.MethodGet)
		return func() {}, nil, nil
	}
	ranges := d.net.ServiceRanges()
	self := netip.AddrPortFrom(d.net.NodeIP, uint16(d.net.TunnelPort))
	tunnel, err := proxy.ListenTunnel(self) // moves with the node's address (address.go)
	if err != nil {
		return nil, nil, fmt.Errorf("user-space proxy: %w", err)
	}
	tun, err := d.env.OpenTun(d.cfg.ProxyTun, ranges...)
	if err != nil {
		tunnel.Close()
		return nil, nil, fmt.Errorf("user-space proxy: %w", err)
	}
	tr := proxy.NewTranslator(d.resolver, proxy.Options{Ranges: ranges, Timeout: 2 * time.Minute, Self: self})
	d.moves.setProxy(tunnel, tr)
	cancelSub := d.bus.Subscribe("user-space proxy", func(_ context.Context, ev events.Event) error {
		if ev.Type == events.ServiceRemoved {
			tr.Forget(ev.Service.IPv4, ev.Service.IPv6)
		}
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := proxy.Run(ctx, proxy.RunOptions{Dev: tun, Translator: tr, Tunnel: tunnel, ExpireEvery: 10 * time.Second, Log: d.log})
		if err != nil {
			d.log.WithError(err).Error("user-space proxy stopped")
		}
	}()
	d.router.HandleFunc("/proxy", func(w http.ResponseWriter, _ *http.Request) {
		httpjson.WriteJSON(w, http.StatusOK, map[string]any{"enabled": true, "tun": d.cfg.ProxyTun, "tunnel": tunnel.AddrPort().String(), "stats": tr.Stats()})
	}).Methods(http.MethodGet)
	d.log.WithFields(logrus.Fields{"tun": d.cfg.ProxyTun, "ranges": ranges, "tunnel": self}).Info("user-space proxy ready")
	return func() {
		cancel()
		cancelSub()
		tun.Close()
		tunnel.Close()
		<-done
	}, tr.Stats, nil
}

// disabledEBPF answers the /ebpf routes with the reason the manager is off.
func disabledEBPF(r *mux.Router, reason error) {
	r.PathPrefix("/ebpf").HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		httpjson.WriteJSON(w, http.StatusServiceUnavailable, httpjson.ErrorBody{Error: "the eBPF Manager is disabled on this node: " + reason.Error()})
	})
}

func listen(cfg config.Config) ([]net.Listener, error) {
	var lns []net.Listener
	closeAll := func() {
		for _, ln := range lns {
			ln.Close()
		}
	}
	if cfg.Listen != "" {
		ln, err := listenTCP(cfg)
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
	}
	if cfg.Socket != "" {
		ln, err := listenUnix(cfg.Socket)
		if err != nil {
			closeAll()
			return nil, err
		}
		lns = append(lns, ln)
	}
	return lns, nil
}

// listenUnix listens on a unix socket, replacing a stale socket file but
// refusing to take over one that a running process still answers on.
func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("socket dir: %w", err)
	}
	if st, err := os.Lstat(path); err == nil {
		if st.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("socket %s: a non-socket file is in the way", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("socket %s: another process is serving on it", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale socket %s: %w", path, err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, fmt.Errorf("chmod %s: %w", path, err)
	}
	return ln, nil
}
