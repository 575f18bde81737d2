//! `tweetlake`: train, evaluate and score the sentiment model; run the ingest, process and maintenance
//! functions locally; manage the topic.

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;
use tweetlake_sentiment::eval::{evaluate, read_manual_test};
use tweetlake_sentiment::train::{TrainConfig, Trainer, train};
use tweetlake_sentiment::{FeatureConfig, Model};

// The Lambda binaries' allocator, so `tweetlake process` runs the pipeline as the function does.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Tweetlake's local tool.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train the sentiment model on Sentiment140-style `label,text` CSV files.
    Train(TrainArgs),
    /// Evaluate a model on the Sentiment140 manual test set (6-column CSV).
    Eval {
        /// Model file.
        #[arg(long, env = "TWEETLAKE_MODEL_PATH", default_value = "models/sentiment.twlk")]
        model: PathBuf,
        /// The human-labelled test CSV.
        #[arg(long, default_value = "tests/data/testdata.manual.2009.06.14.csv")]
        test: PathBuf,
        /// Override the model's neutral band.
        #[arg(long, env = "TWEETLAKE_NEUTRAL_BAND")]
        neutral_band: Option<f32>,
    },
    #[cfg(feature = "pipeline")]
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
    #[cfg(feature = "pipeline")]
    /// Run the maintenance function once: expire old quarantine rows, compact, checkpoint, vacuum.
    ///
    /// Settings come from the same environment variables as the Lambda (TWEETLAKE_VACUUM_RETENTION_HOURS,
    /// …); prints the JSON report.
    Maintain {
        #[command(flatten)]
        tables: TableArgs,
    },
    #[cfg(feature = "pipeline")]
    /// Run the ingest function once: X API (or recorded responses) → Kafka, then the watermarks.
    ///
    /// Settings come from the same environment variables as the Lambda (TWEETLAKE_RULES, …); the flags
    /// below override them. Prints the JSON run report.
    Ingest(IngestArgs),
    #[cfg(feature = "pipeline")]
    /// The whole pipeline locally: recorded tweets (or the live API) → ingest → the local broker → the
    /// event-source-mapping emulator → the process function → Delta tables, then a summary and an
    /// HTML report.
    ///
    /// Defaults: the bundled recorded pages (events/x-api/, one rule per file), the broker on
    /// 127.0.0.1:9092, tables under ./lake/. With TWEETLAKE_X_BEARER_TOKEN and TWEETLAKE_RULES set (and no
    /// --replay) it reads the live X API instead. Restartable: it resumes from the offsets the table
    /// records. Ctrl-C stops after the current batch.
    Local(LocalArgs),
    #[cfg(feature = "pipeline")]
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
    #[cfg(feature = "pipeline")]
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
    #[cfg(feature = "pipeline")]
    /// Manage the Kafka topic.
    #[command(subcommand)]
    Topic(TopicCommand),
    /// Score one text per stdin line; write one JSON line `{"label","score"}` per input.
    Score {
        /// Model file.
        #[arg(long, env = "TWEETLAKE_MODEL_PATH", default_value = "models/sentiment.twlk")]
        model: PathBuf,
        /// Override the model's neutral band (probabilities within 0.5 ± band are neutral).
        #[arg(long, env = "TWEETLAKE_NEUTRAL_BAND")]
        neutral_band: Option<f32>,
    },
}

/// The table locations, shared by the pipeline commands.
#[cfg(feature = "pipeline")]
#[derive(Args)]
struct TableArgs {
    /// Tweets table (local path or s3:// URL).
    #[arg(long, env = "TWEETLAKE_TABLE_URI")]
    table: String,
    /// Quarantine table (local path or s3:// URL).
    #[arg(long, env = "TWEETLAKE_QUARANTINE_URI")]
    quarantine: String,
    /// Aggregates table (default: the tweets table's location with `_aggregates` appended).
    #[arg(long, env = "TWEETLAKE_AGGREGATES_URI")]
    aggregates: Option<String>,
}

#[cfg(feature = "pipeline")]
impl TableArgs {
    /// The process environment with these flags in place of the table variables.
    fn lookup(&self) -> impl Fn(&str) -> Option<String> + '_ {
        move |k| match k {
            "TWEETLAKE_TABLE_URI" => Some(self.table.clone()),
            "TWEETLAKE_QUARANTINE_URI" => Some(self.quarantine.clone()),
            "TWEETLAKE_AGGREGATES_URI" => self.aggregates.clone(),
            _ => std::env::var(k).ok(),
        }
    }
}

/// Flags of `tweetlake ingest`; each one stands in for the environment variable it names.
#[cfg(feature = "pipeline")]
#[derive(Args)]
struct IngestArgs {
    /// A rules file (`tag: query` lines or a JSON array) [TWEETLAKE_RULES_FILE].
    #[arg(long)]
    rules_file: Option<PathBuf>,
    /// Recorded X API responses to replay instead of calling the API [TWEETLAKE_REPLAY_PATH].
    #[arg(long)]
    replay: Option<PathBuf>,
    /// `recent_search` or `filtered_stream` [TWEETLAKE_INGEST_MODE].
    #[arg(long)]
    mode: Option<String>,
    /// Kafka bootstrap servers [TWEETLAKE_KAFKA_BOOTSTRAP].
    #[arg(long)]
    bootstrap: Option<String>,
    /// Topic [TWEETLAKE_TOPIC].
    #[arg(long)]
    topic: Option<String>,
    /// Watermark object: s3://bucket/key or a local file [TWEETLAKE_WATERMARK_URI].
    #[arg(long)]
    watermarks: Option<String>,
    /// Time limit of the run in seconds, like a Lambda timeout.
    #[arg(long, default_value_t = 300)]
    timeout_secs: u64,
}

#[cfg(feature = "pipeline")]
impl IngestArgs {
    fn lookup(&self) -> impl Fn(&str) -> Option<String> + '_ {
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        move |k| {
            let flag = match k {
                "TWEETLAKE_RULES_FILE" => path(&self.rules_file),
                "TWEETLAKE_REPLAY_PATH" => path(&self.replay),
                "TWEETLAKE_INGEST_MODE" => self.mode.clone(),
                "TWEETLAKE_KAFKA_BOOTSTRAP" => self.bootstrap.clone(),
                "TWEETLAKE_TOPIC" => self.topic.clone(),
                "TWEETLAKE_WATERMARK_URI" => self.watermarks.clone(),
                _ => None,
            };
            // A rules file given as a flag replaces inline rules from the environment.
            if k == "TWEETLAKE_RULES" && self.rules_file.is_some() {
                return None;
            }
            flag.or_else(|| std::env::var(k).ok())
        }
    }
}

/// The broker, topic and batching flags of the commands that run the event-source-mapping emulator.
#[cfg(feature = "pipeline")]
#[derive(Args)]
struct EsmArgs {
    /// Kafka bootstrap servers.
    #[arg(long, env = "TWEETLAKE_KAFKA_BOOTSTRAP", default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// Topic (`tweetlake local` creates it if missing).
    #[arg(long, env = "TWEETLAKE_TOPIC", default_value = "tweets")]
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

#[cfg(feature = "pipeline")]
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
#[cfg(feature = "pipeline")]
#[derive(Args)]
struct LocalArgs {
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
#[cfg(feature = "pipeline")]
#[derive(Args)]
struct DeliverArgs {
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
#[cfg(feature = "pipeline")]
#[derive(Subcommand)]
enum TopicCommand {
    /// Create the topic through the Kafka Admin API; reports an existing topic instead of failing.
    Create {
        /// Topic name.
        #[arg(env = "TWEETLAKE_TOPIC", default_value = "tweets")]
        name: String,
        /// Partitions (parallelism of the process function: one concurrent batch per partition).
        #[arg(long, default_value_t = 3)]
        partitions: i32,
        /// Replication factor (3 on a production MSK cluster, 1 on the local broker).
        #[arg(long, default_value_t = 1)]
        replication_factor: i32,
        /// Bootstrap servers.
        #[arg(long, env = "TWEETLAKE_KAFKA_BOOTSTRAP")]
        bootstrap: String,
    },
}

#[derive(Args)]
struct TrainArgs {
    /// Folder of `label,text` CSV files (0 = negative, 1 or 4 = positive), read in numeric order.
    #[arg(long)]
    data: PathBuf,
    /// Where to write the model file.
    #[arg(long, default_value = "models/sentiment.twlk")]
    out: PathBuf,
    /// Where to write the JSON training report (default: beside the model, `.report.json`).
    #[arg(long)]
    report: Option<PathBuf>,
    /// The manual test CSV to evaluate on after training.
    #[arg(long)]
    test: Option<PathBuf>,
    /// Model name (the first part of its version string).
    #[arg(long, default_value = "s140-lr")]
    name: String,
    /// log2 of the number of hash buckets.
    #[arg(long, default_value_t = 20)]
    hash_bits: u32,
    /// Leave out word bigrams.
    #[arg(long)]
    no_bigrams: bool,
    /// Leave out negation marking.
    #[arg(long)]
    no_negation: bool,
    /// Add character n-grams, e.g. `3,5`.
    #[arg(long, value_delimiter = ',')]
    char_ngrams: Option<Vec<usize>>,
    /// L2 penalty.
    #[arg(long, default_value_t = 1e-6)]
    l2: f64,
    /// Maximum optimiser iterations.
    #[arg(long, default_value_t = 300)]
    max_iters: u64,
    /// Share of rows held out for validation.
    #[arg(long, default_value_t = 0.02)]
    validation: f64,
    /// Shuffle seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Read at most this many rows.
    #[arg(long)]
    max_rows: Option<usize>,
    /// Neutral band stored in the model.
    #[arg(long, default_value_t = 0.15)]
    neutral_band: f32,
    /// Logit added per net emoticon (0 disables the emoticon prior).
    #[arg(long, default_value_t = 2.0)]
    emoticon_logit: f32,
    /// Leave out the VADER lexicon expert (its calibrated score is otherwise added to the logit).
    #[arg(long)]
    no_lexicon: bool,
    /// Do not scale features by naive-Bayes log-count ratios before fitting (the NBSVM-style prior).
    #[arg(long)]
    no_nb_scaling: bool,
    /// Drop training rows whose label a first fit gives a probability below this, then refit.
    #[arg(long)]
    noise_filter: Option<f64>,
    /// Optimiser: `lbfgs` (sparse, all buckets) or `linfa` (dense, selected buckets and rows).
    #[arg(long, default_value = "lbfgs", value_parser = ["lbfgs", "linfa"])]
    trainer: String,
    /// With `--trainer linfa`: number of buckets kept.
    #[arg(long, default_value_t = 2000)]
    linfa_features: usize,
    /// With `--trainer linfa`: number of rows kept.
    #[arg(long, default_value_t = 100_000)]
    linfa_rows: usize,
    /// Hide progress bars.
    #[arg(long)]
    quiet: bool,
}

fn load(path: &PathBuf, band: Option<f32>) -> Result<Model> {
    let model = Model::load(path).with_context(|| format!("loading the model (--model {})", path.display()))?;
    Ok(match band {
        Some(b) if !(0.0..0.5).contains(&b) => bail!("--neutral-band {b} must be in [0, 0.5)"),
        Some(b) => model.with_neutral_band(b),
        None => model,
    })
}

fn run_train(a: TrainArgs) -> Result<()> {
    if a.char_ngrams.as_ref().is_some_and(|v| v.len() != 2 || v[0] == 0 || v[0] > v[1]) {
        bail!("--char-ngrams takes MIN,MAX with 1 <= MIN <= MAX");
    }
    let features = FeatureConfig {
        hash_bits: a.hash_bits,
        bigrams: !a.no_bigrams,
        negation: !a.no_negation,
        char_ngrams: a.char_ngrams.map(|v| [v[0], v[1]]),
        sublinear_tf: true,
        emoticons: a.emoticon_logit != 0.0,
        lexicon: !a.no_lexicon,
    };
    if !(8..=26).contains(&a.hash_bits) {
        bail!("--hash-bits {} must be in 8..=26", a.hash_bits);
    }
    let trainer = match a.trainer.as_str() {
        "linfa" => Trainer::Linfa { features: a.linfa_features, rows: a.linfa_rows },
        _ => Trainer::Lbfgs,
    };
    let cfg = TrainConfig {
        name: a.name,
        features,
        l2: a.l2,
        max_iters: a.max_iters,
        validation_fraction: a.validation,
        seed: a.seed,
        max_rows: a.max_rows,
        neutral_band: a.neutral_band,
        emoticon_logit: a.emoticon_logit,
        nb_scaling: !a.no_nb_scaling,
        noise_filter: a.noise_filter,
        trainer,
    };
    let manual = match &a.test {
        Some(p) => Some(read_manual_test(p).with_context(|| format!("reading --test {}", p.display()))?),
        None => None,
    };
    let (model, report) = train(&a.data, &cfg, manual.as_deref(), !a.quiet)?;
    if let Some(dir) = a.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    model.save(&a.out)?;
    let report_path = a.report.unwrap_or_else(|| a.out.with_extension("report.json"));
    let json = serde_json::to_string_pretty(&report)?;
    std::fs::write(&report_path, &json).with_context(|| format!("writing {}", report_path.display()))?;
    println!("{json}");
    eprintln!("model {} written to {} ({} bytes)", model.version(), a.out.display(), std::fs::metadata(&a.out)?.len());
    Ok(())
}

#[cfg(feature = "pipeline")]
async fn run_process(events: Vec<PathBuf>, tables: TableArgs) -> Result<()> {
    let cfg = tweetlake::ProcessConfig::from_lookup(tables.lookup())?;
    let processor = tweetlake::Processor::new(cfg).await?;
    for path in events {
        let payload = std::fs::read(&path).with_context(|| format!("reading --event {}", path.display()))?;
        let summary = processor.process_event(payload).await.map_err(|e| {
            let kind = match e.is_retryable() {
                true => "retryable: running the same event again may succeed",
                false => "not retryable: the event or a setting must change first",
            };
            anyhow::anyhow!("processing {}: {e} ({kind})", path.display())
        })?;
        println!("{}", serde_json::to_string(&summary)?);
    }
    Ok(())
}

#[cfg(feature = "pipeline")]
async fn run_local(a: LocalArgs) -> Result<()> {
    let live = a.replay.is_none() && std::env::var("TWEETLAKE_X_BEARER_TOKEN").is_ok_and(|t| !t.is_empty());
    let replay = a.replay.clone().unwrap_or_else(|| PathBuf::from("events/x-api"));
    let dir = a.dir.display().to_string();
    let defaults: Vec<(&str, String)> = vec![
        ("TWEETLAKE_TABLE_URI", format!("{dir}/tweets")),
        ("TWEETLAKE_QUARANTINE_URI", format!("{dir}/quarantine")),
        ("TWEETLAKE_WATERMARK_URI", format!("{dir}/ingest-watermarks.json")),
        // The bundled sample answers these two rules (events/x-api/brexit.json, kpop.json).
        ("TWEETLAKE_RULES", "brexit: #brexit\nkpop: #kpop".to_owned()),
    ];
    let (bootstrap, topic) = (a.esm.bootstrap.clone(), a.esm.topic.clone());
    let lookup = move |k: &str| -> Option<String> {
        match k {
            "TWEETLAKE_KAFKA_BOOTSTRAP" => return Some(bootstrap.clone()),
            "TWEETLAKE_TOPIC" => return Some(topic.clone()),
            "TWEETLAKE_REPLAY_PATH" if !live => return Some(replay.display().to_string()),
            _ => {}
        }
        std::env::var(k).ok().filter(|v| !v.is_empty()).or_else(|| defaults.iter().find(|(d, _)| *d == k).map(|(_, v)| v.clone()))
    };
    let opts = tweetlake_local::local::LocalOptions {
        esm: a.esm.settings(tweetlake_local::esm::DEFAULT_GROUP),
        partitions: a.partitions,
        report: a.dir.join("report.html"),
        bars: a.esm.bars(),
    };
    let s = tweetlake_local::local::run(opts, lookup).await?;
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

fn main() -> Result<()> {
    match Cli::parse().command {
        #[cfg(feature = "pipeline")]
        Command::Process { events, tables } => tokio::runtime::Runtime::new()?.block_on(run_process(events, tables)),
        #[cfg(feature = "pipeline")]
        Command::Maintain { tables } => {
            let cfg = tweetlake::MaintenanceConfig::from_lookup(tables.lookup())?;
            let report = tokio::runtime::Runtime::new()?.block_on(tweetlake::maintenance::run(&cfg, chrono::Utc::now()))?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        #[cfg(feature = "pipeline")]
        Command::Ingest(a) => tokio::runtime::Runtime::new()?.block_on(async {
            let cfg = tweetlake_ingest::IngestConfig::from_lookup(a.lookup())?;
            let ingest = tweetlake_ingest::Ingest::from_config(cfg).await?;
            let report = ingest.run(chrono::Utc::now() + chrono::Duration::seconds(a.timeout_secs as i64)).await?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }),
        #[cfg(feature = "pipeline")]
        Command::Local(a) => tokio::runtime::Runtime::new()?.block_on(run_local(a)),
        #[cfg(feature = "pipeline")]
        Command::Deliver(a) => tokio::runtime::Runtime::new()?.block_on(async {
            let cfg = tweetlake::ProcessConfig::from_lookup(a.tables.lookup())?;
            let processor = std::sync::Arc::new(tweetlake::Processor::new(cfg).await?);
            let (settings, bars) = (a.esm.settings(&a.group), a.esm.bars());
            let progress = tweetlake_local::esm::deliver(settings, a.partitions.as_deref(), processor, bars, &|| false).await?;
            println!("{}", serde_json::to_string(&progress)?);
            Ok(())
        }),
        #[cfg(feature = "pipeline")]
        Command::Report { tables, out } => tokio::runtime::Runtime::new()?.block_on(async {
            let cfg = tweetlake::ProcessConfig::from_lookup(tables.lookup())?;
            let data = tweetlake_local::report::read(&cfg.table_uri, &cfg.quarantine_uri, &cfg.storage_options).await?;
            if let Some(d) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(d)?;
            }
            std::fs::write(&out, tweetlake_local::report::html(&data, "Tweetlake report"))?;
            eprintln!("report written to {}", out.display());
            Ok(())
        }),
        #[cfg(feature = "pipeline")]
        Command::Query { tables, sql, file } => tokio::runtime::Runtime::new()?.block_on(async {
            let sql = match (sql, file) {
                (Some(s), _) => s,
                (None, Some(f)) => std::fs::read_to_string(&f).map_err(|e| anyhow::anyhow!("--file {}: {e}", f.display()))?,
                (None, None) => unreachable!("clap requires --sql or --file"),
            };
            let cfg = tweetlake::ProcessConfig::from_lookup(tables.lookup())?;
            let names = [
                ("tweets", cfg.table_uri.as_str()),
                ("quarantine", cfg.quarantine_uri.as_str()),
                ("aggregates", cfg.aggregates_uri.as_str()),
            ];
            let ctx = tweetlake_local::query::session(&names, &cfg.storage_options).await?;
            for row in tweetlake_local::query::rows(&ctx, &sql).await? {
                println!("{row}");
            }
            Ok(())
        }),
        #[cfg(feature = "pipeline")]
        Command::Topic(TopicCommand::Create { name, partitions, replication_factor, bootstrap }) => {
            let settings = tweetlake_ingest::kafka::KafkaSettings::plaintext(&bootstrap);
            let status = tokio::runtime::Runtime::new()?.block_on(tweetlake_ingest::kafka::create_topic(
                &settings,
                &name,
                partitions,
                replication_factor,
            ))?;
            match &status {
                tweetlake_ingest::kafka::TopicStatus::Created { .. } => eprintln!("topic {name} created"),
                tweetlake_ingest::kafka::TopicStatus::Exists { partitions } => {
                    eprintln!("topic {name} already exists with {partitions} partitions; left as it is")
                }
            }
            println!("{}", serde_json::to_string(&status)?);
            Ok(())
        }
        Command::Train(a) => run_train(a),
        Command::Eval { model, test, neutral_band } => {
            let model = load(&model, neutral_band)?;
            let rows = read_manual_test(&test).with_context(|| format!("reading --test {}", test.display()))?;
            let e = evaluate(&model, &rows);
            println!("{}", serde_json::json!({ "model": model.version(), "manual_test": e }));
            Ok(())
        }
        Command::Score { model, neutral_band } => {
            let model = load(&model, neutral_band)?;
            let mut scorer = model.scorer();
            let mut out = BufWriter::new(std::io::stdout().lock());
            for line in std::io::stdin().lock().lines() {
                let p = scorer.predict(&line.context("reading stdin")?);
                writeln!(out, "{}", serde_json::to_string(&p)?)?;
            }
            out.flush()?;
            Ok(())
        }
    }
}
