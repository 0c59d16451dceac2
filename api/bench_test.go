package api

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/images"
	"github.com/slipwayhq/slipway/steps/standard"
)

// BenchmarkCreateSocket measures POST /containers/create through a unix socket with keep-alive
// HTTP, as the docker CLI's body for `docker create --name N example.com/app:1`, with 1 and 8
// clients. The engine runs the default pipeline (overlayfs where the kernel allows it) with
// fsync on ("sync", as slipway serve runs it) and off ("nosync"), on a root under /var/tmp;
// compare with steps/standard's BenchmarkCreate, the same engine without HTTP. It reports creates/s and the p50/p90/p99 latency.
func BenchmarkCreateSocket(b *testing.B) {
	needRoot(b)
	for _, bc := range []struct {
		mode    string
		clients int
	}{{"sync", 1}, {"sync", 8}, {"nosync", 1}, {"nosync", 8}} {
		clients := bc.clients
		b.Run(fmt.Sprintf("%s/clients=%d", bc.mode, clients), func(b *testing.B) {
			o := openBenchEngine(b, bc.mode == "nosync")
			sock := filepath.Join(tempRoot(b), "api.sock")
			l, err := net.Listen("unix", sock)
			if err != nil {
				b.Fatal(err)
			}
			srv := &http.Server{Handler: New(o, nil)}
			go srv.Serve(l)
			b.Cleanup(func() { srv.Close() })
			hc := &http.Client{Transport: &http.Transport{
				MaxIdleConnsPerHost: clients,
				DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
					return (&net.Dialer{}).DialContext(ctx, "unix", sock)
				},
			}}
			post := func(i int64) (time.Duration, error) {
				body := []byte(fmt.Sprintf(createBody, testImage))
				t0 := time.Now()
				res, err := hc.Post(fmt.Sprintf("http://api/v1.50/containers/create?name=b%d", i), "application/json", bytes.NewReader(body))
				if err != nil {
					return 0, err
				}
				out, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusCreated {
					return 0, fmt.Errorf("status %d: %s", res.StatusCode, out)
				}
				return time.Since(t0), nil
			}
			if _, err := post(-1); err != nil { // warm: the image's layers are unpacked once
				b.Fatal(err)
			}
			var (
				mu   sync.Mutex
				lat  = make([]time.Duration, 0, b.N)
				next int64
				wg   sync.WaitGroup
			)
			b.ResetTimer()
			start := time.Now()
			for c := 0; c < clients; c++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						mu.Lock()
						if next >= int64(b.N) {
							mu.Unlock()
							return
						}
						i := next
						next++
						mu.Unlock()
						d, err := post(i)
						if err != nil {
							b.Error(err)
							return
						}
						mu.Lock()
						lat = append(lat, d)
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "creates/s")
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			if n := len(lat); n > 0 {
				b.ReportMetric(float64(lat[n/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(lat[n*90/100].Microseconds())/1000, "p90-ms")
				b.ReportMetric(float64(lat[n*99/100].Microseconds())/1000, "p99-ms")
			}
		})
	}
}

// createBody is the body docker CLI 28 sends for `docker create --name N IMAGE` (abridged to
// the keys it sets to non-zero values, plus the zero HostConfig keys that matter).
const createBody = `{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":true,"AttachStderr":true,
"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":[],"Cmd":null,"Image":%q,"Volumes":{},"WorkingDir":"",
"Entrypoint":null,"OnBuild":null,"Labels":{},"HostConfig":{"Binds":null,"ContainerIDFile":"","LogConfig":{"Type":"","Config":{}},
"NetworkMode":"default","PortBindings":{},"RestartPolicy":{"Name":"no","MaximumRetryCount":0},"AutoRemove":false,
"VolumeDriver":"","VolumesFrom":null,"ConsoleSize":[0,0],"CapAdd":null,"CapDrop":null,"CgroupnsMode":"","Dns":[],
"DnsOptions":[],"DnsSearch":[],"ExtraHosts":null,"GroupAdd":null,"IpcMode":"","Cgroup":"","Links":null,"OomScoreAdj":0,
"PidMode":"","Privileged":false,"PublishAllPorts":false,"ReadonlyRootfs":false,"SecurityOpt":null,"UTSMode":"",
"UsernsMode":"","ShmSize":0,"Isolation":"","CpuShares":0,"Memory":0,"NanoCpus":0,"CgroupParent":"","BlkioWeight":0,
"BlkioWeightDevice":[],"BlkioDeviceReadBps":[],"BlkioDeviceWriteBps":[],"BlkioDeviceReadIOps":[],"BlkioDeviceWriteIOps":[],
"CpuPeriod":0,"CpuQuota":0,"CpuRealtimePeriod":0,"CpuRealtimeRuntime":0,"CpusetCpus":"","CpusetMems":"","Devices":[],
"DeviceCgroupRules":null,"DeviceRequests":null,"MemoryReservation":0,"MemorySwap":0,"MemorySwappiness":-1,
"OomKillDisable":false,"PidsLimit":0,"Ulimits":[],"CpuCount":0,"CpuPercent":0,"IOMaximumIOps":0,"IOMaximumBandwidth":0,
"MaskedPaths":null,"ReadonlyPaths":null},"NetworkingConfig":{"EndpointsConfig":{"default":{"IPAMConfig":null,"Links":null,
"Aliases":null,"MacAddress":"","DriverOpts":null,"GwPriority":0,"NetworkID":"","EndpointID":"","Gateway":"","IPAddress":"",
"IPPrefixLen":0,"IPv6Gateway":"","GlobalIPv6Address":"","GlobalIPv6PrefixLen":0,"DNSNames":null}}}}`

// openBenchEngine opens an engine with the default pipeline, with the test image loaded.
func openBenchEngine(b *testing.B, noSync bool) *core.Engine {
	b.Helper()
	o := standard.Options(standard.Config{NoSync: noSync})
	o.Root = tempRoot(b)
	e, err := core.Open(context.Background(), o)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close() })
	if _, err := e.Images().(*images.Store).Load(context.Background(), bytes.NewReader(imageTar(b)), images.LoadOptions{}); err != nil {
		b.Fatal(err)
	}
	return e
}
