//! SQL over the Delta tables on this machine (DataFusion), with the tables named as in the Glue catalog
//! (`tweetlake.tweets`, `tweetlake.quarantine`, `tweetlake.aggregates`), so the Athena example queries
//! in `infra/athena/` run unchanged against a local lake. Unqualified names resolve there too.

use deltalake::DeltaTable;
use deltalake::datafusion::catalog::MemorySchemaProvider;
use deltalake::datafusion::prelude::{SessionConfig, SessionContext};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// The schema (Glue database) the tables are registered under.
pub const SCHEMA: &str = "tweetlake";

async fn open(uri: &str, storage: &HashMap<String, String>) -> anyhow::Result<DeltaTable> {
    let url = deltalake::ensure_table_uri(uri)?;
    let storage = if url.scheme().starts_with("s3") { storage.clone() } else { HashMap::new() };
    Ok(DeltaTable::try_from_url_with_storage_options(url, storage).await?)
}

/// A session with each `(name, table URI)` registered as `tweetlake.{name}`; `storage` holds the
/// object-store options for `s3://` tables.
pub async fn session(tables: &[(&str, &str)], storage: &HashMap<String, String>) -> anyhow::Result<SessionContext> {
    let mut opened = Vec::with_capacity(tables.len());
    for (name, uri) in tables {
        opened.push((*name, open(uri, storage).await.map_err(|e| anyhow::anyhow!("{name} table at {uri}: {e}"))?));
    }
    session_of(&opened.iter().map(|(n, t)| (*n, t)).collect::<Vec<_>>()).await
}

/// A session with each `(name, table)` already opened registered as `tweetlake.{name}`.
pub async fn session_of(tables: &[(&str, &DeltaTable)]) -> anyhow::Result<SessionContext> {
    let config = SessionConfig::new().with_default_catalog_and_schema("datafusion", SCHEMA);
    let ctx = SessionContext::new_with_config(config);
    let catalog = ctx.catalog("datafusion").ok_or_else(|| anyhow::anyhow!("DataFusion's default catalog is missing"))?;
    catalog.register_schema(SCHEMA, Arc::new(MemorySchemaProvider::new()))?;
    for (name, table) in tables {
        table.update_datafusion_session(&ctx.state())?;
        ctx.register_table(format!("{SCHEMA}.{name}").as_str(), table.table_provider().await?)?;
    }
    Ok(ctx)
}

/// Runs `sql` and returns its rows as JSON objects.
pub async fn rows(ctx: &SessionContext, sql: &str) -> anyhow::Result<Vec<Value>> {
    let batches = ctx.sql(sql).await?.collect().await?;
    let mut w = deltalake::arrow::json::ArrayWriter::new(Vec::new());
    for b in &batches {
        w.write(b)?;
    }
    w.finish()?;
    let bytes = w.into_inner();
    Ok(if bytes.is_empty() { Vec::new() } else { serde_json::from_slice(&bytes)? })
}
