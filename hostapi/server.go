package hostapi

import (
	"context"
	"fmt"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/spec"
	"github.com/slipwayhq/slipway/hostapi/pluginpb"
)

// StageCheck is the name under which a plugin serves a check step.
const StageCheck = "check"

// Stages are the stage implementations a plugin serves; nil ones are not served.
type Stages struct {
	Verify   core.Verifier
	Image    core.ImageResolver
	Merge    core.Merger
	Security core.Securer
	Network  core.Networker
	Layer    core.Layerer
	Mkdir    core.DirMaker
	Register core.Registrar
	Check    core.Checker
}

// Names lists the stages served, in pipeline order, then "check".
func (s Stages) Names() []string {
	set := map[spec.Stage]bool{
		spec.StageVerify: s.Verify != nil, spec.StageImage: s.Image != nil, spec.StageMerge: s.Merge != nil,
		spec.StageSecurity: s.Security != nil, spec.StageNetwork: s.Network != nil, spec.StageLayer: s.Layer != nil,
		spec.StageMkdir: s.Mkdir != nil, spec.StageRegister: s.Register != nil,
	}
	var out []string
	for _, st := range spec.Stages {
		if set[st] {
			out = append(out, string(st))
		}
	}
	if s.Check != nil {
		out = append(out, StageCheck)
	}
	return out
}

// Backend is what a plugin process serves; plugins/sdk implements it.
type Backend interface {
	Describe(ctx context.Context) (*pluginpb.DescribeResponse, error)
	// Configure decodes and applies the config (a JSON object).
	Configure(ctx context.Context, config []byte) error
	// Ready returns nil once stage calls may run (after Configure).
	Ready() error
	Stages() Stages
}

// served is a Backend with the plugin side's connection to the host's callbacks.
type served struct {
	Backend
	host *hostDialer
}

// Register registers the Plugin service and the service of every stage b serves on s,
// without host callbacks (see RegisterWithBroker).
func Register(s *grpc.Server, b Backend) { RegisterWithBroker(s, b, nil) }

// RegisterWithBroker is Register with host callbacks: Configure dials the host's Host
// service on broker, and stage implementations find it with HostFromContext.
func RegisterWithBroker(s *grpc.Server, be Backend, broker *plugin.GRPCBroker) {
	registerServices(s, newServed(be, broker))
}

func newServed(be Backend, broker *plugin.GRPCBroker) *served {
	var hd *hostDialer
	if broker != nil {
		hd = &hostDialer{broker: broker}
	}
	return &served{Backend: be, host: hd}
}

// registerServices registers the Plugin service and the service of every stage b serves.
func registerServices(s grpc.ServiceRegistrar, b *served) {
	pluginpb.RegisterPluginServer(s, pluginServer{b: b})
	st := b.Stages()
	if st.Verify != nil {
		pluginpb.RegisterVerifyServer(s, verifyServer{b: b, s: st.Verify})
	}
	if st.Image != nil {
		pluginpb.RegisterImageServer(s, imageServer{b: b, s: st.Image})
	}
	if st.Merge != nil {
		pluginpb.RegisterMergeServer(s, mergeServer{b: b, s: st.Merge})
	}
	if st.Security != nil {
		pluginpb.RegisterSecurityServer(s, securityServer{b: b, s: st.Security})
	}
	if st.Network != nil {
		pluginpb.RegisterNetworkServer(s, networkServer{b: b, s: st.Network})
	}
	if st.Layer != nil {
		pluginpb.RegisterLayerServer(s, layerServer{b: b, s: st.Layer})
	}
	if st.Mkdir != nil {
		pluginpb.RegisterMkdirServer(s, mkdirServer{b: b, s: st.Mkdir})
	}
	if st.Register != nil {
		pluginpb.RegisterRegisterServer(s, registerServer{b: b, s: st.Register})
	}
	if st.Check != nil {
		pluginpb.RegisterCheckServer(s, checkServer{b: b, s: st.Check})
	}
}

type pluginServer struct {
	pluginpb.UnimplementedPluginServer
	b *served
}

func (p pluginServer) Describe(ctx context.Context, _ *pluginpb.DescribeRequest) (*pluginpb.DescribeResponse, error) {
	d, err := p.b.Describe(ctx)
	return d, ToStatus(err)
}

func (p pluginServer) Configure(ctx context.Context, req *pluginpb.ConfigureRequest) (*pluginpb.ConfigureResponse, error) {
	p.b.host.dial(req.GetHostBrokerId())
	if err := p.b.Configure(ctx, req.GetConfig()); err != nil {
		return nil, ToStatus(err)
	}
	return &pluginpb.ConfigureResponse{}, nil
}

// record decodes the record of a request once the backend is ready.
func record(b *served, req *pluginpb.RecordRequest) (*spec.Record, error) {
	if err := b.Ready(); err != nil {
		return nil, err
	}
	var rec spec.Record
	if err := unmarshalWire(req.GetRecord(), &rec); err != nil {
		return nil, errdefs.InvalidArgument(fmt.Errorf("hostapi: decode record: %w", err))
	}
	return &rec, nil
}

// output runs a stage call on the request's record and encodes its output.
func output[T any](ctx context.Context, b *served, req *pluginpb.RecordRequest, call func(context.Context, *spec.Record) (T, error)) (*pluginpb.OutputResponse, error) {
	rec, err := record(b, req)
	if err != nil {
		return nil, ToStatus(err)
	}
	out, err := call(b.host.withCall(ctx, req.GetCall()), rec)
	if err != nil {
		return nil, ToStatus(err)
	}
	body, err := marshalWire(out)
	if err != nil {
		return nil, ToStatus(errdefs.Internal(fmt.Errorf("hostapi: encode output: %w", err)))
	}
	return &pluginpb.OutputResponse{Output: body}, nil
}

func undo(ctx context.Context, b *served, u core.Undoer, req *pluginpb.RecordRequest) (*pluginpb.UndoResponse, error) {
	rec, err := record(b, req)
	if err != nil {
		return nil, ToStatus(err)
	}
	ctx = b.host.withCall(ctx, req.GetCall())
	if c := req.GetUndo(); c != nil {
		ctx = core.WithUndoCause(ctx, core.UndoCause{Remove: c.GetRemove(), RemoveVolumes: c.GetRemoveVolumes()})
	}
	if err := u.Undo(ctx, rec); err != nil {
		return nil, ToStatus(err)
	}
	return &pluginpb.UndoResponse{}, nil
}

type verifyServer struct {
	pluginpb.UnimplementedVerifyServer
	b *served
	s core.Verifier
}

func (v verifyServer) Verify(ctx context.Context, req *pluginpb.VerifyRequest) (*pluginpb.OutputResponse, error) {
	if err := v.b.Ready(); err != nil {
		return nil, ToStatus(err)
	}
	var cr spec.CreateRequest
	if err := unmarshalWire(req.GetRequest(), &cr); err != nil {
		return nil, ToStatus(errdefs.InvalidArgument(fmt.Errorf("hostapi: decode request: %w", err)))
	}
	out, err := v.s.Verify(v.b.host.withCall(ctx, req.GetCall()), &cr)
	if err != nil {
		return nil, ToStatus(err)
	}
	body, err := marshalWire(out)
	if err != nil {
		return nil, ToStatus(errdefs.Internal(fmt.Errorf("hostapi: encode output: %w", err)))
	}
	return &pluginpb.OutputResponse{Output: body}, nil
}

type imageServer struct {
	pluginpb.UnimplementedImageServer
	b *served
	s core.ImageResolver
}

func (v imageServer) ResolveImage(ctx context.Context, req *pluginpb.RecordRequest) (*pluginpb.OutputResponse, error) {
	return output(ctx, v.b, req, func(ctx context.Context, r *spec.Record) (*spec.Image, error) { return v.s.ResolveImage(ctx, r) })
}

type mergeServer struct {
	pluginpb.UnimplementedMergeServer
	b *served
	s core.Merger
}

func (v mergeServer) Merge(ctx context.Context, req *pluginpb.RecordRequest) (*pluginpb.OutputResponse, error) {
	return output(ctx, v.b, req, func(ctx context.Context, r *spec.Record) (*spec.Merged, error) { return v.s.Merge(ctx, r) })
}

type securityServer struct {
	pluginpb.UnimplementedSecurityServer
	b *served
	s core.Securer
}

func (v securityServer) Secure(ctx context.Context, req *pluginpb.RecordRequest) (*pluginpb.OutputResponse, error) {
	return output(ctx, v.b, req, func(ctx context.Context, r *spec.Record) (*spec.Security, error) { return v.s.Secure(ctx, r) })
}

func (v securityServer) Undo(ctx context.Context, req *pluginpb.RecordRequest) (*pluginpb.UndoResponse, error) {
	return undo(ctx, v.b, v.s, req)
}

type networkServer struct {
	pluginpb.UnimplementedNetworkServer
	b *served
	s core.Networker
}

func (v networkServer) ConfigureNetwork(ctx context.Context, req *pluginpb.RecordRequest) (*pluginpb.OutputResponse, error) {
	return output(ctx, v.b, req, func(ctx context.Context, r *spec.Record) (*spec.Network, error) { return v.s.ConfigureNetwork(ctx, r) })
}

func (v networkServer) Undo(ctx context.Context, req *pluginpb.RecordRequest) (*pluginpb.UndoResponse, error) {
	return undo(ctx, v.b, v.s, req)
}

type layerServer struct {
	pluginpb.UnimplementedLayerServer
	b *served
	s core.Layerer
}

func (v layerServer) PrepareRootFS(ctx context.Context, req *pluginpb.RecordRequest) (*pluginpb.OutputResponse, error) {
	return output(ctx, v.b, req, func(ctx context.Context, r *spec.Record) (*spec.RootFS, error) { return v.s.PrepareRootFS(ctx, r) })
}

func (v layerServer) Undo(ctx context.Context, req *pluginpb.RecordRequest) (*pluginpb.UndoResponse, error) {
	return undo(ctx, v.b, v.s, req)
}

func (v layerServer) Mount(ctx context.Context, req *pluginpb.RecordRequest) (*pluginpb.MountResponse, error) {
	m, rec, ctx, err := v.mounter(ctx, req)
	if err != nil {
		return nil, err
	}
	p, err := m.Mount(ctx, rec)
	if err != nil {
		return nil, ToStatus(err)
	}
	return &pluginpb.MountResponse{Path: p}, nil
}

func (v layerServer) Unmount(ctx context.Context, req *pluginpb.RecordRequest) (*pluginpb.UndoResponse, error) {
	m, rec, ctx, err := v.mounter(ctx, req)
	if err != nil {
		return nil, err
	}
	if err := m.Unmount(ctx, rec); err != nil {
		return nil, ToStatus(err)
	}
	return &pluginpb.UndoResponse{}, nil
}

// mounter returns the stage as a core.Mounter (Unimplemented when it is not one), the
// request's record and the call's context.
func (v layerServer) mounter(ctx context.Context, req *pluginpb.RecordRequest) (core.Mounter, *spec.Record, context.Context, error) {
	m, ok := v.s.(core.Mounter)
	if !ok {
		return nil, nil, nil, status.Error(codes.Unimplemented, "this layer stage cannot mount root filesystems")
	}
	rec, err := record(v.b, req)
	if err != nil {
		return nil, nil, nil, ToStatus(err)
	}
	return m, rec, v.b.host.withCall(ctx, req.GetCall()), nil
}

type mkdirServer struct {
	pluginpb.UnimplementedMkdirServer
	b *served
	s core.DirMaker
}

func (v mkdirServer) MakeDirs(ctx context.Context, req *pluginpb.RecordRequest) (*pluginpb.OutputResponse, error) {
	return output(ctx, v.b, req, func(ctx context.Context, r *spec.Record) (*spec.Dirs, error) { return v.s.MakeDirs(ctx, r) })
}

func (v mkdirServer) Undo(ctx context.Context, req *pluginpb.RecordRequest) (*pluginpb.UndoResponse, error) {
	return undo(ctx, v.b, v.s, req)
}

type registerServer struct {
	pluginpb.UnimplementedRegisterServer
	b *served
	s core.Registrar
}

func (v registerServer) Reserve(ctx context.Context, req *pluginpb.RecordRequest) (*pluginpb.ReserveResponse, error) {
	rec, err := record(v.b, req)
	if err != nil {
		return nil, ToStatus(err)
	}
	name, err := v.s.Reserve(v.b.host.withCall(ctx, req.GetCall()), rec)
	if err != nil {
		return nil, ToStatus(err)
	}
	return &pluginpb.ReserveResponse{Name: name}, nil
}

func (v registerServer) Register(ctx context.Context, req *pluginpb.RecordRequest) (*pluginpb.RegisterResponse, error) {
	rec, err := record(v.b, req)
	if err != nil {
		return nil, ToStatus(err)
	}
	if err := v.s.Register(v.b.host.withCall(ctx, req.GetCall()), rec); err != nil {
		return nil, ToStatus(err)
	}
	return &pluginpb.RegisterResponse{}, nil
}

func (v registerServer) Undo(ctx context.Context, req *pluginpb.RecordRequest) (*pluginpb.UndoResponse, error) {
	return undo(ctx, v.b, v.s, req)
}

type checkServer struct {
	pluginpb.UnimplementedCheckServer
	b *served
	s core.Checker
}

func (v checkServer) Check(ctx context.Context, req *pluginpb.RecordRequest) (*pluginpb.CheckResponse, error) {
	rec, err := record(v.b, req)
	if err != nil {
		return nil, ToStatus(err)
	}
	w, err := v.s.Check(v.b.host.withCall(ctx, req.GetCall()), rec)
	if err != nil {
		return nil, ToStatus(err)
	}
	return &pluginpb.CheckResponse{Warnings: w}, nil
}
