//! The model commands: train, evaluate and score the sentiment model.

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use tweetlake_contract::vars;
use tweetlake_sentiment::eval::{evaluate, read_labelled, read_manual_test, read_sources};
use tweetlake_sentiment::train::{HeadConfig, TrainConfig, Trainer, fit_head, train};
use tweetlake_sentiment::{FeatureConfig, Model};

/// Commands on the sentiment model.
#[derive(Subcommand)]
pub enum Command {
    /// Train the sentiment model on Sentiment140-style `label,text` CSV files.
    Train(Box<TrainArgs>),
    /// Evaluate a model on a human-labelled CSV: `label,text` (neg/neu/pos or 0/2/4, with or without a
    /// header), a header naming `label` and `text` (and `source`), or the Sentiment140 manual test's
    /// 6 columns. Prints macro recall, accuracies, ROC AUC, calibration error and the confusion matrix.
    Eval {
        #[command(flatten)]
        model: ModelArgs,
        /// The human-labelled test CSV.
        #[arg(long, default_value = "tests/data/testdata.manual.2009.06.14.csv")]
        test: PathBuf,
        /// Evaluate only the rows of these sources (the `source` column), each on its own.
        #[arg(long, value_delimiter = ',')]
        source: Vec<String>,
    },
    /// Score one text per stdin line; write one JSON line `{"label","score","probabilities"}` per input
    /// (`probabilities`: negative, neutral, positive; null for a model without a three-class head).
    Score {
        #[command(flatten)]
        model: ModelArgs,
    },
}

/// Which model, and its neutral band.
#[derive(Args)]
pub struct ModelArgs {
    /// Model file.
    #[arg(long, env = vars::MODEL_PATH, default_value = "models/sentiment.twlk")]
    model: PathBuf,
    /// Override the neutral band of a model without a three-class head (probabilities within 0.5 ± band
    /// are neutral).
    #[arg(long, env = vars::NEUTRAL_BAND)]
    neutral_band: Option<f32>,
}

impl ModelArgs {
    fn load(&self) -> Result<Model> {
        let model = Model::load(&self.model).with_context(|| format!("loading the model (--model {})", self.model.display()))?;
        Ok(match self.neutral_band {
            Some(b) if !(0.0..0.5).contains(&b) => bail!("--neutral-band {b} must be in [0, 0.5)"),
            Some(_) if model.meta().three_class.is_some() => {
                bail!("--neutral-band: model {} labels three classes by probability and has no neutral band", model.version())
            }
            Some(b) => model.with_neutral_band(b),
            None => model,
        })
    }
}

/// Runs a model command.
pub fn run(command: Command) -> Result<()> {
    match command {
        Command::Train(a) => run_train(*a),
        Command::Eval { model, test, source } => run_eval(&model, &test, &source),
        Command::Score { model } => run_score(&model),
    }
}

fn run_eval(model: &ModelArgs, test: &Path, sources: &[String]) -> Result<()> {
    let model = model.load()?;
    let context = || format!("reading --test {}", test.display());
    if sources.is_empty() {
        let rows = read_labelled(test).with_context(context)?;
        println!("{}", serde_json::json!({ "model": model.version(), "test": evaluate(&model, &rows) }));
        return Ok(());
    }
    for (source, rows) in sources.iter().zip(read_sources(test, sources).with_context(context)?) {
        println!("{}", serde_json::json!({ "model": model.version(), "source": source, "test": evaluate(&model, &rows) }));
    }
    Ok(())
}

fn run_score(model: &ModelArgs) -> Result<()> {
    let model = model.load()?;
    let mut scorer = model.scorer();
    let mut out = BufWriter::new(std::io::stdout().lock());
    for line in std::io::stdin().lock().lines() {
        let p = scorer.predict(&line.context("reading stdin")?);
        writeln!(out, "{}", serde_json::to_string(&p)?)?;
    }
    out.flush()?;
    Ok(())
}

/// Flags of `tweetlake train`.
#[derive(Args)]
pub struct TrainArgs {
    /// Folder of `label,text` CSV files (0 = negative, 1 or 4 = positive), read in numeric order.
    #[arg(long, required_unless_present = "base")]
    data: Option<PathBuf>,
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
    /// Leave the `USER` and `URL` placeholders out of the features (see `FeatureConfig`).
    #[arg(long)]
    skip_placeholders: bool,
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
    /// Human-labelled three-class CSV (SemEval's `source,id,label,text`): fit the three-class head on
    /// the rows of `--human-sources`.
    #[arg(long)]
    human: Option<PathBuf>,
    /// The sources of `--human` the head is fitted on (never the dev or test files).
    #[arg(long, value_delimiter = ',', default_value = "twitter-2013train-A,twitter-2016train-A")]
    human_sources: Vec<String>,
    /// L2 penalty of the head (linfa-logistic's alpha, on the summed loss).
    #[arg(long, default_value_t = HeadConfig::default().alpha)]
    head_alpha: f64,
    /// log2 of the in-domain experts' buckets; 0 leaves them out.
    #[arg(long, default_value_t = HeadConfig::default().domain_bits.unwrap_or(0))]
    domain_bits: u32,
    /// L2 penalty of the in-domain experts (per row-averaged loss).
    #[arg(long, default_value_t = HeadConfig::default().domain_l2)]
    domain_l2: f64,
    /// Sources of `--human` to evaluate the finished model on, each reported under `human_eval` in the
    /// report (the dev files for choices, the test files at the end).
    #[arg(long, value_delimiter = ',', requires = "human")]
    eval_sources: Vec<String>,
    /// Keep this model's experts instead of fitting them (with `--human`: fit only the head).
    #[arg(long, requires = "human")]
    base: Option<PathBuf>,
    /// Hide progress bars.
    #[arg(long)]
    quiet: bool,
}

/// The head's training rows: the `--human` file's rows of `--human-sources`.
fn human_rows(sources: &[String], path: &Path) -> Result<Vec<tweetlake_sentiment::eval::LabelledText>> {
    let groups = read_sources(path, sources).with_context(|| format!("reading --human {}", path.display()))?;
    Ok(groups.into_iter().flatten().collect())
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
        skip_placeholders: a.skip_placeholders,
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
    let (model, mut report) = match &a.base {
        Some(base) => {
            let model = Model::load(base).with_context(|| format!("loading --base {}", base.display()))?;
            (model, serde_json::json!({ "base": base }))
        }
        None => {
            let data = a.data.as_deref().context("--data is required without --base")?;
            let (model, report) = train(data, &cfg, manual.as_deref(), !a.quiet)?;
            (model, serde_json::to_value(report)?)
        }
    };
    let model = match &a.human {
        Some(path) => {
            let rows = human_rows(&a.human_sources, path)?;
            let head_cfg = HeadConfig {
                alpha: a.head_alpha,
                domain_bits: (a.domain_bits > 0).then_some(a.domain_bits),
                domain_l2: a.domain_l2,
                ..HeadConfig::default()
            };
            let t = std::time::Instant::now();
            let (head, domain) = fit_head(&model, &rows, &head_cfg)?;
            let model = model.with_head(head, domain);
            report["head"] = serde_json::json!({
                "rows": rows.len(), "sources": a.human_sources, "config": head_cfg, "seconds": t.elapsed().as_secs_f64(),
            });
            if let Some(m) = &manual {
                report["manual_test"] = serde_json::to_value(evaluate(&model, m))?;
            }
            if !a.eval_sources.is_empty() {
                let sets = read_sources(path, &a.eval_sources).with_context(|| format!("reading --human {}", path.display()))?;
                let scores: serde_json::Map<_, _> = a
                    .eval_sources
                    .iter()
                    .zip(&sets)
                    .map(|(s, rows)| (s.clone(), serde_json::json!(evaluate(&model, rows))))
                    .collect();
                report["human_eval"] = scores.into();
            }
            model
        }
        None => model,
    };
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
