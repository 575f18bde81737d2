//! The Delta sink: appends a batch and the per-partition Kafka offsets in one commit, exactly once.
//!
//! The offsets are Delta application transactions (`txn`, app id `tweetlake:{topic}:{partition}`), the
//! mechanism kafka-delta-ingest uses: a reader of the table sees rows and offsets change together, and
//! a redelivered batch finds its offsets already recorded. Concurrent writers for other partitions
//! only append, so delta-rs rebases and retries their commits instead of losing one.

use crate::error::Error;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::{StructType, Transaction};
use deltalake::logstore::object_store::ObjectStoreExt;
use deltalake::protocol::SaveMode;
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use deltalake::{DeltaTable, DeltaTableError, Path, TableProperty};
use std::collections::{BTreeMap, HashMap};

/// Application-transaction id of one Kafka topic-partition.
pub fn app_id(topic: &str, partition: i32) -> String {
    format!("tweetlake:{topic}:{partition}")
}

/// The offset `offsets` holds for one topic-partition, looked up without building an owned key (a
/// batch spans a handful of partitions, so a scan beats allocating a `String` per row).
pub fn offset_of(offsets: &BTreeMap<(String, i32), i64>, topic: &str, partition: i32) -> Option<i64> {
    offsets.iter().find(|((t, p), _)| *p == partition && t == topic).map(|(_, o)| *o)
}

/// One Delta table that the process function appends to.
pub struct DeltaSink {
    uri: String,
    table: DeltaTable,
    commit_retries: usize,
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
                    let mut t =
                        DeltaTable::try_from_url_with_storage_options(url, storage).await.map_err(|e| Error::delta(uri, e))?;
                    t.load().await.map_err(|e| Error::delta(uri, e))?;
                    t
                }
            };
        }
        Ok(Self { uri: uri.to_owned(), table, commit_retries })
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

    /// The last Kafka offset committed for each `(topic, partition)` asked for.
    pub async fn recorded_offsets(&self, partitions: &[(String, i32)]) -> Result<BTreeMap<(String, i32), i64>, Error> {
        let state = self.table.snapshot().map_err(|e| Error::delta(&self.uri, e))?;
        let mut out = BTreeMap::new();
        for (topic, partition) in partitions {
            let v = state
                .transaction_version(self.table.log_store().as_ref(), app_id(topic, *partition))
                .await
                .map_err(|e| Error::delta(&self.uri, e))?;
            if let Some(v) = v {
                out.insert((topic.clone(), *partition), v);
            }
        }
        Ok(out)
    }

    /// Appends `batch` (may be empty) and records `offsets` in one commit; returns the new version.
    pub async fn append(&mut self, batch: RecordBatch, offsets: &BTreeMap<(String, i32), i64>) -> Result<i64, Error> {
        let txns: Vec<Transaction> = offsets
            .iter()
            .map(|((t, p), o)| Transaction::new_with_last_update(app_id(t, *p), *o, Some(chrono::Utc::now().timestamp_millis())))
            .collect();
        let props = CommitProperties::default().with_application_transactions(txns).with_max_retries(self.commit_retries);
        let mut writer =
            RecordBatchWriter::for_table(&self.table).map_err(|e| Error::delta(&self.uri, e))?.with_commit_properties(props);
        if batch.num_rows() > 0 {
            writer.write(batch).await.map_err(|e| Error::delta(&self.uri, e))?;
        }
        let version = writer.flush_and_commit(&mut self.table).await.map_err(|e| Error::delta(&self.uri, e))?;
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

/// True for errors that another attempt may not hit (conflicts, storage trouble).
pub fn is_transient(e: &DeltaTableError) -> bool {
    !matches!(e, DeltaTableError::InvalidTableLocation(_) | DeltaTableError::NotATable(_) | DeltaTableError::Arrow { .. })
}
