//! The compliance step's settings, read and validated at start; each error names its variable.

use crate::Error;
use std::time::Duration;
use tweetlake_contract::settings::parse_setting;
use tweetlake_contract::vars;
use tweetlake_ingest::config::{TokenSource, x_api};
use tweetlake_pipeline::MaintenanceConfig;

/// Which ids a job checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every id the lake holds, in turns of at most `TWEETLAKE_COMPLIANCE_MAX_IDS`: a post checked
    /// once can still be deleted later, so every post is checked again in each round.
    All,
    /// Only ids above those the last completed job checked.
    New,
}

impl std::str::FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "all" => Ok(Scope::All),
            "new" => Ok(Scope::New),
            _ => Err("all or new".into()),
        }
    }
}

/// Settings of a compliance run.
#[derive(Clone, Debug)]
pub struct ComplianceConfig {
    /// The tables and commit retries, as maintenance reads them.
    pub maintenance: MaintenanceConfig,
    /// `TWEETLAKE_X_API_URL` (default `https://api.x.com`).
    pub api_url: String,
    /// `TWEETLAKE_X_BEARER_TOKEN` or `TWEETLAKE_X_BEARER_TOKEN_SECRET_ARN`.
    pub token: TokenSource,
    /// `TWEETLAKE_COMPLIANCE_SCOPE`: `all` (default) or `new`.
    pub scope: Scope,
    /// `TWEETLAKE_COMPLIANCE_MAX_IDS` (default 500000, X's limit per job).
    pub max_ids: usize,
    /// `TWEETLAKE_COMPLIANCE_WAIT_SECS` (default 600): how long a run polls a job before leaving it to
    /// the next run; at most 840, inside Lambda's 15 minutes.
    pub wait: Duration,
    /// `TWEETLAKE_COMPLIANCE_POLL_SECS` (default 30): time between status polls.
    pub poll: Duration,
    /// `TWEETLAKE_HTTP_TIMEOUT_SECS` (default 10): per request.
    pub http_timeout: Duration,
}

impl ComplianceConfig {
    /// Whether a token is configured at all: without one the maintenance function runs without its
    /// compliance step (and says so if asked for it).
    pub fn configured(get: &impl Fn(&str) -> Option<String>) -> bool {
        [vars::X_BEARER_TOKEN, "TWEETLAKE_X_BEARER_TOKEN_SECRET_ARN"].iter().any(|k| get(k).is_some_and(|v| !v.trim().is_empty()))
    }

    /// The error of a compliance step asked for where no token is configured.
    pub fn missing() -> Error {
        Error::Config {
            var: vars::X_BEARER_TOKEN,
            message: "the compliance step needs the X API token (or TWEETLAKE_X_BEARER_TOKEN_SECRET_ARN)".into(),
        }
    }

    /// Reads and validates the settings through `get`.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let (api_url, token) = x_api(&get)?;
        let secs = |var, default, max: u64| {
            parse_setting(&get, var, default, |v: &u64| (1..=max).contains(v), &format!("1 to {max} seconds"))
                .map(Duration::from_secs)
        };
        Ok(Self {
            api_url,
            token,
            scope: parse_setting(&get, "TWEETLAKE_COMPLIANCE_SCOPE", Scope::All, |_| true, "a scope")?,
            max_ids: parse_setting(&get, "TWEETLAKE_COMPLIANCE_MAX_IDS", 500_000, |v| (1..=500_000).contains(v), "1 to 500000")?,
            wait: secs("TWEETLAKE_COMPLIANCE_WAIT_SECS", 600, 840)?,
            poll: secs("TWEETLAKE_COMPLIANCE_POLL_SECS", 30, 300)?,
            http_timeout: secs("TWEETLAKE_HTTP_TIMEOUT_SECS", 10, 300)?,
            maintenance: MaintenanceConfig::from_lookup(&get)?,
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

    fn cfg(vars: &[(&str, &str)]) -> Result<ComplianceConfig, Error> {
        let base =
            [("TWEETLAKE_TABLE_URI", "/tmp/t"), ("TWEETLAKE_QUARANTINE_URI", "/tmp/q"), ("TWEETLAKE_X_BEARER_TOKEN", "tok")];
        ComplianceConfig::from_lookup(|k| vars.iter().chain(&base).find(|(n, _)| *n == k).map(|(_, v)| v.to_string()))
    }

    #[test]
    fn defaults_and_bad_settings_named() {
        let c = cfg(&[]).unwrap();
        assert_eq!(
            (c.scope, c.max_ids, c.wait, c.poll),
            (Scope::All, 500_000, Duration::from_secs(600), Duration::from_secs(30))
        );
        for (var, value) in [
            ("TWEETLAKE_COMPLIANCE_SCOPE", "some"),
            ("TWEETLAKE_COMPLIANCE_MAX_IDS", "600000"),
            ("TWEETLAKE_COMPLIANCE_WAIT_SECS", "900"),
            ("TWEETLAKE_COMPLIANCE_POLL_SECS", "0"),
            ("TWEETLAKE_X_API_URL", "ftp://x"),
        ] {
            let e = cfg(&[(var, value)]).unwrap_err().to_string();
            assert!(e.contains(var), "{var}: {e}");
        }
        let none = |_: &str| None;
        assert!(!ComplianceConfig::configured(&none));
    }
}
