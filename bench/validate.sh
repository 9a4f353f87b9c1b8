#!/usr/bin/env bash
# Times `slaprof validate silicon` over the whole reference silicon CSV
# (issue #2's target: all 3,310 rows in under 5 s on a 2-core machine) and
# prints the wall time and the summary's overall lines.
#
# usage: bench/validate.sh [--all] [--check] [CSV]
#   --all    also run the criterion benchmarks (cargo bench -p perf-model
#            --bench step --bench sim)
#   --check  exit 1 when the run takes longer than the target
#   CSV      defaults to $SLAPROF_SHARED/reference/silicon_calibration.csv,
#            where SLAPROF_SHARED defaults to the shared/ folder beside the
#            repository (../shared from the repository root)
#
# Works from any directory; honours CARGO_TARGET_DIR.
set -euo pipefail

TARGET_S=5
all=0
check=0
csv=""
for arg in "$@"; do
    case "$arg" in
        --all) all=1 ;;
        --check) check=1 ;;
        -h | --help)
            sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        -*)
            echo "bench/validate.sh: unknown option $arg (try --help)" >&2
            exit 2
            ;;
        *) csv="$arg" ;;
    esac
done

# Resolve a relative CSV path against the caller's directory before moving.
if [[ -n "$csv" && "$csv" != /* ]]; then
    csv="$PWD/$csv"
fi

script_dir="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
root="$(cd -- "$script_dir/.." && pwd -P)"
cd "$root"

if [[ -z "$csv" ]]; then
    shared="${SLAPROF_SHARED:-$root/../shared}"
    csv="$shared/reference/silicon_calibration.csv"
fi
if [[ ! -f "$csv" ]]; then
    echo "bench/validate.sh: no silicon CSV at $csv" >&2
    echo "  (put the shared/ folder beside the repository, set SLAPROF_SHARED, or pass a CSV)" >&2
    exit 2
fi

target_dir="${CARGO_TARGET_DIR:-$root/target}"
if [[ "$target_dir" != /* ]]; then
    target_dir="$root/$target_dir"
fi
bin="$target_dir/release/slaprof"

echo "== building slaprof (release)"
cargo build --release -p slaprof --quiet

rows=$(($(wc -l <"$csv") - 1))
out_dir="$(mktemp -d "${TMPDIR:-/tmp}/slaprof-validate.XXXXXX")"
trap 'rm -rf -- "$out_dir"' EXIT
predictions="$out_dir/predictions.csv"
summary="$out_dir/summary.txt"

echo "== slaprof validate silicon $csv ($rows rows, $(nproc 2>/dev/null || echo '?') cores)"
start=$(date +%s.%N)
"$bin" validate silicon "$csv" --out "$predictions" >"$summary"
end=$(date +%s.%N)
wall=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')

# The "overall" table: its title line down to the blank line after it.
awk '/^overall$/ { on = 1 } on && /^$/ { exit } on { print }' "$summary"
grep -E '^[0-9]+ rows in ' "$summary" || true
predicted=$(awk -F, 'NR > 1 && $2 != "" { n++ } END { print n + 0 }' "$predictions")
echo "predicted $predicted of $rows rows; predictions in a temporary file (removed on exit)"

if awk -v w="$wall" -v t="$TARGET_S" 'BEGIN { exit !(w < t) }'; then
    verdict="met"
else
    verdict="MISSED"
fi
echo "wall time: $wall s (target < $TARGET_S s: $verdict)"

if [[ $all == 1 ]]; then
    echo "== cargo bench -p perf-model --bench step --bench sim"
    cargo bench -p perf-model --bench step --bench sim
fi

if [[ $check == 1 && $verdict != "met" ]]; then
    exit 1
fi
