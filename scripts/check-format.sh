#!/usr/bin/env bash
# Fails when a tracked C or C++ source differs from what clang-format makes of it with the
# checked-in .clang-format. The version is pinned (Debian 12's clang-format-14) because
# clang-format's output changes between releases. Fix with: scripts/check-format.sh --fix
set -euo pipefail
cd "$(dirname "$0")/.."
formatter=clang-format-14
command -v "$formatter" >/dev/null || { echo "check-format: $formatter is missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
mapfile -t files < <(git ls-files '*.cc' '*.h' '*.c')
if [ "${1:-}" = "--fix" ]; then
  printf '%s\0' "${files[@]}" | xargs -0 "$formatter" -i
  exit 0
fi
bad=$(printf '%s\0' "${files[@]}" | xargs -0 "$formatter" --dry-run 2>&1 | grep -oE '^[^:]+:[0-9]+:[0-9]+: (warning|error)' | cut -d: -f1 | sort -u || true)
if [ -n "$bad" ]; then
  echo "check-format: these files are not formatted (run scripts/check-format.sh --fix):" >&2
  echo "$bad" >&2
  exit 1
fi
echo "check-format: ${#files[@]} files formatted"
