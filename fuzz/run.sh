#!/usr/bin/env bash
# Usage: fuzz/run.sh SECONDS [TARGET...]
#
# Runs each fuzz target (all of them unless named) for SECONDS, one after
# another, starting from its seed corpus (corpus/<target>, read only) and
# the inputs earlier runs found (work/<target>, kept, not committed). Prints
# a line per target with its executions, coverage and findings; a finding
# is saved in artifacts/<target>/. Exits non-zero if any target crashed.
# NICE=19 runs the fuzzers at the lowest priority.
set -uo pipefail
cd "$(dirname "$0")"
source ./env.sh

secs=${1:?usage: run.sh SECONDS [TARGET...]}
shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${FUZZ_TARGETS[@]}")

mkdir -p work
failed=()
total_execs=0
printf '%-16s %12s %8s %8s %s\n' target executions cov corpus findings
for t in "${targets[@]}"; do
    mkdir -p "work/$t" "corpus/$t" "artifacts/$t"
    log="work/$t.log"
    marker="work/$t.start"
    touch "$marker"
    nice -n "${NICE:-0}" "${FUZZ_CARGO[@]}" run "${FUZZ_BUILD_FLAGS[@]}" "$t" \
        "work/$t" "corpus/$t" -- \
        -max_total_time="$secs" -timeout=30 -print_final_stats=1 >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    [ -n "$execs" ] || execs=$(grep -o '^#[0-9]*' "$log" | tail -n 1 | tr -d '#')
    execs=${execs:-0}
    total_execs=$((total_execs + execs))
    last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")
    found=$(find "artifacts/$t" -type f -newer "$marker" | sort)
    if [ "$rc" -ne 0 ] || [ -n "$found" ]; then
        failed+=("$t")
        printf '%-16s %12s %8s %8s %s\n' "$t" "$execs" "${cov:--}" "${corp:--}" \
            "CRASH (exit $rc): ${found:-see $log}"
        grep -E 'panicked at|ERROR: |SUMMARY: ' "$log" | head -n 5 | sed 's/^/    /'
    else
        printf '%-16s %12s %8s %8s %s\n' "$t" "$execs" "${cov:--}" "${corp:--}" none
    fi
    rm -f "$marker"
done
echo "total executions: $total_execs; targets with findings: ${#failed[@]}${failed[*]:+ (${failed[*]})}"
[ ${#failed[@]} -eq 0 ]
