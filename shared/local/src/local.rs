//! `tweetlake local`: the whole pipeline on one machine — recorded (or live) tweets → ingest →
//! the local Kafka broker → the event-source-mapping emulator → the process function → Delta
//! tables — then a summary and the HTML report.

use crate::esm::{EsmProgress, EsmSettings, deliver, end_offsets};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tweetlake_ingest::kafka::{KafkaSettings, TopicStatus, create_topic};
use tweetlake_ingest::{Ingest, IngestConfig};

/// Options of a local run; `lookup` supplies every function setting (the CLI maps flags onto it).
pub struct LocalOptions {
    /// The broker, the topic (created with `partitions` if missing) and how batches are cut.
    pub esm: EsmSettings,
    /// Partitions of a new topic.
    pub partitions: i32,
    /// Where to write the HTML report.
    pub report: PathBuf,
    /// Show progress bars (a terminal) or one line per batch (logs, tests).
    pub bars: bool,
}

/// What landed, printed at the end.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LocalSummary {
    /// The ingest run's report.
    pub ingest: serde_json::Value,
    /// The emulator's totals.
    pub delivered: EsmProgress,
    /// Rows now in the tweets table.
    pub tweets_in_table: u64,
    /// Rows now in the quarantine table.
    pub quarantined_in_table: u64,
    /// Per rule: tweets, and the mean sentiment score of its scored tweets that are not retweets.
    pub sentiment_per_rule: BTreeMap<String, (u64, f64)>,
    /// Per label: tweets.
    pub labels: BTreeMap<String, u64>,
    /// The report's path.
    pub report: PathBuf,
    /// Whether Ctrl-C stopped the run early.
    pub interrupted: bool,
}

/// Runs the job. `lookup` reads the ingest and process settings.
pub async fn run(opts: LocalOptions, lookup: impl Fn(&str) -> Option<String> + Clone) -> anyhow::Result<LocalSummary> {
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("\nstopping after the current batch (Ctrl-C again to abort)");
                stop.store(true, Ordering::SeqCst);
                let _ = tokio::signal::ctrl_c().await;
                std::process::exit(130);
            }
        });
    }
    let kafka = KafkaSettings::plaintext(&opts.esm.bootstrap);
    // An existing topic is read from metadata; the Admin API is only needed to create one.
    match end_offsets(&opts.esm.bootstrap, &opts.esm.topic) {
        Ok(parts) => eprintln!("topic {} exists with {} partitions", opts.esm.topic, parts.len()),
        Err(_) => match create_topic(&kafka, &opts.esm.topic, opts.partitions, 1).await? {
            TopicStatus::Created { partitions, .. } => eprintln!("topic {} created with {partitions} partitions", opts.esm.topic),
            TopicStatus::Exists { partitions } => eprintln!("topic {} exists with {partitions} partitions", opts.esm.topic),
        },
    }

    // Both functions start (settings checked, sources and tables opened or created) before either
    // runs; they start at the same time, as two functions would.
    let icfg = IngestConfig::from_lookup(lookup.clone())?;
    let pcfg = tweetlake_pipeline::ProcessConfig::from_lookup(lookup.clone())?;
    let tables = pcfg.tables.clone();
    let starting = tokio::spawn(Ingest::from_config(icfg));
    let processor = Arc::new(tweetlake_pipeline::Processor::new(pcfg).await?);
    let ingest = starting.await??;

    // 1. Ingest: one run of the ingest function's code, into the topic; 2. meanwhile, as the event
    // source mapping polls while messages arrive, the emulator delivers the topic to the process
    // function from where the table is, until it reaches the end the ingest run left.
    let producing = Arc::new(AtomicBool::new(true));
    let ingesting = {
        let producing = Arc::clone(&producing);
        tokio::spawn(async move {
            let report = ingest.run(chrono::Utc::now() + chrono::Duration::minutes(10)).await;
            producing.store(false, Ordering::SeqCst);
            report
        })
    };
    let delivered = deliver(opts.esm.clone(), None, processor, opts.bars, Arc::clone(&stop), Some(producing)).await;
    let report = ingesting.await??;
    eprintln!(
        "ingest ({}): {} tweets fetched, {} messages acknowledged by the broker",
        report.source, report.tweets, report.produced.messages
    );
    let ingest_report = serde_json::to_value(&report)?;
    let progress = delivered?;

    // 3. What landed, and the report.
    let data = crate::report::read(&tables).await?;
    if let Some(dir) = opts.report.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&opts.report, crate::report::html(&data, "Tweetlake local run"))?;
    let sentiment_per_rule = data
        .per_rule
        .iter()
        .map(|(rule, hours)| {
            let n: u64 = hours.iter().map(|h| h.1).sum();
            let scored: u64 = hours.iter().map(|h| h.2).sum();
            let mean = hours.iter().map(|h| h.2 as f64 * h.3).sum::<f64>() / scored.max(1) as f64;
            (rule.clone(), (n, mean))
        })
        .collect();
    Ok(LocalSummary {
        ingest: ingest_report,
        delivered: progress,
        tweets_in_table: data.tweets,
        quarantined_in_table: data.quarantined,
        sentiment_per_rule,
        labels: data.labels,
        report: opts.report,
        interrupted: stop.load(Ordering::SeqCst),
    })
}
