#!/usr/bin/env bash
# Soak: MINUTES of steady mixed load with WebSocket churn against a release server
# (`latchkey-bench soak`): posts, history, pings, sign-in/logout churn, 16 long-lived
# WebSockets receiving the fanout, and WebSockets opened (bearer or ticket), subscribed
# and closed 4 times a second. Every minute it prints RSS, open fds and p99 latency; it
# fails if RSS grows more than 10% after the warm-up, if the server holds more fds after
# the load than before it (a leak), on any error under load, or on a panic in the log.
#
# Usage: scripts/soak.sh [MINUTES]    (default 30)
# The server runs with --no-rate-limit; the load is paced (60 requests/s) instead. It runs
# with an 8 MiB page cache (--cache-mib 8), which the growing log fills during the warm-up
# (5 minutes for runs of 20 minutes or more): with the default 256 MiB cache, RSS would
# climb with the data dir for over an hour, and the 10% bound would measure the cache
# filling rather than a leak.
# The store itself still grows with the log: sled 0.34 keeps a record in memory for every
# page of every tree, paged out or not (sled issue #1093), about 21 B per key in insertion
# order and 54 B per random key (`latchkey-bench sled-memory`), and the server stores about
# 4.5 keys per event. At this load that is about 0.2 MiB a minute, which the 10% bound
# counts like any other growth: the soak prints the log's growth and RSS per event beside
# it (proto-docs/storage.md, section 1).
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-30}
cargo build --release --locked -p latchkey-cli -p latchkey-bench
target/release/latchkey-bench --bin target/release/latchkey soak --minutes "$minutes"
