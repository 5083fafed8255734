#!/usr/bin/env bash
# Build FerretDB (a MongoDB wire-protocol server, used by the MongoDB tests) with Go.
#
#   tests/support/build-ferretdb.sh v1.24.2 ~/.cache/billable/bin/ferretdb
#
# Plain `go install github.com/FerretDB/FerretDB/cmd/ferretdb@VERSION` builds a binary that
# panics at start-up: FerretDB embeds build/version/version.txt, which its own build tooling
# generates and the module does not ship. So fetch the module, write that file into a copy
# of it and build the copy.
set -euo pipefail

version=${1:?usage: build-ferretdb.sh VERSION DEST}
dest=${2:?usage: build-ferretdb.sh VERSION DEST}
module=github.com/FerretDB/FerretDB

src=$(go mod download -json "$module@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
if [ -z "$src" ] || [ ! -d "$src" ]; then
    echo "build-ferretdb: could not download $module@$version" >&2
    exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -R "$src"/. "$work"
chmod -R u+w "$work"
echo "$version" > "$work/build/version/version.txt"

mkdir -p "$(dirname "$dest")"
(cd "$work" && CGO_ENABLED=0 go build -trimpath -buildvcs=false -o "$dest.tmp" ./cmd/ferretdb)
mv "$dest.tmp" "$dest"
"$dest" --version | head -1
