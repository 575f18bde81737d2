//! The maintenance Lambda, on two EventBridge schedules: the maintenance one expires old quarantine
//! rows, compacts small files, checkpoints and vacuums the three tables; the compliance one
//! (`{"tweetlake_step": "compliance"}`) removes the posts X's compliance jobs report. All logic lives in
//! `tweetlake_pipeline::maintenance` and `tweetlake_compliance`; settings are validated before the
//! runtime starts.

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use std::sync::Arc;
use tweetlake_compliance::{ComplianceConfig, Error};
use tweetlake_pipeline::MaintenanceConfig;
use tweetlake_pipeline::maintenance::run;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const NAME: &str = "tweetlake-maintenance-function";

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tracing_subscriber::fmt().json().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).without_time().init();
    let cfg = Arc::new(tweetlake_pipeline::error::or_exit(MaintenanceConfig::from_env(), NAME));
    // Without an X token there is no compliance step; with one, its settings must be valid at start.
    let env = |k: &str| std::env::var(k).ok();
    let comply = ComplianceConfig::configured(&env)
        .then(|| Arc::new(tweetlake_pipeline::error::or_exit(ComplianceConfig::from_env(), NAME)));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let (cfg, comply) = (Arc::clone(&cfg), comply.clone());
        async move {
            if event.payload.get("tweetlake_step").and_then(Value::as_str) == Some("compliance") {
                let Some(c) = comply else { return Err(ComplianceConfig::missing()) };
                let report = tweetlake_compliance::run_once(&c).await?;
                for line in report.metric_lines(chrono::Utc::now().timestamp_millis()) {
                    println!("{line}");
                }
                return Ok(serde_json::to_value(report).expect("serializes"));
            }
            // The scheduled event carries nothing else the run needs; any other payload runs maintenance.
            let report = run(&cfg, chrono::Utc::now()).await?;
            tracing::info!(report = %serde_json::to_string(&report).unwrap_or_default(), "maintenance done");
            Ok::<Value, Error>(serde_json::to_value(report).expect("serializes"))
        }
    }))
    .await
}
