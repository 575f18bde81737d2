//! Maintenance of the three tables, safe while the process function keeps committing: expire old
//! quarantine rows, compact small files, write a checkpoint, vacuum removed files.
//!
//! Every step is an ordinary Delta commit with conflict retries: compaction and the quarantine expiry
//! only remove files that concurrent appends never touch (appends add new files; expiry only matches
//! old partitions), so delta-rs rebases past a racing process commit instead of failing or losing it.
//! Vacuum runs in "lite" mode: it deletes only files that a commit removed more than the retention
//! ago, never a file that is not yet committed, so an in-flight writer's files are never at risk.

use crate::config::MaintenanceConfig;
use crate::error::Error;
use chrono::{DateTime, Utc};
use deltalake::DeltaTable;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::operations::vacuum::{Clock, VacuumMode};
use serde::Serialize;
use std::collections::HashMap;
use std::num::NonZeroU64;
use std::time::Instant;

/// What maintenance did to one table.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TableReport {
    /// The table's URI.
    pub uri: String,
    /// Whether the table existed (a table nothing has written yet is skipped).
    pub exists: bool,
    /// Active data files before and after.
    pub files_before: usize,
    /// Active data files after.
    pub files_after: usize,
    /// Small files compaction replaced.
    pub files_compacted: u64,
    /// Files compaction wrote.
    pub files_written: u64,
    /// Quarantine rows expired by the retention policy (quarantine table only).
    pub rows_expired: usize,
    /// Files vacuum deleted from storage.
    pub files_vacuumed: i64,
    /// The version the checkpoint was written for.
    pub checkpoint_version: Option<i64>,
    /// Wall time spent on this table, seconds.
    pub seconds: f64,
}

/// What one maintenance run did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct MaintenanceReport {
    /// One entry per table: tweets, aggregates, quarantine.
    pub tables: Vec<TableReport>,
}

fn active_files(t: &DeltaTable) -> Result<usize, deltalake::DeltaTableError> {
    Ok(t.snapshot()?.log_data().num_files())
}

/// The maintenance run's time as VACUUM's clock, so its retention counts from the same `now` as the
/// quarantine's.
#[derive(Debug)]
struct At(DateTime<Utc>);

impl Clock for At {
    fn current_timestamp_millis(&self) -> i64 {
        self.0.timestamp_millis()
    }
}

/// The table at `uri`, loaded; `None` if nothing has written it yet.
pub async fn load(uri: &str, storage: &HashMap<String, String>) -> Result<Option<DeltaTable>, deltalake::DeltaTableError> {
    let url = deltalake::ensure_table_uri(uri)?;
    let storage = if url.scheme().starts_with("s3") { storage.clone() } else { HashMap::new() };
    let mut table = DeltaTable::try_from_url_with_storage_options(url, storage).await?;
    match table.load().await {
        Ok(()) => Ok(Some(table)),
        Err(deltalake::DeltaTableError::NotATable(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Runs maintenance on every table at time `now` (the quarantine and vacuum retentions count from it).
pub async fn run(cfg: &MaintenanceConfig, now: DateTime<Utc>) -> Result<MaintenanceReport, Error> {
    let t = &cfg.tables;
    let mut report = MaintenanceReport::default();
    for (uri, is_quarantine) in [(&t.tweets, false), (&t.aggregates, false), (&t.quarantine, true)] {
        report.tables.push(maintain(cfg, uri, is_quarantine, now).await.map_err(|e| Error::delta(uri, e))?);
    }
    Ok(report)
}

async fn maintain(
    cfg: &MaintenanceConfig,
    uri: &str,
    is_quarantine: bool,
    now: DateTime<Utc>,
) -> Result<TableReport, deltalake::DeltaTableError> {
    let start = Instant::now();
    let mut r = TableReport { uri: uri.to_owned(), ..TableReport::default() };
    let Some(mut table) = load(uri, &cfg.tables.storage_options).await? else { return Ok(r) };
    r.exists = true;
    r.files_before = active_files(&table)?;
    let retries = || CommitProperties::default().with_max_retries(cfg.commit_retries);

    if is_quarantine {
        // Whole old partitions: a metadata-only delete that never matches today's appends.
        let cutoff = (now - chrono::Duration::days(cfg.quarantine_retention_days as i64)).date_naive();
        let (t, m) =
            table.delete().with_predicate(format!("quarantined_date < '{cutoff}'")).with_commit_properties(retries()).await?;
        table = t;
        r.rows_expired = m.num_deleted_rows.unwrap_or(0);
    }

    let target = NonZeroU64::new(cfg.target_file_mb * 1024 * 1024).expect("validated positive");
    let (t, m) = table.optimize().with_target_size(target).with_commit_properties(retries()).await?;
    table = t;
    r.files_compacted = m.num_files_removed;
    r.files_written = m.num_files_added;

    table.update_incremental(None).await?;
    deltalake::checkpoints::create_checkpoint(&table, None).await?;
    r.checkpoint_version = table.version().map(|v| v as i64);

    let (t, m) = table
        .vacuum()
        .with_mode(VacuumMode::Lite)
        .with_clock(std::sync::Arc::new(At(now)))
        .with_retention_period(chrono::Duration::hours(cfg.vacuum_retention_hours as i64))
        .with_enforce_retention_duration(false)
        .with_commit_properties(retries())
        .await?;
    table = t;
    r.files_vacuumed = m.files_deleted.len() as i64;
    table.update_incremental(None).await?;
    r.files_after = active_files(&table)?;
    r.seconds = start.elapsed().as_secs_f64();
    Ok(r)
}
