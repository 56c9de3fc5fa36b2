#!/usr/bin/env bash
# Builds release artifacts into $DIST (default dist/): for each of $ARCHS (default:
# this machine's architecture; `make dist ALL=1` passes every one) a tar
# archive with the binary, the CNI plugin (cni/dogwood), license, README, unit,
# sample config and completions,
# a .deb made by nfpm (pinned below, fetched through the Go module proxy), and
# SHA256SUMS. Run from the repository root; `make dist` passes the build info.
set -euo pipefail
GO=${GO:-go}
DIST=${DIST:-dist}
ARCHS=${ARCHS:-$("$GO" env GOARCH)}
VERSION=${VERSION:-0.0.0-dev}
COMMIT=${COMMIT:-unknown}
DATE=${DATE:-unknown}
NFPM=${NFPM:-github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.48.0}
pkg=cmd/dogwood/packaging

mkdir -p "$DIST"
DIST=$(cd "$DIST" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/dogwood-dist.XXXXXX")
trap 'rm -rf "$work"' EXIT

for arch in $ARCHS; do
	name=dogwood_${VERSION}_linux_${arch}
	root=$work/$name
	mkdir -p "$root/completions" "$root/systemd" "$root/monitoring"
	# Static, reproducible: no cgo (no libc dependency in the .deb), no local paths.
	CGO_ENABLED=0 GOOS=linux GOARCH=$arch "$GO" build -trimpath -buildvcs=false -tags urfave_cli_no_docs \
		-ldflags "-s -w -X main.version=$VERSION -X main.commit=$COMMIT -X main.date=$DATE" \
		-o "$root/dogwood" ./cmd/dogwood
	# The agent's side, which dogwood runs for agent, proxy, dig, ping, backup and
	# restore (cmd/dogwood/delegate.go): beside dogwood in the archive, in
	# /usr/lib/dogwood in the .deb.
	CGO_ENABLED=0 GOOS=linux GOARCH=$arch "$GO" build -trimpath -buildvcs=false -tags urfave_cli_no_docs,agent \
		-ldflags "-s -w -X main.version=$VERSION -X main.commit=$COMMIT -X main.date=$DATE" \
		-o "$root/dogwood-agent" ./cmd/dogwood
	# The CNI plugin, a program of its own so container starts stay cheap; runtimes
	# run it as "dogwood" from their plugin directories.
	mkdir -p "$root/cni"
	CGO_ENABLED=0 GOOS=linux GOARCH=$arch "$GO" build -trimpath -buildvcs=false -ldflags "-s -w" \
		-o "$root/cni/dogwood" ./cmd/dogwood-cni
	# Completions come from the binary itself; a foreign-arch binary cannot run
	# here, so they are made with a native build of the same source.
	if [ "$arch" = "$("$GO" env GOARCH)" ]; then gen=$root/dogwood; else
		gen=$work/dogwood-native
		[ -x "$gen" ] || CGO_ENABLED=0 "$GO" build -trimpath -buildvcs=false -tags urfave_cli_no_docs -o "$gen" ./cmd/dogwood
	fi
	"$gen" completion bash >"$root/completions/dogwood.bash"
	"$gen" completion zsh >"$root/completions/dogwood.zsh"
	"$gen" completion fish >"$root/completions/dogwood.fish"
	cp LICENSE README.md "$root/"
	cp cmd/dogwood/CHANGELOG.md "$root/"
	cp $pkg/dogwood.service "$root/systemd/"
	cp $pkg/agent.yaml $pkg/dogwood.default "$root/"
	cp $pkg/monitoring/alerts.yml $pkg/monitoring/grafana-dashboard.json "$root/monitoring/"
	tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="${DATE/unknown/1970-01-01T00:00:00Z}" \
		-C "$work" -czf "$DIST/$name.tar.gz" "$name"

	stage=$work/stage-$arch
	mkdir -p "$stage"
	ln -s "$root" "$stage/release"
	ln -s "$PWD/$pkg/scripts" "$stage/scripts"
	[ -s "$work/copyright" ] || GO=$GO bash $pkg/copyright.sh >"$work/copyright"
	cp "$work/copyright" "$stage/copyright" # a symlink would be packaged as one
	cp $pkg/nfpm.yaml "$stage/"
	nfpm=$work/nfpm
	[ -x "$nfpm" ] || GOBIN=$work "$GO" install "$NFPM"
	(cd "$stage" && VERSION=$VERSION ARCH=$arch "$nfpm" package -f nfpm.yaml -p deb -t "$DIST/" >/dev/null)
done
(cd "$DIST" && sha256sum ./*.tar.gz ./*.deb | sed 's| \./| |' >SHA256SUMS)
ls -l "$DIST"
