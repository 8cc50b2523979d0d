#!/usr/bin/env bash
# Usage: fuzz/run.sh SECONDS [TARGET...]
#
# Runs each fuzz target (all of them unless named) for SECONDS, one after
# another, starting from its seed corpus (corpus/<target>, read only) and
# the inputs earlier runs found (work/<target>, kept, not committed). Prints
# a line per target with its executions, coverage and findings; a finding
# is saved in artifacts/<target>/. Exits non-zero if any target crashed.
# NICE=19 runs the fuzzers at the lowest priority.
# FUZZ_BUDGET=cpu makes SECONDS the CPU time each fuzzer gets rather than
# wall time: on a shared machine (a low NICE, other work running) a target
# still gets its full hour of fuzzing. The target binary must be built
# (ci.sh or `cargo fuzz build` with the flags of env.sh); it is run
# directly and interrupted (SIGINT, so it prints its final statistics)
# once its user + system time reaches SECONDS.
# libFuzzer's per-input timeout (FUZZ_UNIT_TIMEOUT, 30 s) counts wall time:
# a fuzzer stopped (SIGSTOP) for longer than that reports a timeout as soon
# as it runs again. Raise it before pausing fuzzers for benchmarks, and run
# a saved timeout-* input alone (BINARY FILE) to tell a real hang.
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
    if [ "${FUZZ_BUDGET:-wall}" = cpu ]; then
        bin=target/x86_64-unknown-linux-gnu/release/$t
        [ -x "$bin" ] || { echo "run.sh: $bin is not built" >&2; exit 2; }
        start=$(date +%s)
        # Wall time per input means little here (the fuzzer may wait
        # behind other work, or be paused), so slow inputs are not saved.
        nice -n "${NICE:-0}" "$bin" -artifact_prefix="artifacts/$t/" "work/$t" "corpus/$t" \
            -timeout="${FUZZ_UNIT_TIMEOUT:-30}" -report_slow_units=100000 -print_final_stats=1 >"$log" 2>&1 &
        pid=$!
        tick=$(getconf CLK_TCK)
        while kill -0 "$pid" 2>/dev/null; do
            # Fields 14 and 15 of /proc/PID/stat: user and system ticks.
            cpu=$(awk -v t="$tick" '{print int(($14 + $15) / t)}' "/proc/$pid/stat" 2>/dev/null)
            if [ "${cpu:-0}" -ge "$secs" ]; then
                kill -INT "$pid"
                break
            fi
            sleep 5
        done
        wait "$pid"
        rc=$?
        # libFuzzer exits 72 when interrupted: the budget was spent.
        [ "$rc" -eq 72 ] && rc=0
        echo "cpu budget: ${cpu:-0} s of CPU in $(($(date +%s) - start)) s of wall time" >>"$log"
    else
        nice -n "${NICE:-0}" "${FUZZ_CARGO[@]}" run "${FUZZ_BUILD_FLAGS[@]}" "$t" \
            "work/$t" "corpus/$t" -- \
            -max_total_time="$secs" -timeout=30 -print_final_stats=1 >"$log" 2>&1
        rc=$?
    fi
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
