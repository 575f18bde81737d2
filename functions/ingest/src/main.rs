//! The ingest Lambda: an EventBridge scheduled event in, one ingest run (X API → Kafka, then the
//! watermarks), a JSON report out. All logic lives in the `tweetlake-ingest` crate.
//!
//! Settings, rules and credentials are validated before the runtime starts, so a bad configuration
//! fails the cold start with a message naming the variable instead of failing every invocation.

use lambda_runtime::{LambdaEvent, service_fn};
use std::sync::Arc;
use tweetlake_ingest::{Error, Ingest, IngestConfig, RunReport};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tracing_subscriber::fmt().json().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).without_time().init();
    let ingest = Arc::new(Ingest::from_config(IngestConfig::from_env()?).await?);
    tracing::info!("ingest function ready");
    // The scheduled event carries nothing the run needs; its deadline comes from the invocation.
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let ingest = Arc::clone(&ingest);
        async move {
            let deadline = tweetlake_ingest::run::deadline_from_epoch_ms(event.context.deadline);
            Ok::<RunReport, Error>(ingest.run(deadline).await?)
        }
    }))
    .await
}
