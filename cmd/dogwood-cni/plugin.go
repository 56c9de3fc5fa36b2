package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/containernetworking/plugins/pkg/ip"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/containers/wire"
)

type plugin struct {
	dial func(socket string) *agentClient
}

func configError(err error) *types.Error {
	return types.NewError(types.ErrInvalidNetworkConfig, err.Error(), "")
}

func (p *plugin) add(args *skel.CmdArgs) error {
	conf, err := parseConf(args.StdinData)
	if err != nil {
		return configError(err)
	}
	ca, err := parseArgs(args.Args)
	if err != nil {
		return types.NewError(types.ErrInvalidEnvironmentVariables, err.Error(), "")
	}
	req := wire.AddRequest{Key: wire.Key{ContainerID: args.ContainerID, Ifname: args.IfName}, Netns: args.Netns, CNINetwork: conf.Name,
		Org: conf.Org, App: conf.App, Network: conf.Network, Region: conf.Region, ProcessGroup: conf.ProcessGroup, Checks: conf.Checks}
	if ca.App != "" {
		req.App = ca.App
	}
	if ca.ProcessGroup != "" {
		req.ProcessGroup = ca.ProcessGroup
	}
	if len(conf.Metadata)+len(ca.Metadata) > 0 {
		req.Metadata = map[string]string{}
		for k, v := range conf.Metadata {
			req.Metadata[k] = v
		}
		for k, v := range ca.Metadata {
			req.Metadata[k] = v
		}
	}
	if err := conf.needsMachine(req.App); err != nil {
		return configError(err)
	}
	for _, s := range conf.Services {
		sv, err := parseService(s)
		if err != nil {
			return configError(err)
		}
		req.Services = append(req.Services, sv)
	}
	// The kernel wants the namespace to be a file we can open; say so in CNI's terms.
	if err := ns.IsNSorErr(args.Netns); err != nil {
		return types.NewError(types.ErrInvalidNetNS, fmt.Sprintf("CNI_NETNS %s: %v", args.Netns, err), "")
	}
	ctx, cancel := context.WithTimeout(context.Background(), addTimeout)
	defer cancel()
	c := p.dial(conf.Agent)
	var a wire.Attachment
	if err := c.do(ctx, http.MethodPut, wire.PathAttachments, req, &a); err != nil {
		return cniError("dogwood ADD", err)
	}
	res, err := result(&a, args)
	if err != nil {
		// The runtime will not know this attachment: take it back.
		derr := c.do(context.Background(), http.MethodDelete, attachmentPath(args), nil, nil)
		return types.NewError(types.ErrInternal, "dogwood ADD: "+err.Error(), fmt.Sprint("machine destroyed again: ", derr == nil))
	}
	if conf.RawPrevResult != nil {
		if res, err = chain(conf, res); err != nil {
			return types.NewError(types.ErrDecodingFailure, "dogwood ADD: prevResult: "+err.Error(), "")
		}
	}
	return types.PrintResult(res, conf.CNIVersion)
}

func attachmentPath(args *skel.CmdArgs) string {
	return wire.PathAttachments + "/" + url.PathEscape(args.ContainerID) + "/" + url.PathEscape(args.IfName)
}

// result is CNI's result for an attachment: the host's veth, the container's
// interface, its address, routes via the host side, and fdaa::3 for DNS.
func result(a *wire.Attachment, args *skel.CmdArgs) (*current.Result, error) {
	hostMAC := ""
	if l, err := netlink.LinkByName(a.HostIface); err == nil {
		hostMAC = l.Attrs().HardwareAddr.String()
	}
	var mac string
	err := ns.WithNetNSPath(args.Netns, func(ns.NetNS) error {
		l, err := netlink.LinkByName(args.IfName)
		if err != nil {
			return err
		}
		mac = l.Attrs().HardwareAddr.String()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("interface %s in %s: %w", args.IfName, args.Netns, err)
	}
	idx := 1
	gw := net.IP(a.Gateway.AsSlice())
	res := &current.Result{
		CNIVersion: current.ImplementedSpecVersion,
		Interfaces: []*current.Interface{{Name: a.HostIface, Mac: hostMAC}, {Name: args.IfName, Mac: mac, Sandbox: args.Netns}},
		IPs: []*current.IPConfig{{Interface: &idx, Gateway: gw,
			Address: net.IPNet{IP: a.Prefix.Addr().AsSlice(), Mask: net.CIDRMask(a.Prefix.Bits(), 128)}}},
	}
	for _, r := range a.Routes {
		res.Routes = append(res.Routes, &types.Route{Dst: net.IPNet{IP: r.Addr().AsSlice(), Mask: net.CIDRMask(r.Bits(), 128)}, GW: gw})
	}
	for _, d := range a.DNS {
		res.DNS.Nameservers = append(res.DNS.Nameservers, d.String())
	}
	return res, nil
}

// chain appends our result to the previous plugins' (dogwood after another plugin).
func chain(conf *netConf, ours *current.Result) (*current.Result, error) {
	pc := types.PluginConf{CNIVersion: conf.CNIVersion, RawPrevResult: conf.RawPrevResult}
	if err := version.ParsePrevResult(&pc); err != nil {
		return nil, err
	}
	prev, err := current.NewResultFromResult(pc.PrevResult)
	if err != nil {
		return nil, err
	}
	off := len(prev.Interfaces)
	prev.Interfaces = append(prev.Interfaces, ours.Interfaces...)
	for _, c := range ours.IPs {
		i := *c.Interface + off
		c.Interface = &i
		prev.IPs = append(prev.IPs, c)
	}
	prev.Routes = append(prev.Routes, ours.Routes...)
	prev.DNS.Nameservers = append(ours.DNS.Nameservers, prev.DNS.Nameservers...)
	return prev, nil
}

func parseService(s string) (catalog.Service, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return catalog.Service{}, fmt.Errorf("dogwood network config: service %q: want NAME:PROTO:PORT, e.g. http:tcp:8080", s)
	}
	port, err := strconv.ParseUint(parts[2], 10, 16)
	if err != nil || port == 0 {
		return catalog.Service{}, fmt.Errorf("dogwood network config: service %q: port must be 1-65535", s)
	}
	return catalog.Service{Name: parts[0], Proto: parts[1], Port: uint16(port)}, nil
}

// del destroys the container's machine. It succeeds when there is nothing to do:
// the machine or the namespace is already gone. When the agent cannot be reached
// it waits a little (an agent restarting), then succeeds if the namespace is gone
// (the agent reaps such machines when it runs again) and fails otherwise, since a
// live container would keep its interface.
func (p *plugin) del(args *skel.CmdArgs) error {
	conf, err := parseConf(args.StdinData)
	if err != nil {
		return configError(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), delTimeout)
	defer cancel()
	c := p.dial(conf.Agent)
	patience := time.Now().Add(restartWait)
	for {
		err = c.do(ctx, http.MethodDelete, attachmentPath(args), nil, nil)
		var ue *errUnreachable
		if err == nil || !errors.As(err, &ue) || ctx.Err() != nil {
			break
		}
		if namespaceGone(args.Netns) {
			return nil
		}
		if time.Now().After(patience) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if err == nil {
		return nil
	}
	return cniError("dogwood DEL", err)
}

func namespaceGone(path string) bool {
	if path == "" {
		return true
	}
	var nerr ns.NSPathNotExistErr
	err := ns.IsNSorErr(path)
	return errors.As(err, &nerr) || errors.Is(err, os.ErrNotExist)
}

// check verifies that the machine exists and is attached, that the previous
// result's address is the machine's, and that the container's interface has it
// and the routes.
func (p *plugin) check(args *skel.CmdArgs) error {
	conf, err := parseConf(args.StdinData)
	if err != nil {
		return configError(err)
	}
	if conf.RawPrevResult == nil {
		return types.NewError(types.ErrInvalidNetworkConfig, "dogwood CHECK: no prevResult in the config", "")
	}
	pc := types.PluginConf{CNIVersion: conf.CNIVersion, RawPrevResult: conf.RawPrevResult}
	if err := version.ParsePrevResult(&pc); err != nil {
		return types.NewError(types.ErrDecodingFailure, "dogwood CHECK: prevResult: "+err.Error(), "")
	}
	prev, err := current.NewResultFromResult(pc.PrevResult)
	if err != nil {
		return types.NewError(types.ErrDecodingFailure, "dogwood CHECK: prevResult: "+err.Error(), "")
	}
	ctx, cancel := context.WithTimeout(context.Background(), addTimeout)
	defer cancel()
	var a wire.Attachment
	if err := p.dial(conf.Agent).do(ctx, http.MethodGet, attachmentPath(args), nil, &a); err != nil {
		var ae *agentError
		if errors.As(err, &ae) && ae.status == http.StatusNotFound {
			return types.NewError(types.ErrUnknownContainer, "dogwood CHECK: "+ae.msg, "")
		}
		return cniError("dogwood CHECK", err)
	}
	if a.Machine == nil {
		return types.NewError(types.ErrUnknownContainer, "dogwood CHECK: the agent answered without a machine", "")
	}
	if a.Machine.Netns != args.Netns {
		return types.NewError(types.ErrInvalidNetNS, fmt.Sprintf("dogwood CHECK: machine %s is attached to %s, not %s", a.Machine.ID, a.Machine.Netns, args.Netns), "")
	}
	var mine []*current.IPConfig
	for _, c := range prev.IPs {
		if c.Interface != nil && *c.Interface < len(prev.Interfaces) && prev.Interfaces[*c.Interface].Name == args.IfName {
			mine = append(mine, c)
		}
	}
	if len(mine) != 1 || mine[0].Address.IP.String() != a.Prefix.Addr().String() {
		return types.NewError(types.ErrInternal, fmt.Sprintf("dogwood CHECK: the previous result does not hold machine %s's address %s on %s", a.Machine.ID, a.Prefix.Addr(), args.IfName), "")
	}
	var routes []*types.Route
	for _, r := range prev.Routes {
		if r.GW.Equal(net.IP(a.Gateway.AsSlice())) {
			routes = append(routes, r)
		}
	}
	err = ns.WithNetNSPath(args.Netns, func(ns.NetNS) error {
		if err := ip.ValidateExpectedInterfaceIPs(args.IfName, mine); err != nil {
			return err
		}
		return ip.ValidateExpectedRoute(routes)
	})
	if err != nil {
		return types.NewError(types.ErrInternal, "dogwood CHECK: "+err.Error(), "")
	}
	return nil
}

// gc removes this host's machines of this network config that the runtime no
// longer has.
func (p *plugin) gc(args *skel.CmdArgs) error {
	conf, err := parseConf(args.StdinData)
	if err != nil {
		return configError(err)
	}
	req := wire.GCRequest{CNINetwork: conf.Name, Valid: []wire.Key{}}
	valid := conf.ValidAttachments
	if valid == nil {
		valid = conf.Attachments
	}
	for _, v := range valid {
		req.Valid = append(req.Valid, wire.Key{ContainerID: v.ContainerID, Ifname: v.IfName})
	}
	ctx, cancel := context.WithTimeout(context.Background(), addTimeout)
	defer cancel()
	if err := p.dial(conf.Agent).do(ctx, http.MethodPost, wire.PathGC, req, nil); err != nil {
		return cniError("dogwood GC", err)
	}
	return nil
}

// status says whether ADD can work: the agent answers and attaches containers.
func (p *plugin) status(args *skel.CmdArgs) error {
	conf, err := parseConf(args.StdinData)
	if err != nil {
		return configError(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = p.dial(conf.Agent).do(ctx, http.MethodGet, wire.PathAttachments+"/status/probe", nil, nil)
	var ae *agentError
	if err == nil || errors.As(err, &ae) && ae.status == http.StatusNotFound {
		return nil
	}
	e := cniError("dogwood STATUS", err)
	e.Code = errPluginNotAvailable
	return e
}

// errPluginNotAvailable is spec 1.1's STATUS code 50 (this version of the CNI
// library predates the constant).
const errPluginNotAvailable uint = 50
