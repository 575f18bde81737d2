//! Ingest-function settings from environment variables, validated at start-up with messages that
//! name the variable. The CLI maps its flags onto the same variables.

use crate::error::Error;
use crate::msk::AuthMode;
use crate::rules::{Rule, RuleLimits, parse_rules};
use crate::search::SearchSettings;
use crate::stream::StreamSettings;
use crate::xapi::BearerToken;
use std::path::PathBuf;
use std::time::Duration;
use tweetlake_contract::{parse_setting, vars};

/// What the run collects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `GET /2/tweets/search/recent` per rule since its watermark (default).
    RecentSearch,
    /// A bounded filtered-stream session.
    FilteredStream,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "recent_search" => Ok(Self::RecentSearch),
            "filtered_stream" => Ok(Self::FilteredStream),
            _ => Err("recent_search or filtered_stream".into()),
        }
    }
}

/// Where the bearer token comes from.
#[derive(Clone, Debug)]
pub enum TokenSource {
    /// `TWEETLAKE_X_BEARER_TOKEN`.
    Value(BearerToken),
    /// `TWEETLAKE_X_BEARER_TOKEN_SECRET_ARN`: a Secrets Manager secret holding the token (plain, or
    /// JSON with a `bearer_token` field).
    Secret(String),
}

/// A Secrets Manager secret's string value.
pub(crate) async fn secret_string(sm: &aws_sdk_secretsmanager::Client, arn: &str) -> Result<String, Error> {
    let out = sm.get_secret_value().secret_id(arn).send().await.map_err(|e| Error::Secret {
        arn: arn.to_owned(),
        message: aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string(),
    })?;
    out.secret_string()
        .map(str::to_owned)
        .ok_or_else(|| Error::Secret { arn: arn.to_owned(), message: "the secret has no string value".into() })
}

impl TokenSource {
    /// The token, read from Secrets Manager if it lives there.
    pub async fn resolve(&self, sm: &aws_sdk_secretsmanager::Client) -> Result<BearerToken, Error> {
        match self {
            TokenSource::Value(t) => Ok(t.clone()),
            TokenSource::Secret(arn) => {
                let s = secret_string(sm, arn).await?;
                // Either the token itself or a JSON object holding it.
                let t = serde_json::from_str::<serde_json::Value>(&s)
                    .ok()
                    .and_then(|v| v.get("bearer_token").and_then(|t| t.as_str()).map(str::to_owned))
                    .unwrap_or(s);
                BearerToken::new(t, "TWEETLAKE_X_BEARER_TOKEN_SECRET_ARN")
            }
        }
    }
}

/// The X API's base URL (`TWEETLAKE_X_API_URL`, default `https://api.x.com`) and where its bearer token
/// comes from (`TWEETLAKE_X_BEARER_TOKEN` or `TWEETLAKE_X_BEARER_TOKEN_SECRET_ARN`), validated: what
/// every caller of the API (ingest, compliance) reads.
pub fn x_api(get: &impl Fn(&str) -> Option<String>) -> Result<(String, TokenSource), Error> {
    let set = |k: &str| get(k).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let base_url = set("TWEETLAKE_X_API_URL").unwrap_or_else(|| "https://api.x.com".into());
    if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
        return Err(Error::Config { var: "TWEETLAKE_X_API_URL", message: format!("{base_url:?} is not an http(s) URL") });
    }
    let token = match (get(vars::X_BEARER_TOKEN), set("TWEETLAKE_X_BEARER_TOKEN_SECRET_ARN")) {
        (Some(t), None) => TokenSource::Value(BearerToken::new(t, vars::X_BEARER_TOKEN)?),
        (None, Some(arn)) => TokenSource::Secret(arn),
        (Some(_), Some(_)) => {
            return Err(Error::Config {
                var: "TWEETLAKE_X_BEARER_TOKEN_SECRET_ARN",
                message: "set either the token or its secret ARN, not both".into(),
            });
        }
        (None, None) => {
            return Err(Error::Config {
                var: vars::X_BEARER_TOKEN,
                message: "not set; give the token or TWEETLAKE_X_BEARER_TOKEN_SECRET_ARN (ingest can instead replay recorded responses from TWEETLAKE_REPLAY_PATH)".into(),
            });
        }
    };
    Ok((base_url, token))
}

/// Where tweets come from.
#[derive(Clone, Debug)]
pub enum SourceConfig {
    /// The X API at `TWEETLAKE_X_API_URL` (default `https://api.x.com`).
    Api {
        /// The API's base URL.
        base_url: String,
        /// Where the bearer token comes from.
        token: TokenSource,
    },
    /// Recorded responses under `TWEETLAKE_REPLAY_PATH`.
    Replay(PathBuf),
}

/// Where the brokers are.
#[derive(Clone, Debug)]
pub enum Bootstrap {
    /// `TWEETLAKE_KAFKA_BOOTSTRAP`: `host:port,…`.
    Servers(String),
    /// `TWEETLAKE_MSK_CLUSTER_ARN`: looked up with `GetBootstrapBrokers` for the auth mode.
    MskCluster(String),
}

/// The topic to create when it is missing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopicSpec {
    /// `TWEETLAKE_TOPIC_PARTITIONS`.
    pub partitions: i32,
    /// `TWEETLAKE_TOPIC_REPLICATION`.
    pub replication_factor: i32,
}

/// The default stream session: the default 5-minute schedule less 30 s, so a session has closed its
/// connection before the next one opens (X allows one per app) and its gap fill has time to run.
pub const DEFAULT_STREAM_SECONDS: u64 = 270;

/// The longest stream session: Lambda's 15-minute limit less 30 s for the gap fill and producing.
pub const MAX_STREAM_SECONDS: u64 = 870;

/// Everything the ingest function can be told; see the README's configuration table.
#[derive(Clone, Debug)]
pub struct IngestConfig {
    /// `TWEETLAKE_RULES` (inline) or `TWEETLAKE_RULES_FILE`.
    pub rules: Vec<Rule>,
    /// `TWEETLAKE_INGEST_MODE`.
    pub mode: Mode,
    /// The tweet source.
    pub source: SourceConfig,
    /// The brokers.
    pub bootstrap: Bootstrap,
    /// `TWEETLAKE_KAFKA_AUTH`: plaintext (default), tls, scram, iam.
    pub auth: AuthMode,
    /// `TWEETLAKE_KAFKA_SCRAM_SECRET_ARN`: the MSK SCRAM secret (`{"username", "password"}`).
    pub scram_secret_arn: Option<String>,
    /// `TWEETLAKE_KAFKA_CA_FILE`: PEM CA bundle for the TLS modes (a self-managed cluster's private CA).
    pub ca_file: Option<PathBuf>,
    /// `TWEETLAKE_TOPIC` (default `tweets`).
    pub topic: String,
    /// `TWEETLAKE_TOPIC_PARTITIONS` and `TWEETLAKE_TOPIC_REPLICATION` (default 1): when the partitions
    /// are set, the run creates the topic at start if it is missing (MSK does not auto-create topics).
    pub create_topic: Option<TopicSpec>,
    /// `TWEETLAKE_KAFKA_COMPRESSION` (default `lz4`).
    pub compression: String,
    /// `TWEETLAKE_KAFKA_MESSAGE_TIMEOUT_MS` (default 30000): unacknowledged longer fails the run.
    pub message_timeout: Duration,
    /// `TWEETLAKE_WATERMARK_URI`: `s3://bucket/key` or a local file; required except when replaying a recorded stream session.
    pub watermark_uri: Option<String>,
    /// `TWEETLAKE_PAGE_SIZE`, `TWEETLAKE_MAX_PAGES_PER_RULE`, `TWEETLAKE_DEADLINE_MARGIN_SECS`.
    pub search: SearchSettings,
    /// `TWEETLAKE_STREAM_SECONDS` (default 270): longest stream session; the deadline may cut it shorter.
    pub stream_session: Duration,
    /// `TWEETLAKE_STREAM_SILENCE_SECS` (default 20).
    pub stream: StreamSettings,
    /// `TWEETLAKE_HTTP_TIMEOUT_SECS` (default 10): per REST request.
    pub http_timeout: Duration,
}

impl IngestConfig {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads and validates the settings through `get`.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let set = |k: &str| get(k).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let limits = RuleLimits {
            max_chars: parse_setting(&get, "TWEETLAKE_RULE_MAX_CHARS", 512usize, |v| (1..=4096).contains(v), "1 to 4096")?,
            max_rules: parse_setting(&get, "TWEETLAKE_MAX_RULES", 25usize, |v| *v >= 1, "a positive count")?,
        };
        let (rules_text, var) = match (get(vars::RULES).filter(|v| !v.trim().is_empty()), set(vars::RULES_FILE)) {
            (Some(_), Some(_)) => {
                return Err(Error::Config {
                    var: vars::RULES_FILE,
                    message: "set either TWEETLAKE_RULES or TWEETLAKE_RULES_FILE, not both".into(),
                });
            }
            (Some(t), None) => (t, vars::RULES),
            (None, Some(f)) => {
                let t = std::fs::read_to_string(&f)
                    .map_err(|e| Error::Config { var: vars::RULES_FILE, message: format!("{f}: {e}") })?;
                (t, vars::RULES_FILE)
            }
            (None, None) => {
                return Err(Error::Config {
                    var: vars::RULES,
                    message: "not set; give `tag: query` lines or a JSON array (or TWEETLAKE_RULES_FILE)".into(),
                });
            }
        };
        let rules = parse_rules(&rules_text, limits).map_err(|e| Error::Config { var, message: e.to_string() })?;
        let mode: Mode = parse_setting(&get, vars::INGEST_MODE, Mode::RecentSearch, |_| true, "a mode")?;
        let source = match set(vars::REPLAY_PATH) {
            Some(p) => SourceConfig::Replay(PathBuf::from(p)),
            None => {
                let (base_url, token) = x_api(&get)?;
                SourceConfig::Api { base_url, token }
            }
        };
        let bootstrap = match (set(vars::KAFKA_BOOTSTRAP), set("TWEETLAKE_MSK_CLUSTER_ARN")) {
            (Some(b), None) => Bootstrap::Servers(b),
            (None, Some(arn)) if arn.starts_with("arn:") => Bootstrap::MskCluster(arn),
            (None, Some(arn)) => {
                return Err(Error::Config { var: "TWEETLAKE_MSK_CLUSTER_ARN", message: format!("{arn:?} is not an ARN") });
            }
            (Some(_), Some(_)) => {
                return Err(Error::Config {
                    var: "TWEETLAKE_MSK_CLUSTER_ARN",
                    message: "set either the bootstrap servers or the cluster ARN, not both".into(),
                });
            }
            (None, None) => {
                return Err(Error::Config {
                    var: vars::KAFKA_BOOTSTRAP,
                    message: "not set; give host:port[,…] or TWEETLAKE_MSK_CLUSTER_ARN".into(),
                });
            }
        };
        let auth: AuthMode = parse_setting(&get, "TWEETLAKE_KAFKA_AUTH", AuthMode::Plaintext, |_| true, "an auth mode")?;
        let scram_secret_arn = set("TWEETLAKE_KAFKA_SCRAM_SECRET_ARN");
        if auth == AuthMode::Scram && scram_secret_arn.is_none() {
            return Err(Error::Config {
                var: "TWEETLAKE_KAFKA_SCRAM_SECRET_ARN",
                message: "required with TWEETLAKE_KAFKA_AUTH=scram".into(),
            });
        }
        let ca_file = set("TWEETLAKE_KAFKA_CA_FILE").map(PathBuf::from);
        if let Some(f) = &ca_file {
            if auth == AuthMode::Plaintext {
                return Err(Error::Config {
                    var: "TWEETLAKE_KAFKA_CA_FILE",
                    message: "only used with TWEETLAKE_KAFKA_AUTH tls, scram or iam".into(),
                });
            }
            let pem = std::fs::read_to_string(f)
                .map_err(|e| Error::Config { var: "TWEETLAKE_KAFKA_CA_FILE", message: format!("{}: {e}", f.display()) })?;
            if !pem.contains("-----BEGIN CERTIFICATE-----") {
                return Err(Error::Config {
                    var: "TWEETLAKE_KAFKA_CA_FILE",
                    message: format!("{}: no PEM certificate in it", f.display()),
                });
            }
        }
        let compression = set("TWEETLAKE_KAFKA_COMPRESSION").unwrap_or_else(|| "lz4".into());
        if !["none", "gzip", "lz4", "zstd"].contains(&compression.as_str()) {
            // snappy is left out on purpose: the local broker cannot serve it back.
            return Err(Error::Config {
                var: "TWEETLAKE_KAFKA_COMPRESSION",
                message: format!("{compression:?} is not one of none, gzip, lz4, zstd"),
            });
        }
        let create_topic = match set("TWEETLAKE_TOPIC_PARTITIONS") {
            None => None,
            Some(_) => Some(TopicSpec {
                partitions: parse_setting(&get, "TWEETLAKE_TOPIC_PARTITIONS", 1i32, |v| (1..=10_000).contains(v), "1 to 10000")?,
                replication_factor: parse_setting(
                    &get,
                    "TWEETLAKE_TOPIC_REPLICATION",
                    1i32,
                    |v| (1..=10).contains(v),
                    "1 to 10",
                )?,
            }),
        };
        let watermark_uri = set(vars::WATERMARK_URI);
        let live = !matches!(source, SourceConfig::Replay(_));
        if watermark_uri.is_none() && (mode == Mode::RecentSearch || live) {
            let why = match mode {
                Mode::RecentSearch => "required in recent_search mode",
                // Without it nothing knows where the last session stopped, so the time between sessions
                // could not be filled from recent search.
                Mode::FilteredStream => "required in filtered_stream mode (it records how far the stream has covered)",
            };
            return Err(Error::Config { var: vars::WATERMARK_URI, message: format!("{why}: s3://bucket/key or a local file") });
        }
        if let Some(u) = &watermark_uri
            && u.contains("://")
            && !u.starts_with("s3://")
        {
            return Err(Error::Config {
                var: vars::WATERMARK_URI,
                message: format!("{u:?}: only s3://bucket/key or a local path"),
            });
        }
        Ok(Self {
            rules,
            mode,
            source,
            bootstrap,
            auth,
            scram_secret_arn,
            ca_file,
            topic: set(vars::TOPIC).unwrap_or_else(|| "tweets".into()),
            create_topic,
            compression,
            message_timeout: Duration::from_millis(parse_setting(
                &get,
                "TWEETLAKE_KAFKA_MESSAGE_TIMEOUT_MS",
                30_000u64,
                |v| *v >= 100,
                "at least 100 ms",
            )?),
            watermark_uri,
            search: SearchSettings {
                page_size: parse_setting(
                    &get,
                    "TWEETLAKE_PAGE_SIZE",
                    100u32,
                    |v| (10..=100).contains(v),
                    "10 to 100 (the API's max_results range)",
                )?,
                max_pages_per_rule: parse_setting(&get, "TWEETLAKE_MAX_PAGES_PER_RULE", 10u32, |v| *v >= 1, "a positive count")?,
                attempts: 3,
                margin: Duration::from_secs(parse_setting(&get, "TWEETLAKE_DEADLINE_MARGIN_SECS", 10u64, |_| true, "seconds")?),
            },
            stream_session: Duration::from_secs(parse_setting(
                &get,
                "TWEETLAKE_STREAM_SECONDS",
                DEFAULT_STREAM_SECONDS,
                |v| (1..=MAX_STREAM_SECONDS).contains(v),
                "1 to 870 seconds (Lambda's 15 minutes less time to fill the gap and produce)",
            )?),
            stream: StreamSettings {
                silence: Duration::from_secs_f64(parse_setting(
                    &get,
                    "TWEETLAKE_STREAM_SILENCE_SECS",
                    20f64,
                    |v| *v > 0.0,
                    "a positive number of seconds",
                )?),
            },
            http_timeout: Duration::from_secs(parse_setting(
                &get,
                "TWEETLAKE_HTTP_TIMEOUT_SECS",
                10u64,
                |v| *v >= 1,
                "a positive number of seconds",
            )?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> Result<IngestConfig, Error> {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        IngestConfig::from_lookup(|k| m.get(k).cloned())
    }

    const OK: &[(&str, &str)] = &[
        ("TWEETLAKE_RULES", "rust: #rustlang"),
        ("TWEETLAKE_X_BEARER_TOKEN", "tok"),
        ("TWEETLAKE_KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
        ("TWEETLAKE_WATERMARK_URI", "s3://b/wm.json"),
    ];

    #[test]
    fn valid_settings_parse() {
        let c = cfg(OK).unwrap();
        assert_eq!(c.rules.len(), 1);
        assert_eq!(c.mode, Mode::RecentSearch);
        assert_eq!(c.topic, "tweets");
        assert_eq!(c.create_topic, None);
        assert!(matches!(c.source, SourceConfig::Api { .. }));
        let c = cfg(&[OK, &[("TWEETLAKE_TOPIC_PARTITIONS", "6"), ("TWEETLAKE_TOPIC_REPLICATION", "3")]].concat()).unwrap();
        assert_eq!(c.create_topic, Some(TopicSpec { partitions: 6, replication_factor: 3 }));
        assert_eq!(c.stream_session, Duration::from_secs(270), "a session fills the default 5-minute schedule");
    }

    #[test]
    fn a_live_stream_needs_the_watermark_store_that_records_its_coverage() {
        let stream = [("TWEETLAKE_INGEST_MODE", "filtered_stream")];
        let no_store: Vec<_> = OK.iter().copied().filter(|(k, _)| *k != "TWEETLAKE_WATERMARK_URI").collect();
        let e = cfg(&[&no_store[..], &stream].concat()).unwrap_err().to_string();
        assert!(e.contains("TWEETLAKE_WATERMARK_URI") && e.contains("filtered_stream"), "{e}");
        assert!(cfg(&[OK, &stream].concat()).is_ok());
        // A recorded session replays without one.
        assert!(cfg(&[&no_store[..], &stream, &[("TWEETLAKE_REPLAY_PATH", "events/x-api")]].concat()).is_ok());
    }

    #[test]
    fn bad_settings_name_their_variable() {
        let with = |k: &'static str, v: &'static str| {
            let mut p: Vec<(&str, &str)> = OK.iter().copied().filter(|(x, _)| *x != k).collect();
            if !v.is_empty() {
                p.push((k, v));
            }
            cfg(&p).unwrap_err().to_string()
        };
        for (k, v, msg) in [
            ("TWEETLAKE_RULES", "", "TWEETLAKE_RULES"),
            ("TWEETLAKE_RULES", "x: (a", "TWEETLAKE_RULES: rule \"x\""),
            ("TWEETLAKE_X_BEARER_TOKEN", "", "TWEETLAKE_X_BEARER_TOKEN"),
            ("TWEETLAKE_KAFKA_BOOTSTRAP", "", "TWEETLAKE_KAFKA_BOOTSTRAP"),
            ("TWEETLAKE_WATERMARK_URI", "", "TWEETLAKE_WATERMARK_URI"),
            ("TWEETLAKE_WATERMARK_URI", "gs://b/k", "TWEETLAKE_WATERMARK_URI"),
            ("TWEETLAKE_PAGE_SIZE", "500", "TWEETLAKE_PAGE_SIZE"),
            ("TWEETLAKE_KAFKA_AUTH", "kerberos", "TWEETLAKE_KAFKA_AUTH"),
            ("TWEETLAKE_KAFKA_AUTH", "scram", "TWEETLAKE_KAFKA_SCRAM_SECRET_ARN"),
            ("TWEETLAKE_KAFKA_COMPRESSION", "snappy", "TWEETLAKE_KAFKA_COMPRESSION"),
            ("TWEETLAKE_INGEST_MODE", "firehose", "TWEETLAKE_INGEST_MODE"),
            ("TWEETLAKE_TOPIC_PARTITIONS", "0", "TWEETLAKE_TOPIC_PARTITIONS"),
            ("TWEETLAKE_STREAM_SECONDS", "900", "TWEETLAKE_STREAM_SECONDS"),
        ] {
            let e = with(k, v);
            assert!(e.contains(msg), "{k}={v:?}: {e}");
        }
        // The token never appears in a message, even when the failure is about it.
        let e = cfg(&[
            ("TWEETLAKE_RULES", "r: a"),
            ("TWEETLAKE_X_BEARER_TOKEN", "secret-value-123"),
            ("TWEETLAKE_X_BEARER_TOKEN_SECRET_ARN", "arn:x"),
        ])
        .unwrap_err()
        .to_string();
        assert!(!e.contains("secret-value-123"), "{e}");
        let e = cfg(&[OK, &[("TWEETLAKE_X_API_URL", "ftp://x")]].concat()).unwrap_err().to_string();
        assert!(e.contains("TWEETLAKE_X_API_URL"));
        let e = cfg(&[OK, &[("TWEETLAKE_TOPIC_PARTITIONS", "3"), ("TWEETLAKE_TOPIC_REPLICATION", "0")]].concat())
            .unwrap_err()
            .to_string();
        assert!(e.contains("TWEETLAKE_TOPIC_REPLICATION"), "{e}");
        // A CA file must exist, hold a certificate, and only comes with a TLS mode.
        let dir = tempfile::tempdir().unwrap();
        let not_pem = dir.path().join("ca.txt");
        std::fs::write(&not_pem, "hello").unwrap();
        let not_pem = not_pem.to_str().unwrap();
        for (auth, file, msg) in [
            ("tls", "/nonexistent/ca.pem", "/nonexistent/ca.pem"),
            ("tls", not_pem, "no PEM certificate"),
            ("plaintext", not_pem, "only used with"),
        ] {
            let e = cfg(&[OK, &[("TWEETLAKE_KAFKA_AUTH", auth), ("TWEETLAKE_KAFKA_CA_FILE", file)]].concat())
                .unwrap_err()
                .to_string();
            assert!(e.contains("TWEETLAKE_KAFKA_CA_FILE") && e.contains(msg), "{e}");
        }
    }
}
