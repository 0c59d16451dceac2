package hostapi_test

import (
	"context"
	"errors"
	"fmt"
	gonet "net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/network"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/spec"
	"github.com/slipwayhq/slipway/hostapi"
	"github.com/slipwayhq/slipway/hostapi/pluginpb"
)

// forEachTransport runs test with stage calls over gRPC and over the fd channel.
func forEachTransport(t *testing.T, test func(*testing.T, func(*testing.T, hostapi.Backend) *hostapi.Client)) {
	t.Run("grpc", func(t *testing.T) { test(t, connect) })
	t.Run("channel", func(t *testing.T) { test(t, connectChannel) })
}

// connectChannel connects to b over gRPC (Describe, Configure) and sends the stage calls
// over an fd channel served by b in this process, as a plugin process serves it.
func connectChannel(t *testing.T, b hostapi.Backend) *hostapi.Client {
	t.Helper()
	c := connect(t, b)
	ch := serveChannel(t, b)
	c.UseChannel(ch)
	return c
}

func serveChannel(t *testing.T, b hostapi.Backend) *hostapi.Channel {
	t.Helper()
	ch, child, err := hostapi.NewChannel()
	if err != nil {
		t.Fatal(err)
	}
	fc, err := gonet.FileConn(child)
	child.Close()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		hostapi.ServeChannel(fc.(*gonet.UnixConn), b)
	}()
	if err := ch.Ready(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ch.Close()
		<-done // the server stops when the host closes the control socket
	})
	return ch
}

// blocking is a network stage that waits for its context to end (or for release) and
// reports how its context ended; records named "echo-N" answer at once with their name.
type blocking struct {
	entered chan struct{}
	ended   chan error
	release chan struct{}
}

func newBlocking() *blocking {
	return &blocking{entered: make(chan struct{}, 1), ended: make(chan error, 1), release: make(chan struct{})}
}

func (b *blocking) ConfigureNetwork(ctx context.Context, rec *spec.Record) (*spec.Network, error) {
	if rec.Name != "block" {
		return &spec.Network{NetworkMode: rec.Name, Networks: map[string]*network.EndpointSettings{
			rec.Name: {IPAddress: netip.MustParseAddr("10.0.0.2"), Aliases: []string{rec.ID}}}}, nil
	}
	b.entered <- struct{}{}
	select {
	case <-ctx.Done():
		b.ended <- ctx.Err()
		return nil, ctx.Err()
	case <-b.release:
		b.ended <- nil
		return &spec.Network{NetworkMode: "released"}, nil
	}
}

func (b *blocking) Undo(ctx context.Context, rec *spec.Record) error { return nil }

// waitEnded waits for the blocked call's context to end with want.
func (b *blocking) waitEnded(t *testing.T, want error) {
	t.Helper()
	select {
	case err := <-b.ended:
		if !errors.Is(err, want) {
			t.Errorf("plugin's context ended with %v, want %v", err, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("the plugin's context did not end (want %v)", want)
	}
}

func networker(t *testing.T, c *hostapi.Client) core.Networker {
	t.Helper()
	if err := c.Configure(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	n, err := hostapi.StageView(spec.StageNetwork, c)
	if err != nil {
		t.Fatal(err)
	}
	return n.(core.Networker)
}

// TestChannelDeadlineAndCancel checks that a call's deadline and its cancellation end the
// wait on the host at once and end the plugin's context too.
func TestChannelDeadlineAndCancel(t *testing.T) {
	st := newBlocking()
	nw := networker(t, connectChannel(t, &backend{stages: hostapi.Stages{Network: st}}))

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := nw.ConfigureNetwork(ctx, &spec.Record{ID: "x", Name: "block"})
	var te *hostapi.TransportError
	if !errors.As(err, &te) || te.Code != codes.DeadlineExceeded {
		t.Fatalf("past the deadline: %v, want a DeadlineExceeded TransportError", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the call returned %s after a 200ms deadline", d)
	}
	st.waitEnded(t, context.DeadlineExceeded)

	<-st.entered // the first call's
	ctx, cancel = context.WithCancel(context.Background())
	go func() {
		<-st.entered
		cancel()
	}()
	_, err = nw.ConfigureNetwork(ctx, &spec.Record{ID: "x", Name: "block"})
	if !errors.Is(err, context.Canceled) && !(errors.As(err, &te) && te.Code == codes.Canceled) {
		t.Fatalf("cancelled: %v, want Canceled", err)
	}
	st.waitEnded(t, context.Canceled)

	// The connections given up are not reused; the channel goes on working.
	out, err := nw.ConfigureNetwork(context.Background(), &spec.Record{ID: "y", Name: "echo"})
	if err != nil || out.NetworkMode != "echo" {
		t.Fatalf("call after the abandoned ones: %+v %v", out, err)
	}
}

// TestChannelParallel makes more calls at once than the channel has connections: each gets
// its own answer.
func TestChannelParallel(t *testing.T) {
	nw := networker(t, connectChannel(t, &backend{stages: hostapi.Stages{Network: newBlocking()}}))
	var wg sync.WaitGroup
	errs := make(chan error, 300)
	for i := range 300 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name, id := fmt.Sprintf("echo-%d", i), fmt.Sprintf("id-%d", i)
			out, err := nw.ConfigureNetwork(context.Background(), &spec.Record{ID: id, Name: name})
			if err != nil {
				errs <- err
				return
			}
			if ep := out.Networks[name]; out.NetworkMode != name || ep == nil || len(ep.Aliases) != 1 || ep.Aliases[0] != id {
				errs <- fmt.Errorf("call %d got %+v", i, out)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestChannelPluginGone plays a plugin that dies in the middle of a call: it takes the
// connection, reads the request and closes everything. The call and the next one fail with
// Unavailable transport errors, as a dead plugin's calls do over gRPC.
func TestChannelPluginGone(t *testing.T) {
	ch, child, err := hostapi.NewChannel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	fc, _ := gonet.FileConn(child)
	child.Close()
	ctl := fc.(*gonet.UnixConn)
	if _, err := ctl.Write([]byte("R")); err != nil {
		t.Fatal(err)
	}
	if err := ch.Ready(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	got := make(chan int, 1)
	go func() {
		defer ctl.Close()
		buf, oob := make([]byte, 16), make([]byte, 64)
		_, oobn, _, _, err := ctl.ReadMsgUnix(buf, oob)
		if err != nil {
			got <- 0
			return
		}
		msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
		fds, _ := unix.ParseUnixRights(&msgs[0])
		f := os.NewFile(uintptr(fds[0]), "conn")
		defer f.Close()
		n, _ := f.Read(make([]byte, 4096))
		got <- n
	}()
	cl := pluginpb.NewNetworkClient(ch)
	req := &pluginpb.RecordRequest{Record: []byte(`{"ID":"x"}`)}
	_, err = cl.ConfigureNetwork(context.Background(), req)
	if n := <-got; n == 0 {
		t.Fatal("the request did not reach the plugin")
	}
	if !isTransport(hostapi.FromStatus(err), codes.Unavailable) {
		t.Fatalf("call the plugin died in: %v, want an Unavailable TransportError", err)
	}
	_, err = cl.ConfigureNetwork(context.Background(), req)
	if !isTransport(hostapi.FromStatus(err), codes.Unavailable) {
		t.Fatalf("call after the plugin died: %v, want an Unavailable TransportError", err)
	}
}

func isTransport(err error, code codes.Code) bool {
	var te *hostapi.TransportError
	return errors.As(err, &te) && te.Code == code
}

// TestChannelClosed: a closed channel fails calls with Unavailable.
func TestChannelClosed(t *testing.T) {
	ch := serveChannel(t, &backend{stages: hostapi.Stages{Network: newBlocking()}, config: []byte("{}")})
	ch.Close()
	_, err := pluginpb.NewNetworkClient(ch).ConfigureNetwork(context.Background(), &pluginpb.RecordRequest{Record: []byte(`{"ID":"y","Name":"echo"}`)})
	if !isTransport(hostapi.FromStatus(err), codes.Unavailable) {
		t.Fatalf("call on a closed channel: %v", err)
	}
	if _, err := ch.NewStream(context.Background(), nil, "/x/y"); !isTransport(hostapi.FromStatus(err), codes.Unimplemented) {
		t.Fatalf("stream: %v", err)
	}
}
