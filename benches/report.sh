#!/usr/bin/env bash
# Runs Battlement's benches with a short measurement time and prints their tables:
#   - overhead:   ns per call through each layer, ours vs the best peer, ratios to the peer and
#                 to the bare service (criterion medians, current-thread runtime);
#   - contention: calls/s through one shared breaker / bulkhead with 1, 2, 4, 8 tasks on a
#                 2-worker runtime, and the 2-vs-1 ratio;
#   - e2e:        axum hello-world requests/s and server CPU per request, bare vs the full stack,
#                 over loopback;
#   - instructions per call of every overhead row, and per request of every e2e server in
#                 process (callgrind: `-- --instructions` of those benches; needs valgrind, which
#                 this script installs with apt-get when it is missing).
#
# Usage: benches/report.sh [--quick]
#   full:    about 14 minutes on 2 cores (criterion: 1 s warm-up + 2 s measurement per row;
#            contention: 5 rounds of 0.6 s; e2e: 60 rounds of twelve 0.25 s slices, bare between
#            the others; instruction counts: about 2.5 minutes, the same in both modes)
#   --quick: about 1 minute (criterion --quick; 3 rounds of 0.12 s; 20 rounds of twelve 0.15 s slices)
# Compiling the benches first is not counted. Full criterion output goes to target/bench-report/.
# The numbers are only as quiet as the machine: run it when nothing else is compiling.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=full
if [[ "${1:-}" == "--quick" ]]; then
  mode=quick
fi

if [[ $mode == quick ]]; then
  overhead_args=(--quick --noplot --measurement-time 1)
  other_args=(--quick)
else
  overhead_args=(--noplot --warm-up-time 1 --measurement-time 2)
  other_args=()
fi

out=target/bench-report
mkdir -p "$out"

echo "compiling the benches..." >&2
cargo bench -p battlement --bench overhead --bench contention --bench e2e --no-run 2>"$out/build.log" \
  || { cat "$out/build.log" >&2; exit 1; }

run() {
  local name=$1
  shift
  local log="$out/$name${LOG_SUFFIX:-}.log"
  echo "running $name $* ($mode)..." >&2
  if ! cargo bench -p battlement --bench "$name" -- "$@" >"$log" 2>&1; then
    cat "$log" >&2
    exit 1
  fi
  # The bench prints its table after its own output, starting at a `## ` heading.
  sed -n '/^## /,$p' "$log"
  echo
}

# Instruction counts run the benches under callgrind.
if ! command -v valgrind >/dev/null 2>&1; then
  echo "valgrind is missing (instruction counts need it): installing it with apt-get..." >&2
  if ! { apt-get install -y valgrind >/dev/null 2>&1 \
      || { apt-get update >/dev/null 2>&1 && apt-get install -y valgrind >/dev/null 2>&1; }; }; then
    echo "could not install valgrind: install it (Debian: apt-get install -y valgrind) and rerun" >&2
    exit 1
  fi
fi

start=$SECONDS
echo "# Battlement benchmark report ($mode)"
echo
echo "machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores," \
  "$(uname -sr), $(rustc --version)"
echo "load before: $(uptime | sed 's/.*load average: //')"
echo
run overhead "${overhead_args[@]}"
run contention ${other_args[@]+"${other_args[@]}"}
run e2e ${other_args[@]+"${other_args[@]}"}
LOG_SUFFIX=-instructions run overhead --instructions
LOG_SUFFIX=-instructions run e2e --instructions
echo "load after: $(uptime | sed 's/.*load average: //'); benches ran for $((SECONDS - start)) s"
