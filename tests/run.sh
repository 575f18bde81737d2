#!/usr/bin/env bash
# The test command (README): installs and starts the local stack, then runs every test of the
# workspace against it, after `cargo fmt --check` and `cargo clippy -D warnings`. Fails if any of them
# fails, if any test fails, or if no test ran at all.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/tweetlake/target}
# Keep the shared build cache bounded: every build leaves new test executables and incremental state
# behind (the cache once filled the disk). Dependencies' compiled libraries stay, so this costs relinking.
if [[ -d $CARGO_TARGET_DIR ]] && (( $(du -s "$CARGO_TARGET_DIR" | cut -f1) > 40 * 1024 * 1024 )); then
  echo "pruning $CARGO_TARGET_DIR (over 40 GB)" >&2
  rm -rf "$CARGO_TARGET_DIR"/*/incremental
  find "$CARGO_TARGET_DIR"/*/deps -maxdepth 1 -type f -perm -u+x ! -name '*.so' ! -name '*.rlib' ! -name '*.d' -delete
fi
# Style and lints first: they fail in seconds, before the long build. Clippy compiles librdkafka, which
# needs Debian packages (cmake, the OpenSSL and curl headers) that a fresh machine may lack.
cargo fmt --all --check
infra/local/stack.sh install
cargo clippy --workspace --all-targets --locked -- -D warnings
infra/local/stack.sh iac
infra/local/stack.sh spark
infra/local/stack.sh browser
# Assigned first, so a failed start stops the run here (an `eval "$(…)"` would carry on without it).
stack_env=$(TWEETLAKE_BROKER_FRESH=1 infra/local/stack.sh up)
eval "$stack_env"
# tests/deploy.rs runs `cargo lambda build --release` for each function. Cargo.toml's release profile
# (fat LTO, one codegen unit, opt-level 3: for deployments) would cost a cold CI run most of an hour
# on 2 cores; CI checks that each function builds for Lambda and packages, so it compiles them
# unoptimised, without LTO, in parallel codegen units. Set these variables to override.
export CARGO_PROFILE_RELEASE_LTO=${CARGO_PROFILE_RELEASE_LTO:-off}
export CARGO_PROFILE_RELEASE_CODEGEN_UNITS=${CARGO_PROFILE_RELEASE_CODEGEN_UNITS:-256}
export CARGO_PROFILE_RELEASE_OPT_LEVEL=${CARGO_PROFILE_RELEASE_OPT_LEVEL:-0}
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
