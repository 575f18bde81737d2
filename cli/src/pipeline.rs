//! The pipeline commands: run the ingest, process and maintenance functions and the event source
//! mapping locally, report on and query the tables, manage the topic. Each reads the same settings as
//! the Lambda functions; a flag stands for the variable it names.

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use tweetlake_contract::{Overrides, vars};
use tweetlake_pipeline::config::TableLocations;

/// Commands that run the pipeline.
#[derive(Subcommand)]
pub enum Command {
    /// Run the process function's pipeline on Lambda Kafka event files, in order, like the Lambda does.
    ///
    /// Settings come from the same environment variables as the Lambda (TWEETLAKE_TABLE_URI, …); the
    /// flags below override the table locations. Prints one JSON summary per event.
    Process {
        /// Event JSON files (MSK or self-managed Kafka), processed in the order given.
        #[arg(long = "event", required = true)]
        events: Vec<PathBuf>,
        #[command(flatten)]
        tables: TableArgs,
    },
    /// Replay batches the event source mapping gave up on (from its on-failure destination), or the
    /// records a quality rule quarantined once the rule is fixed, through the process function's
    /// pipeline, each once: a second redrive of the same records changes nothing.
    ///
    /// A batch file is a Lambda Kafka event or an on-failure record holding one under `payload` (copy it
    /// from the failed-batches bucket with `aws s3 cp`). Prints one JSON summary per redrive.
    Redrive {
        /// Failed-batch JSON files, redriven in the order given.
        #[arg(long = "batch", required_unless_present = "quarantined")]
        batches: Vec<PathBuf>,
        /// Redrive every record the quarantine table holds for this rule (e.g. `text_length`).
        #[arg(long, conflicts_with = "batches")]
        quarantined: Option<String>,
        #[command(flatten)]
        tables: TableArgs,
    },
    /// Run the maintenance function once: expire old quarantine rows, compact, checkpoint, vacuum.
    ///
    /// Settings come from the same environment variables as the Lambda (TWEETLAKE_VACUUM_RETENTION_HOURS,
    /// …); prints the JSON report.
    Maintain {
        #[command(flatten)]
        tables: TableArgs,
    },
    /// Run the compliance step once: check the post ids the tables hold with an X batch compliance job
    /// and remove every post X reports (deleted, protected, suspended, deactivated) from the tables,
    /// correcting the aggregates; a job X has not finished in TWEETLAKE_COMPLIANCE_WAIT_SECS is resumed
    /// by the next run.
    ///
    /// Settings come from the same environment variables as the maintenance Lambda
    /// (TWEETLAKE_X_BEARER_TOKEN, TWEETLAKE_COMPLIANCE_SCOPE, …); prints the JSON report.
    Comply {
        #[command(flatten)]
        tables: TableArgs,
    },
    /// Run the ingest function once: X API (or recorded responses) → Kafka, then the watermarks.
    ///
    /// Settings come from the same environment variables as the Lambda (TWEETLAKE_RULES, …); the flags
    /// below override them. Prints the JSON run report.
    Ingest(IngestArgs),
    /// The whole pipeline locally: recorded tweets (or the live API) → ingest → the local broker → the
    /// event-source-mapping emulator → the process function → Delta tables, then a summary and an
    /// HTML report.
    ///
    /// Defaults: the bundled recorded pages (events/x-api/, one rule per file), the broker on
    /// 127.0.0.1:9092, tables under ./lake/. With TWEETLAKE_X_BEARER_TOKEN and TWEETLAKE_RULES set (and no
    /// --replay) it reads the live X API instead. Restartable: it resumes from the offsets the table
    /// records. Ctrl-C stops after the current batch.
    Local(LocalArgs),
    /// Run the event-source-mapping emulator on its own: deliver the topic's records (every partition,
    /// or those of --partitions) to the process function, from the offsets the tweets table records
    /// to the topic's end as it is at start, committing the consumer group's offsets after each
    /// successful batch. Several may run at once on different partitions, like the mapping's pollers.
    /// Settings come from the same environment variables as the Lambda; prints the JSON totals.
    Deliver(DeliverArgs),
    /// Write the HTML report of a tweets table and its quarantine table.
    Report {
        #[command(flatten)]
        tables: TableArgs,
        /// Output file.
        #[arg(long, default_value = "lake/report.html")]
        out: PathBuf,
    },
    /// Run SQL over the three tables, named as in the Glue catalog (`tweetlake.tweets`, …), so the
    /// Athena example queries in infra/athena/ run unchanged on a local lake. Prints one JSON row per line.
    Query {
        #[command(flatten)]
        tables: TableArgs,
        /// The SQL text.
        #[arg(long, conflicts_with = "file", required_unless_present = "file")]
        sql: Option<String>,
        /// A file holding the SQL (e.g. infra/athena/top_hashtags.sql).
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Manage the Kafka topic.
    #[command(subcommand)]
    Topic(TopicCommand),
}

/// The table locations, shared by the pipeline commands.
#[derive(Args)]
pub struct TableArgs {
    /// Tweets table (local path or s3:// URL).
    #[arg(long, env = vars::TABLE_URI)]
    table: String,
    /// Quarantine table (local path or s3:// URL).
    #[arg(long, env = vars::QUARANTINE_URI)]
    quarantine: String,
    /// Aggregates table (default: the tweets table's location with `_aggregates` appended).
    #[arg(long, env = vars::AGGREGATES_URI)]
    aggregates: Option<String>,
}

impl TableArgs {
    /// The process environment with these flags in place of the table variables.
    fn overrides(&self) -> Overrides {
        Overrides::new()
            .set(vars::TABLE_URI, Some(&self.table))
            .set(vars::QUARANTINE_URI, Some(&self.quarantine))
            .set(vars::AGGREGATES_URI, self.aggregates.as_ref())
    }

    /// The tables, read and checked as the functions read them.
    fn locations(&self) -> Result<TableLocations> {
        Ok(TableLocations::from_lookup(self.overrides().lookup())?)
    }
}

/// Flags of `tweetlake ingest`; each one stands for the environment variable of the same setting.
#[derive(Args)]
pub struct IngestArgs {
    /// A rules file (`tag: query` lines or a JSON array); replaces inline TWEETLAKE_RULES.
    #[arg(long)]
    rules_file: Option<PathBuf>,
    /// Recorded X API responses to replay instead of calling the API.
    #[arg(long, env = vars::REPLAY_PATH)]
    replay: Option<PathBuf>,
    /// `recent_search` or `filtered_stream`.
    #[arg(long, env = vars::INGEST_MODE)]
    mode: Option<String>,
    /// Kafka bootstrap servers.
    #[arg(long, env = vars::KAFKA_BOOTSTRAP)]
    bootstrap: Option<String>,
    /// Topic.
    #[arg(long, env = vars::TOPIC)]
    topic: Option<String>,
    /// Watermark object: s3://bucket/key or a local file.
    #[arg(long, env = vars::WATERMARK_URI)]
    watermarks: Option<String>,
    /// Time limit of the run in seconds, like a Lambda timeout.
    #[arg(long, default_value_t = 300)]
    timeout_secs: u64,
}

impl IngestArgs {
    fn overrides(&self) -> Overrides {
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        Overrides::new()
            .set(vars::RULES_FILE, path(&self.rules_file))
            .hide(vars::RULES, self.rules_file.is_some())
            .set(vars::REPLAY_PATH, path(&self.replay))
            .set(vars::INGEST_MODE, self.mode.as_ref())
            .set(vars::KAFKA_BOOTSTRAP, self.bootstrap.as_ref())
            .set(vars::TOPIC, self.topic.as_ref())
            .set(vars::WATERMARK_URI, self.watermarks.as_ref())
    }
}

/// The broker, topic and batching flags of the commands that run the event-source-mapping emulator.
#[derive(Args)]
pub struct EsmArgs {
    /// Kafka bootstrap servers.
    #[arg(long, env = vars::KAFKA_BOOTSTRAP, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// Topic (`tweetlake local` creates it if missing).
    #[arg(long, env = vars::TOPIC, default_value = "tweets")]
    topic: String,
    /// Records per process invocation (Lambda's BatchSize).
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
    /// Batching window in milliseconds.
    #[arg(long, default_value_t = 500)]
    window_ms: u64,
    /// One log line per batch instead of progress bars.
    #[arg(long)]
    no_progress: bool,
}

impl EsmArgs {
    /// The emulator's settings, committing the offsets of `group`.
    fn settings(&self, group: &str) -> tweetlake_local::esm::EsmSettings {
        let window = std::time::Duration::from_millis(self.window_ms);
        tweetlake_local::esm::EsmSettings::new(&self.bootstrap, &self.topic, self.batch_size, window, group)
    }

    /// Progress bars on a terminal unless --no-progress; otherwise a line per batch.
    fn bars(&self) -> bool {
        use std::io::IsTerminal;
        !self.no_progress && std::io::stderr().is_terminal()
    }
}

/// Flags of `tweetlake local`.
#[derive(Args)]
pub struct LocalArgs {
    /// Recorded responses to replay; default: the bundled sample, unless a bearer token is set.
    #[arg(long)]
    replay: Option<PathBuf>,
    /// Partitions of a new topic.
    #[arg(long, default_value_t = 3)]
    partitions: i32,
    /// Folder for the tables, the watermarks and the report (tables may be put on S3 with the
    /// TWEETLAKE_TABLE_URI / TWEETLAKE_QUARANTINE_URI variables instead).
    #[arg(long, default_value = "lake")]
    dir: PathBuf,
    #[command(flatten)]
    esm: EsmArgs,
}

/// Flags of `tweetlake deliver`.
#[derive(Args)]
pub struct DeliverArgs {
    /// Partitions to deliver, comma-separated (default: all).
    #[arg(long, value_delimiter = ',')]
    partitions: Option<Vec<i32>>,
    /// Consumer group whose offsets are committed after each successful batch.
    #[arg(long, default_value = tweetlake_local::esm::DEFAULT_GROUP)]
    group: String,
    #[command(flatten)]
    esm: EsmArgs,
    #[command(flatten)]
    tables: TableArgs,
}

/// `tweetlake topic …`.
#[derive(Subcommand)]
pub enum TopicCommand {
    /// Create the topic through the Kafka Admin API; reports an existing topic instead of failing.
    Create {
        /// Topic name.
        #[arg(env = vars::TOPIC, default_value = "tweets")]
        name: String,
        /// Partitions (parallelism of the process function: one concurrent batch per partition).
        #[arg(long, default_value_t = 3)]
        partitions: i32,
        /// Replication factor (3 on a production MSK cluster, 1 on the local broker).
        #[arg(long, default_value_t = 1)]
        replication_factor: i32,
        /// Bootstrap servers.
        #[arg(long, env = vars::KAFKA_BOOTSTRAP)]
        bootstrap: String,
    },
}

/// Runs a pipeline command.
pub async fn run(command: Command) -> Result<()> {
    match command {
        Command::Process { events, tables } => run_process(events, tables, false).await,
        Command::Redrive { quarantined: Some(rule), tables, .. } => {
            let cfg = tweetlake_pipeline::ProcessConfig::from_lookup(tables.overrides().lookup())?;
            let t = cfg.tables.clone();
            let records = tweetlake_local::redrive::quarantined(&t.quarantine, &t.storage_options, &rule).await?;
            if records.is_empty() {
                bail!("--quarantined {rule}: the quarantine table holds no record of that rule");
            }
            let summary = tweetlake_pipeline::Processor::new(cfg).await?.redrive_quarantined(records).await?;
            println!("{}", serde_json::to_string(&summary)?);
            Ok(())
        }
        Command::Redrive { batches, tables, .. } => run_process(batches, tables, true).await,
        Command::Maintain { tables } => {
            let cfg = tweetlake_pipeline::MaintenanceConfig::from_lookup(tables.overrides().lookup())?;
            let report = tweetlake_pipeline::maintenance::run(&cfg, chrono::Utc::now()).await?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        Command::Comply { tables } => {
            let cfg = tweetlake_compliance::ComplianceConfig::from_lookup(tables.overrides().lookup())?;
            let report = tweetlake_compliance::run_once(&cfg).await?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        Command::Ingest(a) => {
            let cfg = tweetlake_ingest::IngestConfig::from_lookup(a.overrides().lookup())?;
            let ingest = tweetlake_ingest::Ingest::from_config(cfg).await?;
            let report = ingest.run(chrono::Utc::now() + chrono::Duration::seconds(a.timeout_secs as i64)).await?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        Command::Local(a) => run_local(a).await,
        Command::Deliver(a) => {
            let cfg = tweetlake_pipeline::ProcessConfig::from_lookup(a.tables.overrides().lookup())?;
            let processor = std::sync::Arc::new(tweetlake_pipeline::Processor::new(cfg).await?);
            let (settings, bars) = (a.esm.settings(&a.group), a.esm.bars());
            let progress =
                tweetlake_local::esm::deliver(settings, a.partitions.as_deref(), processor, bars, Default::default(), None)
                    .await?;
            println!("{}", serde_json::to_string(&progress)?);
            Ok(())
        }
        Command::Report { tables, out } => {
            let data = tweetlake_local::report::read(&tables.locations()?).await?;
            if let Some(d) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(d)?;
            }
            std::fs::write(&out, tweetlake_local::report::html(&data, "Tweetlake report"))?;
            eprintln!("report written to {}", out.display());
            Ok(())
        }
        Command::Query { tables, sql, file } => {
            let sql = match (sql, file) {
                (Some(s), _) => s,
                (None, Some(f)) => std::fs::read_to_string(&f).with_context(|| format!("--file {}", f.display()))?,
                (None, None) => unreachable!("clap requires --sql or --file"),
            };
            let t = tables.locations()?;
            let ctx = tweetlake_local::query::session(&t.named(), &t.storage_options).await?;
            for row in tweetlake_local::query::rows(&ctx, &sql).await? {
                println!("{row}");
            }
            Ok(())
        }
        Command::Topic(TopicCommand::Create { name, partitions, replication_factor, bootstrap }) => {
            let settings = tweetlake_ingest::kafka::KafkaSettings::plaintext(&bootstrap);
            let status = tweetlake_ingest::kafka::create_topic(&settings, &name, partitions, replication_factor).await?;
            match &status {
                tweetlake_ingest::kafka::TopicStatus::Created { .. } => eprintln!("topic {name} created"),
                tweetlake_ingest::kafka::TopicStatus::Exists { partitions } => {
                    eprintln!("topic {name} already exists with {partitions} partitions; left as it is")
                }
            }
            println!("{}", serde_json::to_string(&status)?);
            Ok(())
        }
    }
}

/// Processes (or, with `redrive`, redrives) each event file in order, printing one JSON summary each.
async fn run_process(events: Vec<PathBuf>, tables: TableArgs, redrive: bool) -> Result<()> {
    let cfg = tweetlake_pipeline::ProcessConfig::from_lookup(tables.overrides().lookup())?;
    let processor = tweetlake_pipeline::Processor::new(cfg).await?;
    let flag = if redrive { "--batch" } else { "--event" };
    for path in events {
        let payload = std::fs::read(&path).with_context(|| format!("reading {flag} {}", path.display()))?;
        let summary = match redrive {
            true => processor.redrive(&payload).await.map(|s| serde_json::to_value(s).expect("serialisable")),
            false => processor.process_event(payload).await.map(|s| serde_json::to_value(s).expect("serialisable")),
        };
        let summary = summary.map_err(|e| {
            let kind = match e.is_retryable() {
                true => "retryable: running the same event again may succeed",
                false => "not retryable: the event or a setting must change first",
            };
            anyhow::anyhow!("processing {}: {e} ({kind})", path.display())
        })?;
        println!("{summary}");
    }
    Ok(())
}

async fn run_local(a: LocalArgs) -> Result<()> {
    let live = a.replay.is_none() && std::env::var(vars::X_BEARER_TOKEN).is_ok_and(|t| !t.is_empty());
    let replay = a.replay.clone().unwrap_or_else(|| PathBuf::from("events/x-api"));
    let dir = a.dir.display().to_string();
    let settings = Overrides::new()
        .set(vars::KAFKA_BOOTSTRAP, Some(&a.esm.bootstrap))
        .set(vars::TOPIC, Some(&a.esm.topic))
        .set(vars::REPLAY_PATH, (!live).then(|| replay.display()))
        .fallback(vars::TABLE_URI, format!("{dir}/tweets"))
        .fallback(vars::QUARANTINE_URI, format!("{dir}/quarantine"))
        .fallback(vars::WATERMARK_URI, format!("{dir}/ingest-watermarks.json"))
        // The bundled sample answers these two rules (events/x-api/brexit.json, kpop.json).
        .fallback(vars::RULES, "brexit: #brexit\nkpop: #kpop");
    let opts = tweetlake_local::local::LocalOptions {
        esm: a.esm.settings(tweetlake_local::esm::DEFAULT_GROUP),
        partitions: a.partitions,
        report: a.dir.join("report.html"),
        bars: a.esm.bars(),
    };
    let s = tweetlake_local::local::run(opts, settings.lookup()).await?;
    eprintln!("\n== what landed");
    eprintln!(
        "tweets table: {} rows ({} written by this run); quarantine: {} rows",
        s.tweets_in_table, s.delivered.rows_written, s.quarantined_in_table
    );
    eprintln!(
        "duplicates skipped: {}; quarantined by this run per rule: {:?}",
        s.delivered.duplicates_skipped, s.delivered.quarantined
    );
    for (rule, (n, mean)) in &s.sentiment_per_rule {
        eprintln!("rule {rule:>12}: {n:>6} tweets, mean sentiment {mean:.3}");
    }
    eprintln!("labels: {:?}", s.labels);
    eprintln!("report: file://{}", std::fs::canonicalize(&s.report).unwrap_or(s.report.clone()).display());
    println!("{}", serde_json::to_string(&s)?);
    if s.interrupted {
        bail!("interrupted; run it again to resume where it stopped");
    }
    Ok(())
}
