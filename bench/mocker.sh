#!/usr/bin/env bash
# "How good" benchmarks of `slaprof mocker` (issue 4): builds release and
# runs them, printing each figure next to its target with met/MISSED.
#
#   fidelity  TTFT/ITL over HTTP vs the simulator, concurrency 1/8/64,
#             speedup 1 and 10 (target: median |error| <= 3 %)  ~20 s
#   capacity  streamed requests/s, ISL 128 / OSL 16 (target >= 5,000) and
#             server memory with 10,000 open streams (target <= 1 GiB)  ~40 s
#
# Usage: bench/mocker.sh [fidelity|capacity]...   (default: both)
set -euo pipefail
cd "$(dirname "$0")/.."

benches=("$@")
[ ${#benches[@]} -eq 0 ] && benches=(fidelity capacity)

# 10,000 streams need more than 10,000 descriptors in each process (the
# benchmark also raises its soft limit to the hard one itself).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

cargo build --release -p slaprof
export SLAPROF_BIN="$PWD/target/release/slaprof"
if [ -n "${CARGO_TARGET_DIR:-}" ]; then
    export SLAPROF_BIN="$CARGO_TARGET_DIR/release/slaprof"
fi

out=$(mktemp)
trap 'rm -f "$out"' EXIT
for b in "${benches[@]}"; do
    echo "== mocker bench: $b"
    cargo bench -p mocker --bench "$b" | tee -a "$out"
done

echo
echo "== summary"
grep '^FIGURE' "$out" | sed 's/^FIGURE //'
if grep '^FIGURE' "$out" | grep -q 'MISSED'; then
    echo "some targets MISSED"
else
    echo "all targets met"
fi
