#!/usr/bin/env bash
# Regenerates the Go code of the protobuf messages:
#
#   core/corepb/core.proto                     -> core/corepb/core.pb.go
#   partitions/partitionspb/partitions.proto  -> partitions/partitionspb/partitions.pb.go
#   loadmonitor/loadmonitorpb/loadmonitor.proto -> loadmonitor/loadmonitorpb/loadmonitor.pb.go
#
# (partitions.proto imports core.proto; both are generated in one run.)
#
# Needs protoc (apt-get install protobuf-compiler; the committed code was
# made with protoc 3.21) and protoc-gen-go at the version of
# google.golang.org/protobuf pinned in go.mod, which this script installs
# with `go install` if it is missing. Run it from anywhere in the repository
# (or through `go generate ./core/... ./partitions/...`), and commit the result.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

protos=(
	core/corepb/core.proto
	partitions/partitionspb/partitions.proto
	loadmonitor/loadmonitorpb/loadmonitor.proto
)

if ! command -v protoc >/dev/null 2>&1; then
	echo "protogen: protoc not found on PATH." >&2
	echo "protogen: install it with: sudo apt-get install protobuf-compiler" >&2
	echo "protogen: (or from https://github.com/protocolbuffers/protobuf/releases)" >&2
	exit 1
fi

# The plugin must match the runtime library in go.mod.
want="$(go list -m -f '{{.Version}}' google.golang.org/protobuf)"
if [[ -z "$want" ]]; then
	echo "protogen: google.golang.org/protobuf is not required in go.mod" >&2
	exit 1
fi

plugin_version() { "$1" --version 2>/dev/null | awk '{print $2}'; }

gobin="$(go env GOBIN)"
[[ -n "$gobin" ]] || gobin="$(go env GOPATH | cut -d: -f1)/bin"

plugin=""
for candidate in "$gobin/protoc-gen-go" "$(command -v protoc-gen-go || true)"; do
	if [[ -n "$candidate" && -x "$candidate" && "$(plugin_version "$candidate")" == "$want" ]]; then
		plugin="$candidate"
		break
	fi
done
if [[ -z "$plugin" ]]; then
	echo "protogen: installing protoc-gen-go $want into $gobin" >&2
	GOBIN="$gobin" go install "google.golang.org/protobuf/cmd/protoc-gen-go@$want"
	plugin="$gobin/protoc-gen-go"
	got="$(plugin_version "$plugin")"
	if [[ "$got" != "$want" ]]; then
		echo "protogen: $plugin reports version '$got', want $want" >&2
		exit 1
	fi
fi

pv="$(protoc --version | awk '{print $2}')"
case "$pv" in
3.21.*) ;;
*) echo "protogen: note: protoc $pv (the committed code was made with 3.21); the version comment in the output will differ" >&2 ;;
esac

# Paths are relative to the repository root, so the files register as
# "core/corepb/core.proto" and "partitions/partitionspb/partitions.proto" in
# the protobuf registry (and partitions.proto's import of
# "core/corepb/core.proto" resolves).
protoc \
	--proto_path=. \
	--plugin=protoc-gen-go="$plugin" \
	--go_out=. \
	--go_opt=module=github.com/netherite-go/netherite \
	"${protos[@]}"

for p in "${protos[@]}"; do
	echo "protogen: generated ${p%.proto}.pb.go with protoc $pv and protoc-gen-go $want" >&2
done
