//! The maintenance Lambda, on an EventBridge schedule: expires old quarantine rows, compacts small
//! files, checkpoints and vacuums the three tables, and returns what it did. All logic lives in
//! `tweetlake::maintenance`; settings are validated before the runtime starts.

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::value::RawValue;
use std::sync::Arc;
use tweetlake::maintenance::{MaintenanceReport, run};
use tweetlake::{Error, MaintenanceConfig};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A failed run as Lambda reports it, typed like the process function's errors.
#[derive(Debug)]
struct Failure(Error);

impl From<Failure> for Diagnostic {
    fn from(f: Failure) -> Self {
        let kind = if f.0.is_retryable() { "Retryable" } else { "NonRetryable" };
        Diagnostic { error_type: format!("Tweetlake.{kind}"), error_message: f.0.to_string() }
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tracing_subscriber::fmt().json().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).without_time().init();
    let cfg = Arc::new(MaintenanceConfig::from_env()?);
    // The scheduled event carries nothing the run needs; any payload triggers one run.
    lambda_runtime::run(service_fn(move |_event: LambdaEvent<Box<RawValue>>| {
        let cfg = Arc::clone(&cfg);
        async move {
            let report = run(&cfg, chrono::Utc::now()).await.map_err(Failure)?;
            tracing::info!(report = %serde_json::to_string(&report).unwrap_or_default(), "maintenance done");
            Ok::<MaintenanceReport, Failure>(report)
        }
    }))
    .await
}
