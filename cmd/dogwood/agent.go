//go:build agent

package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/dogwood/dogwood/mesh/quota"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"strconv"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/urfave/cli/v2"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/dogwood/dogwood/mesh"
	"github.com/dogwood/dogwood/mesh/api"
	"github.com/dogwood/dogwood/mesh/containers"
	"github.com/dogwood/dogwood/mesh/gossip"
	"github.com/dogwood/dogwood/peers"
	"github.com/dogwood/dogwood/peers/device"
)

// agentOptions are the agent's flags as plain values; nothing below sees *cli.Context.
type agentOptions struct {
	Name, DataDir, Region   string
	GossipAddr, Advertise   string
	Join                    []string
	GossipKeyFile           string
	InsecureNoKey           bool
	WireGuard               string
	WGInterface             string
	WGPort                  int
	Gateway                 bool
	PublicEndpoint          string
	DNSListen               []string
	UpstreamDNS             []string
	ResolvConf              string
	APISocket               string
	APISocketGroup          string
	APIListen, APITokenFile string
	APITLSCert, APITLSKey   string
	MetricsAddr             string
	LogLevel, LogFormat     string
	AEInterval              time.Duration
	TombstoneTTL            time.Duration
	InviteListen            string
	Limits                  quota.Limits
	DNSRRL                  int
}

func agentCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "agent",
		Usage: agentUsage,
		Description: `Runs until SIGINT/SIGTERM, then leaves the cluster gracefully. State (identity,
WireGuard key, catalog) lives in --data-dir and survives kill -9.

Example:
  dogwood agent --name host1 --region ord --gossip-addr 198.18.0.1:7946 \
    --gossip-key-file /etc/dogwood/gossip.key --join 198.18.0.2:7946 \
    --gateway --public-endpoint 203.0.113.10:51820 --dns-listen 127.0.0.1:5353`,
		OnUsageError: usageHook,
		Before:       loadConfigFile,
		Flags: withConfigFile([]cli.Flag{
			&cli.StringFlag{Name: "name", Usage: "host name (default: stored name, else the OS hostname)"},
			&cli.StringFlag{Name: "data-dir", Usage: "state directory (bbolt)", Value: "/var/lib/dogwood"},
			&cli.StringFlag{Name: "region", Usage: "region code, [a-z0-9]{2,16}", Value: "local"},
			&cli.StringFlag{Name: "gossip-addr", Usage: "gossip bind address IP:PORT (UDP and TCP)", Value: "0.0.0.0:7946"},
			&cli.StringFlag{Name: "advertise", Usage: "underlay IP[:PORT] other hosts reach this one on (gossip and WireGuard)"},
			&cli.StringSliceFlag{Name: "join", Usage: "IP:PORT of a cluster member (repeatable; retried in the background)"},
			&cli.StringFlag{Name: "gossip-key-file", Usage: "file with the base64 gossip key (dogwood keygen)"},
			&cli.BoolFlag{Name: "insecure-no-gossip-key", Usage: "run gossip unencrypted (tests only)"},
			&cli.StringFlag{Name: "wireguard", Usage: "auto|kernel|userspace|off", Value: "auto"},
			&cli.StringFlag{Name: "wg-interface", Usage: "WireGuard interface name", Value: "dogwood0"},
			&cli.IntFlag{Name: "wg-port", Usage: "WireGuard UDP port", Value: 51820},
			&cli.BoolFlag{Name: "gateway", Usage: "accept user peers (developer tunnels)"},
			&cli.StringFlag{Name: "public-endpoint", Usage: "`HOST[:PORT]` user peers reach this gateway on (default: advertise address; port: --wg-port)"},
			&cli.StringSliceFlag{Name: "dns-listen", Usage: "extra DNS listener IP:PORT, UDP and TCP (repeatable); loopback listeners accept EDNS Client Subnet scoping"},
			&cli.StringSliceFlag{Name: "upstream-dns", Usage: "upstream resolver IP[:PORT] for names outside .internal (repeatable; default: /etc/resolv.conf)"},
			&cli.StringFlag{Name: "resolv-conf", Usage: "resolv.conf to read upstreams from", Value: "/etc/resolv.conf", Hidden: true},
			&cli.StringFlag{Name: "api-socket", Usage: "API unix socket (mode 0600)", Value: "/run/dogwood/api.sock"},
			&cli.StringFlag{Name: "api-socket-group", Usage: "`GROUP` whose members may use the API socket without root (mode 0660; the .deb creates dogwood)"},
			&cli.StringFlag{Name: "api-listen", Usage: "optional TCP API listener IP:PORT (requires --api-token-file)"},
			&cli.StringFlag{Name: "api-token-file", Usage: "bearer token file for --api-listen"},
			&cli.StringFlag{Name: "api-tls-cert", Usage: "TLS certificate (PEM) for --api-listen (default: a self-signed one kept in --data-dir)"},
			&cli.StringFlag{Name: "api-tls-key", Usage: "TLS private key (PEM) for --api-tls-cert"},
			&cli.StringFlag{Name: "metrics-addr", Usage: "serve Prometheus metrics on IP:PORT at /metrics"},
			&cli.StringFlag{Name: "log-level", Usage: "debug|info|warn|error", Value: "info"},
			&cli.StringFlag{Name: "invite-listen", Usage: "on gateways, serve invitation redemption (TLS) on `IP:PORT`, or off (default: :51821)"},
			&cli.StringFlag{Name: "log-format", Usage: "text|json", Value: "text"},
			&cli.DurationFlag{Name: "tombstone-ttl", Usage: "how long deletes are remembered; a host out of touch for longer forgets what others wrote and catches up", Value: mesh.DefaultTombstoneTTL},
			&cli.IntFlag{Name: "dns-rrl", Usage: "UDP DNS responses a second per client prefix (/24, /56) before truncating and dropping; 0 is off"},
			&cli.IntFlag{Name: "limit-machines", Usage: "machines per org", Value: quota.Defaults().Machines},
			&cli.IntFlag{Name: "limit-apps", Usage: "apps per org", Value: quota.Defaults().Apps},
			&cli.IntFlag{Name: "limit-dns-records", Usage: "custom DNS records per org", Value: quota.Defaults().DNSRecords},
			&cli.IntFlag{Name: "limit-peers", Usage: "developer peers per org", Value: quota.Defaults().Peers},
			&cli.IntFlag{Name: "limit-services-per-machine", Usage: "services of one machine", Value: quota.Defaults().ServicesPerMachine},
			&cli.IntFlag{Name: "limit-metadata-per-machine", Usage: "metadata entries of one machine", Value: quota.Defaults().MetadataPerMachine},
			&cli.IntFlag{Name: "limit-record-bytes", Usage: "encoded size of one catalog record (also refused from gossip)", Value: quota.Defaults().RecordBytes},
			&cli.DurationFlag{Name: "anti-entropy-interval", Usage: "how often the catalog digest goes to a random member", Value: time.Second, Hidden: true},
		}),
		Subcommands: []*cli.Command{agentCleanupCommand(e)},
		Action: func(c *cli.Context) error {
			if c.Args().Len() > 0 {
				return usagef("agent takes no arguments, got %q", c.Args().First())
			}
			return runAgent(c.Context, agentOptionsFrom(c), e)
		},
	}
}

// agentOptionsFrom reads the agent's flags (after --config filled them in).
func agentOptionsFrom(c *cli.Context) agentOptions {
	return agentOptions{
		Name: c.String("name"), DataDir: c.String("data-dir"), Region: c.String("region"),
		GossipAddr: c.String("gossip-addr"), Advertise: c.String("advertise"), Join: c.StringSlice("join"),
		GossipKeyFile: c.String("gossip-key-file"), InsecureNoKey: c.Bool("insecure-no-gossip-key"),
		WireGuard: c.String("wireguard"), WGInterface: c.String("wg-interface"), WGPort: c.Int("wg-port"),
		Gateway: c.Bool("gateway"), PublicEndpoint: c.String("public-endpoint"),
		DNSListen: c.StringSlice("dns-listen"), UpstreamDNS: c.StringSlice("upstream-dns"), ResolvConf: c.String("resolv-conf"),
		APISocket: c.String("api-socket"), APISocketGroup: c.String("api-socket-group"), APIListen: c.String("api-listen"), APITokenFile: c.String("api-token-file"),
		APITLSCert: c.String("api-tls-cert"), APITLSKey: c.String("api-tls-key"),
		MetricsAddr: c.String("metrics-addr"), LogLevel: c.String("log-level"), LogFormat: c.String("log-format"), AEInterval: c.Duration("anti-entropy-interval"), TombstoneTTL: c.Duration("tombstone-ttl"),
		InviteListen: c.String("invite-listen"), DNSRRL: c.Int("dns-rrl"),
		Limits: quota.Limits{Machines: c.Int("limit-machines"), Apps: c.Int("limit-apps"), DNSRecords: c.Int("limit-dns-records"),
			Peers: c.Int("limit-peers"), ServicesPerMachine: c.Int("limit-services-per-machine"),
			MetadataPerMachine: c.Int("limit-metadata-per-machine"), RecordBytes: c.Int("limit-record-bytes")},
	}
}

func (o *agentOptions) validate() error {
	if o.TombstoneTTL < time.Second {
		return usagef("invalid --tombstone-ttl %s: at least 1s", o.TombstoneTTL)
	}
	switch o.WireGuard {
	case "auto", "kernel", "userspace", "off":
	default:
		return usagef("invalid --wireguard %q: auto, kernel, userspace or off", o.WireGuard)
	}
	if o.WGPort < 1 || o.WGPort > 65535 {
		return usagef("invalid --wg-port %d", o.WGPort)
	}
	if len(o.WGInterface) == 0 || len(o.WGInterface) > 15 || strings.ContainsAny(o.WGInterface, "/ ") {
		return usagef("invalid --wg-interface %q: 1-15 characters, no '/' or spaces", o.WGInterface)
	}
	if o.GossipKeyFile == "" && !o.InsecureNoKey {
		return usagef("--gossip-key-file is required (make one with `dogwood keygen`), or pass --insecure-no-gossip-key for a throwaway test cluster")
	}
	if o.APIListen != "" && o.APITokenFile == "" {
		return usagef("--api-listen requires --api-token-file")
	}
	if o.Gateway && o.WireGuard == "off" {
		return usagef("--gateway needs WireGuard; it cannot be combined with --wireguard off")
	}
	for _, j := range o.Join {
		if _, _, err := net.SplitHostPort(j); err != nil {
			return usagef("invalid --join %q: want IP:PORT", j)
		}
	}
	return nil
}

func readKeyFile(path string) ([]byte, [][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("gossip key file: %w", err)
	}
	k, extra, err := gossip.ParseKeys(string(b))
	if err != nil {
		return nil, nil, &usageError{fmt.Sprintf("gossip key file %s: %v", path, err)}
	}
	return k, extra, nil
}

func runAgent(ctx context.Context, o agentOptions, e *env) error {
	if err := o.validate(); err != nil {
		return err
	}
	logger, err := newLogger(e.stderr, o.LogFormat, o.LogLevel)
	if err != nil {
		return err
	}
	started := time.Now()
	build := readBuildInfo()
	logger.Info("dogwood agent", build.logAttrs()...)
	var key []byte
	var extraKeys [][]byte
	if o.GossipKeyFile != "" {
		if key, extraKeys, err = readKeyFile(o.GossipKeyFile); err != nil {
			return err
		}
	} else {
		logger.Warn("gossip is NOT encrypted (--insecure-no-gossip-key)")
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), build.collector())

	dp := &dataPlane{opts: o, log: logger.With("component", "wireguard"), reg: reg}
	publicEndpoint, err := gatewayEndpoint(o)
	if err != nil {
		dp.abort()
		return err
	}
	invites, err := openInvites(o, publicEndpoint, logger.With("component", "invite"), reg)
	if err != nil {
		dp.abort()
		return err
	}
	defer invites.close(context.Background()) // early returns; a no-op after the shutdown below
	node, err := mesh.Start(mesh.Config{
		Name: o.Name, DataDir: o.DataDir, Region: o.Region, GossipAddr: o.GossipAddr, Advertise: o.Advertise,
		Join: o.Join, GossipKey: key, GossipExtraKeys: extraKeys, WGPort: uint16(o.WGPort), WireGuard: o.WireGuard != "off",
		Gateway: o.Gateway, PublicEndpoint: publicEndpoint, Logger: logger, Registerer: reg,
		AEInterval: o.AEInterval, TombstoneTTL: o.TombstoneTTL, Limits: o.Limits, DataPlane: dp,
		Invites: invites.config(),
	})
	if err != nil {
		dp.abort()
		var me *mesh.Error
		if errors.As(err, &me) && me.Code == http.StatusBadRequest {
			return &usageError{err.Error()}
		}
		return err
	}
	logger = logger.With("host", node.Name())
	logger.Info("agent started", "host_id", fmt.Sprintf("%08x", node.HostID()), "region", o.Region)
	closeNode := func(leave bool) {
		if leave {
			if err := node.Leave(2 * time.Second); err != nil {
				logger.Warn("leave", "err", err)
			}
		}
		node.Close()
	}

	rv := startReach(dp, logger.With("component", "wireguard"), reg)
	defer rv.close()
	dnsSrv, err := startDNS(o, node.Catalog(), node, rv, logger.With("component", "dns"), reg)
	if err != nil {
		rv.close()
		dp.close()
		closeNode(true)
		return err
	}
	// The agent loop: every catalog change goes to WireGuard, then to the DNS
	// listeners on the addresses WireGuard put up.
	dp.run(dnsSrv)

	reg.MustRegister(newMembersCollector(node))
	checks := startChecks(node, logger.With("component", "health"), reg)
	defer checks.close()
	ready := &readiness{node: node, dp: dp, dns: dnsSrv, wantsPeers: len(o.Join) > 0}
	srv := &api.Server{Node: node, Version: readBuildInfo().Version, Logger: logger, WireGuard: rv.annotate(dp.status), Resolve: dnsSrv.resolve,
		LiveChecks: checks.live}
	ln, err := api.ListenUnix(o.APISocket)
	if err != nil {
		dnsSrv.close()
		dp.close()
		closeNode(true)
		return fmt.Errorf("API socket: %w", err)
	}
	if err := shareSocket(o.APISocket, o.APISocketGroup); err != nil {
		ln.Close()
		dnsSrv.close()
		dp.close()
		closeNode(true)
		return err
	}
	kr := &keyring{node: node, keyFile: o.GossipKeyFile, log: logger.With("component", "gossip")}
	kr.register()
	doc := &doctor{started: started, opts: o, node: node, dp: dp, dns: dnsSrv, reach: rv}
	doc.register()
	unixOnly, stopContainers := startContainers(ctx, node, dp, logger.With("component", "cni"))
	defer stopContainers()
	unixOnly["POST /v1/keyring"], unixOnly["GET /v1/doctor"] = kr.serveHTTP, doc.serveHTTP
	unixOnly["GET "+backupArchivePath] = serveBackupArchive(node, o.DataDir)
	local := localRoutes(srv.Handler(), unixOnly)
	servers := []*http.Server{api.NewHTTPServer(local, api.UnixLimits(), logger)}
	servers[0].ConnContext = containers.ConnContext // the attachments are root's
	listeners := []net.Listener{ln}
	if o.APIListen != "" {
		tok, err := os.ReadFile(o.APITokenFile)
		if err != nil || strings.TrimSpace(string(tok)) == "" {
			return usagef("--api-token-file %s: unreadable or empty", o.APITokenFile)
		}
		host, _, _ := net.SplitHostPort(o.APIListen)
		cert, fp, err := api.LoadOrCreateCert(o.DataDir, o.APITLSCert, o.APITLSKey, []string{host, node.Name()})
		if err != nil {
			return err
		}
		tl, err := api.Listen(o.APIListen, api.TCPAPILimits(), &cert)
		if err != nil {
			return err
		}
		srv.APIFingerprint = fp
		tsrv := &api.Server{Node: node, Version: readBuildInfo().Version, Logger: logger, WireGuard: rv.annotate(dp.status), Resolve: dnsSrv.resolve,
			Token: strings.TrimSpace(string(tok)), APIFingerprint: fp, LiveChecks: checks.live}
		servers = append(servers, api.NewHTTPServer(tsrv.Handler(), api.TCPAPILimits(), logger))
		listeners = append(listeners, tl)
		logger.Info("TLS API listening", "addr", o.APIListen, "fingerprint", fp)
	}
	if o.MetricsAddr != "" {
		ml, err := api.Listen(o.MetricsAddr, api.MetricsLimits(), nil)
		if err != nil {
			return fmt.Errorf("metrics listener: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		ready.handlers(mux)
		servers = append(servers, api.NewHTTPServer(mux, api.MetricsLimits(), logger))
		listeners = append(listeners, ml)
	}
	for i := range servers {
		go servers[i].Serve(listeners[i])
	}
	logger.Info("api listening", "socket", o.APISocket)
	invites.serve(node)
	notifySystemd(logger, daemon.SdNotifyReady)

	var fatal error
	select {
	case <-ctx.Done():
		logger.Info("shutting down: leaving the cluster")
	case <-node.Fatal():
		fatal = node.Err()
		logger.Error("shutting down", "err", fatal)
	}
	notifySystemd(logger, daemon.SdNotifyStopping)
	sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	invites.close(sctx)
	for _, s := range servers {
		s.Shutdown(sctx)
	}
	os.Remove(o.APISocket)
	stopContainers() // no reaping into a closing node
	checks.close()
	dnsSrv.close()
	rv.close()
	closeNode(true)
	// Interfaces and machine namespaces stay so a restarted agent adopts them without
	// a flap; `dogwood agent cleanup` removes them for good.
	dp.close()
	return fatal
}

// agentCleanupCommand removes what an agent's data plane left on this host on
// purpose (a stopped agent keeps interface, filter and machine namespaces so a restart
// does not interrupt traffic): for a host that leaves the cluster for good.
func agentCleanupCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "cleanup",
		Usage: "remove the WireGuard interface, routes, DNS addresses, nftables table and machine veths a stopped agent left",
		Description: `Run it after stopping the agent on a host that leaves for good (and after
"dogwood members remove NAME" on another host).

Example:
  systemctl stop dogwood && dogwood agent cleanup --config /etc/dogwood/agent.yaml
  dogwood agent cleanup --wg-interface dogwood0`,
		OnUsageError: usageHook,
		// The agent's config file names the interface; its other settings are
		// the agent's and are accepted here without effect.
		Before: func(c *cli.Context) error { return loadConfigFileFor(c, agentCommand(e).Flags) },
		Flags: withConfigFile([]cli.Flag{
			&cli.StringFlag{Name: "wg-interface", Usage: "WireGuard interface name", Value: "dogwood0"},
			&cli.StringFlag{Name: "wireguard", Usage: "auto|kernel|userspace", Value: "auto"},
		}),
		Action: func(c *cli.Context) error {
			if _, err := args(c, 0, 0, "[--config FILE] [--wg-interface NAME]"); err != nil {
				return err
			}
			mode, err := device.ParseMode(c.String("wireguard"))
			if err != nil {
				return &usageError{err.Error()}
			}
			key, err := wgtypes.GeneratePrivateKey() // the interface is destroyed: any key will do
			if err != nil {
				return err
			}
			log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
			dp, err := peers.New(peers.Config{Interface: c.String("wg-interface"), Mode: mode, ListenPort: 0, PrivateKey: key, Logger: log})
			if err != nil {
				return err
			}
			if err := dp.Teardown(); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "removed %s, its routes, DNS addresses, nftables table and machine attachments\n", c.String("wg-interface"))
			return nil
		},
	}
}

// gatewayEndpoint is where user peers reach a gateway: --public-endpoint, its
// port defaulting to --wg-port when it names a host alone (as the advertise
// address does when the flag is unset).
func gatewayEndpoint(o agentOptions) (string, error) {
	if !o.Gateway && o.PublicEndpoint == "" {
		return "", nil
	}
	ep := o.PublicEndpoint
	if ep == "" {
		ep = o.Advertise
		if ep == "" {
			ep = o.GossipAddr
		}
		if h, _, err := net.SplitHostPort(ep); err == nil {
			ep = h
		}
	}
	return withDefaultPort(ep, o.WGPort)
}

// withDefaultPort returns HOST:PORT for "HOST:PORT", "HOST", "[V6]" or a bare
// IPv6 address, using port when none is given.
func withDefaultPort(hostport string, port int) (string, error) {
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		if h == "" {
			return "", usagef("--public-endpoint %q: no host", hostport)
		}
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return "", usagef("--public-endpoint %q: port must be 1-65535", hostport)
		}
		return hostport, nil
	}
	host := strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]")
	if host == "" || strings.ContainsAny(host, "[]/ ") || (strings.Contains(host, ":") && net.ParseIP(host) == nil) {
		return "", usagef("--public-endpoint %q: want HOST or HOST:PORT ([IPv6]:PORT)", hostport)
	}
	return net.JoinHostPort(host, strconv.Itoa(port)), nil
}

// shareSocket opens the API socket to an operator group (as Tailscale's
// --operator does for a user): mode 0660, group GROUP. Everything the socket
// serves, keyring and doctor included, is then theirs to use.
func shareSocket(path, group string) error {
	if group == "" {
		return nil
	}
	g, err := user.LookupGroup(group)
	if err != nil {
		return usagef("--api-socket-group %s: %v (create it with `groupadd --system %s`, or leave the flag unset for a root-only socket)", group, err, group)
	}
	gid, err := strconv.Atoi(g.Gid)
	if err != nil {
		return fmt.Errorf("--api-socket-group %s: gid %q", group, g.Gid)
	}
	if err := os.Chown(path, -1, gid); err != nil {
		return fmt.Errorf("--api-socket-group %s: %w (the agent must be root or in that group: systemd's SupplementaryGroups=)", group, err)
	}
	return os.Chmod(path, 0o660)
}

// logAttrs are the build's fields for the agent's first log line.
func (b buildInfo) logAttrs() []any {
	return []any{"version", b.Version, "commit", b.shortCommit(), "built", b.Date, "go", b.GoVersion}
}
