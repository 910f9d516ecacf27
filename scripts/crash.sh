#!/usr/bin/env bash
# Crash durability at scale: ROUNDS `kill -9` rounds against the real (release) server
# under mixed load (sign-ins, posts, revocations), with every acknowledged write checked
# after each restart, `latchkey admin verify` on the killed data dir after every round,
# and `latchkey admin rebuild` (read models equal to a rebuild) after a clean stop every
# 10 rounds and at the end. The driver is `latchkey-bench crash`. CI keeps its shorter,
# store-level run (tests/blackbox/crash.rs).
#
# Usage: scripts/crash.sh [ROUNDS]    (default 100)
# The server runs with --no-rate-limit, so the load is not throttled into 429s.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-100}
cargo build --release --locked -p latchkey-cli -p latchkey-bench
target/release/latchkey-bench --bin target/release/latchkey crash --rounds "$rounds"
