#!/usr/bin/env bash
# scripts/check-tracked-output.sh passes on this tree and fails on a clone that tracks
# benchmark output or a stray chart, naming each file.
#   tracked_output_test.sh SOURCE_DIR
set -euo pipefail
src=$1
check=$src/scripts/check-tracked-output.sh
"$check" "$src" || { echo "FAIL: the source tree tracks generated output"; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
git init -q
cp "$src/.gitignore" .
mkdir -p bench/blk_device/results docs/img src
echo '{"iops": 1}' >bench/blk_device/results/run.json
printf 'PNG' >docs/img/orphan.png
printf 'PNG' >src/plot.png
echo 'int main() {}' >src/main.cc
git add -f .
git -c user.email=test@microvm.invalid -c user.name=test commit -qm fixture
if "$check" "$work" 2>"$work/err"; then
  echo "FAIL: tracked benchmark output was not reported"
  exit 1
fi
cat "$work/err"
for f in bench/blk_device/results/run.json docs/img/orphan.png src/plot.png; do
  grep -q "^tracked-output: $f" "$work/err" || { echo "FAIL: $f not named"; exit 1; }
done
grep -q "src/main.cc" "$work/err" && { echo "FAIL: source reported as output"; exit 1; }
echo "PASS"
