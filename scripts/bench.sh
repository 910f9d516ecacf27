#!/usr/bin/env bash
# Runs every latchkey benchmark, each figure beside its ceiling or peer measured in the
# same run with the same client, and writes crates/latchkey-bench/results/results.md,
# results.json (one object per headline figure: ours, reference, ratio, target, met; then
# one per JetStream figure: append, sign-in and fanout on 1 and 2 nodes over a local
# nats-server -js, beside sled's) and PNG charts beside them.
#
#   scripts/bench.sh            the full run (about 15 minutes on 2 cores, after the build)
#   scripts/bench.sh --quick    the short run (about 5 minutes, after the build)
#   scripts/bench.sh --flame    flame graphs instead: perf records the server during the
#                               sign-in load and the journal during the append load, and
#                               inferno writes results/flame-signin.svg, flame-append.svg
#   scripts/bench.sh [--quick] [more latchkey-bench flags, e.g. --connections 5000]
#
# It builds in release mode, installs wrk and nats-server from Debian's packages when they
# are missing (as root or with passwordless sudo; without them the scenarios that need
# them are skipped with a note), raises the open-file limit for thousands of WebSockets,
# and runs `latchkey-bench all`. The load generators and the server share this machine's
# cores: compare the ratios, not the absolute numbers.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=()
extra=()
flame=0
for arg in "$@"; do
    case "$arg" in
        --quick) quick=(--quick) ;;
        --flame) flame=1 ;;
        -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
        *) extra+=("$arg") ;;
    esac
done

echo "== building (release)"
cargo build --release -p latchkey-cli -p latchkey-bench
bin_dir="${CARGO_TARGET_DIR:-target}/release"

# wrk and nats-server come from Debian's packages (perf too, for --flame).
missing=()
if [ "$flame" -eq 1 ]; then
    command -v perf >/dev/null 2>&1 || missing+=(linux-perf)
else
    command -v wrk >/dev/null 2>&1 || missing+=(wrk)
    command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || missing+=(nats-server)
fi
if [ "${#missing[@]}" -gt 0 ]; then
    echo "== installing ${missing[*]} with apt-get"
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo=(sudo -n)
        else
            sudo=(false)
        fi
    fi
    if "${sudo[@]}" apt-get update -qq && \
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}"; then
        echo "   installed ${missing[*]}"
    else
        echo "   could not install ${missing[*]} (needs root and Debian's package lists);" \
             "the scenarios that need them will be skipped with a note"
    fi
fi

out=crates/latchkey-bench/results
if [ "$flame" -eq 1 ]; then
    if ! command -v inferno-flamegraph >/dev/null 2>&1; then
        echo "== installing inferno (cargo install inferno)"
        cargo install --locked inferno
    fi
    paranoid="$(cat /proc/sys/kernel/perf_event_paranoid 2>/dev/null || echo unknown)"
    echo "== perf_event_paranoid = $paranoid (perf must be able to attach to a process of this user)"
    data="$(mktemp -d)"
    trap 'rm -rf "$data"' EXIT
    "$bin_dir/latchkey-bench" login "${quick[@]}" "${extra[@]}" \
        --bin "$bin_dir/latchkey" --flame-dir "$data"
    "$bin_dir/latchkey-bench" append "${quick[@]}" "${extra[@]}" --flame-dir "$data"
    for name in signin append; do
        if [ ! -s "$data/$name.perf.data" ]; then
            echo "   perf recorded nothing for $name (is perf allowed here? see above)"
            continue
        fi
        perf script -i "$data/$name.perf.data" 2>/dev/null | inferno-collapse-perf \
            | inferno-flamegraph --title "latchkey: $name load" > "$out/flame-$name.svg"
        echo "== wrote $out/flame-$name.svg"
    done
    exit 0
fi

# Thousands of WebSockets need more open files than the usual 1024.
hard="$(ulimit -Hn)"
if [ "$hard" = unlimited ]; then hard=1048576; fi
ulimit -n "$hard" 2>/dev/null || echo "   could not raise ulimit -n (now $(ulimit -n))"
echo "== open-file limit $(ulimit -n)"

# The full run uses 10,000 connections where memory and the fd limit allow it.
fanout=()
if [ "${#quick[@]}" -eq 0 ] && [[ " ${extra[*]} " != *" --connections"* ]]; then
    avail_kib="$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo 2>/dev/null || echo 0)"
    if [ "${avail_kib:-0}" -ge $((4 * 1024 * 1024)) ] && [ "$(ulimit -n)" -ge 12000 ]; then
        fanout=(--connections 10000)
    fi
fi

echo "== running latchkey-bench all ${quick[*]} ${fanout[*]} ${extra[*]}"
start=$SECONDS
"$bin_dir/latchkey-bench" all "${quick[@]}" "${fanout[@]}" "${extra[@]}" \
    --bin "$bin_dir/latchkey" --out "$out"
echo "== done in $((SECONDS - start)) s: $out/results.md, $out/results.json"
