#!/usr/bin/env bash
# The one test command: formatting, lints, then every test (unit, given/when/then,
# property, black-box and crash tests). Called by .ci/run; run it before every commit.
set -euo pipefail
cd "$(dirname "$0")/.."

# The black-box tests sign with OpenSSH's ssh-keygen.
if ! command -v ssh-keygen >/dev/null 2>&1; then
  echo "installing openssh-client (ssh-keygen)"
  apt-get update -qq && apt-get install -y -qq openssh-client
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== build the latchkey binary for the black-box tests"
cargo build --locked -p latchkey-cli
export LATCHKEY_BIN="$PWD/target/debug/latchkey"

echo "== tests"
cargo test --workspace --locked
