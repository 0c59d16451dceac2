package hostapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-plugin"
	"github.com/opencontainers/go-digest"
	"google.golang.org/grpc"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/spec"
	"github.com/slipwayhq/slipway/hostapi/pluginpb"
)

// Host callbacks. The host serves the Host service once per plugin process on the go-plugin
// GRPCBroker (Client, from GRPCPlugin.GRPCClient) and sends its broker id in Configure; the
// plugin dials it then, once (a broker's connection info expires if not dialled within
// seconds). Each stage call that has a HostEnv in its context is registered under a call id
// that travels in the request (HostCall); a callback names its call, so lookups use that
// call's engine and warnings go to that call's output. When the call returns, its id is
// dead: later callbacks fail with FailedPrecondition. Warnings are appended by the host to
// the Warnings of the call's output, so a plugin never writes the run's state except
// through its stage's typed output.

// Limits on the warnings one call may add.
const (
	MaxWarnings      = 64
	MaxWarningLength = 4096
)

// HostEnv is what the host offers a plugin during one call; nil fields are not offered.
type HostEnv struct {
	Host   core.Host
	Images core.ImageService
}

type hostEnvKey struct{}

// WithHostEnv returns ctx carrying env: calls the Client makes with it offer callbacks.
func WithHostEnv(ctx context.Context, env HostEnv) context.Context {
	return context.WithValue(ctx, hostEnvKey{}, env)
}

// callTable holds the calls in progress of one plugin process, on the host.
type callTable struct {
	next  atomic.Uint64
	mu    sync.Mutex
	calls map[uint64]*hostCall
}

// hostCall is one call in progress, on the host.
type hostCall struct {
	t        *callTable
	id       uint64
	env      HostEnv
	warnOK   bool
	mu       sync.Mutex
	ended    bool
	warnings []string
}

// serveHost serves the Host service on broker for the calls of c.
func (c *Client) serveHost(broker *plugin.GRPCBroker) {
	if broker == nil {
		return
	}
	c.hostID = broker.NextId()
	go broker.AcceptAndServe(c.hostID, func(opts []grpc.ServerOption) *grpc.Server {
		s := grpc.NewServer(opts...)
		pluginpb.RegisterHostServer(s, hostServer{t: &c.calls})
		return s
	})
}

// begin registers a call when ctx carries a HostEnv and the Host service is served.
func (c *Client) begin(ctx context.Context, warnOK bool) (*pluginpb.HostCall, *hostCall) {
	env, ok := ctx.Value(hostEnvKey{}).(HostEnv)
	if !ok || c.hostID == 0 {
		return nil, nil
	}
	t := &c.calls
	hc := &hostCall{t: t, id: t.next.Add(1), env: env, warnOK: warnOK}
	t.mu.Lock()
	if t.calls == nil {
		t.calls = map[uint64]*hostCall{}
	}
	t.calls[hc.id] = hc
	t.mu.Unlock()
	return &pluginpb.HostCall{BrokerId: c.hostID, CallId: hc.id, Warnings: warnOK}, hc
}

// end retires the call and returns the warnings it added. Nil-safe.
func (hc *hostCall) end() []string {
	if hc == nil {
		return nil
	}
	hc.t.mu.Lock()
	delete(hc.t.calls, hc.id)
	hc.t.mu.Unlock()
	hc.mu.Lock()
	defer hc.mu.Unlock()
	hc.ended = true
	return hc.warnings
}

func (t *callTable) get(id uint64) (*hostCall, error) {
	t.mu.Lock()
	hc := t.calls[id]
	t.mu.Unlock()
	if hc == nil {
		return nil, errdefs.FailedPrecondition(fmt.Errorf("host callback for call %d, which is not in progress: callbacks work only during the stage call that received the id", id))
	}
	return hc, nil
}

type hostServer struct {
	pluginpb.UnimplementedHostServer
	t *callTable
}

func (h hostServer) LookupContainer(ctx context.Context, req *pluginpb.LookupRequest) (*pluginpb.LookupContainerResponse, error) {
	hc, err := h.t.get(req.GetCallId())
	if err != nil {
		return nil, ToStatus(err)
	}
	if hc.env.Host == nil {
		return nil, ToStatus(errdefs.FailedPrecondition(errors.New("the host offers no container lookup to this call")))
	}
	rec, err := hc.env.Host.Container(ctx, req.GetRef())
	if err != nil {
		return nil, ToStatus(err)
	}
	b, err := encode(rec)
	if err != nil {
		return nil, ToStatus(err)
	}
	return &pluginpb.LookupContainerResponse{Record: b}, nil
}

func (h hostServer) ResolveImage(ctx context.Context, req *pluginpb.LookupRequest) (*pluginpb.ResolveImageResponse, error) {
	hc, err := h.t.get(req.GetCallId())
	if err != nil {
		return nil, ToStatus(err)
	}
	if hc.env.Images == nil {
		return nil, ToStatus(errdefs.FailedPrecondition(errors.New("the host offers no image store to this call")))
	}
	img, err := hc.env.Images.Resolve(ctx, req.GetRef(), nil)
	if err != nil {
		return nil, ToStatus(err)
	}
	b, err := encode(img)
	if err != nil {
		return nil, ToStatus(err)
	}
	return &pluginpb.ResolveImageResponse{Image: b}, nil
}

func (h hostServer) AddWarning(_ context.Context, req *pluginpb.AddWarningRequest) (*pluginpb.AddWarningResponse, error) {
	hc, err := h.t.get(req.GetCallId())
	if err != nil {
		return nil, ToStatus(err)
	}
	if !hc.warnOK {
		return nil, ToStatus(errdefs.FailedPrecondition(errors.New("this call's output carries no warnings (undo, mkdir and register calls cannot add warnings)")))
	}
	msg := req.GetMessage()
	if msg == "" || len(msg) > MaxWarningLength {
		return nil, ToStatus(errdefs.InvalidArgument(fmt.Errorf("a warning must be 1 to %d bytes long, not %d", MaxWarningLength, len(msg))))
	}
	hc.mu.Lock()
	defer hc.mu.Unlock()
	switch {
	case hc.ended:
		return nil, ToStatus(errdefs.FailedPrecondition(fmt.Errorf("host callback for call %d, which has ended", hc.id)))
	case len(hc.warnings) >= MaxWarnings:
		return nil, ToStatus(errdefs.InvalidArgument(fmt.Errorf("a call may add at most %d warnings", MaxWarnings)))
	}
	hc.warnings = append(hc.warnings, msg)
	return &pluginpb.AddWarningResponse{}, nil
}

// blobChunk is the size of the chunks OpenBlob streams, well below gRPC's 4 MiB message limit.
const blobChunk = 1 << 20

func (h hostServer) OpenBlob(req *pluginpb.OpenBlobRequest, stream grpc.ServerStreamingServer[pluginpb.BlobChunk]) error {
	hc, err := h.t.get(req.GetCallId())
	if err != nil {
		return ToStatus(err)
	}
	if hc.env.Images == nil {
		return ToStatus(errdefs.FailedPrecondition(errors.New("the host offers no image store to this call")))
	}
	if _, err := digest.Parse(req.GetDigest()); err != nil {
		return ToStatus(errdefs.InvalidArgument(fmt.Errorf("open blob %q: %w", req.GetDigest(), err)))
	}
	rc, err := hc.env.Images.OpenBlob(stream.Context(), req.GetDigest())
	if err != nil {
		return ToStatus(err)
	}
	defer rc.Close()
	buf := make([]byte, blobChunk)
	for {
		n, rerr := io.ReadFull(rc, buf)
		if n > 0 {
			if err := stream.Send(&pluginpb.BlobChunk{Data: buf[:n]}); err != nil {
				return err
			}
		}
		switch {
		case rerr == io.EOF || rerr == io.ErrUnexpectedEOF:
			return nil
		case rerr != nil:
			return ToStatus(errdefs.Internal(fmt.Errorf("read blob %s: %w", req.GetDigest(), rerr)))
		}
	}
}

// CallHost is the host as a stage implementation in a plugin sees it during one call: see
// HostFromContext.
type CallHost struct {
	client pluginpb.HostClient
	err    error // why client is nil
	callID uint64
}

type callHostKey struct{}

// HostFromContext returns the host's callbacks for the stage call whose context is ctx;
// false when the host offers none for it.
func HostFromContext(ctx context.Context) (*CallHost, bool) {
	h, ok := ctx.Value(callHostKey{}).(*CallHost)
	return h, ok
}

func (h *CallHost) rpcErr(method string, err error) error {
	err = FromStatus(err)
	var te *TransportError
	if errors.As(err, &te) {
		return errdefs.Unavailable(fmt.Errorf("host callback %s: %w", method, err))
	}
	return err
}

func (h *CallHost) ready(method string) error {
	if h.client == nil {
		return errdefs.Unavailable(fmt.Errorf("host callback %s: no connection to the host: %w", method, h.err))
	}
	return nil
}

// Container looks up a container by ID, unique ID prefix or name. NotFound with the
// engine's text when there is none.
func (h *CallHost) Container(ctx context.Context, ref string) (*spec.Record, error) {
	if err := h.ready("LookupContainer"); err != nil {
		return nil, err
	}
	resp, err := h.client.LookupContainer(ctx, &pluginpb.LookupRequest{CallId: h.callID, Ref: ref})
	if err != nil {
		return nil, h.rpcErr("LookupContainer", err)
	}
	var rec spec.Record
	if err := unmarshalWire(resp.GetRecord(), &rec); err != nil {
		return nil, errdefs.Internal(fmt.Errorf("host callback LookupContainer: decode record: %w", err))
	}
	return &rec, nil
}

// Image resolves an image by reference or ID for the host's platform. NotFound "No such
// image: REF" when there is none.
func (h *CallHost) Image(ctx context.Context, ref string) (*spec.Image, error) {
	if err := h.ready("ResolveImage"); err != nil {
		return nil, err
	}
	resp, err := h.client.ResolveImage(ctx, &pluginpb.LookupRequest{CallId: h.callID, Ref: ref})
	if err != nil {
		return nil, h.rpcErr("ResolveImage", err)
	}
	var img spec.Image
	if err := unmarshalWire(resp.GetImage(), &img); err != nil {
		return nil, errdefs.Internal(fmt.Errorf("host callback ResolveImage: decode image: %w", err))
	}
	return &img, nil
}

// Warn adds a warning to the run: the host appends it to the Warnings of this call's
// output. FailedPrecondition for a call whose output has no warnings (undo, mkdir,
// register) or that has ended.
func (h *CallHost) Warn(ctx context.Context, msg string) error {
	if err := h.ready("AddWarning"); err != nil {
		return err
	}
	_, err := h.client.AddWarning(ctx, &pluginpb.AddWarningRequest{CallId: h.callID, Message: msg})
	if err != nil {
		return h.rpcErr("AddWarning", err)
	}
	return nil
}

// OpenBlob streams the blob with digest dgst from the engine's image store: the layers
// and configs of its images. NotFound when the store has no such blob. The reader must be
// closed; it stops working when the stage call ends.
func (h *CallHost) OpenBlob(ctx context.Context, dgst string) (io.ReadCloser, error) {
	if err := h.ready("OpenBlob"); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	stream, err := h.client.OpenBlob(ctx, &pluginpb.OpenBlobRequest{CallId: h.callID, Digest: dgst})
	if err != nil {
		cancel()
		return nil, h.rpcErr("OpenBlob", err)
	}
	// The first chunk tells a missing blob from a present one before the caller reads.
	first, err := stream.Recv()
	if err != nil && err != io.EOF {
		cancel()
		return nil, h.rpcErr("OpenBlob", err)
	}
	r := &blobReader{h: h, stream: stream, cancel: cancel, eof: err == io.EOF}
	if first != nil {
		r.buf = first.GetData()
	}
	return r, nil
}

// blobReader reads a blob streamed by the Host service's OpenBlob.
type blobReader struct {
	h      *CallHost
	stream grpc.ServerStreamingClient[pluginpb.BlobChunk]
	cancel context.CancelFunc
	buf    []byte
	eof    bool
}

func (r *blobReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.eof {
			return 0, io.EOF
		}
		c, err := r.stream.Recv()
		if err == io.EOF {
			r.eof = true
			return 0, io.EOF
		}
		if err != nil {
			return 0, r.h.rpcErr("OpenBlob", err)
		}
		r.buf = c.GetData()
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func (r *blobReader) Close() error {
	r.cancel()
	return nil
}

// hostDialer is the plugin side's connection to the host's Host service.
type hostDialer struct {
	broker *plugin.GRPCBroker
	mu     sync.Mutex
	id     uint32
	client pluginpb.HostClient
	err    error
}

// dial connects to the Host service at broker id (once; Configure calls it).
func (d *hostDialer) dial(id uint32) {
	if d == nil || d.broker == nil || id == 0 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.client != nil && d.id == id {
		return
	}
	conn, err := d.broker.Dial(id)
	if err != nil {
		d.err = fmt.Errorf("dial broker id %d: %w", id, err)
		return
	}
	d.id, d.client, d.err = id, pluginpb.NewHostClient(conn), nil
}

// withCall returns ctx carrying the CallHost of call, when the host offered one.
func (d *hostDialer) withCall(ctx context.Context, call *pluginpb.HostCall) context.Context {
	if call == nil || call.GetBrokerId() == 0 {
		return ctx
	}
	h := &CallHost{callID: call.GetCallId()}
	if d == nil {
		h.err = errors.New("the plugin was served without a broker")
	} else {
		d.mu.Lock()
		switch {
		case d.client == nil && d.err == nil:
			h.err = errors.New("the host's Host service was not dialled at Configure")
		case d.client == nil:
			h.err = d.err
		case d.id != call.GetBrokerId():
			h.err = fmt.Errorf("the call names broker id %d, the plugin dialled %d", call.GetBrokerId(), d.id)
		default:
			h.client = d.client
		}
		d.mu.Unlock()
	}
	return context.WithValue(ctx, callHostKey{}, h)
}
