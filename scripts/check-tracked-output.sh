#!/usr/bin/env bash
# Fails when git tracks generated output instead of source: benchmark runs (bench/results/,
# bench/*/results/), raw charts, plots and data dumps (PNG, SVG, gnuplot, CSV, JSON outside
# tests/), or a chart in docs/img/ that no document shows (docs/benchmarks.md keeps one chart
# per headline figure; the bench regenerates the rest). Also checks that .gitignore keeps the
# results folders out. Run from anywhere; `check-tracked-output.sh DIR` checks another clone.
set -euo pipefail
repo=${1:-"$(dirname "$0")/.."}
cd "$repo"

status=0
report() {
  echo "tracked-output: $1" >&2
  status=1
}

while IFS= read -r f; do
  case "$f" in
    bench/results/* | bench/*/results/*)
      report "$f is benchmark output (regenerate it with microvm bench / scripts/bench-*.sh)" ;;
    docs/img/*.png)
      # A headline chart stays only while a document shows it.
      name=${f#docs/img/}
      if ! git grep -q -F "img/$name" -- '*.md'; then report "$f is shown by no document"; fi ;;
    docs/img/*)
      report "$f: docs/img/ holds the charts documents show, not reports or data" ;;
    tests/*) ;;  # fuzz corpora and test inputs are source
    *.png | *.svg | *.gp | *.gnuplot | *.plt | *.csv | *.json)
      report "$f looks like generated output (charts and raw data are not kept in git)" ;;
  esac
done < <(git ls-files)

for probe in bench/results/run.json bench/blk_device/results/run.json bench/net/results/plot.png; do
  git check-ignore -q --no-index "$probe" || report ".gitignore does not cover $probe"
done

if [[ $status -eq 0 ]]; then
  echo "tracked-output: git tracks no benchmark output or generated charts"
fi
exit $status
