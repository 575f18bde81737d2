#!/usr/bin/env bash
# Tweetlake's local stack: installs (idempotently) and starts the real components the tests and the
# local run need, on loopback only. Tools live outside the clone, in $TWEETLAKE_TOOLS.
#
#   infra/local/stack.sh install   install the pinned tools if missing (Python venv: moto server, the
#                                  independent Delta reader, cargo-lambda, confluent-kafka for the
#                                  broker-ceiling benchmark)
#   infra/local/stack.sh iac       install the offline template checkers (cfn-lint, checkov, cfn-guard)
#                                  the tests use; the test command runs it
#   infra/local/stack.sh spark     install Apache Spark (pyspark) with Delta Lake and hadoop-aws, the
#                                  reference reader the tests use; the test command runs it
#   infra/local/stack.sh browser   install headless Chromium and CJK/emoji fonts from Debian, for the
#                                  report's browser test; the test command runs it
#   infra/local/stack.sh up        install, start the S3 endpoint if it is not running, print the
#                                  environment to use it:  eval "$(infra/local/stack.sh up)"
#   infra/local/stack.sh down      stop what `up` started
#   infra/local/stack.sh env       print the environment only
#   infra/local/stack.sh kill-broker
#                                  SIGKILL the broker, as a crash would (`up` starts it again on the
#                                  same storage)
#   infra/local/stack.sh consumer-groups ARGS
#                                  Kafka's own consumer-group tool (kafka-consumer-groups.sh) against
#                                  the broker, e.g. `consumer-groups --describe --group tweetlake-esm`
#
# `up` also installs (Apache Kafka's jars from Maven Central, under a minute) and starts Apache Kafka in
# KRaft mode, one node that is broker and controller, with a bounded heap ($TWEETLAKE_KAFKA_HEAP,
# default 768m), storage in $TWEETLAKE_TOOLS/kafka-data; TWEETLAKE_BROKER=0 leaves it out (S3 endpoint
# only). Its listeners, on 127.0.0.1, one per auth mode of the ingest producer, with a CA, broker
# certificate and SCRAM user generated once into $TWEETLAKE_TOOLS/tls:
#   $TWEETLAKE_KAFKA_PORT (9092)  PLAINTEXT
#   $TWEETLAKE_TLS_PORT   (9194)  SSL
#   $TWEETLAKE_SCRAM_PORT (9196)  SASL_SSL, SCRAM-SHA-512
#   $TWEETLAKE_IAM_PORT   (9198)  SASL_SSL, OAUTHBEARER with MSK IAM tokens, checked by
#                                 infra/local/kafka/MskIamTokenValidator.java against the test credentials
set -euo pipefail

TOOLS=${TWEETLAKE_TOOLS:-$HOME/.cache/tweetlake}
VENV=$TOOLS/venv
S3_PORT=${TWEETLAKE_S3_PORT:-5000}
KAFKA_PORT=${TWEETLAKE_KAFKA_PORT:-9092}
BROKER=${TWEETLAKE_BROKER:-1}
TLS_PORT=${TWEETLAKE_TLS_PORT:-9194}
SCRAM_PORT=${TWEETLAKE_SCRAM_PORT:-9196}
IAM_PORT=${TWEETLAKE_IAM_PORT:-9198}
CONTROLLER_PORT=${TWEETLAKE_CONTROLLER_PORT:-9093}
TLS_DIR=$TOOLS/tls
# Apache Kafka, pinned; fetched from Maven Central (infra/local/kafka/pom.xml lists the artifacts).
KAFKA_VERSION=4.1.1
KAFKA_HOME=$TOOLS/kafka-$KAFKA_VERSION
KAFKA_DATA=$TOOLS/kafka-data
KAFKA_HEAP=${TWEETLAKE_KAFKA_HEAP:-768m}
STACK_DIR=$(cd "$(dirname "$0")" && pwd)
KAFKA_SRC=$STACK_DIR/kafka
SCRAM_USER=tweetlake
# The credentials the IAM listener accepts tokens signed with: the same as the S3 endpoint's.
IAM_ACCESS_KEY=test
IAM_SECRET_KEY=test
# Pinned: the versions these tests were written against. Bump together with a passing run.
PIP_PINS=("moto[server]==5.1.22" "cargo-lambda==1.9.2" "deltalake==1.6.6" "pyarrow==26.0.1" "boto3" "confluent-kafka==2.16.1" "pillow==11.3.0")
# The offline infrastructure checkers (tests/infra.rs), in a venv of their own: checkov pins its own
# boto3, which must not move the test venv's. cfn-guard is a Rust tool, built once into $TOOLS.
IAC_VENV=$TOOLS/iac-venv
IAC_PINS=("cfn-lint==1.58.0" "checkov==3.3.30")
# Apache Spark with Delta Lake, the reference reader of the tables (tests/spark_read.rs), in a venv of its
# own; its Delta and hadoop-aws jars come from Maven Central (infra/local/spark/pom.xml).
SPARK_VENV=$TOOLS/spark-venv
SPARK_PINS=("pyspark==4.0.1" "delta-spark==4.0.0")
SPARK_JARS=$TOOLS/spark-jars
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
# openssl makes the broker's test CA.
DEB_PKGS=(cmake libssl-dev libcurl4-openssl-dev openssl)

# Headless Chromium renders the HTML report in its browser test; the fonts cover Korean, Japanese and emoji.
BROWSER_DEBS=(chromium fonts-noto-cjk fonts-noto-color-emoji)

# Installs the Debian packages given (default: DEB_PKGS) that are missing.
install_debs() {
  local missing=() pkgs=("$@")
  [[ ${#pkgs[@]} -eq 0 ]] && pkgs=("${DEB_PKGS[@]}")
  for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
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

# A JDK 17 and Maven, from Debian where missing (the project's machines come with both).
need_jdk() {
  if ! command -v javac >/dev/null || ! command -v mvn >/dev/null; then
    DEB_PKGS+=(openjdk-17-jdk-headless maven)
    install_debs
  fi
}

# The runtime jars of the Maven project $3 copied into $1 from Maven Central, unless $1's stamp already
# reads $2; further arguments go to Maven. A changed stamp (a version, the artifact list) reinstalls.
maven_jars() {
  local dir=$1 want=$2 pom=$3; shift 3
  [[ -f $dir/.tweetlake-stamp && $(cat "$dir/.tweetlake-stamp") == "$want" ]] && return 1
  log "fetching the jars of $(basename "$(dirname "$pom")") from Maven Central into $dir"
  rm -rf "$dir" && mkdir -p "$dir"
  mvn -q -B -Dstyle.color=never -f "$pom" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$dir" "$@" >&2
  echo "$want" > "$dir/.tweetlake-stamp"
}

# Apache Kafka's jars (the broker and its tools, with their runtime dependencies) into $KAFKA_HOME/libs,
# and the local MSK IAM token validator compiled against them; the stamp covers the version, the
# artifact list and the validator.
install_broker() {
  need_jdk
  local want
  want="$KAFKA_VERSION $(cat "$KAFKA_SRC/pom.xml" "$KAFKA_SRC/MskIamTokenValidator.java" | sha256sum | cut -c1-16)"
  mkdir -p "$KAFKA_HOME"
  sed "s/@KAFKA_VERSION@/$KAFKA_VERSION/" "$KAFKA_SRC/pom.xml" > "$KAFKA_HOME/pom.xml"
  if maven_jars "$KAFKA_HOME/libs" "$want" "$KAFKA_HOME/pom.xml" || [[ ! -d $KAFKA_HOME/classes/tweetlake ]]; then
    rm -rf "$KAFKA_HOME/classes" && mkdir -p "$KAFKA_HOME/classes"
    javac -d "$KAFKA_HOME/classes" -cp "$KAFKA_HOME/libs/*" "$KAFKA_SRC/MskIamTokenValidator.java" >&2
  fi
}

install_spark() {
  need_jdk
  pip_venv "$SPARK_VENV" "${SPARK_PINS[@]}"
  maven_jars "$SPARK_JARS" "$(sha256sum "$STACK_DIR/spark/pom.xml" | cut -c1-16)" "$STACK_DIR/spark/pom.xml" \
    -DexcludeArtifactIds=scala-library,antlr4-runtime || true
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

broker_ready() { port_open "$KAFKA_PORT" && port_open "$TLS_PORT" && port_open "$SCRAM_PORT" && port_open "$IAM_PORT"; }

# A CA and a broker certificate for 127.0.0.1/localhost (one PEM file with the PKCS#8 key and the
# certificate, as Kafka's PEM key store reads it), and a random SCRAM password: made once.
tls_material() {
  mkdir -p "$TLS_DIR"
  [[ -f $TLS_DIR/broker-keystore.pem && -f $TLS_DIR/scram.password ]] && return
  log "making the local CA, broker certificate and SCRAM password in $TLS_DIR"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$TLS_DIR/ca.key" -out "$TLS_DIR/ca.pem" -days 3650 \
    -subj "/CN=tweetlake-local-ca" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -keyout "$TLS_DIR/broker.key" -out "$TLS_DIR/broker.csr" -subj "/CN=localhost" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > "$TLS_DIR/san.ext"
  openssl x509 -req -in "$TLS_DIR/broker.csr" -CA "$TLS_DIR/ca.pem" -CAkey "$TLS_DIR/ca.key" -CAcreateserial \
    -out "$TLS_DIR/broker.pem" -days 3650 -extfile "$TLS_DIR/san.ext" 2>/dev/null
  { openssl pkcs8 -topk8 -nocrypt -in "$TLS_DIR/broker.key"; cat "$TLS_DIR/broker.pem"; } > "$TLS_DIR/broker-keystore.pem"
  openssl rand -hex 16 > "$TLS_DIR/scram.password"
}

# The broker's configuration: one KRaft node that is broker and controller, a listener per auth mode
# the ingest producer supports, single-replica internal topics.
broker_config() {
  cat <<EOC
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT,SSL://127.0.0.1:$TLS_PORT,SASL_SSL://127.0.0.1:$SCRAM_PORT,IAM://127.0.0.1:$IAM_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,SSL://127.0.0.1:$TLS_PORT,SASL_SSL://127.0.0.1:$SCRAM_PORT,IAM://127.0.0.1:$IAM_PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SSL:SSL,SASL_SSL:SASL_SSL,IAM:SASL_SSL
ssl.keystore.type=PEM
ssl.keystore.location=$TLS_DIR/broker-keystore.pem
listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.iam.sasl.enabled.mechanisms=OAUTHBEARER
listener.name.iam.oauthbearer.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredLoginStringClaim_sub="broker" accessKey="$IAM_ACCESS_KEY" secretKey="$IAM_SECRET_KEY";
listener.name.iam.oauthbearer.sasl.server.callback.handler.class=tweetlake.local.MskIamTokenValidator
log.dirs=$KAFKA_DATA/logs
metadata.log.dir=$KAFKA_DATA/metadata
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.segment.bytes=67108864
EOC
}

# A JVM with the broker's class path, its log configuration and a bounded heap.
KAFKA_JAVA=(java -Xms128m -Xmx"$KAFKA_HEAP" -XX:+UseSerialGC -Dlog4j2.configurationFile="$KAFKA_SRC/log4j2.properties"
  -Dtweetlake.kafka.log="$KAFKA_DATA/broker.log" -cp "$KAFKA_HOME/libs/*:$KAFKA_HOME/classes")

# The broker's JVM, found by the configuration file it was started with.
broker_pids() { pgrep -f "kafka.Kafka $KAFKA_DATA/server.properties" || true; }

# Sends the broker signal $1 (TERM: a clean shutdown; KILL: a crash) and waits until the process is
# gone, so nothing writes its storage any more (a clean shutdown still flushes and deletes segments
# after its port has closed); one that takes over 30 s is killed.
signal_broker() {
  [[ -z $(broker_pids) ]] && return
  # shellcheck disable=SC2046 # one pid per word
  kill -"$1" $(broker_pids) 2>/dev/null || true
  for _ in $(seq 1 300); do [[ -z $(broker_pids) ]] && return; sleep 0.1; done
  # shellcheck disable=SC2046
  kill -9 $(broker_pids) 2>/dev/null || true
  for _ in $(seq 1 50); do [[ -z $(broker_pids) ]] && return; sleep 0.1; done
}

stop_broker() { signal_broker TERM; }

# Starts the broker unless it runs. TWEETLAKE_BROKER_FRESH=1 (the test command sets it) restarts it on
# empty storage, so each test run starts from the same state. The SCRAM user is written into the
# metadata log when the storage is formatted (Kafka's own storage tool).
up_broker() {
  install_broker
  tls_material
  [[ ${TWEETLAKE_BROKER_FRESH:-0} == 1 ]] && { stop_broker; rm -rf "$KAFKA_DATA"; }
  if broker_ready; then log "broker already up on 127.0.0.1:$KAFKA_PORT"; return; fi
  stop_broker
  mkdir -p "$KAFKA_DATA"
  broker_config > "$KAFKA_DATA/server.properties"
  if [[ ! -f $KAFKA_DATA/metadata/meta.properties ]]; then
    rm -rf "$KAFKA_DATA/logs" "$KAFKA_DATA/metadata"
    "${KAFKA_JAVA[@]}" kafka.tools.StorageTool format --cluster-id "$("${KAFKA_JAVA[@]}" kafka.tools.StorageTool random-uuid)" \
      --config "$KAFKA_DATA/server.properties" \
      --add-scram "SCRAM-SHA-512=[name=$SCRAM_USER,password=$(cat "$TLS_DIR/scram.password")]" >&2
  fi
  log "starting Apache Kafka $KAFKA_VERSION on 127.0.0.1:$KAFKA_PORT (TLS $TLS_PORT, SCRAM $SCRAM_PORT, IAM $IAM_PORT)"
  # `exec` makes the background subshell become the broker, so nothing is left holding this script's
  # stdout (which `eval "$(stack.sh up)"` reads to the end).
  (exec nohup "${KAFKA_JAVA[@]}" kafka.Kafka "$KAFKA_DATA/server.properties" > "$KAFKA_DATA/stdout.log" 2>&1 < /dev/null) &
  local start=$SECONDS
  for _ in $(seq 1 600); do broker_ready && break; sleep 0.1; done
  broker_ready || { log "broker did not start; see $KAFKA_DATA/broker.log"; exit 1; }
  log "broker up in $((SECONDS - start)) s"
}

kill_broker() { signal_broker KILL; }

# Kafka's consumer-group tool on the PLAINTEXT listener, in a small JVM of its own.
consumer_groups() {
  install_broker
  java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Dlog4j2.configurationFile="$KAFKA_SRC/log4j2.properties" \
    -Dtweetlake.kafka.log="$KAFKA_DATA/tools.log" -cp "$KAFKA_HOME/libs/*" \
    org.apache.kafka.tools.consumer.group.ConsumerGroupCommand --bootstrap-server "127.0.0.1:$KAFKA_PORT" "$@"
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
  if [[ $BROKER == 1 ]]; then up_broker; fi
  env_vars
}

down() {
  stop_broker
  if [[ -f $TOOLS/moto.pid ]]; then kill "$(cat "$TOOLS/moto.pid")" 2>/dev/null || true; rm -f "$TOOLS/moto.pid"; fi
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
export TWEETLAKE_SPARK_PYTHON="$SPARK_VENV/bin/python"
export TWEETLAKE_SPARK_JARS="$SPARK_JARS"
EOV
  if command -v chromium >/dev/null; then echo "export TWEETLAKE_CHROMIUM=$(command -v chromium)"; fi
  if [[ $BROKER == 1 ]]; then
    echo "export TWEETLAKE_KAFKA_BOOTSTRAP=127.0.0.1:$KAFKA_PORT"
    echo "export TWEETLAKE_KAFKA_IAM_BOOTSTRAP=127.0.0.1:$IAM_PORT"
    echo "export TWEETLAKE_KAFKA_TLS_BOOTSTRAP=127.0.0.1:$TLS_PORT"
    echo "export TWEETLAKE_KAFKA_SCRAM_BOOTSTRAP=127.0.0.1:$SCRAM_PORT"
    echo "export TWEETLAKE_KAFKA_TEST_CA=$TLS_DIR/ca.pem"
    echo "export TWEETLAKE_KAFKA_TEST_SCRAM_USER=$SCRAM_USER"
    if [[ -f $TLS_DIR/scram.password ]]; then echo "export TWEETLAKE_KAFKA_TEST_SCRAM_PASSWORD=$(cat "$TLS_DIR/scram.password")"; fi
  fi
}

case "${1:-}" in
  install) install ;;
  iac) install_iac ;;
  spark) install_spark ;;
  browser) install_debs "${BROWSER_DEBS[@]}" ;;
  up) up ;;
  down) down ;;
  env) env_vars ;;
  kill-broker) kill_broker ;;
  consumer-groups) shift; consumer_groups "$@" ;;
  *) echo "usage: $0 install|iac|spark|browser|up|down|env|kill-broker|consumer-groups ARGS" >&2; exit 2 ;;
esac
