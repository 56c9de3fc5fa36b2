#!/usr/bin/env bash
# Prints the .deb's /usr/share/doc/dogwood/copyright in Debian's machine-readable
# format (DEP-5, copyright-format 1.0): Dogwood's own licence, then one paragraph per
# Go module linked into the static binaries, with its licence from the module cache
# (dogwood-agent's modules: a superset of dogwood's).
# Run from the repository root; dist.sh calls it.
set -euo pipefail
GO=${GO:-go}
cat <<'HEAD'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: dogwood
Upstream-Contact: Dogwood maintainers <dogwood@example.org>
Source: https://github.com/dogwood/dogwood
Comment: /usr/bin/dogwood and /usr/lib/dogwood/dogwood-agent are static Go
 binaries; the Files: vendor/MODULE/* paragraphs below are the Go modules
 compiled into them.

Files: *
Copyright: the Dogwood authors
License: Apache-2.0
HEAD
"$GO" list -tags agent -deps -f '{{with .Module}}{{if not .Main}}{{.Path}} {{.Dir}}{{end}}{{end}}' ./cmd/dogwood | sort -u |
while read -r mod dir; do
	text=$(find "$dir" -maxdepth 1 -iregex '.*/\(licen[cs]e\|copying\)\(\.md\|\.txt\)?' | sort | head -1)
	if [ -z "$text" ]; then
		echo "copyright.sh: $mod has no licence file in $dir" >&2
		exit 1
	fi
	body=$(cat "$text")
	case "$body" in
	*"two different licenses"*) id="Expat and Apache-2.0" ;;
	*"Mozilla Public License"*) id=MPL-2.0 ;;
	*"Apache License"*) id=Apache-2.0 ;;
	*"Permission is hereby granted"*) id=Expat ;;
	*"Redistribution and use"*)
		if grep -q "Neither the name" "$text"; then id=BSD-3-Clause; else id=BSD-2-Clause; fi ;;
	*)
		echo "copyright.sh: $mod: no licence recognised in $text" >&2
		exit 1 ;;
	esac
	holder=$(grep -m1 -iE '^[#> ]*copyright +(\(c\)|©|[0-9])' "$text" | sed -E 's/^[#> ]*[Cc]opyright +//' || true)
	printf '\nFiles: vendor/%s/*\nCopyright: %s\nLicense: %s\n' "$mod" "${holder:-the $mod authors}" "$id"
	# Licences without a file in /usr/share/common-licenses carry their text here.
	case $id in
	Apache-2.0 | MPL-2.0) ;;
	*) sed -E 's/[[:space:]]+$//; s/^$/./; s/^/ /' "$text" ;;
	esac
done
cat <<'TAIL'

License: Apache-2.0
 Licensed under the Apache License, Version 2.0 (the "License"); you may not
 use this file except in compliance with the License.
 .
 On Debian systems, the complete text of the Apache License, Version 2.0 can
 be found in "/usr/share/common-licenses/Apache-2.0".

License: MPL-2.0
 This Source Code Form is subject to the terms of the Mozilla Public License,
 v. 2.0.
 .
 On Debian systems, the complete text of the Mozilla Public License, Version
 2.0 can be found in "/usr/share/common-licenses/MPL-2.0".
TAIL
