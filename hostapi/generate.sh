#!/bin/sh
# Regenerates hostapi/pluginpb from plugin.proto, and hostapi/internal/wire/wire_gen.go (the
# JSON codec of the records and outputs) from the Go types of core/spec and what they hold:
# rerun it after a change to those types or to go.mod's moby or OCI modules.
#
# Needs protoc (Debian: apt-get install protobuf-compiler) and the Go generators at the
# versions this module uses:
#   go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12     (= go.mod's google.golang.org/protobuf)
#   go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2      (needs google.golang.org/grpc >= 1.64; go.mod has v1.83.2)
# Run from anywhere; CI runs it and fails when `git diff --exit-code hostapi/pluginpb
# hostapi/internal/wire` finds a change.
set -eu
cd "$(dirname "$0")"
go run ./internal/wire/gen -o internal/wire/wire_gen.go
cd pluginpb
PATH="$(go env GOPATH)/bin:$PATH"
want_go=$(cd .. && go list -m -f '{{.Version}}' google.golang.org/protobuf)
have_go=$(protoc-gen-go --version | awk '{print $2}')
if [ "$have_go" != "$want_go" ]; then
	echo "protoc-gen-go is $have_go, go.mod has google.golang.org/protobuf $want_go:" >&2
	echo "  go install google.golang.org/protobuf/cmd/protoc-gen-go@$want_go" >&2
	exit 1
fi
protoc -I . \
	--go_out=. --go_opt=paths=source_relative \
	--go-grpc_out=. --go-grpc_opt=paths=source_relative \
	plugin.proto
