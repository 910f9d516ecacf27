#!/usr/bin/env bash
# The one test command: formatting, lints, then every test (unit, given/when/then,
# property, black-box and crash tests, the fuzz corpora's replay) and a bounded
# Schemathesis run. Called by .ci/run; run it before every commit.
set -euo pipefail
cd "$(dirname "$0")/.."

# The black-box tests sign with OpenSSH's ssh-keygen, run the proto-docs/auth.md
# walkthrough with curl and jq (1.6+, for --rawfile), and drive headless chromium.
missing=()
command -v ssh-keygen >/dev/null 2>&1 || missing+=(openssh-client)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v jq >/dev/null 2>&1 || missing+=(jq)
# The /device page is tested in a real browser: Debian's chromium, driven through
# chromedriver (package chromium-driver).
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
# Schemathesis (scripts/schemathesis.sh) is installed from PyPI into a virtualenv.
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3 python3-venv)
# The cluster tests run real JetStream servers (DESIGN §11): Debian's nats-server (2.9+).
command -v nats-server >/dev/null 2>&1 || missing+=(nats-server)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}"
  apt-get update -qq && apt-get install -y -qq "${missing[@]}"
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

# The bounded schema-driven run (the long one is scripts/fuzz.sh): zero 5xx, zero
# responses outside their declared schema, zero panics.
echo "== schemathesis (bounded)"
scripts/schemathesis.sh 120 30
