#!/usr/bin/env bash
# Runs fuzz targets one after the other under the limits that make a hang or
# a huge allocation a finding: -timeout (seconds per input) and -rss_limit_mb.
#
#   fuzz/run.sh [SECONDS] [TARGET...]     (default: 600 s, every target)
#
# Each target starts from its kept seeds (fuzz/seeds/<target>) and its local
# corpus (fuzz/corpus/<target>, gitignored); a crash lands in
# fuzz/artifacts/<target>/ and ends that target's run. Logs: fuzz/logs/.
# Needs `cargo install cargo-fuzz`; stable rustc with its bootstrap switch
# (AddressSanitizer needs -Z flags).
set -uo pipefail
cd "$(dirname "$0")"
secs=${1:-600}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list 2>/dev/null)
fi
export RUSTC_BOOTSTRAP=1
export TMPDIR=${TMPDIR:-/dev/shm}
mkdir -p logs
status=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "seeds/$t"
    printf '== %s (%s s)\n' "$t" "$secs"
    nice -n 19 cargo fuzz run "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 >"logs/$t.log" 2>&1
    rc=$?
    grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb|^Done|SUMMARY|panicked' "logs/$t.log" | head -n 6
    printf '   exit %s\n' "$rc"
    [ "$rc" -eq 0 ] || status=1
done
exit $status
