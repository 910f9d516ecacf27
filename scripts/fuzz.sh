#!/usr/bin/env bash
# The long fuzzing run: Schemathesis against a live server (scripts/schemathesis.sh with a
# long budget), then every coverage-guided target of crates/latchkey-fuzz under cargo-afl
# (AFL++ on stable Rust), at most two at a time (FUZZ_JOBS), each for SECONDS.
# Prints, per target, afl's executions, crashes and hangs (from its fuzzer_stats) and
# exits non-zero on any crash, hang or schemathesis failure.
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#   SECONDS_PER_TARGET  default 600; also the schemathesis budget
#   TARGET              default: every target (sshsig token challenge codec ws_frame
#                       device_form)
# FUZZ_SKIP_SCHEMATHESIS=1 runs only the afl targets; FUZZ_NO_BUILD=1 reuses the driver
# already built.
# A crash input is left in target/fuzz/<target>/default/crashes/: fix the bug, then copy
# the input into crates/latchkey-fuzz/corpus/<target>/ so `cargo test` replays it.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(sshsig token challenge codec ws_frame device_form)
jobs=${FUZZ_JOBS:-2}
afl_version=0.18.2

status=0
if [ "${FUZZ_SKIP_SCHEMATHESIS:-0}" != 1 ]; then
  echo "== schemathesis, ${seconds} s"
  scripts/schemathesis.sh "$seconds" 1000 || status=1
fi

if ! cargo afl --version >/dev/null 2>&1; then
  echo "installing cargo-afl $afl_version (it builds AFL++ too)"
  cargo install --locked --version "$afl_version" cargo-afl
fi

# Instrumented builds get their own target dir, so they never invalidate the normal one.
export CARGO_TARGET_DIR="$PWD/target/afl"
driver="$CARGO_TARGET_DIR/release/latchkey-fuzz"
if [ "${FUZZ_NO_BUILD:-0}" != 1 ] || [ ! -x "$driver" ]; then
  echo "== cargo afl build"
  cargo afl build --release --locked -p latchkey-fuzz --features afl
fi

# No frequency scaling or core dump pattern to set on a shared machine; no CPU pinning
# (other work shares the cores); no curses UI.
export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_AFFINITY=1
export AFL_NO_UI=1
out="$PWD/target/fuzz"
mkdir -p "$out"

run_target() {
  local t=$1
  rm -rf "${out:?}/$t"
  cargo afl fuzz -i "crates/latchkey-fuzz/corpus/$t" -o "$out/$t" -V "$seconds" \
    -- "$driver" "$t" >"$out/$t.log" 2>&1
}

echo "== afl: ${#targets[@]} targets, ${seconds} s each, ${jobs} at a time"
pids=()
for t in "${targets[@]}"; do
  run_target "$t" &
  pids+=($!)
  if [ ${#pids[@]} -ge "$jobs" ]; then
    wait "${pids[0]}" || true
    pids=("${pids[@]:1}")
  fi
done
for p in "${pids[@]}"; do wait "$p" || true; done

stat() { sed -n "s/^$2 *: *//p" "$1" | head -1; }
printf '%-12s %10s %14s %10s %8s %6s %8s\n' target seconds executions execs/s crashes hangs corpus
for t in "${targets[@]}"; do
  f="$out/$t/default/fuzzer_stats"
  if [ ! -f "$f" ]; then
    echo "$t: afl did not run; see $out/$t.log"
    tail -20 "$out/$t.log" || true
    status=1
    continue
  fi
  crashes=$(stat "$f" saved_crashes)
  hangs=$(stat "$f" saved_hangs)
  printf '%-12s %10s %14s %10s %8s %6s %8s\n' "$t" "$(stat "$f" run_time)" \
    "$(stat "$f" execs_done)" "$(stat "$f" execs_per_sec)" "$crashes" "$hangs" \
    "$(stat "$f" corpus_count)"
  if [ "${crashes:-0}" != 0 ] || [ "${hangs:-0}" != 0 ]; then
    echo "  $t: inputs in $out/$t/default/crashes and hangs"
    status=1
  fi
done
exit "$status"
