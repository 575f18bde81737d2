#!/usr/bin/env bash
# Tweetlake's local stack: installs (idempotently) and starts the real components the tests and the
# local run need, on loopback only. Tools live outside the clone, in $TWEETLAKE_TOOLS.
#
#   infra/local/stack.sh install   install the pinned tools if missing (Python venv: moto server, the
#                                  independent Delta reader, cargo-lambda, confluent-kafka for the
#                                  broker-ceiling benchmark)
#   infra/local/stack.sh iac       install the offline template checkers (cfn-lint, checkov, cfn-guard)
#                                  the tests use; the test command runs it
#   infra/local/stack.sh up        install, start the S3 endpoint if it is not running, print the
#                                  environment to use it:  eval "$(infra/local/stack.sh up)"
#   infra/local/stack.sh down      stop what `up` started
#   infra/local/stack.sh env       print the environment only
#
# `up` also installs (first build 10-15 minutes on 2 cores) and starts the Kafka-protocol broker
# (Tansu, durable SQLite storage) on 127.0.0.1:$TWEETLAKE_KAFKA_PORT (default 9092) and exports
# TWEETLAKE_KAFKA_BOOTSTRAP; TWEETLAKE_BROKER=0 leaves it out (S3 endpoint only). With the broker come
# two more Tansu brokers behind TLS (Debian's stunnel4, the broker's own TLS options do not work), for
# the ingest producer's MSK auth modes: TLS only on $TWEETLAKE_TLS_PORT (default 9194), and SASL/SCRAM-
# SHA-512 over TLS on $TWEETLAKE_SCRAM_PORT (default 9196), with a local CA, certificate and SCRAM user
# generated once into $TWEETLAKE_TOOLS/tls.
set -euo pipefail

TOOLS=${TWEETLAKE_TOOLS:-$HOME/.cache/tweetlake}
VENV=$TOOLS/venv
S3_PORT=${TWEETLAKE_S3_PORT:-5000}
KAFKA_PORT=${TWEETLAKE_KAFKA_PORT:-9092}
BROKER=${TWEETLAKE_BROKER:-1}
TLS_PORT=${TWEETLAKE_TLS_PORT:-9194}
SCRAM_PORT=${TWEETLAKE_SCRAM_PORT:-9196}
TLS_DIR=$TOOLS/tls
TANSU_VERSION=0.6.0
TANSU=$TOOLS/tansu/bin/tansu
# Pinned: the versions these tests were written against. Bump together with a passing run.
PIP_PINS=("moto[server]==5.1.22" "cargo-lambda==1.9.2" "deltalake==1.6.6" "pyarrow==26.0.1" "boto3" "confluent-kafka==2.16.1")
# The offline infrastructure checkers (tests/infra.rs), in a venv of their own: checkov pins its own
# boto3, which must not move the test venv's. cfn-guard is a Rust tool, built once into $TOOLS.
IAC_VENV=$TOOLS/iac-venv
IAC_PINS=("cfn-lint==1.58.0" "checkov==3.3.30")
# cfn-guard: the static Linux binary that the npm package @cdklabs/cdk-validator-cfnguard ships (cfn-guard
# 3.1.1; fetched in seconds, where `cargo install` took minutes of a cold CI run); built with cargo where
# npm is missing.
CFN_GUARD_NPM=@cdklabs/cdk-validator-cfnguard@0.0.62
if command -v npm >/dev/null; then
  CFN_GUARD_VERSION=3.1.1
  CFN_GUARD=$TOOLS/cfn-guard-npm/package/bin/ubuntu/$(uname -m)/cfn-guard
else
  CFN_GUARD_VERSION=3.2.1
  CFN_GUARD=$TOOLS/cfn-guard/bin/cfn-guard
fi

log() { echo "stack: $*" >&2; }

# Debian packages the workspace build needs: librdkafka is compiled from source (cmake) against the
# system OpenSSL, and its build wants the curl headers.
# stunnel4 puts TLS in front of the local brokers; openssl makes their test CA.
DEB_PKGS=(cmake libssl-dev libcurl4-openssl-dev stunnel4 openssl)

install_debs() {
  local missing=()
  for p in "${DEB_PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [[ ${#missing[@]} -eq 0 ]] && return
  log "installing ${missing[*]}"
  local sudo=""; [[ $(id -u) -ne 0 ]] && sudo=sudo
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >&2
}

# A venv at $1 holding exactly the pins that follow; the pin list is stamped so a change reinstalls.
pip_venv() {
  local venv=$1; shift
  local stamp=$venv/.tweetlake-pins
  [[ -x $venv/bin/python ]] || { log "creating venv in $venv"; python3 -m venv "$venv"; }
  if [[ ! -f $stamp || $(cat "$stamp") != "$*" ]]; then
    log "installing $*"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$@" >&2
    echo "$*" > "$stamp"
  fi
}

# `cargo install` of crate $3 at version $2 into $TOOLS/$3, unless the binary $1 already reports that
# version; further arguments go to `cargo install`.
cargo_tool() {
  local bin=$1 version=$2 crate=$3; shift 3
  if [[ ! -x $bin ]] || ! "$bin" --version 2>/dev/null | grep -q "$version"; then
    log "building $crate $version (the first time only)"
    cargo install "$crate" --version "$version" --locked --root "$TOOLS/$crate" "$@" >&2
  fi
}

install() {
  install_debs
  mkdir -p "$TOOLS"
  pip_venv "$VENV" "${PIP_PINS[@]}"
}

install_iac() {
  pip_venv "$IAC_VENV" "${IAC_PINS[@]}"
  if ! command -v npm >/dev/null; then cargo_tool "$CFN_GUARD" "$CFN_GUARD_VERSION" cfn-guard; return; fi
  if [[ ! -x $CFN_GUARD ]] || ! "$CFN_GUARD" --version 2>/dev/null | grep -q "$CFN_GUARD_VERSION"; then
    log "fetching cfn-guard $CFN_GUARD_VERSION ($CFN_GUARD_NPM)"
    rm -rf "$TOOLS/cfn-guard-npm" && mkdir -p "$TOOLS/cfn-guard-npm"
    (cd "$TOOLS/cfn-guard-npm" && npm pack --silent "$CFN_GUARD_NPM" >/dev/null && tar xzf ./*.tgz)
  fi
}

install_broker() {
  # 10-15 minutes on 2 cores. The default features build no storage engine; name SQLite (libsql).
  cargo_tool "$TANSU" "$TANSU_VERSION" tansu --no-default-features --features dynostore,libsql
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

broker_ready() { port_open "$KAFKA_PORT"; }

# Starts a Tansu broker in the background with durable SQLite storage in folder $1 (the sqlite URL is
# relative to the working directory), logging to $2, listening on 127.0.0.1:$3 and advertising
# 127.0.0.1:$4; further arguments go to `tansu broker`. Leaves its pid in SPAWNED. `exec` makes the
# background subshell become the broker, so nothing is left holding this script's stdout (which
# `eval "$(stack.sh up)"` reads to the end).
spawn_tansu() {
  local dir=$1 logfile=$2 port=$3 advertised=$4; shift 4
  (cd "$dir" && exec nohup "$TANSU" broker --listener-url "tcp://127.0.0.1:$port" \
    --advertised-listener-url "tcp://127.0.0.1:$advertised" --storage-engine sqlite://tansu.db "$@" \
    > "$logfile" 2>&1 < /dev/null) &
  SPAWNED=$!
}

up_broker() {
  install_broker
  # TWEETLAKE_BROKER_FRESH=1 (the test command sets it) restarts the broker on empty storage: Tansu's
  # SQLite file grows with every run (1.7 GB after a day of benchmarks here) and its fetches slow down.
  if [[ ${TWEETLAKE_BROKER_FRESH:-0} == 1 ]]; then
    if [[ -f $TOOLS/tansu.pid ]]; then kill "$(cat "$TOOLS/tansu.pid")" 2>/dev/null || true; rm -f "$TOOLS/tansu.pid"; fi
    pkill -f "tansu broker --listener-url tcp://127.0.0.1:$KAFKA_PORT" 2>/dev/null || true
    for _ in $(seq 1 50); do broker_ready || break; sleep 0.1; done
    rm -rf "$TOOLS/broker"
  fi
  if broker_ready; then
    log "broker already up on 127.0.0.1:$KAFKA_PORT"
    return
  fi
  mkdir -p "$TOOLS/broker"
  log "starting tansu broker on 127.0.0.1:$KAFKA_PORT"
  spawn_tansu "$TOOLS/broker" "$TOOLS/tansu.log" "$KAFKA_PORT" "$KAFKA_PORT"
  echo "$SPAWNED" > "$TOOLS/tansu.pid"
  for _ in $(seq 1 100); do broker_ready && break; sleep 0.2; done
  broker_ready || { log "broker did not start; see $TOOLS/tansu.log"; exit 1; }
}

# A CA and a broker certificate for 127.0.0.1/localhost, and a random SCRAM password: made once.
tls_material() {
  mkdir -p "$TLS_DIR"
  [[ -f $TLS_DIR/broker.pem && -f $TLS_DIR/scram.password ]] && return
  log "making the local CA, broker certificate and SCRAM password in $TLS_DIR"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$TLS_DIR/ca.key" -out "$TLS_DIR/ca.pem" -days 3650 \
    -subj "/CN=tweetlake-local-ca" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -keyout "$TLS_DIR/broker.key" -out "$TLS_DIR/broker.csr" -subj "/CN=localhost" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > "$TLS_DIR/san.ext"
  openssl x509 -req -in "$TLS_DIR/broker.csr" -CA "$TLS_DIR/ca.pem" -CAkey "$TLS_DIR/ca.key" -CAcreateserial \
    -out "$TLS_DIR/broker.pem" -days 3650 -extfile "$TLS_DIR/san.ext" 2>/dev/null
  openssl rand -hex 16 > "$TLS_DIR/scram.password"
}

# One Tansu broker behind stunnel: it listens on tls_port+1 in the clear (loopback only) and advertises
# the TLS port, so clients reconnect through the tunnel after metadata. `auth` = 1 requires SASL/SCRAM;
# the user is created while the broker still runs without authentication (it refuses it afterwards).
up_tls_broker() {
  local name=$1 tls_port=$2 auth=$3 inner=$(($2 + 1))
  local dir=$TOOLS/broker-$name
  if port_open "$tls_port"; then log "$name broker already up on 127.0.0.1:$tls_port"; return; fi
  pkill -f "tansu broker --listener-url tcp://127.0.0.1:$inner" 2>/dev/null || true
  rm -rf "$dir" && mkdir -p "$dir"
  local extra=()
  if [[ $auth == 1 ]]; then
    spawn_tansu "$dir" "$dir/tansu.log" "$inner" "$tls_port"
    for _ in $(seq 1 100); do port_open "$inner" && break; sleep 0.1; done
    "$TANSU" user create --broker "tcp://127.0.0.1:$inner" --mechanism scram512 tweetlake "$(cat "$TLS_DIR/scram.password")" >&2
    kill "$SPAWNED" 2>/dev/null || true
    for _ in $(seq 1 50); do port_open "$inner" || break; sleep 0.1; done
    extra=(--authentication)
  fi
  log "starting the $name broker on 127.0.0.1:$tls_port (TLS)"
  spawn_tansu "$dir" "$dir/tansu.log" "$inner" "$tls_port" "${extra[@]}"
  echo "$SPAWNED" > "$dir/tansu.pid"
  cat > "$dir/stunnel.conf" <<EOC
foreground = no
pid = $dir/stunnel.pid
[kafka]
accept = 127.0.0.1:$tls_port
connect = 127.0.0.1:$inner
cert = $TLS_DIR/broker.pem
key = $TLS_DIR/broker.key
EOC
  stunnel4 "$dir/stunnel.conf"
  for _ in $(seq 1 100); do port_open "$inner" && port_open "$tls_port" && break; sleep 0.1; done
  port_open "$tls_port" || { log "$name broker did not start; see $dir/tansu.log"; exit 1; }
}

up_secure_brokers() {
  tls_material
  up_tls_broker tls "$TLS_PORT" 0
  up_tls_broker scram "$SCRAM_PORT" 1
}

s3_ready() { curl -fsS -o /dev/null "http://127.0.0.1:$S3_PORT/moto-api/data.json" 2>/dev/null; }

up() {
  install
  if s3_ready; then
    log "S3 endpoint already up on 127.0.0.1:$S3_PORT"
  else
    log "starting moto S3 endpoint on 127.0.0.1:$S3_PORT"
    nohup "$VENV/bin/moto_server" -H 127.0.0.1 -p "$S3_PORT" > "$TOOLS/moto.log" 2>&1 &
    echo $! > "$TOOLS/moto.pid"
    for _ in $(seq 1 100); do s3_ready && break; sleep 0.2; done
    s3_ready || { log "moto did not start; see $TOOLS/moto.log"; exit 1; }
  fi
  if [[ $BROKER == 1 ]]; then up_broker; up_secure_brokers; fi
  env_vars
}

down() {
  if [[ -f $TOOLS/tansu.pid ]]; then kill "$(cat "$TOOLS/tansu.pid")" 2>/dev/null || true; rm -f "$TOOLS/tansu.pid"; fi
  if [[ -f $TOOLS/moto.pid ]]; then kill "$(cat "$TOOLS/moto.pid")" 2>/dev/null || true; rm -f "$TOOLS/moto.pid"; fi
  for name in tls scram; do
    for f in tansu stunnel; do
      local pid=$TOOLS/broker-$name/$f.pid
      if [[ -f $pid ]]; then kill "$(cat "$pid")" 2>/dev/null || true; rm -f "$pid"; fi
    done
  done
}

env_vars() {
  cat <<EOV
export PATH="$VENV/bin:\$PATH"
export TWEETLAKE_TEST_PYTHON="$VENV/bin/python"
export AWS_ENDPOINT_URL="http://127.0.0.1:$S3_PORT"
export AWS_ALLOW_HTTP=true
export AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export TWEETLAKE_CFN_LINT="$IAC_VENV/bin/cfn-lint"
export TWEETLAKE_CHECKOV="$IAC_VENV/bin/checkov"
export TWEETLAKE_CFN_GUARD="$CFN_GUARD"
EOV
  if [[ $BROKER == 1 ]]; then
    echo "export TWEETLAKE_KAFKA_BOOTSTRAP=127.0.0.1:$KAFKA_PORT"
    echo "export TWEETLAKE_TANSU=$TANSU"
    echo "export TWEETLAKE_KAFKA_TLS_BOOTSTRAP=127.0.0.1:$TLS_PORT"
    echo "export TWEETLAKE_KAFKA_SCRAM_BOOTSTRAP=127.0.0.1:$SCRAM_PORT"
    echo "export TWEETLAKE_KAFKA_TEST_CA=$TLS_DIR/ca.pem"
    echo "export TWEETLAKE_KAFKA_TEST_SCRAM_USER=tweetlake"
    if [[ -f $TLS_DIR/scram.password ]]; then echo "export TWEETLAKE_KAFKA_TEST_SCRAM_PASSWORD=$(cat "$TLS_DIR/scram.password")"; fi
  fi
}

case "${1:-}" in
  install) install ;;
  iac) install_iac ;;
  up) up ;;
  down) down ;;
  env) env_vars ;;
  *) echo "usage: $0 install|iac|up|down|env" >&2; exit 2 ;;
esac
