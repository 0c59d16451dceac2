package hostapi

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// The plugin's side of the fd channel (see channel.go).

// channelServer serves the services registered on it over a plugin's fd channel. It is a
// grpc.ServiceRegistrar, so the generated Register functions register on it.
type channelServer struct {
	methods map[string]channelMethod

	mu      sync.Mutex
	running map[uint32]context.CancelFunc // by connection
}

type channelMethod struct {
	srv     any
	handler grpc.MethodHandler
}

var _ grpc.ServiceRegistrar = (*channelServer)(nil)

func newChannelServer() *channelServer {
	return &channelServer{methods: map[string]channelMethod{}, running: map[uint32]context.CancelFunc{}}
}

// RegisterService registers the unary methods of a service.
func (s *channelServer) RegisterService(sd *grpc.ServiceDesc, ss any) {
	for _, m := range sd.Methods {
		s.methods["/"+sd.ServiceName+"/"+m.MethodName] = channelMethod{srv: ss, handler: m.Handler}
	}
}

// openChannel takes the control socket that the environment names, if any, and removes the
// variable so that the plugin's own children do not see it. It returns nil when no channel
// is offered.
func openChannel() (*net.UnixConn, error) {
	v, ok := os.LookupEnv(ChannelFDEnv)
	if !ok {
		return nil, nil
	}
	os.Unsetenv(ChannelFDEnv)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil, fmt.Errorf("%s=%q is not a file descriptor", ChannelFDEnv, v)
	}
	f := os.NewFile(uintptr(fd), "slipway-channel")
	defer f.Close() // net.FileConn keeps a duplicate, close-on-exec
	c, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ChannelFDEnv, err)
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("%s: not a unix socket", ChannelFDEnv)
	}
	return uc, nil
}

// serve says "serving" on the control socket, then serves every connection the host hands
// over, and cancels the calls the host gives up, until the host closes the control socket.
func (s *channelServer) serve(ctl *net.UnixConn) error {
	defer ctl.Close()
	defer s.giveUpAll()
	if _, err := ctl.Write([]byte{ctlReady}); err != nil {
		return err
	}
	buf := make([]byte, 16)
	oob := make([]byte, unix.CmsgSpace(4*8))
	for {
		n, oobn, _, _, err := ctl.ReadMsgUnix(buf, oob)
		if err != nil {
			return err
		}
		var fds []int
		if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
			for i := range msgs {
				if more, err := unix.ParseUnixRights(&msgs[i]); err == nil {
					fds = append(fds, more...)
				}
			}
		}
		switch {
		case n == 5 && buf[0] == ctlConn && len(fds) == 1:
			f := os.NewFile(uintptr(fds[0]), "slipway-channel-conn")
			c, err := net.FileConn(f)
			f.Close()
			if err == nil {
				go s.serveConn(binary.BigEndian.Uint32(buf[1:5]), c)
			}
		case n == 5 && buf[0] == ctlGiveUp:
			s.giveUp(binary.BigEndian.Uint32(buf[1:5]))
		default:
			for _, fd := range fds {
				unix.Close(fd)
			}
		}
	}
}

// serveConn answers the requests on one connection, one at a time on this goroutine,
// until it is closed. While a call runs, its cancel function is where the control
// socket's reader finds it when the host gives the call up.
func (s *channelServer) serveConn(id uint32, c net.Conn) {
	defer c.Close()
	r := bufio.NewReaderSize(c, 16<<10)
	for {
		body, err := readFrame(r)
		if err != nil {
			return
		}
		ctx, cancel := context.WithCancel(context.Background())
		s.mu.Lock()
		s.running[id] = cancel
		s.mu.Unlock()
		resp := s.call(ctx, body)
		s.mu.Lock()
		delete(s.running, id)
		s.mu.Unlock()
		cancel()
		if _, err := c.Write(resp); err != nil {
			return
		}
	}
}

// giveUp cancels the call running on connection id, if any.
func (s *channelServer) giveUp(id uint32) {
	s.mu.Lock()
	cancel := s.running[id]
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// giveUpAll cancels every call running: the host is gone.
func (s *channelServer) giveUpAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, cancel := range s.running {
		cancel()
	}
}

// call runs one request and returns the response frame.
func (s *channelServer) call(ctx context.Context, body []byte) []byte {
	if len(body) < 3 || body[0] != frameRequest {
		return responseFrame(nil, status.Error(codes.Internal, "plugin channel: malformed request"))
	}
	ml := int(binary.BigEndian.Uint16(body[1:3]))
	if len(body) < 3+ml+8 {
		return responseFrame(nil, status.Error(codes.Internal, "plugin channel: malformed request"))
	}
	method := string(body[3 : 3+ml])
	timeout := time.Duration(binary.BigEndian.Uint64(body[3+ml:]))
	payload := body[3+ml+8:]
	m, found := s.methods[method]
	if !found {
		return responseFrame(nil, status.Errorf(codes.Unimplemented, "unknown method %s", method))
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	out, err := m.handler(m.srv, ctx, func(v any) error {
		msg, ok := v.(proto.Message)
		if !ok {
			return status.Error(codes.Internal, "plugin channel: request is not protobuf")
		}
		return proto.Unmarshal(payload, msg)
	}, nil)
	if err != nil {
		return responseFrame(nil, err)
	}
	msg, ok := out.(proto.Message)
	if !ok {
		return responseFrame(nil, status.Error(codes.Internal, "plugin channel: response is not protobuf"))
	}
	return responseFrame(msg, nil)
}

func responseFrame(out proto.Message, err error) []byte {
	buf := make([]byte, 9, 9+64)
	buf[4] = frameResponse
	if err != nil {
		st, merr := proto.Marshal(status.Convert(err).Proto())
		if merr != nil {
			st, _ = proto.Marshal(status.New(codes.Internal, err.Error()).Proto())
		}
		binary.BigEndian.PutUint32(buf[5:], uint32(len(st)))
		buf = append(buf, st...)
	} else if b, merr := (proto.MarshalOptions{}).MarshalAppend(buf, out); merr != nil {
		return responseFrame(nil, status.Errorf(codes.Internal, "plugin channel: encode response: %v", merr))
	} else {
		buf = b
	}
	binary.BigEndian.PutUint32(buf, uint32(len(buf)-4))
	return buf
}

// ServeChannel serves be's stages, without host callbacks, on the fd channel whose control
// socket is ctl, until the host closes it. A plugin served by GRPCPlugin (as plugins/sdk
// does) serves its channel itself; this is for tests and for servers written by hand.
func ServeChannel(ctl *net.UnixConn, be Backend) error {
	cs := newChannelServer()
	registerServices(cs, newServed(be, nil))
	return cs.serve(ctl)
}
