//! One compliance run: resume the job a previous run left, or submit the next ids; poll within the
//! run's time; apply what a complete job reports, once.
//!
//! The job's progress lives in one object beside the tweets table (`_tweetlake/compliance/state.json`):
//! the job in flight, the id cursor and the last finished job. Every step is safe to repeat: a job is
//! applied under its own application id, so a run that stops after applying and before saving the state
//! applies nothing twice when the next run resumes it.

use crate::Error;
use crate::config::{ComplianceConfig, Scope};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tweetlake_contract::metrics::{Unit, emf_line};
use tweetlake_ingest::clock::{Clock, SystemClock};
use tweetlake_ingest::compliance::{Job, JobStatus};
use tweetlake_ingest::xapi::{Answer, XClient};
use tweetlake_pipeline::compliance::{Applied, apply, held_ids};
use tweetlake_pipeline::sink::DeltaSink;
use tweetlake_pipeline::tables::tweets;

/// Where the job's progress is kept, under the tweets table.
pub const STATE_PATH: &str = "_tweetlake/compliance/state.json";

/// How a run ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The lake holds no ids to check.
    #[default]
    NothingToCheck,
    /// The job was not finished within the run's time; the next run resumes it.
    Waiting,
    /// The job completed and its findings were applied.
    Applied,
    /// X failed the job: nothing changed, and the next run checks the same ids again.
    Failed,
    /// The job expired: nothing changed, and the next run checks the same ids again.
    Expired,
}

/// What one run did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ComplianceReport {
    /// How it ended.
    pub outcome: Outcome,
    /// The job it created or resumed.
    pub job_id: Option<String>,
    /// The job's last known status.
    pub status: Option<JobStatus>,
    /// Whether this run resumed a job an earlier run created.
    pub resumed: bool,
    /// Ids the job checks.
    pub ids_submitted: usize,
    /// Findings X reported, by reason (`deleted`, `protected`, `suspended`, …).
    pub findings: BTreeMap<String, usize>,
    /// What applying them did (complete jobs only).
    pub applied: Option<Applied>,
    /// Wall time, seconds.
    pub seconds: f64,
}

impl ComplianceReport {
    /// The run's CloudWatch metrics as embedded-metric-format lines: the rows removed, and whether the
    /// job failed or expired (an alarm watches it: the lake then keeps posts X asked to remove).
    pub fn metric_lines(&self, timestamp_ms: i64) -> Vec<String> {
        let removed = self.applied.as_ref().map_or(0, |a| (a.tweets_deleted + a.quarantine_deleted) as u64);
        let failed = u64::from(matches!(self.outcome, Outcome::Failed | Outcome::Expired));
        vec![emf_line(
            timestamp_ms,
            &[("Function", "compliance")],
            &[("ComplianceRemoved", removed, Unit::Count), ("ComplianceJobFailed", failed, Unit::Count)],
        )]
    }
}

/// The job in flight.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Pending {
    job: Job,
    /// The ids checked are those above this one …
    after: u64,
    /// … up to this one.
    through: u64,
    ids: usize,
    /// Whether these are the last ids of the round (under `Scope::All` the next job starts over).
    round_end: bool,
    uploaded: bool,
}

/// A finished job, for whoever reads the state.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Finished {
    job_id: String,
    status: JobStatus,
    at: DateTime<Utc>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct State {
    /// Scope `all`: ids at or below this were checked in the current round (0: start from the lowest).
    cursor: u64,
    /// Scope `new`: the highest id a completed job checked.
    #[serde(default)]
    newest: u64,
    pending: Option<Pending>,
    last: Option<Finished>,
}

async fn save(side: &DeltaSink, s: &State) -> Result<(), Error> {
    Ok(side.write_object(STATE_PATH, serde_json::to_vec_pretty(s).expect("serializes")).await?)
}

/// Runs one compliance step against the X API `client`, on the tables `cfg` names; `clock` paces the
/// polls.
pub async fn run(cfg: &ComplianceConfig, client: &XClient, clock: &dyn Clock) -> Result<ComplianceReport, Error> {
    let started = clock.now();
    let t = &cfg.maintenance.tables;
    let mut report = ComplianceReport::default();
    let done = |mut r: ComplianceReport| {
        r.seconds = (clock.now() - started).num_milliseconds() as f64 / 1000.0;
        tracing::info!(outcome = ?r.outcome, job = ?r.job_id, "compliance run done");
        Ok(r)
    };
    if tweetlake_pipeline::maintenance::load(&t.tweets, &t.storage_options)
        .await
        .map_err(|e| tweetlake_pipeline::Error::Delta { uri: t.tweets.clone(), source: Box::new(e) })?
        .is_none()
    {
        return done(report);
    }
    let side =
        DeltaSink::open(&t.tweets, &tweets::SCHEMA, tweets::PARTITIONS, 100, cfg.maintenance.commit_retries, &t.storage_options)
            .await?;
    let mut state: State = match side.read_object(STATE_PATH).await? {
        Some(b) => serde_json::from_slice(&b)
            .map_err(|e| tweetlake_pipeline::Error::State { path: STATE_PATH.into(), message: e.to_string() })?,
        None => State::default(),
    };

    let ids_of = |after: u64, through: u64| async move {
        let ids = held_ids(t, Some(after)).await?;
        Ok::<Vec<String>, Error>(ids.into_iter().filter(|i| *i <= through).map(|i| i.to_string()).collect())
    };
    // The ids of a job created by this run, to upload without reading them again.
    let mut fresh: Option<Vec<u64>> = None;
    let mut pending = match state.pending.clone() {
        Some(p) => {
            report.resumed = true;
            p
        }
        None => {
            let mut after = if cfg.scope == Scope::All { state.cursor } else { state.newest };
            let mut ids = held_ids(t, Some(after)).await?;
            if ids.is_empty() && after > 0 && cfg.scope == Scope::All {
                // The round is over: start the next one from the lowest id.
                after = 0;
                ids = held_ids(t, None).await?;
            }
            if ids.is_empty() {
                return done(report);
            }
            let round_end = ids.len() <= cfg.max_ids;
            ids.truncate(cfg.max_ids);
            let through = *ids.last().expect("not empty");
            let job = client.create_compliance_job(&format!("tweetlake-{}", started.format("%Y%m%dT%H%M%SZ"))).await?;
            tracing::info!(job = %job.id, ids = ids.len(), "compliance job created");
            let p = Pending { job, after, through, ids: ids.len(), round_end, uploaded: false };
            state.pending = Some(p.clone());
            save(&side, &state).await?;
            fresh = Some(ids);
            p
        }
    };
    report.job_id = Some(pending.job.id.clone());
    report.ids_submitted = pending.ids;

    let deadline = started + chrono::Duration::from_std(cfg.wait).unwrap_or(chrono::Duration::MAX);
    let mut job = pending.job.clone();
    if report.resumed {
        // What the job has become since: an upload that never happened may have expired meanwhile.
        if let Answer::Ok(j, _) = client.compliance_job(&job.id).await? {
            job = j;
        }
    }
    loop {
        if job.status == JobStatus::Created && !pending.uploaded {
            let ids = match fresh.take() {
                Some(ids) => ids.iter().map(u64::to_string).collect(),
                None => ids_of(pending.after, pending.through).await?,
            };
            client.upload_compliance_ids(&job, &ids).await?;
            pending.uploaded = true;
            state.pending = Some(pending.clone());
            save(&side, &state).await?;
        }
        if job.status.is_final() {
            break;
        }
        if clock.now() + chrono::Duration::from_std(cfg.poll).unwrap_or_default() > deadline {
            report.status = Some(job.status);
            report.outcome = Outcome::Waiting;
            tracing::info!(job = %job.id, status = ?job.status, "compliance job not finished; the next run resumes it");
            return done(report);
        }
        clock.sleep(cfg.poll).await;
        match client.compliance_job(&job.id).await? {
            Answer::Ok(j, _) => job = j,
            Answer::RateLimited(_) | Answer::Unavailable { .. } => {
                tracing::warn!(job = %job.id, "status poll refused; polling again")
            }
        }
    }
    report.status = Some(job.status);
    if job.status == JobStatus::Complete {
        let findings = client.compliance_findings(&job).await?;
        for f in &findings {
            *report.findings.entry(f.reason.clone()).or_default() += 1;
        }
        let ids: Vec<String> = findings.iter().filter(|f| f.removes_post()).map(|f| f.id.clone()).collect();
        let applied = apply(t, cfg.maintenance.commit_retries, &job.id, &ids, clock.now()).await?;
        tracing::info!(job = %job.id, findings = findings.len(), ?applied, "compliance job applied");
        report.applied = Some(applied);
        report.outcome = Outcome::Applied;
        state.cursor = if pending.round_end { 0 } else { pending.through };
        state.newest = state.newest.max(pending.through);
    } else {
        tracing::error!(job = %job.id, status = ?job.status, "compliance job did not complete; nothing was changed and its ids are checked again next run");
        report.outcome = if job.status == JobStatus::Failed { Outcome::Failed } else { Outcome::Expired };
    }
    state.pending = None;
    state.last = Some(Finished { job_id: job.id.clone(), status: job.status, at: clock.now() });
    save(&side, &state).await?;
    done(report)
}

/// Runs one compliance step against the X API the settings name, on the wall clock: what the
/// maintenance function and `tweetlake comply` do.
pub async fn run_once(cfg: &ComplianceConfig) -> Result<ComplianceReport, Error> {
    let client = XClient::connect(&cfg.api_url, &cfg.token, cfg.http_timeout).await?;
    run(cfg, &client, &SystemClock).await
}
