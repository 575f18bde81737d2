#!/usr/bin/env bash
# The test command (README): installs and starts the local stack, then runs every test of the
# workspace against it. Fails if any test fails, or if no test ran at all.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/tweetlake/target}
eval "$(infra/local/stack.sh up)"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# Build first (all targets, so the CLI binary the tests spawn is current), then test.
cargo build --workspace --all-targets --locked
set +e
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
passed=$(grep -Eo 'test result: [a-zA-Z]+\. [0-9]+ passed' "$log" | awk '{s += $4} END {print s + 0}')
failed=$(grep -Eo '[0-9]+ failed' "$log" | awk '{s += $1} END {print s + 0}')
echo "tweetlake tests: $passed passed, $failed failed"
if [[ $status -ne 0 ]]; then exit "$status"; fi
if [[ $passed -eq 0 ]]; then echo "no test ran: treating as a failure" >&2; exit 1; fi
