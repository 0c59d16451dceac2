package hostapi_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"

	"github.com/hashicorp/go-plugin"
	"github.com/moby/moby/api/types/network"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/spec"
	"github.com/slipwayhq/slipway/hostapi"
	"github.com/slipwayhq/slipway/hostapi/pluginpb"
)

// net is a network stage that fails with the error in the record's name, when it is one.
type net struct{ errs map[string]error }

func (n net) ConfigureNetwork(ctx context.Context, rec *spec.Record) (*spec.Network, error) {
	if err := n.errs[rec.Name]; err != nil {
		return nil, err
	}
	return &spec.Network{NetworkMode: "bridge", Networks: map[string]*network.EndpointSettings{
		"bridge": {IPAddress: netip.MustParseAddr("10.0.0.2"), IPPrefixLen: 24}}}, nil
}

func (n net) Undo(ctx context.Context, rec *spec.Record) error { return n.errs[rec.Name] }

type backend struct {
	stages hostapi.Stages
	config []byte
}

func (b *backend) Describe(ctx context.Context) (*pluginpb.DescribeResponse, error) {
	return &pluginpb.DescribeResponse{Name: "test", Stages: b.stages.Names()}, nil
}
func (b *backend) Configure(ctx context.Context, c []byte) error {
	if string(c) == `{"bad":1}` {
		return errdefs.InvalidArgument(errors.New(`config: unknown field "bad"`))
	}
	b.config = c
	return nil
}
func (b *backend) Ready() error {
	if b.config == nil {
		return errdefs.FailedPrecondition(errors.New("not configured"))
	}
	return nil
}
func (b *backend) Stages() hostapi.Stages { return b.stages }

func connect(t *testing.T, b hostapi.Backend) *hostapi.Client {
	t.Helper()
	cl, _ := plugin.TestPluginGRPCConn(t, false, map[string]plugin.Plugin{hostapi.PluginKey: &hostapi.GRPCPlugin{Backend: b}})
	t.Cleanup(func() { cl.Close() })
	raw, err := cl.Dispense(hostapi.PluginKey)
	if err != nil {
		t.Fatal(err)
	}
	return raw.(*hostapi.Client)
}

// TestClassesCrossTheWire sends an error of every class through a real gRPC connection and
// through the fd channel, and checks that class and message arrive unchanged.
func TestClassesCrossTheWire(t *testing.T) {
	forEachTransport(t, testClassesCrossTheWire)
}

func testClassesCrossTheWire(t *testing.T, connect func(*testing.T, hostapi.Backend) *hostapi.Client) {
	msgs := map[string]error{
		"inval":    errdefs.InvalidArgument(errors.New("invalid IPv4 address: x")),
		"notfound": errdefs.NotFound(errors.New("network x not found")),
		"conflict": errdefs.Conflict(fmt.Errorf("Address already in use: %s", "10.0.0.2")),
		"precond":  errdefs.FailedPrecondition(errors.New("pool frozen")),
		"unavail":  errdefs.Unavailable(errors.New("no available IPv4 addresses on network x")),
		"canceled": errdefs.Canceled(errors.New("given up")),
		"internal": errdefs.Internal(errors.New("disk on fire")),
		"plain":    errors.New("no class at all"),
		"deadline": fmt.Errorf("lease: %w", context.DeadlineExceeded),
	}
	want := map[string]errdefs.Class{
		"inval": errdefs.InvalidArgumentClass, "notfound": errdefs.NotFoundClass, "conflict": errdefs.ConflictClass,
		"precond": errdefs.FailedPreconditionClass, "unavail": errdefs.UnavailableClass, "canceled": errdefs.CanceledClass,
		"internal": errdefs.InternalClass, "plain": errdefs.InternalClass, "deadline": errdefs.UnavailableClass,
	}
	b := &backend{stages: hostapi.Stages{Network: net{msgs}}}
	c := connect(t, b)
	ctx := context.Background()
	if err := c.Configure(ctx, nil); err != nil {
		t.Fatal(err)
	}
	n, err := hostapi.StageView(spec.StageNetwork, c)
	if err != nil {
		t.Fatal(err)
	}
	nw := n.(core.Networker)
	for name, sent := range msgs {
		_, err := nw.ConfigureNetwork(ctx, &spec.Record{ID: "x", Name: name})
		if errdefs.ClassOf(err) != want[name] || err.Error() != sent.Error() {
			t.Errorf("%s: got %q class %v, want %q class %v", name, err, errdefs.ClassOf(err), sent, want[name])
		}
		uerr := nw.Undo(ctx, &spec.Record{ID: "x", Name: name})
		if errdefs.ClassOf(uerr) != want[name] || uerr.Error() != sent.Error() {
			t.Errorf("undo %s: got %q class %v", name, uerr, errdefs.ClassOf(uerr))
		}
	}
	if !errdefs.IsConflict(func() error { _, err := nw.ConfigureNetwork(ctx, &spec.Record{Name: "conflict"}); return err }()) {
		t.Error("a plugin's conflict is not a conflict on the host")
	}
	out, err := nw.ConfigureNetwork(ctx, &spec.Record{ID: "x", Name: "ok"})
	if err != nil || out.Networks["bridge"].IPAddress != netip.MustParseAddr("10.0.0.2") {
		t.Fatalf("output did not survive the wire: %+v %v", out, err)
	}
}

func TestNotConfiguredAndBadConfig(t *testing.T) {
	forEachTransport(t, testNotConfiguredAndBadConfig)
}

func testNotConfiguredAndBadConfig(t *testing.T, connect func(*testing.T, hostapi.Backend) *hostapi.Client) {
	b := &backend{stages: hostapi.Stages{Network: net{}}}
	c := connect(t, b)
	n, _ := hostapi.StageView(spec.StageNetwork, c)
	_, err := n.(core.Networker).ConfigureNetwork(context.Background(), &spec.Record{ID: "x"})
	if !errdefs.IsFailedPrecondition(err) || err.Error() != "not configured" {
		t.Fatalf("call before Configure: %v (%v)", err, errdefs.ClassOf(err))
	}
	if err := c.Configure(context.Background(), []byte(`{"bad":1}`)); !errdefs.IsInvalidArgument(err) || err.Error() != `config: unknown field "bad"` {
		t.Fatalf("bad config: %v", err)
	}
}

// TestUnservedStageIsATransportError calls a stage the plugin does not serve.
func TestUnservedStageIsATransportError(t *testing.T) {
	forEachTransport(t, testUnservedStageIsATransportError)
}

func testUnservedStageIsATransportError(t *testing.T, connect func(*testing.T, hostapi.Backend) *hostapi.Client) {
	c := connect(t, &backend{stages: hostapi.Stages{Network: net{}}, config: []byte("{}")})
	_, err := c.PrepareRootFS(context.Background(), &spec.Record{ID: "x"})
	var te *hostapi.TransportError
	if !errors.As(err, &te) || te.Code != codes.Unimplemented {
		t.Fatalf("unserved stage: %v, want a TransportError with Unimplemented", err)
	}
}

func TestFromStatusWithoutDetail(t *testing.T) {
	for code, class := range map[codes.Code]errdefs.Class{
		codes.AlreadyExists: errdefs.ConflictClass, codes.NotFound: errdefs.NotFoundClass,
		codes.InvalidArgument: errdefs.InvalidArgumentClass, codes.FailedPrecondition: errdefs.FailedPreconditionClass,
	} {
		err := hostapi.FromStatus(status.Error(code, "m"))
		if errdefs.ClassOf(err) != class || err.Error() != "m" {
			t.Errorf("%v: %v (%v)", code, err, errdefs.ClassOf(err))
		}
	}
	for _, code := range []codes.Code{codes.Unavailable, codes.Internal, codes.Canceled, codes.DeadlineExceeded, codes.Unknown} {
		var te *hostapi.TransportError
		if err := hostapi.FromStatus(status.Error(code, "m")); !errors.As(err, &te) {
			t.Errorf("%v without detail: %v, want a TransportError", code, err)
		}
	}
}

func TestCodeMapping(t *testing.T) {
	for _, c := range []errdefs.Class{errdefs.InvalidArgumentClass, errdefs.NotFoundClass, errdefs.ConflictClass,
		errdefs.FailedPreconditionClass, errdefs.UnavailableClass, errdefs.CanceledClass, errdefs.InternalClass} {
		if got := hostapi.ClassOfCode(hostapi.CodeOf(c)); got != c {
			t.Errorf("%v -> %v -> %v", c, hostapi.CodeOf(c), got)
		}
	}
	if hostapi.CodeOf(errdefs.ConflictClass) != codes.AlreadyExists || hostapi.CodeOf(errdefs.Unknown) != codes.Internal {
		t.Error("conflict must be AlreadyExists and unknown Internal")
	}
}
