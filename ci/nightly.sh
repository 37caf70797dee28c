#!/usr/bin/env bash
# Nightly fuzzing for CI systems other than GitHub Actions: run N shards one
# after the other (or give WORKERS to run each shard with several processes),
# merge their reports, render one HTML page. Exit 1 if anything diverged.
#
#   ci/nightly.sh [BUDGET_PER_SHARD_SECONDS] [SHARDS]
#   OUT=dir SEED=n PROFILE=ci|nightly ENGINES="pyredo walredo" WORKERS=1 PG=15 ci/nightly.sh 60 2
#   (PG: the PostgreSQL major, 15-18; ./dev setup installs them all)
set -euo pipefail
cd "$(dirname "$0")/.."

budget=${1:-600}
shards=${2:-4}
out=${OUT:-nightly-out}
seed=${SEED:-$(date +%Y%m%d)}
profile=${PROFILE:-nightly}
workers=${WORKERS:-1}
pg=${PG:-15}
engines=()
for e in ${ENGINES:-pyredo walredo}; do engines+=(--engine "$e"); done

./dev setup
mkdir -p "$out/shards"
rc=0
for k in $(seq 1 "$shards"); do
  echo "== shard $k/$shards (PostgreSQL $pg, budget ${budget}s, seed $seed, profile $profile)"
  .venv/bin/redodiff fuzz --pg "$pg" --budget "$budget" --seed "$seed" --shard "$k/$shards" --profile "$profile" \
    --workers "$workers" "${engines[@]}" --corpus "$out" \
    --report "$out/shards/report-$k.json" --junit "$out/shards/junit-$k.xml" || rc=$?
  if [ "$rc" -ge 2 ]; then echo "shard $k: setup error (exit $rc)"; exit "$rc"; fi
done
.venv/bin/redodiff merge "$out"/shards/report-*.json --report "$out/report.json" || rc=1
.venv/bin/redodiff report "$out" --html "$out/report.html"
echo "report: $out/report.json, $out/report.html; bundles: $out/bundles"
exit "$rc"
