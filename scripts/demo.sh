#!/usr/bin/env bash
# Slipway's demo: builds slipway and the demo image, then loads the image and creates,
# lists, inspects, mounts and removes containers through the default pipeline, on a
# temporary state root that is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d /tmp/slipway-demo.XXXXXX)
bin="$work/slipway"
root="$work/root"
cleanup() {
	# Unmount anything the demo left mounted (only if it failed half-way), then remove it all.
	grep -o " $root[^ ]*" /proc/self/mountinfo 2>/dev/null | sort -r | xargs -r -n1 umount 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ slipway %s\n' "$*"; "$bin" --root "$root" "$@"; }

step "build slipway and the demo image (a static Go program packed as an OCI layout)"
go build -o "$bin" ./cmd/slipway
go run ./examples/demoimage -o "$work/demo.tar"
ls -l "$work/demo.tar"

step "load the image"
run image load -i "$work/demo.tar"
run image ls

step "create containers through the pipeline (verify, image, merge, security, network, layer, mkdir, register)"
run create --trace --name web -e GREETING=hello -l tier=demo -p 8080:80 slipway.dev/demo/hello
run create --name pinned --network slipway --ip 172.30.0.10 slipway.dev/demo/hello planet
run create slipway.dev/demo/hello
run ls

step "inspect one (docker inspect's JSON)"
run inspect web | head -n 30
echo "..."

step "mount its root filesystem: the image's files plus the init layer"
dir=$(run mount web | tail -n 1)
ls -la "$dir" "$dir/etc"
run umount web

step "refusals: each is classed, and leaves nothing behind"
run create --name web slipway.dev/demo/hello || echo "(exit status $?)"
run create --name other --network slipway --ip 172.30.0.10 slipway.dev/demo/hello || echo "(exit status $?)"
run create no/such-image || echo "(exit status $?)"
run create --memory 1k slipway.dev/demo/hello || echo "(exit status $?)"

step "remove them all: the undo chain of the stages that created each"
run rm web pinned
run rm "$("$bin" --root "$root" ls -q)"
run ls -a
run image rm slipway.dev/demo/hello

step "the event log"
run events

step "what is left under the state root"
find "$root" -maxdepth 3 | sort
echo
echo "demo finished"
