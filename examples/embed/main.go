// Command embed shows how a Go program embeds Slipway and replaces one stage: it swaps the
// built-in network stage for its own, which gives every container an address from a small
// fixed list, then creates, inspects and removes a container with it.
//
//	go run ./examples/demoimage -o /tmp/demo.tar
//	sudo go run ./examples/embed -i /tmp/demo.tar
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/netip"
	"os"
	"sync"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/spec"
	"github.com/slipwayhq/slipway/images"
	"github.com/slipwayhq/slipway/steps/standard"
)

// listNetwork is a network stage that hands out the addresses of a fixed list.
type listNetwork struct {
	mu    sync.Mutex
	free  []netip.Addr
	taken map[string]netip.Addr // container ID -> address
}

func (n *listNetwork) ConfigureNetwork(ctx context.Context, rec *spec.Record) (*spec.Network, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.free) == 0 {
		return nil, errdefs.Unavailable(fmt.Errorf("no address left for %s", rec.ID))
	}
	addr := n.free[0]
	n.free, n.taken[rec.ID] = n.free[1:], addr
	return &spec.Network{NetworkMode: "listnet", Networks: map[string]*network.EndpointSettings{
		"listnet": {IPAddress: addr, IPPrefixLen: 24},
	}}, nil
}

// Undo gives the address back; it is idempotent and needs only the ID.
func (n *listNetwork) Undo(ctx context.Context, rec *spec.Record) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if addr, ok := n.taken[rec.ID]; ok {
		delete(n.taken, rec.ID)
		n.free = append(n.free, addr)
	}
	return nil
}

var _ core.Networker = (*listNetwork)(nil)

func main() {
	input := flag.String("i", "", "image tarball to load (go run ./examples/demoimage -o FILE)")
	ref := flag.String("image", "slipway.dev/demo/hello", "image to create the container from")
	flag.Parse()
	ctx := context.Background()
	root, err := os.MkdirTemp("", "slipway-embed-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(root)

	// The default pipeline, with our network stage in place of the built-in one.
	nw := &listNetwork{taken: map[string]netip.Addr{}, free: []netip.Addr{netip.MustParseAddr("10.77.0.5"), netip.MustParseAddr("10.77.0.6")}}
	opts := standard.Options(standard.Config{})
	pipeline := opts.Pipeline.With(core.Impl{Stage: spec.StageNetwork, Name: "listnet",
		New: func(context.Context, core.Env) (any, error) { return nw, nil }})
	opts.Pipeline, opts.Root = &pipeline, root
	eng, err := core.Open(ctx, opts)
	if err != nil {
		log.Fatal(err)
	}
	defer eng.Close()

	if *input != "" {
		f, err := os.Open(*input)
		if err != nil {
			log.Fatal(err)
		}
		res, err := eng.Images().(*images.Store).Load(ctx, f, images.LoadOptions{})
		f.Close()
		if err != nil {
			log.Fatal(err)
		}
		for _, l := range res.Lines {
			fmt.Println(l)
		}
	}
	resp, err := eng.Create(ctx, spec.CreateRequest{Name: "embedded", Config: &container.Config{Image: *ref}})
	if err != nil {
		log.Fatal(err)
	}
	got, err := eng.Inspect(ctx, resp.ID)
	if err != nil {
		log.Fatal(err)
	}
	ep, ok := got.NetworkSettings.Networks["listnet"]
	if !ok {
		log.Fatalf("container %s has no listnet endpoint: the custom network stage did not run", got.ID)
	}
	fmt.Printf("created %s %s with address %s from the custom network stage\n", got.Name, got.ID[:12], ep.IPAddress)
	if err := eng.Remove(ctx, resp.ID, core.RemoveOptions{}); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("removed; %d addresses free again\n", len(nw.free))
}
