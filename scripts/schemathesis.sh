#!/usr/bin/env bash
# Schema-driven API fuzzing: Schemathesis (from PyPI, in a virtualenv this script makes
# under $XDG_CACHE_HOME) against proto-docs/openapi.json on a live `latchkey serve`, with
# real credentials: an admin user added offline, signed in with `ssh-keygen -Y sign`,
# whose session (every scope, admin included) goes in `Authorization: Bearer` on every
# request. Checks: no 5xx (not_a_server_error), every response matches its declared
# schema (response_schema_conformance), and no `panicked` in the server's log.
#
# Usage: scripts/schemathesis.sh [SECONDS] [MAX_EXAMPLES]
#   SECONDS        time budget of the run (default 120; scripts/test.sh's bounded run)
#   MAX_EXAMPLES   cases per operation and phase (default 30)
# The server runs with --no-rate-limit: with limits on, most cases would only see 429.
# LATCHKEY_BIN picks the binary (default target/debug/latchkey, built when missing);
# ST_CHECKS replaces the list of checks (e.g. `all`) for exploring.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-120}
max_examples=${2:-30}
st_version=4.32.5
venv=${LATCHKEY_ST_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/latchkey/schemathesis-$st_version}
if [ ! -x "$venv/bin/st" ]; then
  echo "installing schemathesis $st_version into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "schemathesis==$st_version"
fi

bin=${LATCHKEY_BIN:-$PWD/target/debug/latchkey}
[ -x "$bin" ] || cargo build --locked -p latchkey-cli

work=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# An admin, added offline before the first start; registration stays open, so the
# generated sign-ins and device flows can register users too.
ssh-keygen -q -t ed25519 -N '' -C root@schemathesis -f "$work/id"
"$bin" admin --data-dir "$work/data" user add --handle root --key-file "$work/id.pub" --admin \
  >/dev/null
"$bin" serve --bind 127.0.0.1:0 --data-dir "$work/data" --no-rate-limit --log-format json \
  >"$work/stdout" 2>"$work/server.log" &
pid=$!
url=
for _ in $(seq 1 600); do
  url=$(sed -n 's/^latchkey listening on \(http:[^ ]*\)$/\1/p' "$work/stdout")
  [ -n "$url" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/server.log"; echo "the server exited" >&2; exit 1; }
  sleep 0.1
done
[ -n "$url" ] || { echo "the server printed no address" >&2; exit 1; }

# Sign in as the admin: challenge, ssh-keygen -Y sign, token.
jq -n --arg key "$(cat "$work/id.pub")" '{public_key: $key}' \
  | curl -sS --fail-with-body -H 'Content-Type: application/json' --data-binary @- \
      "$url/api/native/challenge" >"$work/challenge.json"
jq -j .message "$work/challenge.json" >"$work/message"
ssh-keygen -Y sign -n latchkey-auth -f "$work/id" "$work/message" 2>/dev/null
jq -n --arg id "$(jq -r .challenge_id "$work/challenge.json")" --rawfile sig "$work/message.sig" \
      '{challenge_id: $id, signature: $sig}' \
  | curl -sS --fail-with-body -H 'Content-Type: application/json' --data-binary @- \
      "$url/api/native/token" >"$work/token.json"
token=$(jq -r .token "$work/token.json")
curl -sS --fail-with-body -H "Authorization: Bearer $token" "$url/api/native/me" \
  | jq -e '.scopes | index("admin")' >/dev/null \
  || { echo "the schemathesis session has no admin scope" >&2; exit 1; }

# Operations that would end the run's own credential are left out: logging out, revoking
# every token of the session's user, and disabling a user (the only user id the run could
# name is its own). Everything else is generated, positive and negative.
# Schemathesis and Hypothesis keep their caches (.schemathesis/, .hypothesis/) in the
# working directory: run from the temp dir so nothing lands in the repository.
set +e
spec="$PWD/proto-docs/openapi.json"
(cd "$work" && "$venv/bin/st" run "$spec" \
  --url "$url" \
  -H "Authorization: Bearer $token" \
  --checks "${ST_CHECKS:-not_a_server_error,response_schema_conformance}" \
  --max-examples "$max_examples" \
  --max-time "$seconds" \
  --workers 2 \
  --request-timeout 30 \
  --exclude-operation-id logout \
  --exclude-operation-id revoke_all \
  --exclude-operation-id disable \
  --warnings off \
  --output-sanitize true)
status=$?
set -e

# What the server answered, by status (so a run of nothing but 401s would show).
echo "server answers by status:"
jq -rR 'fromjson? | select(.target == "latchkey::access") | .fields.status' "$work/server.log" \
  | sort | uniq -c | sort -rn | awk '{printf "  %s x%s\n", $2, $1}'

# A panic inside a handler can be caught by actix and answered without a 5xx; the log
# tells.
if grep -n 'panicked' "$work/server.log"; then
  echo "schemathesis: the server panicked (log lines above)" >&2
  exit 1
fi
if [ "$status" -ne 0 ]; then
  echo "schemathesis: failures (exit $status)" >&2
  exit "$status"
fi
echo "schemathesis: no failures, no panics"
