//! The Delta sink: appends a batch and the per-partition Kafka offsets in one commit, exactly once.
//!
//! The offsets are Delta application transactions (`txn`), the mechanism kafka-delta-ingest uses: a
//! reader of the table sees rows and offsets change together, and a redelivered batch finds its offsets
//! already recorded. Each topic-partition's coverage ([`Coverage`]) is one contiguous run of offsets, kept as two
//! transactions: `tweetlake:{topic}:{partition}` holds the last offset (what consumers resume after)
//! and `tweetlake:{topic}:{partition}:first` the first. Every commit writes the transactions of the
//! partitions it covers, so two writers of one partition conflict and one of them re-checks (see
//! `process`), while concurrent writers of other partitions only append: delta-rs rebases and retries
//! their commits instead of losing one.
//!
//! Schema evolution is additive: when this build's rows have columns the table lacks (or a column the
//! table declares non-null is now nullable), the commit that appends them also carries the widened
//! schema as a `metaData` action, so the table takes the new columns on in place, in the same atomic
//! commit as the first rows that fill them. Existing files are not rewritten: readers see the new
//! columns as null in older rows. The protocol stays reader 1 / writer 2 (no column mapping needed for
//! added columns), which Athena reads.

use crate::error::Error;
use crate::offsets::{Coverage, PerPartition, TopicPartition};
use deltalake::arrow::datatypes::{Field, Schema, SchemaRef};
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::kernel::engine::arrow_conversion::{TryIntoArrow, TryIntoKernel};
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, MetadataExt, StructType, Transaction};
use deltalake::logstore::object_store::ObjectStoreExt;
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use deltalake::{DeltaTable, Path, TableProperty};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The table's schema widened to hold `rows`: `current`'s columns in order (made nullable where `rows`
/// has them nullable), then `rows`' columns `current` lacks; `None` if `current` already holds them.
fn widen(current: &Schema, rows: &Schema) -> Option<SchemaRef> {
    let mut changed = false;
    let mut fields: Vec<Field> = current
        .fields()
        .iter()
        .map(|f| match rows.field_with_name(f.name()) {
            Ok(r) if r.is_nullable() && !f.is_nullable() => {
                changed = true;
                f.as_ref().clone().with_nullable(true)
            }
            _ => f.as_ref().clone(),
        })
        .collect();
    for r in rows.fields() {
        if current.field_with_name(r.name()).is_err() {
            changed = true;
            fields.push(r.as_ref().clone());
        }
    }
    changed.then(|| Arc::new(Schema::new(fields)))
}

/// Application-transaction id of one Kafka topic-partition; its version is the last offset covered.
pub fn app_id(tp: &TopicPartition) -> String {
    format!("tweetlake:{}:{}", tp.topic, tp.partition)
}

/// Application-transaction id holding the first offset a topic-partition's coverage starts at.
pub fn first_app_id(tp: &TopicPartition) -> String {
    format!("tweetlake:{}:{}:first", tp.topic, tp.partition)
}

/// Application-transaction versions known at one table version. Delta keeps no index of them: each
/// lookup replays the log since the last checkpoint, and a batch asks for up to two per partition, so
/// what was read or written at the current version is kept and asked for once.
#[derive(Debug, Default)]
struct KnownTxns {
    /// The table version the values hold at.
    version: Option<u64>,
    /// App id → its version (`None`: never written).
    values: HashMap<String, Option<i64>>,
}

impl KnownTxns {
    /// The known version of `app_id` if the values hold at `version`.
    fn values_at(&self, version: Option<u64>, app_id: &str) -> Option<Option<i64>> {
        (self.version == version).then(|| self.values.get(app_id).copied()).flatten()
    }

    /// The values at `version`, emptied first if they held at another.
    fn at(&mut self, version: Option<u64>) -> &mut HashMap<String, Option<i64>> {
        if self.version != version {
            *self = KnownTxns { version, values: HashMap::new() };
        }
        &mut self.values
    }
}

/// One Delta table that the process function appends to.
pub struct DeltaSink {
    uri: String,
    table: DeltaTable,
    /// Object-store options, for a writer of a widened schema.
    storage: HashMap<String, String>,
    commit_retries: usize,
    known: Mutex<KnownTxns>,
}

impl std::fmt::Debug for DeltaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeltaSink").field("uri", &self.uri).finish()
    }
}

impl DeltaSink {
    /// Opens the table at `uri` (an `s3://` URL or a local path), creating it with `schema`,
    /// `partitions` and a checkpoint every `checkpoint_interval` commits if it does not exist.
    /// `storage` holds object-store options (endpoint, credentials, retry limits) for `s3://` tables.
    pub async fn open(
        uri: &str,
        schema: &SchemaRef,
        partitions: &[&str],
        checkpoint_interval: u64,
        commit_retries: usize,
        storage: &HashMap<String, String>,
    ) -> Result<Self, Error> {
        let url = deltalake::ensure_table_uri(uri).map_err(|e| Error::delta(uri, e))?;
        let storage = if url.scheme().starts_with("s3") { storage.clone() } else { HashMap::new() };
        let mut table = DeltaTable::try_from_url_with_storage_options(url.clone(), storage.clone())
            .await
            .map_err(|e| Error::delta(uri, e))?;
        if table.version().is_none() {
            let columns: StructType = schema.as_ref().try_into_kernel().map_err(|e| Error::delta(uri, e.into()))?;
            let created = table
                .create()
                .with_columns(columns.fields().cloned())
                .with_partition_columns(partitions.iter().map(|p| p.to_string()))
                .with_configuration_property(TableProperty::CheckpointInterval, Some(checkpoint_interval.to_string()))
                .with_save_mode(SaveMode::Ignore)
                .await;
            // Another writer may have created it first: then load theirs.
            table = match created {
                Ok(t) => t,
                Err(_) => {
                    let mut t = DeltaTable::try_from_url_with_storage_options(url, storage.clone())
                        .await
                        .map_err(|e| Error::delta(uri, e))?;
                    t.load().await.map_err(|e| Error::delta(uri, e))?;
                    t
                }
            };
        }
        Ok(Self { uri: uri.to_owned(), table, storage, commit_retries, known: Mutex::default() })
    }

    /// The table's location as configured.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The loaded table, for readers and tests.
    pub fn table(&self) -> &DeltaTable {
        &self.table
    }

    /// Reloads the latest version from storage.
    pub async fn refresh(&mut self) -> Result<(), Error> {
        self.table.update_incremental(None).await.map_err(|e| Error::delta(&self.uri, e))
    }

    async fn txn_version(&self, app_id: String) -> Result<Option<i64>, Error> {
        let version = self.table.version();
        if let Some(v) = self.known.lock().expect("not poisoned").values_at(version, &app_id) {
            return Ok(v);
        }
        let state = self.table.snapshot().map_err(|e| Error::delta(&self.uri, e))?;
        let v = state
            .transaction_version(self.table.log_store().as_ref(), app_id.clone())
            .await
            .map_err(|e| Error::delta(&self.uri, e))?;
        self.known.lock().expect("not poisoned").at(version).insert(app_id, v);
        Ok(v)
    }

    /// The last Kafka offset committed for each `(topic, partition)` asked for.
    pub async fn recorded_offsets(&self, partitions: &[TopicPartition]) -> Result<PerPartition<i64>, Error> {
        let mut out = PerPartition::default();
        for tp in partitions {
            if let Some(v) = self.txn_version(app_id(tp)).await? {
                out.insert(tp.clone(), v);
            }
        }
        Ok(out)
    }

    /// The coverage of each `(topic, partition)` asked for that has any; the first offset is looked up
    /// only where `need_first(partition, last)` says so (each lookup replays the log).
    pub async fn coverage(
        &self,
        partitions: &[TopicPartition],
        need_first: impl Fn(&TopicPartition, i64) -> bool,
    ) -> Result<PerPartition<Coverage>, Error> {
        let mut out = PerPartition::default();
        for (key, last) in self.recorded_offsets(partitions).await? {
            let first = match need_first(&key, last) {
                true => Some(self.txn_version(first_app_id(&key)).await?.unwrap_or(0)),
                false => None,
            };
            out.insert(key, Coverage { first, last });
        }
        Ok(out)
    }

    /// Appends `batches` (any number, each may be empty) and records `coverage` in one commit; returns
    /// the new version. Each batch is flushed to its own files before the next is written, so a caller
    /// that splits rows by partition value (see `tables::partition_chunks`) bounds how many Parquet
    /// writers are open at once, whatever the number of partitions a commit touches.
    pub async fn append(&mut self, batches: Vec<RecordBatch>, coverage: &PerPartition<Coverage>) -> Result<i64, Error> {
        let err = |e| Error::delta(&self.uri, e);
        let now = Some(chrono::Utc::now().timestamp_millis());
        let mut txns = Vec::with_capacity(coverage.len() * 2);
        for (tp, c) in coverage {
            txns.push(Transaction::new_with_last_update(app_id(tp), c.last, now));
            if let Some(first) = c.first {
                txns.push(Transaction::new_with_last_update(first_app_id(tp), first, now));
            }
        }
        let written: Vec<(String, i64)> = txns.iter().map(|t| (t.app_id.clone(), t.version)).collect();
        let base = self.table.version();
        let props = CommitProperties::default().with_application_transactions(txns).with_max_retries(self.commit_retries);
        let snapshot = self.table.snapshot().map_err(err)?;
        let current: Schema = snapshot.schema().as_ref().try_into_arrow().map_err(|e| err(e.into()))?;
        let widened = batches.iter().find(|b| b.num_rows() > 0).and_then(|b| widen(&current, &b.schema()));
        let mut writer = match &widened {
            None => RecordBatchWriter::for_table(&self.table).map_err(err)?,
            Some(schema) => RecordBatchWriter::try_new(
                self.table.table_url().as_str(),
                Arc::clone(schema),
                Some(snapshot.metadata().partition_columns().to_vec()),
                Some(self.storage.clone()),
            )
            .map_err(err)?,
        };
        let mut adds = Vec::new();
        if let Some(schema) = &widened {
            let kernel: StructType = schema.as_ref().try_into_kernel().map_err(|e| err(e.into()))?;
            adds.push(Action::Metadata(snapshot.metadata().clone().with_schema(&kernel).map_err(|e| err(e.into()))?));
            tracing::info!(table = %self.uri, columns = kernel.fields().len(), "widening the table's schema");
        }
        for batch in batches.into_iter().filter(|b| b.num_rows() > 0) {
            writer.write(batch).await.map_err(err)?;
            adds.extend(writer.flush().await.map_err(err)?.into_iter().map(Action::Add));
        }
        let partition_by = Some(snapshot.metadata().partition_columns().to_vec()).filter(|c| !c.is_empty());
        let operation = DeltaOperation::Write { mode: SaveMode::Append, partition_by, predicate: None };
        let committed = CommitBuilder::from(props)
            .with_actions(adds)
            .build(Some(snapshot), self.table.log_store(), operation)
            .await
            .map_err(err)?;
        let version = committed.version();
        self.table.state = Some(committed.snapshot());
        // What was known before still holds only if this commit directly follows it (no other writer's
        // commit came between); what this commit wrote holds either way.
        let mut known = self.known.lock().expect("not poisoned");
        if base.map(|b| b + 1) != Some(version) {
            *known = KnownTxns::default();
        }
        let at = known.at(Some(version));
        at.extend(written.into_iter().map(|(id, v)| (id, Some(v))));
        Ok(version as i64)
    }

    /// Reads a small side object stored under the table root (e.g. dedup state); `None` if absent.
    pub async fn read_object(&self, path: &str) -> Result<Option<Vec<u8>>, Error> {
        match self.table.object_store().get(&Path::from(path)).await {
            Ok(r) => Ok(Some(r.bytes().await.map_err(|e| Error::storage(&self.uri, e))?.to_vec())),
            Err(deltalake::ObjectStoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(Error::storage(&self.uri, e)),
        }
    }

    /// Writes a side object under the table root.
    pub async fn write_object(&self, path: &str, bytes: Vec<u8>) -> Result<(), Error> {
        self.table.object_store().put(&Path::from(path), bytes.into()).await.map_err(|e| Error::storage(&self.uri, e))?;
        Ok(())
    }

    /// Deletes a side object; a missing one is fine.
    pub async fn delete_object(&self, path: &str) -> Result<(), Error> {
        match self.table.object_store().delete(&Path::from(path)).await {
            Ok(()) | Err(deltalake::ObjectStoreError::NotFound { .. }) => Ok(()),
            Err(e) => Err(Error::storage(&self.uri, e)),
        }
    }
}
