#!/usr/bin/env bash
# Copy this checkout's files as git knows them (committed or not, untracked ones not ignored; no .venv, no
# caches) into DEST: what a clone of the working tree would hold.
#
#   .ci/copy-checkout.sh DEST
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$1"
(cd "$root" && git ls-files -z --cached --others --exclude-standard \
  | tar --null --ignore-failed-read -T - -cf - 2>/dev/null) | tar -xf - -C "$1"
