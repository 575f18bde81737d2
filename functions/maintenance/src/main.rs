//! The maintenance Lambda, on an EventBridge schedule: expires old quarantine rows, compacts small
//! files, checkpoints and vacuums the three tables, and returns what it did. All logic lives in
//! `tweetlake_pipeline::maintenance`; settings are validated before the runtime starts.

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::value::RawValue;
use std::sync::Arc;
use tweetlake_pipeline::maintenance::{MaintenanceReport, run};
use tweetlake_pipeline::{Error, MaintenanceConfig};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tracing_subscriber::fmt().json().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).without_time().init();
    let cfg = Arc::new(tweetlake_pipeline::error::or_exit(MaintenanceConfig::from_env(), "tweetlake-maintenance-function"));
    // The scheduled event carries nothing the run needs; any payload triggers one run.
    lambda_runtime::run(service_fn(move |_event: LambdaEvent<Box<RawValue>>| {
        let cfg = Arc::clone(&cfg);
        async move {
            let report = run(&cfg, chrono::Utc::now()).await?;
            tracing::info!(report = %serde_json::to_string(&report).unwrap_or_default(), "maintenance done");
            Ok::<MaintenanceReport, Error>(report)
        }
    }))
    .await
}
