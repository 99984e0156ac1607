#!/usr/bin/env bash
# Fails when an #include crosses a layer the wrong way (docs/architecture.md, section 1):
#   base <- memory <- virtio core <- virtio devices <- vmm <- library API <- api, cli
#   backends (devices/): base only; boot: memory + base only; only vmm/ sees <linux/kvm.h>.
# Headers in include/microvm/ that are plain values (result, log sink, rate limits, the guest
# ABI constants, the disk and network enums, the ByteSource reading interface) may be used by
# every layer; vm.h (the public VmConfig) only from vmm up.
# Run from anywhere; prints each violation as file:line and exits 1 if there is one.
set -euo pipefail
cd "$(dirname "$0")/.."

value_headers='microvm/(result|log_sink|rate_limit|guest_abi|device_options|byte_source)\.h'

# layer directory -> regex of the include paths it may use.
declare -A allowed=(
  [base]="^(base/|${value_headers})"
  [memory]="^(base/|memory/|${value_headers})"
  [boot]="^(base/|memory/|boot/|${value_headers})"
  [devices]="^(base/|devices/|${value_headers})"
  [virtio]="^(base/|memory/|virtio/|devices/|${value_headers})"
  [vmm]="^(base/|memory/|boot/|devices/|virtio/|vmm/|microvm/)"
  [api]="^(base/|api/|microvm/)"
  [capi]="^(base/|microvm/)"
)

# Known debts, each a reason to fix rather than a rule (none today: the CLI-syntax parsers
# live in cli/, and back ends take their own option structs, not the public VmConfig).
# cli/ and bench/ sit at the top and are not checked.
known_exceptions=()

status=0
report() {
  echo "layering: $1" >&2
  status=1
}

is_known() {
  local entry
  for entry in "${known_exceptions[@]}"; do
    [[ "$entry" == "$1" ]] && return 0
  done
  return 1
}

for layer in "${!allowed[@]}"; do
  [[ -d "$layer" ]] || continue
  while IFS= read -r hit; do
    file=${hit%%:*}
    rest=${hit#*:}
    line=${rest%%:*}
    target=$(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' <<<"${rest#*:}")
    [[ -n "$target" ]] || continue
    # A bare name ("foo.h") is a sibling in the same folder.
    [[ "$target" == */* ]] || continue
    [[ "$target" =~ ${allowed[$layer]} ]] && continue
    is_known "$file:$target" && continue
    report "$file:$line includes \"$target\", which layer '$layer' must not use"
  done < <(grep -rn --include='*.h' --include='*.cc' --include='*.c' '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$layer" || true)
done

# KVM's ABI belongs to vmm/ alone (tests may use it to inspect a VM).
while IFS= read -r hit; do
  report "${hit%%:*}: includes <linux/kvm.h> outside vmm/"
done < <(grep -rln --include='*.h' --include='*.cc' '#[[:space:]]*include[[:space:]]*<linux/kvm.h>' \
           base memory boot devices virtio api capi cli bench 2>/dev/null || true)

if [[ $status -eq 0 ]]; then
  echo "layering: every include follows docs/architecture.md (${#known_exceptions[@]} known exceptions listed in $0)"
fi
exit $status
