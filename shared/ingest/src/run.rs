//! One ingest run: collect (recent search or a stream session, from the API or a replay), produce
//! every message and wait for the acknowledgements, and only then move the watermarks.

use crate::clock::{Clock, SystemClock};
use crate::collect::Collector;
use crate::config::{Bootstrap, IngestConfig, Mode, SourceConfig};
use crate::coverage::{CoverageReport, fill_gaps};
use crate::error::Error;
use crate::kafka::{Delivered, KafkaProducer, KafkaSettings};
use crate::msk::AuthMode;
use crate::replay::{ReplaySearch, ReplayStream};
use crate::search::{Pacer, RuleOutcome, search_rules};
use crate::stream::{RulesSync, StreamReport, StreamSource, read_stream, sync_rules};
use crate::watermark::{FileStore, S3Store, WatermarkStore, save_merged};
use crate::xapi::{SearchSource, XClient};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::sync::Arc;
use tweetlake_contract::envelope::IngestMeta;
use tweetlake_contract::metrics::{Unit, emf_line};

/// The run's JSON summary, which is also the Lambda function's response.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    /// Id stamped on every message of the run.
    pub run_id: String,
    /// `recent_search`, `filtered_stream` or `replay`.
    pub source: String,
    /// Per rule, in recent-search mode.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<RuleOutcome>,
    /// What the rules sync changed, in filtered-stream mode against the API.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rules_sync: Option<RulesSync>,
    /// The stream session, in filtered-stream mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<StreamReport>,
    /// The wall time the stream did not cover and its fill from recent search, in filtered-stream mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coverage: Option<CoverageReport>,
    /// Distinct tweets collected (a tweet matched by several rules counts once).
    pub tweets: usize,
    /// What Kafka acknowledged.
    pub produced: Delivered,
    /// Whether the watermarks were written.
    pub watermarks_saved: bool,
    /// Work left for the next run: rules that stopped early, and why.
    pub left: Vec<String>,
}

impl RunReport {
    /// The run's CloudWatch metrics as EMF log lines (namespace `Tweetlake`, dimension
    /// `Function=ingest`): posts collected and produced, and in filtered-stream mode
    /// `CoverageGapSeconds`, the wall time some rule still has not covered (the template alarms on it).
    pub fn metric_lines(&self, timestamp_ms: i64) -> Vec<String> {
        let mut metrics =
            vec![("Tweets", self.tweets as u64, Unit::Count), ("Produced", self.produced.messages as u64, Unit::Count)];
        if let Some(c) = &self.coverage {
            metrics.push(("CoverageGapSeconds", c.coverage_gap_seconds, Unit::Seconds));
        }
        vec![emf_line(timestamp_ms, &[("Function", "ingest")], &metrics)]
    }
}

/// An ingest function, ready to run: sources, producer and watermark store built from the settings.
pub struct Ingest {
    cfg: IngestConfig,
    search: Box<dyn SearchSource>,
    stream: Box<dyn StreamSource>,
    client: Option<XClient>,
    producer: KafkaProducer,
    store: Option<Box<dyn WatermarkStore>>,
    clock: Arc<dyn Clock>,
}

/// The AWS SDK configuration, with path-style S3 addressing when a custom endpoint is set (local
/// S3 servers do not serve bucket subdomains).
async fn aws() -> (aws_config::SdkConfig, bool) {
    let conf = aws_config::load_from_env().await;
    let custom = std::env::var("AWS_ENDPOINT_URL").is_ok_and(|v| !v.is_empty())
        || std::env::var("AWS_ENDPOINT_URL_S3").is_ok_and(|v| !v.is_empty());
    (conf, custom)
}

impl Ingest {
    /// Builds everything the settings describe: reads secrets, resolves MSK brokers, opens sources.
    pub async fn from_config(cfg: IngestConfig) -> Result<Self, Error> {
        let (conf, custom_endpoint) = aws().await;
        let sm = || aws_sdk_secretsmanager::Client::new(&conf);
        let tags: Vec<String> = cfg.rules.iter().map(|r| r.tag.clone()).collect();
        let (search, stream, client): (Box<dyn SearchSource>, Box<dyn StreamSource>, Option<XClient>) = match &cfg.source {
            SourceConfig::Replay(path) => match cfg.mode {
                Mode::RecentSearch => (Box::new(ReplaySearch::open(path, &tags)?), Box::new(ReplayStream::empty()), None),
                Mode::FilteredStream => (Box::new(ReplaySearch::empty()), Box::new(ReplayStream::open(path)?), None),
            },
            SourceConfig::Api { base_url, token } => {
                let token = token.resolve(&sm()).await?;
                let c = XClient::new(base_url, token, cfg.http_timeout)?;
                (Box::new(c.clone()), Box::new(c.clone()), Some(c))
            }
        };
        let bootstrap = match &cfg.bootstrap {
            Bootstrap::Servers(s) => s.clone(),
            Bootstrap::MskCluster(arn) => {
                crate::msk::bootstrap_brokers(&aws_sdk_kafka::Client::new(&conf), arn, cfg.auth).await?
            }
        };
        let scram = match (&cfg.scram_secret_arn, cfg.auth) {
            (Some(arn), AuthMode::Scram) => {
                let v: serde_json::Value = serde_json::from_str(&crate::config::secret_string(&sm(), arn).await?)
                    .map_err(|_| Error::Secret { arn: arn.clone(), message: "not JSON with username and password".into() })?;
                let field = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_owned);
                match (field("username"), field("password")) {
                    (Some(u), Some(p)) => Some((u, p)),
                    _ => return Err(Error::Secret { arn: arn.clone(), message: "missing username or password".into() }),
                }
            }
            _ => None,
        };
        let settings = KafkaSettings {
            bootstrap,
            auth: cfg.auth,
            scram,
            region: conf.region().map(|r| r.to_string()),
            ca_file: cfg.ca_file.clone(),
            compression: cfg.compression.clone(),
            message_timeout: cfg.message_timeout,
        };
        if let Some(spec) = cfg.create_topic {
            let status = crate::kafka::create_topic(&settings, &cfg.topic, spec.partitions, spec.replication_factor).await?;
            tracing::info!(topic = %cfg.topic, ?status, "topic checked");
        }
        let producer = KafkaProducer::new(&settings, &cfg.topic).await?;
        let store: Option<Box<dyn WatermarkStore>> = match &cfg.watermark_uri {
            Some(u) if u.starts_with("s3://") => {
                let s3conf = aws_sdk_s3::config::Builder::from(&conf).force_path_style(custom_endpoint).build();
                Some(Box::new(S3Store::new(aws_sdk_s3::Client::from_conf(s3conf), u)?))
            }
            Some(path) => Some(Box::new(FileStore::new(path))),
            None => None,
        };
        Ok(Self { cfg, search, stream, client, producer, store, clock: Arc::new(SystemClock) })
    }

    /// Replaces the clock (tests drive back-off and deadlines with a [`crate::clock::ManualClock`]).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Replaces the sources (tests and benches feed recorded pages without files).
    pub fn with_sources(mut self, search: Box<dyn SearchSource>, stream: Box<dyn StreamSource>) -> Self {
        self.search = search;
        self.stream = stream;
        self
    }

    /// Runs once, finishing before `deadline` (the Lambda invocation's).
    pub async fn run(&self, deadline: DateTime<Utc>) -> Result<RunReport, Error> {
        let run_id = uuid::Uuid::new_v4().to_string();
        let replay = matches!(self.cfg.source, SourceConfig::Replay(_));
        let source = match (replay, self.cfg.mode) {
            (true, _) => "replay",
            (false, Mode::RecentSearch) => "recent_search",
            (false, Mode::FilteredStream) => "filtered_stream",
        };
        let meta = IngestMeta {
            source: source.into(),
            run_id: run_id.clone(),
            fetched_at: Some(self.clock.now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        };
        let mut out = Collector::new(meta);
        let mut report = RunReport {
            run_id: run_id.clone(),
            source: source.into(),
            rules: Vec::new(),
            rules_sync: None,
            stream: None,
            coverage: None,
            tweets: 0,
            produced: Delivered::default(),
            watermarks_saved: false,
            left: Vec::new(),
        };
        let clock = self.clock.as_ref();
        // The margin reserved for producing and saving is capped at a quarter of the time left, so
        // a short timeout (the local emulator's few seconds) still leaves most of it for fetching.
        let mut settings = self.cfg.search;
        settings.margin = settings.margin.min((deadline - clock.now()).to_std().unwrap_or_default() / 4);
        let mut marks = None;
        match self.cfg.mode {
            Mode::RecentSearch => {
                let store = self
                    .store
                    .as_ref()
                    .ok_or(Error::Config { var: "TWEETLAKE_WATERMARK_URI", message: "required in recent_search mode".into() })?;
                let (m, version) = store.load().await?;
                report.rules =
                    search_rules(self.search.as_ref(), &self.cfg.rules, &m, &mut out, clock, deadline, settings).await?;
                marks = Some((m, version));
            }
            Mode::FilteredStream => {
                if let Some(c) = &self.client {
                    report.rules_sync = Some(sync_rules(c, &self.cfg.rules).await?);
                }
                let margin = chrono::Duration::from_std(settings.margin).unwrap_or_default();
                let session = chrono::Duration::from_std(self.cfg.stream_session).unwrap_or_default();
                let started = clock.now();
                let end = (started + session).min(deadline - margin);
                let stream = read_stream(self.stream.as_ref(), &mut out, clock, end, self.cfg.stream).await;
                if let Some(store) = &self.store {
                    // Loaded after the session, not before: a previous run still filling when this one
                    // started has saved its coverage by now, so its windows are not searched twice.
                    let (m, version) = store.load().await?;
                    let mut pacer = Pacer::new(clock, deadline, settings);
                    let (mark, coverage) = fill_gaps(
                        self.search.as_ref(),
                        &self.cfg.rules,
                        &m.stream,
                        started,
                        &stream.connected,
                        &mut out,
                        &mut pacer,
                    )
                    .await?;
                    report.left.extend(coverage.rules.iter().filter(|r| !r.pending.is_empty()).map(|r| {
                        format!(
                            "{}: {} stream window(s) to fill: {}",
                            r.tag,
                            r.pending.len(),
                            r.stopped.as_deref().unwrap_or("incomplete")
                        )
                    }));
                    report.coverage = Some(coverage);
                    marks = Some((crate::watermark::Watermarks { stream: mark, ..m }, version));
                }
                report.stream = Some(stream);
            }
        }
        report.tweets = out.len();
        report.left.extend(
            report
                .rules
                .iter()
                .filter(|r| !r.complete)
                .map(|r| format!("{}: {}", r.tag, r.stopped.as_deref().unwrap_or("incomplete"))),
        );
        // Every message must be acknowledged before any watermark moves: a failure here returns the
        // error with the marks untouched, and the next run fetches the same tweets again.
        report.produced = self.producer.send_all(out.messages(), &out.unreadable, source, &run_id).await?;
        if let (Some((mut m, version)), Some(store)) = (marks, &self.store) {
            for r in &report.rules {
                m.rules.insert(r.tag.clone(), r.after.clone());
            }
            save_merged(store.as_ref(), m, version).await?;
            report.watermarks_saved = true;
        }
        tracing::info!(
            run_id,
            tweets = report.tweets,
            produced = report.produced.messages,
            coverage_gap_seconds = report.coverage.as_ref().map(|c| c.coverage_gap_seconds),
            left = report.left.len(),
            "ingest run done"
        );
        Ok(report)
    }
}

/// When the run must be done by.
pub type Deadline = DateTime<Utc>;

/// The deadline of a Lambda invocation (`Context::deadline`, epoch milliseconds). A deadline that
/// has already passed when the run starts cannot be real — `cargo lambda watch` sends its timeout
/// (600,000 ms) instead of an epoch time — so the run then allows itself `fallback` from now.
pub fn deadline_from_epoch_ms(ms: u64, now: DateTime<Utc>, fallback: std::time::Duration) -> Deadline {
    match DateTime::from_timestamp_millis(ms as i64) {
        Some(d) if d > now => d,
        _ => {
            tracing::warn!(
                deadline_ms = ms,
                fallback_secs = fallback.as_secs(),
                "invocation deadline is in the past; using the fallback run time"
            );
            now + chrono::Duration::from_std(fallback).unwrap_or_default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_real_deadline_is_kept_and_an_impossible_one_replaced() {
        let now = DateTime::from_timestamp_millis(1_764_244_800_000).unwrap();
        assert_eq!(deadline_from_epoch_ms(1_764_244_860_000, now, Duration::from_secs(300)), now + chrono::Duration::seconds(60));
        // cargo lambda watch sends 600000 (its timeout, not an epoch time).
        assert_eq!(deadline_from_epoch_ms(600_000, now, Duration::from_secs(300)), now + chrono::Duration::seconds(300));
    }
}
