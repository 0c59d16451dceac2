package hostapi

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/spec"
	"github.com/slipwayhq/slipway/hostapi/pluginpb"
)

// Client calls one plugin process. Its methods return a stage's own error with its class
// and exact message, or a *TransportError when the call itself failed.
type Client struct {
	done     context.Context
	plugin   pluginpb.PluginClient
	verify   pluginpb.VerifyClient
	image    pluginpb.ImageClient
	merge    pluginpb.MergeClient
	security pluginpb.SecurityClient
	network  pluginpb.NetworkClient
	layer    pluginpb.LayerClient
	mkdir    pluginpb.MkdirClient
	register pluginpb.RegisterClient
	check    pluginpb.CheckClient

	hostID uint32 // broker id of the Host service; 0 when not served
	calls  callTable
}

// NewClient returns a client over conn. done is cancelled when the plugin process is gone
// (go-plugin passes such a context to GRPCClient); nil means never.
func NewClient(done context.Context, conn grpc.ClientConnInterface) *Client {
	if done == nil {
		done = context.Background()
	}
	return &Client{
		done:     done,
		plugin:   pluginpb.NewPluginClient(conn),
		verify:   pluginpb.NewVerifyClient(conn),
		image:    pluginpb.NewImageClient(conn),
		merge:    pluginpb.NewMergeClient(conn),
		security: pluginpb.NewSecurityClient(conn),
		network:  pluginpb.NewNetworkClient(conn),
		layer:    pluginpb.NewLayerClient(conn),
		mkdir:    pluginpb.NewMkdirClient(conn),
		register: pluginpb.NewRegisterClient(conn),
		check:    pluginpb.NewCheckClient(conn),
	}
}

// UseChannel sends the stage calls over conn (a plugin's fd Channel) from now on; Describe,
// Configure and the host callbacks stay on the gRPC connection. Call it before any stage
// call.
func (c *Client) UseChannel(conn grpc.ClientConnInterface) {
	c.verify = pluginpb.NewVerifyClient(conn)
	c.image = pluginpb.NewImageClient(conn)
	c.merge = pluginpb.NewMergeClient(conn)
	c.security = pluginpb.NewSecurityClient(conn)
	c.network = pluginpb.NewNetworkClient(conn)
	c.layer = pluginpb.NewLayerClient(conn)
	c.mkdir = pluginpb.NewMkdirClient(conn)
	c.register = pluginpb.NewRegisterClient(conn)
	c.check = pluginpb.NewCheckClient(conn)
}

// Done is closed when the plugin process is gone.
func (c *Client) Done() <-chan struct{} { return c.done.Done() }

// Describe asks the plugin what it serves.
func (c *Client) Describe(ctx context.Context) (*pluginpb.DescribeResponse, error) {
	d, err := c.plugin.Describe(ctx, &pluginpb.DescribeRequest{})
	return d, FromStatus(err)
}

// Configure hands the plugin its config, a JSON object (nil: {}).
func (c *Client) Configure(ctx context.Context, config json.RawMessage) error {
	if len(config) == 0 {
		config = json.RawMessage("{}")
	}
	_, err := c.plugin.Configure(ctx, &pluginpb.ConfigureRequest{Config: config, HostBrokerId: c.hostID})
	return FromStatus(err)
}

func encode(v any) ([]byte, error) {
	b, err := marshalWire(v)
	if err != nil {
		return nil, errdefs.Internal(fmt.Errorf("hostapi: encode: %w", err))
	}
	return b, nil
}

func decode[T any](resp *pluginpb.OutputResponse, err error) (*T, error) {
	if err != nil {
		return nil, FromStatus(err)
	}
	if len(resp.GetOutput()) == 0 || string(resp.GetOutput()) == "null" {
		return nil, nil
	}
	out := new(T)
	if err := unmarshalWire(resp.GetOutput(), out); err != nil {
		return nil, errdefs.Internal(fmt.Errorf("hostapi: decode plugin output: %w", err))
	}
	return out, nil
}

// request encodes rec and registers the call with the Host service when ctx carries a
// HostEnv; the caller must end the returned call (nil-safe).
func (c *Client) request(ctx context.Context, rec *spec.Record, warn bool) (*pluginpb.RecordRequest, *hostCall, error) {
	b, err := encode(rec)
	if err != nil {
		return nil, nil, err
	}
	hcall, hc := c.begin(ctx, warn)
	return &pluginpb.RecordRequest{Record: b, Call: hcall}, hc, nil
}

// withWarnings appends the warnings a plugin added through the Host service to the output's.
func withWarnings(w *[]string, added []string) {
	if len(added) > 0 {
		*w = append(*w, added...)
	}
}

// Verify calls the verify stage.
func (c *Client) Verify(ctx context.Context, req *spec.CreateRequest) (*spec.Verified, error) {
	b, err := encode(req)
	if err != nil {
		return nil, err
	}
	hcall, hc := c.begin(ctx, true)
	out, err := decode[spec.Verified](c.verify.Verify(ctx, &pluginpb.VerifyRequest{Request: b, Call: hcall}))
	if w := hc.end(); out != nil {
		withWarnings(&out.Warnings, w)
	}
	return out, err
}

// ResolveImage calls the image stage.
func (c *Client) ResolveImage(ctx context.Context, rec *spec.Record) (*spec.Image, error) {
	r, hc, err := c.request(ctx, rec, true)
	if err != nil {
		return nil, err
	}
	out, err := decode[spec.Image](c.image.ResolveImage(ctx, r))
	if w := hc.end(); out != nil {
		withWarnings(&out.Warnings, w)
	}
	return out, err
}

// Merge calls the merge stage.
func (c *Client) Merge(ctx context.Context, rec *spec.Record) (*spec.Merged, error) {
	r, hc, err := c.request(ctx, rec, true)
	if err != nil {
		return nil, err
	}
	out, err := decode[spec.Merged](c.merge.Merge(ctx, r))
	if w := hc.end(); out != nil {
		withWarnings(&out.Warnings, w)
	}
	return out, err
}

// Secure calls the security stage.
func (c *Client) Secure(ctx context.Context, rec *spec.Record) (*spec.Security, error) {
	r, hc, err := c.request(ctx, rec, true)
	if err != nil {
		return nil, err
	}
	out, err := decode[spec.Security](c.security.Secure(ctx, r))
	if w := hc.end(); out != nil {
		withWarnings(&out.Warnings, w)
	}
	return out, err
}

// ConfigureNetwork calls the network stage.
func (c *Client) ConfigureNetwork(ctx context.Context, rec *spec.Record) (*spec.Network, error) {
	r, hc, err := c.request(ctx, rec, true)
	if err != nil {
		return nil, err
	}
	out, err := decode[spec.Network](c.network.ConfigureNetwork(ctx, r))
	if w := hc.end(); out != nil {
		withWarnings(&out.Warnings, w)
	}
	return out, err
}

// PrepareRootFS calls the layer stage.
func (c *Client) PrepareRootFS(ctx context.Context, rec *spec.Record) (*spec.RootFS, error) {
	r, hc, err := c.request(ctx, rec, true)
	if err != nil {
		return nil, err
	}
	out, err := decode[spec.RootFS](c.layer.PrepareRootFS(ctx, r))
	if w := hc.end(); out != nil {
		withWarnings(&out.Warnings, w)
	}
	return out, err
}

// MakeDirs calls the mkdir stage.
func (c *Client) MakeDirs(ctx context.Context, rec *spec.Record) (*spec.Dirs, error) {
	r, hc, err := c.request(ctx, rec, false)
	if err != nil {
		return nil, err
	}
	defer hc.end()
	return decode[spec.Dirs](c.mkdir.MakeDirs(ctx, r))
}

// Reserve calls the first half of the register stage.
func (c *Client) Reserve(ctx context.Context, rec *spec.Record) (string, error) {
	r, hc, err := c.request(ctx, rec, false)
	if err != nil {
		return "", err
	}
	defer hc.end()
	resp, err := c.register.Reserve(ctx, r)
	if err != nil {
		return "", FromStatus(err)
	}
	return resp.GetName(), nil
}

// Register calls the second half of the register stage.
func (c *Client) Register(ctx context.Context, rec *spec.Record) error {
	r, hc, err := c.request(ctx, rec, false)
	if err != nil {
		return err
	}
	defer hc.end()
	_, err = c.register.Register(ctx, r)
	return FromStatus(err)
}

// Check calls a check step.
func (c *Client) Check(ctx context.Context, rec *spec.Record) ([]string, error) {
	r, hc, err := c.request(ctx, rec, true)
	if err != nil {
		return nil, err
	}
	resp, err := c.check.Check(ctx, r)
	added := hc.end()
	if err != nil {
		return nil, FromStatus(err)
	}
	return append(resp.GetWarnings(), added...), nil
}

// Undo calls the undo of stage st, which must be effectful.
func (c *Client) Undo(ctx context.Context, st spec.Stage, rec *spec.Record) error {
	r, hc, err := c.request(ctx, rec, false)
	if err != nil {
		return err
	}
	defer hc.end()
	if cause := core.UndoCauseOf(ctx); cause != (core.UndoCause{}) {
		r.Undo = &pluginpb.UndoCause{Remove: cause.Remove, RemoveVolumes: cause.RemoveVolumes}
	}
	switch st {
	case spec.StageSecurity:
		_, err = c.security.Undo(ctx, r)
	case spec.StageNetwork:
		_, err = c.network.Undo(ctx, r)
	case spec.StageLayer:
		_, err = c.layer.Undo(ctx, r)
	case spec.StageMkdir:
		_, err = c.mkdir.Undo(ctx, r)
	case spec.StageRegister:
		_, err = c.register.Undo(ctx, r)
	default:
		return errdefs.Internal(fmt.Errorf("hostapi: stage %s has no undo", st))
	}
	return FromStatus(err)
}

// Mount asks the layer stage to mount the container's root filesystem and returns where.
func (c *Client) Mount(ctx context.Context, rec *spec.Record) (string, error) {
	r, hc, err := c.request(ctx, rec, false)
	if err != nil {
		return "", err
	}
	defer hc.end()
	resp, err := c.layer.Mount(ctx, r)
	if err != nil {
		return "", mountErr("Mount", err)
	}
	return resp.GetPath(), nil
}

// Unmount asks the layer stage to unmount the container's root filesystem.
func (c *Client) Unmount(ctx context.Context, rec *spec.Record) error {
	r, hc, err := c.request(ctx, rec, false)
	if err != nil {
		return err
	}
	defer hc.end()
	_, err = c.layer.Unmount(ctx, r)
	if err != nil {
		return mountErr("Unmount", err)
	}
	return nil
}

// mountErr turns Unimplemented, what a plugin whose layer stage cannot mount answers (or
// one built before Mount existed), into a FailedPrecondition that says so.
func mountErr(method string, err error) error {
	if status.Code(err) == codes.Unimplemented {
		return errdefs.FailedPrecondition(fmt.Errorf("the plugin's layer stage does not support %s: %s", strings.ToLower(method), status.Convert(err).Message()))
	}
	return FromStatus(err)
}

// Caller runs calls against a plugin. The Client is a Caller that calls directly; the host
// wraps it with deadlines, restarts and errors that name the plugin.
type Caller interface {
	// Call runs f with a live client. method names the call in errors, for example
	// "network.ConfigureNetwork".
	Call(ctx context.Context, method string, f func(ctx context.Context, c *Client) error) error
}

// Call runs f on c.
func (c *Client) Call(ctx context.Context, method string, f func(ctx context.Context, c *Client) error) error {
	return f(ctx, c)
}

// StageView returns a value that implements the core interface of stage st (core.Networker
// for the network stage, and so on) by calling through c.
func StageView(st spec.Stage, c Caller) (any, error) {
	switch st {
	case spec.StageVerify:
		return verifyView{c}, nil
	case spec.StageImage:
		return imageView{c}, nil
	case spec.StageMerge:
		return mergeView{c}, nil
	case spec.StageSecurity:
		return securityView{undoView{c, st}}, nil
	case spec.StageNetwork:
		return networkView{undoView{c, st}}, nil
	case spec.StageLayer:
		return layerView{undoView{c, st}}, nil
	case spec.StageMkdir:
		return mkdirView{undoView{c, st}}, nil
	case spec.StageRegister:
		return registerView{undoView{c, st}}, nil
	}
	return nil, errdefs.InvalidArgument(fmt.Errorf("hostapi: unknown stage %q", st))
}

// CheckView returns a core.Checker that calls through c.
func CheckView(c Caller) core.Checker { return checkView{c} }

func call[T any](ctx context.Context, c Caller, method string, f func(ctx context.Context, cl *Client) (T, error)) (T, error) {
	var out T
	err := c.Call(ctx, method, func(ctx context.Context, cl *Client) error {
		var err error
		out, err = f(ctx, cl)
		return err
	})
	return out, err
}

type verifyView struct{ c Caller }

func (v verifyView) Verify(ctx context.Context, req *spec.CreateRequest) (*spec.Verified, error) {
	return call(ctx, v.c, "verify.Verify", func(ctx context.Context, cl *Client) (*spec.Verified, error) { return cl.Verify(ctx, req) })
}

type imageView struct{ c Caller }

func (v imageView) ResolveImage(ctx context.Context, rec *spec.Record) (*spec.Image, error) {
	return call(ctx, v.c, "image.ResolveImage", func(ctx context.Context, cl *Client) (*spec.Image, error) { return cl.ResolveImage(ctx, rec) })
}

type mergeView struct{ c Caller }

func (v mergeView) Merge(ctx context.Context, rec *spec.Record) (*spec.Merged, error) {
	return call(ctx, v.c, "merge.Merge", func(ctx context.Context, cl *Client) (*spec.Merged, error) { return cl.Merge(ctx, rec) })
}

type undoView struct {
	c  Caller
	st spec.Stage
}

func (v undoView) Undo(ctx context.Context, rec *spec.Record) error {
	return v.c.Call(ctx, string(v.st)+".Undo", func(ctx context.Context, cl *Client) error { return cl.Undo(ctx, v.st, rec) })
}

type securityView struct{ undoView }

func (v securityView) Secure(ctx context.Context, rec *spec.Record) (*spec.Security, error) {
	return call(ctx, v.c, "security.Secure", func(ctx context.Context, cl *Client) (*spec.Security, error) { return cl.Secure(ctx, rec) })
}

type networkView struct{ undoView }

func (v networkView) ConfigureNetwork(ctx context.Context, rec *spec.Record) (*spec.Network, error) {
	return call(ctx, v.c, "network.ConfigureNetwork", func(ctx context.Context, cl *Client) (*spec.Network, error) { return cl.ConfigureNetwork(ctx, rec) })
}

type layerView struct{ undoView }

func (v layerView) PrepareRootFS(ctx context.Context, rec *spec.Record) (*spec.RootFS, error) {
	return call(ctx, v.c, "layer.PrepareRootFS", func(ctx context.Context, cl *Client) (*spec.RootFS, error) { return cl.PrepareRootFS(ctx, rec) })
}

func (v layerView) Mount(ctx context.Context, rec *spec.Record) (string, error) {
	return call(ctx, v.c, "layer.Mount", func(ctx context.Context, cl *Client) (string, error) { return cl.Mount(ctx, rec) })
}

func (v layerView) Unmount(ctx context.Context, rec *spec.Record) error {
	return v.c.Call(ctx, "layer.Unmount", func(ctx context.Context, cl *Client) error { return cl.Unmount(ctx, rec) })
}

type mkdirView struct{ undoView }

func (v mkdirView) MakeDirs(ctx context.Context, rec *spec.Record) (*spec.Dirs, error) {
	return call(ctx, v.c, "mkdir.MakeDirs", func(ctx context.Context, cl *Client) (*spec.Dirs, error) { return cl.MakeDirs(ctx, rec) })
}

type registerView struct{ undoView }

func (v registerView) Reserve(ctx context.Context, rec *spec.Record) (string, error) {
	return call(ctx, v.c, "register.Reserve", func(ctx context.Context, cl *Client) (string, error) { return cl.Reserve(ctx, rec) })
}

func (v registerView) Register(ctx context.Context, rec *spec.Record) error {
	return v.c.Call(ctx, "register.Register", func(ctx context.Context, cl *Client) error { return cl.Register(ctx, rec) })
}

type checkView struct{ c Caller }

func (v checkView) Check(ctx context.Context, rec *spec.Record) ([]string, error) {
	return call(ctx, v.c, "check.Check", func(ctx context.Context, cl *Client) ([]string, error) { return cl.Check(ctx, rec) })
}

var (
	_ core.Verifier      = verifyView{}
	_ core.ImageResolver = imageView{}
	_ core.Merger        = mergeView{}
	_ core.Securer       = securityView{}
	_ core.Networker     = networkView{}
	_ core.Layerer       = layerView{}
	_ core.Mounter       = layerView{}
	_ core.DirMaker      = mkdirView{}
	_ core.Registrar     = registerView{}
	_ core.Checker       = checkView{}
)
