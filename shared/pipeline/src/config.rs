//! Process-function settings from environment variables, validated at start-up.

use crate::dedup::DedupConfig;
use crate::error::Error;
use crate::post::Languages;
use crate::quality::QualityConfig;
use std::collections::HashMap;
use std::path::PathBuf;

/// Standard AWS variables handed to the Delta object store explicitly, so the configuration seen at
/// start is the one used (and tests can point one processor elsewhere without touching the process env).
const AWS_VARS: &[&str] =
    &["AWS_ENDPOINT_URL", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ALLOW_HTTP"];

/// Where the three tables live and how to reach them: one reading of the settings shared by the
/// process and maintenance functions, the report and queries.
#[derive(Clone, Debug)]
pub struct TableLocations {
    /// `TWEETLAKE_TABLE_URI`: the tweets table (`s3://bucket/prefix` or a local path).
    pub tweets: String,
    /// `TWEETLAKE_QUARANTINE_URI`: the quarantine table.
    pub quarantine: String,
    /// `TWEETLAKE_AGGREGATES_URI`: the windowed sentiment aggregates table; default: the tweets table's
    /// URI with `_aggregates` appended.
    pub aggregates: String,
    /// Object-store options: the standard `AWS_*` variables that are set, plus `max_retries`
    /// (`TWEETLAKE_S3_MAX_RETRIES`), `retry_timeout` (`TWEETLAKE_S3_RETRY_TIMEOUT_SECS`) and the
    /// per-request `timeout` / `connect_timeout` (`TWEETLAKE_S3_TIMEOUT_SECS`), which together bound how
    /// long an unreachable or stalled S3 can hold an invocation before it fails as retryable.
    pub storage_options: HashMap<String, String>,
}

/// Everything the process function can be told; see the README's configuration table.
#[derive(Clone, Debug)]
pub struct ProcessConfig {
    /// The tables.
    pub tables: TableLocations,
    /// `TWEETLAKE_MODEL_PATH`: a model file to use instead of the embedded one.
    pub model_path: Option<PathBuf>,
    /// `TWEETLAKE_NEUTRAL_BAND`: override of the model's neutral band, in [0, 0.5).
    pub neutral_band: Option<f32>,
    /// `TWEETLAKE_SENTIMENT_LANGUAGES`: the languages the model scores (default `en`; `*` for all).
    pub languages: Languages,
    /// `TWEETLAKE_DEDUP_WINDOW_SECS` and `TWEETLAKE_DEDUP_MAX_IDS`.
    pub dedup: DedupConfig,
    /// `TWEETLAKE_MAX_PAYLOAD_BYTES`, `TWEETLAKE_MAX_TEXT_CHARS`, `TWEETLAKE_MAX_FUTURE_SKEW_SECS`.
    pub quality: QualityConfig,
    /// `TWEETLAKE_CHECKPOINT_INTERVAL`: a Delta checkpoint every this many commits.
    pub checkpoint_interval: u64,
    /// `TWEETLAKE_COMMIT_RETRIES`: commit attempts on conflict before the invocation fails.
    pub commit_retries: usize,
    /// `TWEETLAKE_OFFSET_GAP_GRACE_SECS`: how long a batch waits (failing as retryable) for missing
    /// offsets before it, before they are taken as offsets that do not exist. Longer than the function
    /// timeout, so an overlapping invocation still in flight always finishes first.
    pub offset_gap_grace_secs: i64,
}

pub use tweetlake_contract::{parse_setting, vars};

fn required_uri(get: &impl Fn(&str) -> Option<String>, var: &'static str) -> Result<String, Error> {
    let v = get(var)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .ok_or(Error::Config { var, message: "not set; give an s3://bucket/prefix URL or a local directory".into() })?;
    if v.contains("://") && !(v.starts_with("s3://") || v.starts_with("s3a://") || v.starts_with("file://")) {
        return Err(Error::Config { var, message: format!("{v:?}: only s3://, s3a://, file:// or a local path are supported") });
    }
    Ok(v)
}

impl TableLocations {
    /// Reads and validates the locations through `get`: three distinct tables, and the storage options.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let tweets = required_uri(&get, vars::TABLE_URI)?;
        let quarantine = required_uri(&get, vars::QUARANTINE_URI)?;
        if quarantine == tweets {
            return Err(Error::Config { var: vars::QUARANTINE_URI, message: format!("must differ from {}", vars::TABLE_URI) });
        }
        let aggregates = match get(vars::AGGREGATES_URI).filter(|v| !v.trim().is_empty()) {
            Some(_) => required_uri(&get, vars::AGGREGATES_URI)?,
            None => format!("{}_aggregates", tweets.trim_end_matches('/')),
        };
        if aggregates == tweets || aggregates == quarantine {
            return Err(Error::Config {
                var: vars::AGGREGATES_URI,
                message: format!("must differ from {} and {}", vars::TABLE_URI, vars::QUARANTINE_URI),
            });
        }
        let mut storage_options: HashMap<String, String> =
            AWS_VARS.iter().filter_map(|k| get(k).filter(|v| !v.is_empty()).map(|v| (k.to_string(), v))).collect();
        let retries: usize = parse_setting(&get, "TWEETLAKE_S3_MAX_RETRIES", 10, |_| true, "a count")?;
        let timeout: u64 =
            parse_setting(&get, "TWEETLAKE_S3_RETRY_TIMEOUT_SECS", 60, |v| *v > 0, "a positive number of seconds")?;
        // The client's own default holds a stalled request 30 s whatever the retry budget says.
        let request: u64 = parse_setting(&get, "TWEETLAKE_S3_TIMEOUT_SECS", 30, |v| *v > 0, "a positive number of seconds")?;
        storage_options.insert("max_retries".into(), retries.to_string());
        storage_options.insert("retry_timeout".into(), format!("{timeout}s"));
        storage_options.insert("timeout".into(), format!("{request}s"));
        storage_options.insert("connect_timeout".into(), format!("{}s", request.min(5)));
        Ok(Self { tweets, quarantine, aggregates, storage_options })
    }
}

impl TableLocations {
    /// Each table under the name the Glue catalog gives it (`tweets`, `quarantine`, `aggregates`).
    pub fn named(&self) -> [(&'static str, &str); 3] {
        [("tweets", &self.tweets), ("quarantine", &self.quarantine), ("aggregates", &self.aggregates)]
    }
}

/// `TWEETLAKE_COMMIT_RETRIES`, read by both functions that commit.
fn commit_retries(get: &impl Fn(&str) -> Option<String>) -> Result<usize, Error> {
    Ok(parse_setting(get, "TWEETLAKE_COMMIT_RETRIES", 25, |v| *v > 0, "a positive count")?)
}

impl ProcessConfig {
    /// Reads and validates the settings through `get` (the process environment in the Lambda).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let tables = TableLocations::from_lookup(&get)?;
        let d = DedupConfig::default();
        let q = QualityConfig::default();
        let band = get(vars::NEUTRAL_BAND).filter(|v| !v.trim().is_empty());
        Ok(Self {
            tables,
            model_path: get(vars::MODEL_PATH).filter(|v| !v.trim().is_empty()).map(PathBuf::from),
            neutral_band: match band {
                None => None,
                Some(_) => {
                    Some(parse_setting(&get, vars::NEUTRAL_BAND, 0.0f32, |b| (0.0..0.5).contains(b), "a number in [0, 0.5)")?)
                }
            },
            languages: match get(vars::SENTIMENT_LANGUAGES).filter(|v| !v.trim().is_empty()) {
                None => Languages::default(),
                Some(list) => {
                    Languages::parse(&list).map_err(|message| Error::Config { var: vars::SENTIMENT_LANGUAGES, message })?
                }
            },
            dedup: DedupConfig {
                window_ms: parse_setting(
                    &get,
                    "TWEETLAKE_DEDUP_WINDOW_SECS",
                    d.window_ms / 1000,
                    |v| *v > 0,
                    "a positive number of seconds",
                )? * 1000,
                max_ids: parse_setting(&get, "TWEETLAKE_DEDUP_MAX_IDS", d.max_ids, |v| *v > 0, "a positive count")?,
            },
            quality: QualityConfig {
                max_payload_bytes: parse_setting(
                    &get,
                    "TWEETLAKE_MAX_PAYLOAD_BYTES",
                    q.max_payload_bytes,
                    |v| *v > 0,
                    "a positive byte count",
                )?,
                max_text_chars: parse_setting(
                    &get,
                    "TWEETLAKE_MAX_TEXT_CHARS",
                    q.max_text_chars,
                    |v| *v > 0,
                    "a positive count",
                )?,
                max_future_skew_secs: parse_setting(
                    &get,
                    "TWEETLAKE_MAX_FUTURE_SKEW_SECS",
                    q.max_future_skew_secs,
                    |v| *v >= 0,
                    "a non-negative number of seconds",
                )?,
            },
            checkpoint_interval: parse_setting(&get, "TWEETLAKE_CHECKPOINT_INTERVAL", 10, |v| *v > 0, "a positive count")?,
            commit_retries: commit_retries(&get)?,
            offset_gap_grace_secs: parse_setting(
                &get,
                "TWEETLAKE_OFFSET_GAP_GRACE_SECS",
                900,
                |v| *v >= 0,
                "a non-negative number of seconds",
            )?,
        })
    }

    /// Reads and validates the settings from the process environment.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }
}

/// Settings of the maintenance function: the tables (as the process function is configured) and the
/// policies it applies to them.
#[derive(Clone, Debug)]
pub struct MaintenanceConfig {
    /// The three tables and object-store options, read like the process function's.
    pub tables: TableLocations,
    /// `TWEETLAKE_COMMIT_RETRIES`, as the process function reads it.
    pub commit_retries: usize,
    /// `TWEETLAKE_OPTIMIZE_TARGET_MB`: compaction's target file size.
    pub target_file_mb: u64,
    /// `TWEETLAKE_VACUUM_RETENTION_HOURS`: files removed from the table longer ago than this are deleted.
    /// At least 1: a process invocation lasts at most 15 minutes, and vacuum only ever deletes files a
    /// commit removed, never files not yet committed.
    pub vacuum_retention_hours: u64,
    /// `TWEETLAKE_QUARANTINE_RETENTION_DAYS`: quarantine rows older than this many days are deleted.
    pub quarantine_retention_days: u64,
}

impl MaintenanceConfig {
    /// Reads and validates the settings through `get`.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        Ok(Self {
            target_file_mb: parse_setting(&get, "TWEETLAKE_OPTIMIZE_TARGET_MB", 128, |v| (1..=4096).contains(v), "1 to 4096 MB")?,
            vacuum_retention_hours: parse_setting(&get, "TWEETLAKE_VACUUM_RETENTION_HOURS", 168, |v| *v >= 1, "at least 1 hour")?,
            quarantine_retention_days: parse_setting(
                &get,
                "TWEETLAKE_QUARANTINE_RETENTION_DAYS",
                30,
                |v| *v >= 1,
                "at least 1 day",
            )?,
            commit_retries: commit_retries(&get)?,
            tables: TableLocations::from_lookup(get)?,
        })
    }

    /// Reads and validates the settings from the process environment.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> Result<ProcessConfig, Error> {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        ProcessConfig::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn errors_name_the_variable() {
        let err = cfg(&[]).unwrap_err().to_string();
        assert!(err.contains("TWEETLAKE_TABLE_URI"), "{err}");
        let base = [("TWEETLAKE_TABLE_URI", "s3://b/tweets"), ("TWEETLAKE_QUARANTINE_URI", "s3://b/q")];
        assert!(cfg(&base).is_ok());
        let err = cfg(&[base[0], base[1], ("TWEETLAKE_DEDUP_WINDOW_SECS", "soon")]).unwrap_err().to_string();
        assert!(err.contains("TWEETLAKE_DEDUP_WINDOW_SECS"), "{err}");
        let err = cfg(&[base[0], base[1], ("TWEETLAKE_NEUTRAL_BAND", "0.7")]).unwrap_err().to_string();
        assert!(err.contains("TWEETLAKE_NEUTRAL_BAND"), "{err}");
        let err = cfg(&[base[0], ("TWEETLAKE_QUARANTINE_URI", "gs://x")]).unwrap_err().to_string();
        assert!(err.contains("TWEETLAKE_QUARANTINE_URI"), "{err}");
        assert_eq!(cfg(&base).unwrap().tables.aggregates, "s3://b/tweets_aggregates");
        let err = cfg(&[base[0], base[1], ("TWEETLAKE_AGGREGATES_URI", "s3://b/q")]).unwrap_err().to_string();
        assert!(err.contains("TWEETLAKE_AGGREGATES_URI"), "{err}");
    }

    #[test]
    fn maintenance_policies_refuse_unsafe_values() {
        let get = |extra: (&'static str, &'static str)| {
            let m: HashMap<&str, &str> =
                [("TWEETLAKE_TABLE_URI", "s3://b/t"), ("TWEETLAKE_QUARANTINE_URI", "s3://b/q"), extra].into_iter().collect();
            MaintenanceConfig::from_lookup(move |k| m.get(k).map(|v| v.to_string()))
        };
        let err = get(("TWEETLAKE_VACUUM_RETENTION_HOURS", "0")).unwrap_err().to_string();
        assert!(err.contains("TWEETLAKE_VACUUM_RETENTION_HOURS"), "{err}");
        let err = get(("TWEETLAKE_QUARANTINE_RETENTION_DAYS", "0")).unwrap_err().to_string();
        assert!(err.contains("TWEETLAKE_QUARANTINE_RETENTION_DAYS"), "{err}");
        assert_eq!(get(("TWEETLAKE_OPTIMIZE_TARGET_MB", "64")).unwrap().target_file_mb, 64);
    }
}
