package hostapi

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// The fd channel carries a plugin's stage calls without gRPC.
//
// A unary gRPC call over go-plugin's connection costs about 300 µs on a two-core machine:
// HTTP/2 framing, TLS records and four hand-offs between the goroutines of the two
// transports, where a round trip over a unix socket costs 25 µs. A host that launches a
// plugin therefore also hands it a control socket (one end of a socket pair, inherited as
// the file descriptor that ChannelFDEnv names). A plugin built with this package serves the
// stage services on it too, says so on the socket and lists CapFDChannel; the host then
// sends its stage calls over the channel and keeps gRPC for Describe, Configure and the
// host callbacks. Hosts and plugins without it keep to gRPC.
//
// The channel is private to the two processes: it has no name in the file system, nobody
// else can connect to it, so it needs no TLS (go-plugin's AutoMTLS protects a socket that
// does have a name). For each call in flight the host needs a connection of its own: it
// makes a socket pair and passes one end over the control socket (SCM_RIGHTS); connections
// are kept and reused, one call at a time on each, so that the caller's goroutine writes
// the request and reads the answer itself, and the plugin answers on the goroutine that read
// the request.
//
// Frames are length-prefixed (big-endian uint32, not counting itself):
//
//	request:  0x01, method name length (uint16), method name ("/pkg.Service/Method"),
//	          timeout in nanoseconds (int64, 0 for none), request message (protobuf)
//	response: 0x02, status length (uint32), status (google.rpc.Status, protobuf; empty
//	          for success), response message (protobuf)
//
// The method names, messages and statuses are those of the gRPC services, so the generated
// clients and servers are used unchanged and an error keeps its code, message and details.
// The timeout is the caller's deadline: the plugin's context ends with it, and the plugin's
// context is cancelled when the host gives the call up (it says so on the control socket),
// and every call's when the host closes the control socket.

const (
	// CapFDChannel: the plugin serves its stage services on the fd channel the host offers.
	CapFDChannel = "fd-channel/1"
	// ChannelFDEnv names, in a plugin's environment, the file descriptor of the channel's
	// control socket.
	ChannelFDEnv = "SLIPWAY_PLUGIN_CHANNEL_FD"
)

const (
	frameRequest  = 0x01
	frameResponse = 0x02
	// maxFrame bounds what one frame may claim to hold; records are a few KiB.
	maxFrame = 256 << 20
	// maxChannelConns bounds the connections of one channel, so the calls in flight; more
	// wait for a free one.
	maxChannelConns = 64
	// Messages on the control socket: the plugin's "serving"; the host's "here is
	// connection N" (with its file descriptor) and "I gave up the call on connection N"
	// (N a big-endian uint32).
	ctlReady  = 'R'
	ctlConn   = 'C'
	ctlGiveUp = 'X'
)

// Channel is the host's side of a plugin's fd channel: a grpc.ClientConnInterface for the
// generated clients. Safe for concurrent use.
type Channel struct {
	ctl   *net.UnixConn
	ctlMu sync.Mutex // one writer at a time, with its deadline

	mu      sync.Mutex
	idle    []*chanConn
	open    int
	closed  bool
	waiters int
	freed   chan struct{} // closed and replaced when a connection is freed and waiters > 0
	lastID  uint32
}

type chanConn struct {
	net.Conn
	id uint32
	r  *bufio.Reader
}

var _ grpc.ClientConnInterface = (*Channel)(nil)

// NewChannel makes the control socket pair of a plugin's channel. The caller passes child
// to the plugin process (exec.Cmd.ExtraFiles, with ChannelFDEnv set to its number there)
// and closes it once the process has started; then it waits for Ready.
func NewChannel() (*Channel, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("plugin channel: socketpair: %w", err)
	}
	mine := os.NewFile(uintptr(fds[0]), "slipway-channel")
	c, err := net.FileConn(mine)
	mine.Close()
	if err != nil {
		unix.Close(fds[1])
		return nil, nil, fmt.Errorf("plugin channel: %w", err)
	}
	return &Channel{ctl: c.(*net.UnixConn), freed: make(chan struct{})}, os.NewFile(uintptr(fds[1]), "slipway-channel-plugin"), nil
}

// Ready waits at most d for the plugin to say that it serves the channel. A plugin that
// lists CapFDChannel says so before go-plugin's handshake line, so the wait is short.
func (ch *Channel) Ready(d time.Duration) error {
	if err := ch.ctl.SetReadDeadline(time.Now().Add(d)); err != nil {
		return err
	}
	var b [8]byte
	n, err := ch.ctl.Read(b[:])
	if err != nil {
		return fmt.Errorf("plugin channel: no answer on the control socket: %w", err)
	}
	if n != 1 || b[0] != ctlReady {
		return fmt.Errorf("plugin channel: unexpected %q on the control socket", b[:n])
	}
	return ch.ctl.SetReadDeadline(time.Time{})
}

// Close closes the channel; calls in flight fail, and later ones fail with Unavailable.
func (ch *Channel) Close() error {
	ch.mu.Lock()
	if ch.closed {
		ch.mu.Unlock()
		return nil
	}
	ch.closed = true
	idle := ch.idle
	ch.idle = nil
	ch.signalLocked()
	ch.mu.Unlock()
	for _, c := range idle {
		c.Close()
	}
	return ch.ctl.Close()
}

// NewStream is not served: the stage services have no streams.
func (ch *Channel) NewStream(context.Context, *grpc.StreamDesc, string, ...grpc.CallOption) (grpc.ClientStream, error) {
	return nil, status.Error(codes.Unimplemented, "plugin channel: streams are not carried")
}

// Invoke makes a unary call: method is the gRPC full method name.
func (ch *Channel) Invoke(ctx context.Context, method string, args, reply any, _ ...grpc.CallOption) error {
	in, ok := args.(proto.Message)
	out, ok2 := reply.(proto.Message)
	if !ok || !ok2 {
		return status.Errorf(codes.Internal, "plugin channel: %s: messages are not protobuf", method)
	}
	if err := ctx.Err(); err != nil {
		return status.FromContextError(err).Err()
	}
	c, err := ch.get(ctx)
	if err != nil {
		return err
	}
	// The plugin gets what is left of the deadline once a connection is free.
	var timeout time.Duration
	dl, hasDL := ctx.Deadline()
	if hasDL {
		if timeout = time.Until(dl); timeout <= 0 {
			ch.put(c)
			return status.Error(codes.DeadlineExceeded, context.DeadlineExceeded.Error())
		}
		_ = c.SetDeadline(dl)
	}
	req, err := requestFrame(method, timeout, in)
	if err != nil {
		if hasDL {
			_ = c.SetDeadline(time.Time{})
		}
		ch.put(c)
		return status.Errorf(codes.Internal, "plugin channel: %s: encode: %v", method, err)
	}
	// A cancelled context ends the wait at once; the connection is then given up, and the
	// plugin is told on the control socket.
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	body, err := roundTrip(c, req)
	if !stop() || err != nil {
		if err != nil && errors.Is(ctx.Err(), context.Canceled) {
			// The plugin is still running the call: tell it, so that its context ends. (At
			// a deadline its context ends by itself: it has the same deadline.)
			ch.giveUp(c)
		}
		ch.discard(c)
		if cerr := ctx.Err(); cerr != nil {
			// The caller's deadline or cancellation came first, or together with the answer
			// (a late timer under load): it wins, so that a call past its deadline always
			// ends the same way, whatever the plugin's answer was.
			return status.FromContextError(cerr).Err()
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return status.Error(codes.DeadlineExceeded, context.DeadlineExceeded.Error())
			}
			return status.Errorf(codes.Unavailable, "plugin channel: %s: %v", method, err)
		}
	} else {
		if hasDL {
			_ = c.SetDeadline(time.Time{})
		}
		ch.put(c)
	}
	if hasDL && !time.Now().Before(dl) {
		// The answer came at or after the deadline, before its timers fired: they can run
		// late under load, and the plugin's own deadline, a moment later, can fire first
		// and answer with its stage's context error. The deadline wins, as it would have.
		return status.Error(codes.DeadlineExceeded, context.DeadlineExceeded.Error())
	}
	return decodeResponse(body, out)
}

// get returns an idle connection, or a new one, or waits for one at the limit.
func (ch *Channel) get(ctx context.Context) (*chanConn, error) {
	for {
		ch.mu.Lock()
		if ch.closed {
			ch.mu.Unlock()
			return nil, status.Error(codes.Unavailable, "plugin channel closed")
		}
		if n := len(ch.idle); n > 0 {
			c := ch.idle[n-1]
			ch.idle = ch.idle[:n-1]
			ch.mu.Unlock()
			return c, nil
		}
		if ch.open < maxChannelConns {
			ch.open++
			ch.lastID++
			id := ch.lastID
			ch.mu.Unlock()
			c, err := ch.dial(id)
			if err != nil {
				ch.mu.Lock()
				ch.open--
				ch.signalLocked()
				ch.mu.Unlock()
				return nil, status.Errorf(codes.Unavailable, "plugin channel: %v", err)
			}
			return c, nil
		}
		ch.waiters++
		w := ch.freed
		ch.mu.Unlock()
		select {
		case <-w:
			ch.mu.Lock()
			ch.waiters--
			ch.mu.Unlock()
		case <-ctx.Done():
			ch.mu.Lock()
			ch.waiters--
			ch.mu.Unlock()
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
}

// dial makes a socket pair and hands one end to the plugin.
func (ch *Channel) dial(id uint32) (*chanConn, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socketpair: %w", err)
	}
	defer unix.Close(fds[1])
	f := os.NewFile(uintptr(fds[0]), "slipway-channel-conn")
	defer f.Close()
	msg := []byte{ctlConn, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(msg[1:], id)
	if _, _, err := ch.writeCtl(msg, unix.UnixRights(fds[1])); err != nil {
		return nil, fmt.Errorf("hand a connection to the plugin: %w", err)
	}
	c, err := net.FileConn(f)
	if err != nil {
		return nil, err
	}
	return &chanConn{Conn: c, id: id, r: bufio.NewReaderSize(c, 16<<10)}, nil
}

func (ch *Channel) put(c *chanConn) {
	ch.mu.Lock()
	if ch.closed {
		ch.open--
		ch.mu.Unlock()
		c.Close()
		return
	}
	ch.idle = append(ch.idle, c)
	ch.signalLocked()
	ch.mu.Unlock()
}

// giveUp tells the plugin that the call on c is abandoned; best effort.
func (ch *Channel) giveUp(c *chanConn) {
	msg := []byte{ctlGiveUp, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(msg[1:], c.id)
	_, _, _ = ch.writeCtl(msg, nil)
}

// writeCtl sends one message on the control socket, waiting at most a second: a plugin
// that does not read it is as good as dead.
func (ch *Channel) writeCtl(msg, oob []byte) (int, int, error) {
	ch.ctlMu.Lock()
	defer ch.ctlMu.Unlock()
	_ = ch.ctl.SetWriteDeadline(time.Now().Add(time.Second))
	defer ch.ctl.SetWriteDeadline(time.Time{})
	return ch.ctl.WriteMsgUnix(msg, oob, nil)
}

func (ch *Channel) discard(c *chanConn) {
	c.Close()
	ch.mu.Lock()
	ch.open--
	ch.signalLocked()
	ch.mu.Unlock()
}

func (ch *Channel) signalLocked() {
	if ch.waiters > 0 {
		close(ch.freed)
		ch.freed = make(chan struct{})
	}
}

func requestFrame(method string, timeout time.Duration, in proto.Message) ([]byte, error) {
	if len(method) > 0xffff {
		return nil, errors.New("method name too long")
	}
	head := 4 + 1 + 2 + len(method) + 8
	buf := make([]byte, head, head+proto.Size(in))
	buf[4] = frameRequest
	binary.BigEndian.PutUint16(buf[5:], uint16(len(method)))
	copy(buf[7:], method)
	binary.BigEndian.PutUint64(buf[7+len(method):], uint64(timeout))
	buf, err := proto.MarshalOptions{}.MarshalAppend(buf, in)
	if err != nil {
		return nil, err
	}
	if len(buf)-4 > maxFrame {
		return nil, fmt.Errorf("request of %d bytes is too large", len(buf))
	}
	binary.BigEndian.PutUint32(buf, uint32(len(buf)-4))
	return buf, nil
}

func roundTrip(c *chanConn, req []byte) ([]byte, error) {
	if _, err := c.Write(req); err != nil {
		return nil, err
	}
	return readFrame(c.r)
}

// readFrame reads one frame's body.
func readFrame(r *bufio.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 || n > maxFrame {
		return nil, fmt.Errorf("bad frame length %d", n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return body, nil
}

func decodeResponse(body []byte, out proto.Message) error {
	if len(body) < 5 || body[0] != frameResponse {
		return status.Error(codes.Internal, "plugin channel: malformed response")
	}
	sl := binary.BigEndian.Uint32(body[1:5])
	if uint64(sl) > uint64(len(body)-5) {
		return status.Error(codes.Internal, "plugin channel: malformed response status")
	}
	if sl > 0 {
		var sp spb.Status
		if err := proto.Unmarshal(body[5:5+sl], &sp); err != nil {
			return status.Errorf(codes.Internal, "plugin channel: decode status: %v", err)
		}
		return status.ErrorProto(&sp)
	}
	if err := proto.Unmarshal(body[5:], out); err != nil {
		return status.Errorf(codes.Internal, "plugin channel: decode response: %v", err)
	}
	return nil
}
