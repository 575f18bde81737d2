//! Training: Sentiment140 CSV files → deduplicated corpus → hashed TF-IDF → logistic regression, then the
//! lexicon expert's calibration.
//!
//! Two optimisers of the same model family are offered. [`Trainer::Lbfgs`] runs argmin's L-BFGS (the
//! optimiser linfa-logistic itself uses) on the sparse matrix of all buckets. [`Trainer::Linfa`] keeps
//! `linfa-logistic`, which only fits dense `ndarray` input: it selects the most frequent buckets and a
//! row sample that fit in memory. `models/MODEL.md` compares the two.

use crate::eval::{Evaluation, LabelledText, evaluate};
use crate::features::{FeatureBuf, FeatureConfig, Featurizer};
use crate::model::{DomainHeader, HEAD_INPUTS, Model, ModelMeta, ThreeClassHead};
use argmin::core::{CostFunction, Executor, Gradient, State};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;
use indicatif::{ProgressBar, ProgressStyle};
use ndarray::{Array1, Array2};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_xoshiro::Xoshiro256PlusPlus;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Errors of a training run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A data file could not be read or parsed.
    #[error("reading {path}: {source}")]
    Data {
        /// The file or object path.
        path: String,
        /// The underlying error.
        source: csv::Error,
    },
    /// The data folder is missing or holds no CSV files.
    #[error("no training CSV files in {0}")]
    NoData(String),
    /// A row's label is not 0, 1 or 4.
    #[error("{path} row {row}: label {label:?} is not 0, 1 or 4")]
    Label {
        /// The file or object path.
        path: String,
        /// The row number.
        row: usize,
        /// The label as written.
        label: String,
    },
    /// The optimiser failed.
    #[error("optimiser: {0}")]
    Optimiser(String),
    /// A setting is out of range.
    #[error("invalid setting: {0}")]
    Config(String),
}

/// Which optimiser fits the logistic regression.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trainer {
    /// argmin L-BFGS on the full sparse TF-IDF matrix.
    Lbfgs,
    /// linfa-logistic on a dense matrix of the `features` most frequent buckets and at most `rows` rows.
    Linfa {
        /// Buckets kept.
        features: usize,
        /// Rows kept.
        rows: usize,
    },
}

/// Everything that determines a trained model; the same config and data give the same bytes.
#[derive(Clone, Debug, Serialize)]
pub struct TrainConfig {
    /// Model name, the first part of its version.
    pub name: String,
    /// Feature extraction.
    pub features: FeatureConfig,
    /// L2 penalty on the weights (not the bias), per row-averaged loss.
    pub l2: f64,
    /// Optimiser iterations at most.
    pub max_iters: u64,
    /// Share of the deduplicated rows held out for validation.
    pub validation_fraction: f64,
    /// Seed of the shuffle before the split.
    pub seed: u64,
    /// Read at most this many rows (files in numeric order), for quick runs.
    pub max_rows: Option<usize>,
    /// Neutral band stored in the model.
    pub neutral_band: f32,
    /// Logit per net emoticon stored in the model.
    pub emoticon_logit: f32,
    /// Scales each feature by its naive-Bayes log-count ratio before fitting (Wang & Manning 2012,
    /// "NBSVM"); the scale folds into the stored weights, so inference is unchanged.
    pub nb_scaling: bool,
    /// Label-noise filter: after a first fit, drop training rows whose own label gets a probability
    /// below this, then fit again. Sentiment140's labels come from emoticons and are noisy.
    pub noise_filter: Option<f64>,
    /// Optimiser.
    pub trainer: Trainer,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            name: "s140-lr".into(),
            features: FeatureConfig::default(),
            l2: 1e-6,
            max_iters: 300,
            validation_fraction: 0.02,
            seed: 42,
            max_rows: None,
            neutral_band: 0.15,
            emoticon_logit: 2.0,
            nb_scaling: true,
            noise_filter: None,
            trainer: Trainer::Lbfgs,
        }
    }
}

/// What a training run did and how well the model scores.
#[derive(Clone, Debug, Serialize)]
pub struct TrainReport {
    /// Rows read from the CSV files.
    pub rows_read: usize,
    /// Exact duplicate rows dropped.
    pub duplicates_dropped: usize,
    /// Texts dropped because they occur with both labels.
    pub conflicting_dropped: usize,
    /// Rows trained on.
    pub train_rows: usize,
    /// Rows held out.
    pub validation_rows: usize,
    /// Training rows the noise filter dropped before the second fit.
    pub noise_dropped: usize,
    /// Buckets with a non-zero weight.
    pub nonzero_weights: usize,
    /// Objective evaluations of the optimiser.
    pub evaluations: u64,
    /// Final value of the regularised objective.
    pub final_objective: f64,
    /// Seconds reading and deduplicating.
    pub seconds_read: f64,
    /// Seconds extracting features.
    pub seconds_features: f64,
    /// Seconds optimising.
    pub seconds_optimise: f64,
    /// Peak resident memory of the process, MiB (Linux `VmHWM`).
    pub peak_rss_mib: Option<f64>,
    /// Accuracy on the held-out split.
    pub validation_accuracy: f64,
    /// Scores on the human-labelled test set, when given.
    pub manual_test: Option<Evaluation>,
    /// The settings used.
    pub config: TrainConfig,
}

/// Deduplicated training texts with binary labels (true = positive).
pub struct Corpus {
    /// The texts in file order, first occurrence kept.
    pub docs: Vec<(String, bool)>,
    /// Rows read.
    pub rows_read: usize,
    /// Exact duplicates dropped.
    pub duplicates_dropped: usize,
    /// Conflicting texts dropped.
    pub conflicting_dropped: usize,
}

fn bar(len: u64, what: &str, show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{prefix:>10} [{bar:30}] {pos}/{len} {elapsed} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    pb.set_prefix(what.to_owned());
    pb
}

/// The CSV files of a folder, `2.csv` before `10.csv`.
fn csv_files(dir: &Path) -> Result<Vec<PathBuf>, TrainError> {
    let entries = std::fs::read_dir(dir).map_err(|_| TrainError::NoData(dir.display().to_string()))?;
    let mut files: Vec<PathBuf> =
        entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|e| e == "csv")).collect();
    let key = |p: &PathBuf| {
        let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_owned();
        (stem.parse::<u64>().unwrap_or(u64::MAX), stem)
    };
    files.sort_by_key(key);
    if files.is_empty() {
        return Err(TrainError::NoData(dir.display().to_string()));
    }
    Ok(files)
}

/// Reads `label,text` CSV files (label 0 = negative, 1 or 4 = positive), drops exact duplicates and
/// texts seen with both labels.
pub fn read_corpus(dir: &Path, max_rows: Option<usize>, progress: bool) -> Result<Corpus, TrainError> {
    let files = csv_files(dir)?;
    let pb = bar(files.len() as u64, "read", progress);
    let mut docs: Vec<(String, bool)> = Vec::new();
    let mut conflicting: Vec<bool> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let (mut rows_read, mut duplicates) = (0usize, 0usize);
    'files: for path in &files {
        let data_err = |source| TrainError::Data { path: path.display().to_string(), source };
        let mut rdr = csv::ReaderBuilder::new().has_headers(false).from_path(path).map_err(data_err)?;
        for (i, rec) in rdr.records().enumerate() {
            if max_rows.is_some_and(|m| rows_read >= m) {
                break 'files;
            }
            let rec = rec.map_err(data_err)?;
            rows_read += 1;
            let label = match rec.get(0).unwrap_or_default() {
                "0" => false,
                "1" | "4" => true,
                other => {
                    return Err(TrainError::Label { path: path.display().to_string(), row: i + 1, label: other.into() });
                }
            };
            let text = rec.get(1).unwrap_or_default();
            match seen.get(text) {
                Some(&idx) => {
                    duplicates += 1;
                    if docs[idx].1 != label {
                        conflicting[idx] = true;
                    }
                }
                None => {
                    seen.insert(text.to_owned(), docs.len());
                    docs.push((text.to_owned(), label));
                    conflicting.push(false);
                }
            }
        }
        pb.inc(1);
    }
    pb.finish_and_clear();
    let before = docs.len();
    let mut keep = conflicting.iter().map(|c| !c);
    docs.retain(|_| keep.next().unwrap_or(true));
    Ok(Corpus { rows_read, duplicates_dropped: duplicates, conflicting_dropped: before - docs.len(), docs })
}

/// Compressed sparse rows of L2-normalised TF-IDF values.
struct Csr {
    indptr: Vec<usize>,
    indices: Vec<u32>,
    values: Vec<f32>,
}

impl Csr {
    fn rows(&self) -> usize {
        self.indptr.len() - 1
    }
    fn row(&self, i: usize) -> (&[u32], &[f32]) {
        let r = self.indptr[i]..self.indptr[i + 1];
        (&self.indices[r.clone()], &self.values[r])
    }
    /// The matrix of the given rows, in that order.
    fn select(&self, rows: &[usize]) -> Csr {
        let mut out = Csr { indptr: vec![0], indices: Vec::new(), values: Vec::new() };
        for &i in rows {
            let (idx, val) = self.row(i);
            out.indices.extend_from_slice(idx);
            out.values.extend_from_slice(val);
            out.indptr.push(out.indices.len());
        }
        out
    }
}

/// One chunk's extraction: row lengths, column ids, values, lexicon scores.
type ChunkFeatures = (Vec<usize>, Vec<u32>, Vec<f32>, Vec<f32>);

/// Extracts term frequencies of every text, in order, in parallel, with each text's lexicon score.
fn extract_all(f: &Featurizer, docs: &[(String, bool)]) -> (Csr, Vec<f32>) {
    let parts: Vec<ChunkFeatures> = docs
        .par_chunks(8192)
        .map(|chunk| {
            let mut buf = FeatureBuf::default();
            let (mut lens, mut idx, mut val) = (Vec::with_capacity(chunk.len()), Vec::new(), Vec::new());
            let mut lexicon = Vec::with_capacity(chunk.len());
            for (text, _) in chunk {
                f.extract(text, &mut buf);
                lens.push(buf.counts.len());
                idx.extend(buf.counts.iter().map(|c| c.0));
                val.extend(buf.counts.iter().map(|c| c.1));
                lexicon.push(buf.lexicon);
            }
            (lens, idx, val, lexicon)
        })
        .collect();
    let mut csr = Csr { indptr: vec![0], indices: Vec::new(), values: Vec::new() };
    let mut lexicon = Vec::with_capacity(docs.len());
    for (lens, idx, val, lex) in parts {
        for l in lens {
            csr.indptr.push(csr.indptr.last().expect("non-empty") + l);
        }
        csr.indices.extend(idx);
        csr.values.extend(val);
        lexicon.extend(lex);
    }
    (csr, lexicon)
}

/// Number of rows each bucket occurs in (indices are unique within a row).
fn document_frequency(csr: &Csr, buckets: usize) -> Vec<u32> {
    let mut df = vec![0u32; buckets];
    for &i in &csr.indices {
        df[i as usize] += 1;
    }
    df
}

/// Smoothed idf as in scikit-learn; 0 for buckets no training row has, so they are ignored.
fn idf(csr: &Csr, buckets: usize) -> Vec<f32> {
    let n = csr.rows() as f64;
    document_frequency(csr, buckets)
        .iter()
        .map(|&d| if d == 0 { 0.0 } else { (((1.0 + n) / (1.0 + d as f64)).ln() + 1.0) as f32 })
        .collect()
}

/// Turns term frequencies into L2-normalised TF-IDF in place.
fn apply_idf(csr: &mut Csr, idf: &[f32]) {
    for i in 0..csr.rows() {
        let r = csr.indptr[i]..csr.indptr[i + 1];
        let mut norm2 = 0f32;
        for k in r.clone() {
            csr.values[k] *= idf[csr.indices[k] as usize];
            norm2 += csr.values[k] * csr.values[k];
        }
        if norm2 > 0.0 {
            let inv = 1.0 / norm2.sqrt();
            for k in r {
                csr.values[k] *= inv;
            }
        }
    }
}

/// Naive-Bayes log-count ratio of each bucket from binarised per-class document frequencies, with
/// add-one smoothing; 0 for buckets no training row has.
fn nb_ratios(csr: &Csr, y: &[bool], buckets: usize) -> Vec<f32> {
    let (mut pos, mut neg) = (vec![0f64; buckets], vec![0f64; buckets]);
    for (i, &label) in y.iter().enumerate() {
        let counts = if label { &mut pos } else { &mut neg };
        for &j in csr.row(i).0 {
            counts[j as usize] += 1.0;
        }
    }
    let (sp, sn) = (pos.iter().sum::<f64>() + buckets as f64, neg.iter().sum::<f64>() + buckets as f64);
    pos.iter()
        .zip(&neg)
        .map(|(&p, &n)| if p + n == 0.0 { 0.0 } else { (((p + 1.0) / sp) / ((n + 1.0) / sn)).ln() as f32 })
        .collect()
}

/// Multiplies every value by its column's scale.
fn scale_columns(csr: &mut Csr, scale: &[f32]) {
    for (v, &j) in csr.values.iter_mut().zip(&csr.indices) {
        *v *= scale[j as usize];
    }
}

/// Row partitions of the gradient sum: fixed, so the floating-point sum and hence the model bytes do
/// not depend on the number of threads.
const PARTITIONS: usize = 8;

/// Regularised mean logistic loss over a sparse matrix; parameters are the bucket weights then the bias.
struct Objective<'a> {
    x: &'a Csr,
    y: &'a [bool],
    l2: f64,
    pb: ProgressBar,
    evals: &'a AtomicU64,
    /// argmin asks for cost and gradient at the same point separately; one pass computes both.
    cache: Mutex<Option<Evaluated>>,
}

/// A point, the cost there and the gradient there.
type Evaluated = (Array1<f64>, f64, Array1<f64>);

impl Objective<'_> {
    fn eval(&self, w: &Array1<f64>) -> (f64, Array1<f64>) {
        if let Some((p, c, g)) = self.cache.lock().expect("not poisoned").as_ref()
            && p == w
        {
            return (*c, g.clone());
        }
        let d = w.len() - 1;
        let n = self.x.rows();
        let ws = w.as_slice().expect("contiguous");
        let chunk = n.div_ceil(PARTITIONS);
        let parts: Vec<(f64, Vec<f64>)> = (0..PARTITIONS)
            .into_par_iter()
            .map(|p| {
                let mut g = vec![0f64; d + 1];
                let mut loss = 0f64;
                for i in (p * chunk)..((p + 1) * chunk).min(n) {
                    let (idx, val) = self.x.row(i);
                    let z = ws[d] + idx.iter().zip(val).map(|(&j, &v)| ws[j as usize] * v as f64).sum::<f64>();
                    let s = if self.y[i] { 1.0 } else { -1.0 };
                    // log(1 + e^(-s z)) computed without overflow.
                    let m = -s * z;
                    loss += if m > 0.0 { m + (-m).exp().ln_1p() } else { m.exp().ln_1p() };
                    let r = 1.0 / (1.0 + (-z).exp()) - if self.y[i] { 1.0 } else { 0.0 };
                    for (&j, &v) in idx.iter().zip(val) {
                        g[j as usize] += r * v as f64;
                    }
                    g[d] += r;
                }
                (loss, g)
            })
            .collect();
        let mut grad = Array1::<f64>::zeros(d + 1);
        let mut loss = 0f64;
        {
            let gs = grad.as_slice_mut().expect("contiguous");
            for (l, g) in parts {
                loss += l;
                gs.iter_mut().zip(g).for_each(|(a, b)| *a += b);
            }
            let inv_n = 1.0 / n as f64;
            gs.iter_mut().for_each(|g| *g *= inv_n);
            loss *= inv_n;
            for j in 0..d {
                loss += 0.5 * self.l2 * ws[j] * ws[j];
                gs[j] += self.l2 * ws[j];
            }
        }
        self.evals.fetch_add(1, Ordering::Relaxed);
        self.pb.inc(1);
        self.pb.set_message(format!("objective {loss:.5}"));
        *self.cache.lock().expect("not poisoned") = Some((w.clone(), loss, grad.clone()));
        (loss, grad)
    }
}

impl CostFunction for Objective<'_> {
    type Param = Array1<f64>;
    type Output = f64;
    fn cost(&self, w: &Self::Param) -> Result<f64, argmin::core::Error> {
        Ok(self.eval(w).0)
    }
}

impl Gradient for Objective<'_> {
    type Param = Array1<f64>;
    type Gradient = Array1<f64>;
    fn gradient(&self, w: &Self::Param) -> Result<Array1<f64>, argmin::core::Error> {
        Ok(self.eval(w).1)
    }
}

/// Fits bucket weights and bias with L-BFGS; returns them with the evaluation count and objective.
fn fit_lbfgs(
    x: &Csr,
    y: &[bool],
    cfg: &TrainConfig,
    buckets: usize,
    progress: bool,
) -> Result<(Vec<f64>, f64, u64, f64), TrainError> {
    let pb = bar(cfg.max_iters, "optimise", progress);
    let evals = AtomicU64::new(0);
    let problem = Objective { x, y, l2: cfg.l2, pb: pb.clone(), evals: &evals, cache: Mutex::new(None) };
    let opt = |e: argmin::core::Error| TrainError::Optimiser(e.to_string());
    let solver = LBFGS::new(MoreThuenteLineSearch::new(), 10).with_tolerance_cost(1e-9).map_err(opt)?;
    let res = Executor::new(problem, solver)
        .configure(|s| s.param(Array1::zeros(buckets + 1)).max_iters(cfg.max_iters))
        .run()
        .map_err(opt)?;
    pb.finish_and_clear();
    let state = res.state();
    let w = state.get_best_param().ok_or_else(|| TrainError::Optimiser("no parameters".into()))?.to_vec();
    let bias = w[buckets];
    Ok((w[..buckets].to_vec(), bias, evals.load(Ordering::Relaxed), state.get_best_cost()))
}

/// Fits with linfa-logistic on a dense slice of the problem: the `features` buckets with the highest
/// document frequency and the first `rows` training rows.
fn fit_linfa(
    x: &Csr,
    y: &[bool],
    cfg: &TrainConfig,
    features: usize,
    rows: usize,
    buckets: usize,
) -> Result<(Vec<f64>, f64, u64, f64), TrainError> {
    let df = document_frequency(x, buckets);
    let mut order: Vec<usize> = (0..buckets).collect();
    order.sort_by_key(|&j| (std::cmp::Reverse(df[j]), j));
    order.truncate(features);
    let mut column = vec![usize::MAX; buckets];
    for (c, &j) in order.iter().enumerate() {
        column[j] = c;
    }
    let rows = rows.min(x.rows());
    let mut dense = Array2::<f64>::zeros((rows, order.len()));
    for i in 0..rows {
        let (idx, val) = x.row(i);
        for (&j, &v) in idx.iter().zip(val) {
            if column[j as usize] != usize::MAX {
                dense[[i, column[j as usize]]] = v as f64;
            }
        }
    }
    let (params, intercept) = linfa_fit(dense, &y[..rows], cfg.l2 * rows as f64, cfg.max_iters)?;
    let mut w = vec![0f64; buckets];
    for (c, &j) in order.iter().enumerate() {
        w[j] = params[c];
    }
    Ok((w, intercept, cfg.max_iters, f64::NAN))
}

/// Fits logistic regression with linfa-logistic on dense rows; returns the weights and intercept of
/// P(positive). `alpha` is linfa's L2 penalty on the summed loss.
fn linfa_fit(x: Array2<f64>, y: &[bool], alpha: f64, max_iters: u64) -> Result<(Vec<f64>, f64), TrainError> {
    use linfa::prelude::*;
    let targets = Array1::from_iter(y.iter().map(|&p| if p { "positive" } else { "negative" }));
    let fitted = linfa_logistic::LogisticRegression::default()
        .alpha(alpha)
        .max_iterations(max_iters)
        .fit(&Dataset::new(x, targets))
        .map_err(|e| TrainError::Optimiser(e.to_string()))?;
    // linfa models P(first label in sorted order is the positive class); check which one it picked.
    let sign = if fitted.labels().pos.class == "positive" { 1.0 } else { -1.0 };
    Ok((fitted.params().iter().map(|w| sign * w).collect(), sign * fitted.intercept()))
}

/// Calibrates the lexicon expert on its own: `[slope, intercept]` of a one-feature logistic regression
/// from each training row's lexicon score to its label, fitted with linfa-logistic (the dense case it
/// handles well). Fitting it apart from the n-gram weights keeps it a second opinion: inside the big
/// model the words' own weights would absorb it, and it would carry no weight where they are wrong.
fn calibrate_lexicon(scores: &[f32], y: &[bool]) -> Result<[f32; 2], TrainError> {
    let x = Array2::from_shape_fn((scores.len(), 1), |(i, _)| f64::from(scores[i]));
    let (w, b) = linfa_fit(x, y, 0.0, 100)?;
    Ok([w[0] as f32, b as f32])
}

/// How the three-class head is fitted.
#[derive(Clone, Debug, Serialize)]
pub struct HeadConfig {
    /// linfa-logistic's L2 penalty of the head (on the summed loss).
    pub alpha: f64,
    /// log2 of the in-domain experts' bucket count; `None` leaves them out.
    pub domain_bits: Option<u32>,
    /// L2 penalty of the in-domain experts (per row-averaged loss).
    pub domain_l2: f64,
    /// Folds of the cross-fitting that gives the head the in-domain experts' logits on rows they were
    /// not fitted on (a stacked model must not learn from its experts' training-set confidence).
    pub folds: usize,
}

impl Default for HeadConfig {
    fn default() -> Self {
        Self { alpha: 1.0, domain_bits: Some(18), domain_l2: 1e-4, folds: 5 }
    }
}

/// Fits the three-class head on human-labelled texts: the in-domain experts (when configured), then a
/// multinomial logistic regression from the experts' outputs ([`HEAD_INPUTS`]) to the gold label, with
/// linfa-logistic (a dense problem of a few columns, the case it handles well). Returns the head and
/// the in-domain table for [`Model::with_head`].
pub fn fit_head(model: &Model, rows: &[LabelledText], cfg: &HeadConfig) -> Result<(ThreeClassHead, Vec<[f32; 3]>), TrainError> {
    use linfa::prelude::*;
    let bits = model.meta().features.hash_bits;
    if cfg.domain_bits.is_some_and(|b| !(8..=bits).contains(&b)) || cfg.folds < 2 {
        return Err(TrainError::Config(format!("domain bits must be in 8..={bits} and folds at least 2")));
    }
    let mut buf = FeatureBuf::default();
    let (mut base, mut docs) = (Vec::with_capacity(rows.len()), Vec::with_capacity(rows.len()));
    for row in rows {
        model.featurizer().extract(&crate::normalize::normalize(&row.text), &mut buf);
        base.push(model.head_inputs(&buf));
        docs.push(buf.counts.clone());
    }
    let labels: Vec<usize> = rows.iter().map(|r| r.label.index()).collect();
    let (domain, domain_header, stacked) = match cfg.domain_bits {
        Some(dbits) => {
            let (table, header, oof) = fit_domain(&docs, &labels, bits - dbits, dbits, cfg)?;
            (table, Some(header), oof)
        }
        None => (Vec::new(), None, vec![[0f32; 2]; rows.len()]),
    };
    let n = HEAD_INPUTS.len();
    let x =
        Array2::from_shape_fn((rows.len(), n), |(i, j)| f64::from(if j < n - 2 { base[i][j] } else { stacked[i][j + 2 - n] }));
    let fitted = linfa_logistic::MultiLogisticRegression::default()
        .alpha(cfg.alpha)
        .max_iterations(500)
        .fit(&Dataset::new(x, Array1::from_vec(labels.clone())))
        .map_err(|e| TrainError::Optimiser(e.to_string()))?;
    if fitted.classes() != [0, 1, 2] {
        return Err(TrainError::Config("the human-labelled rows must hold all three classes".into()));
    }
    let (params, intercept) = (fitted.params(), fitted.intercept());
    let weights = std::array::from_fn(|c| std::array::from_fn(|j| if j == 0 { intercept[c] } else { params[[j - 1, c]] } as f32));
    let priors = std::array::from_fn(|c| labels.iter().filter(|&&l| l == c).count() as f32 / rows.len() as f32);
    Ok((ThreeClassHead { weights, priors, domain: domain_header }, domain))
}

/// The in-domain experts' table and header, and each training row's (subjective, polarity) logits.
type DomainFit = (Vec<[f32; 3]>, DomainHeader, Vec<[f32; 2]>);

/// Fits the in-domain experts on the rows' main-model buckets folded by `shift` into `2^bits`: returns
/// their table, header, and each row's (subjective, polarity) logits from the fold that left it out.
fn fit_domain(
    docs: &[Vec<(u32, f32)>],
    labels: &[usize],
    shift: u32,
    bits: u32,
    cfg: &HeadConfig,
) -> Result<DomainFit, TrainError> {
    let buckets = 1usize << bits;
    let mut x = Csr { indptr: vec![0], indices: Vec::new(), values: Vec::new() };
    for counts in docs {
        // Buckets are sorted, so folded ones that collide are adjacent: sum them.
        for &(b, tf) in counts {
            let folded = b >> shift;
            match x.indices.last() {
                Some(&last) if last == folded && x.indices.len() > *x.indptr.last().expect("non-empty") => {
                    *x.values.last_mut().expect("same length") += tf
                }
                _ => {
                    x.indices.push(folded);
                    x.values.push(tf);
                }
            }
        }
        x.indptr.push(x.indices.len());
    }
    let idf = idf(&x, buckets);
    apply_idf(&mut x, &idf);
    let lbfgs = TrainConfig { l2: cfg.domain_l2, max_iters: 200, ..TrainConfig::default() };
    let subjective: Vec<bool> = labels.iter().map(|&l| l != 1).collect();
    // Fits both experts on `train` rows; returns (weights, bias) of each.
    let fit = |train: &[usize]| -> Result<[(Vec<f64>, f64); 2], TrainError> {
        let ys: Vec<bool> = train.iter().map(|&i| subjective[i]).collect();
        let (ws, bs, _, _) = fit_lbfgs(&x.select(train), &ys, &lbfgs, buckets, false)?;
        let on_polar: Vec<usize> = train.iter().copied().filter(|&i| labels[i] != 1).collect();
        let yp: Vec<bool> = on_polar.iter().map(|&i| labels[i] == 2).collect();
        let (wp, bp, _, _) = fit_lbfgs(&x.select(&on_polar), &yp, &lbfgs, buckets, false)?;
        Ok([(ws, bs), (wp, bp)])
    };
    let logit = |(w, b): &(Vec<f64>, f64), i: usize| {
        let (idx, val) = x.row(i);
        (b + idx.iter().zip(val).map(|(&j, &v)| w[j as usize] * f64::from(v)).sum::<f64>()) as f32
    };
    let mut oof = vec![[0f32; 2]; labels.len()];
    for fold in 0..cfg.folds {
        let train: Vec<usize> = (0..labels.len()).filter(|i| i % cfg.folds != fold).collect();
        let experts = fit(&train)?;
        for i in (fold..labels.len()).step_by(cfg.folds) {
            oof[i] = [logit(&experts[0], i), logit(&experts[1], i)];
        }
    }
    let all: Vec<usize> = (0..labels.len()).collect();
    let [(ws, bs), (wp, bp)] = fit(&all)?;
    let table = (0..buckets).map(|j| [idf[j], ws[j] as f32, wp[j] as f32]).collect();
    Ok((table, DomainHeader { bits, bias: [bs as f32, bp as f32] }, oof))
}

/// Peak resident set size of this process in MiB, where the OS reports it.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Trains a model on the CSV files in `data_dir`; evaluates on `manual_test` rows when given.
pub fn train(
    data_dir: &Path,
    cfg: &TrainConfig,
    manual_test: Option<&[LabelledText]>,
    progress: bool,
) -> Result<(Model, TrainReport), TrainError> {
    if !(0.0..0.5).contains(&cfg.validation_fraction) {
        return Err(TrainError::Config(format!("validation fraction {} must be in [0, 0.5)", cfg.validation_fraction)));
    }
    let t0 = Instant::now();
    let corpus = read_corpus(data_dir, cfg.max_rows, progress)?;
    let mut docs = corpus.docs;
    docs.shuffle(&mut Xoshiro256PlusPlus::seed_from_u64(cfg.seed));
    let n_val = (docs.len() as f64 * cfg.validation_fraction).round() as usize;
    let val = docs.split_off(docs.len() - n_val);
    let seconds_read = t0.elapsed().as_secs_f64();

    let t1 = Instant::now();
    let featurizer = Featurizer::new(cfg.features.clone());
    let buckets = featurizer.buckets();
    let (mut x, lexicon_scores) = extract_all(&featurizer, &docs);
    let idf = idf(&x, buckets);
    apply_idf(&mut x, &idf);
    let y: Vec<bool> = docs.iter().map(|d| d.1).collect();
    let scale = cfg.nb_scaling.then(|| nb_ratios(&x, &y, buckets));
    if let Some(r) = &scale {
        scale_columns(&mut x, r);
    }
    let seconds_features = t1.elapsed().as_secs_f64();

    let t2 = Instant::now();
    let fit = |x: &Csr, y: &[bool]| match cfg.trainer {
        Trainer::Lbfgs => fit_lbfgs(x, y, cfg, buckets, progress),
        Trainer::Linfa { features, rows } => fit_linfa(x, y, cfg, features, rows, buckets),
    };
    let (mut w, mut bias, mut evaluations, mut objective) = fit(&x, &y)?;
    let mut noise_dropped = 0;
    if let Some(threshold) = cfg.noise_filter {
        let keep: Vec<bool> = (0..x.rows())
            .map(|i| {
                let (idx, val) = x.row(i);
                let z = bias + idx.iter().zip(val).map(|(&j, &v)| w[j as usize] * f64::from(v)).sum::<f64>();
                let p = 1.0 / (1.0 + (-z).exp());
                (if y[i] { p } else { 1.0 - p }) >= threshold
            })
            .collect();
        noise_dropped = keep.iter().filter(|k| !**k).count();
        let rows: Vec<usize> = (0..x.rows()).filter(|&i| keep[i]).collect();
        let kept = x.select(&rows);
        let kept_y: Vec<bool> = rows.iter().map(|&i| y[i]).collect();
        let (w2, b2, e2, o2) = fit(&kept, &kept_y)?;
        (w, bias, objective) = (w2, b2, o2);
        evaluations += e2;
    }
    let lexicon_logit = if cfg.features.lexicon { Some(calibrate_lexicon(&lexicon_scores, &y)?) } else { None };
    let seconds_optimise = t2.elapsed().as_secs_f64();
    drop(x);
    if let Some(r) = &scale {
        w.iter_mut().zip(r).for_each(|(wj, &rj)| *wj *= f64::from(rj));
    }

    let table: Vec<[f32; 2]> = idf.iter().zip(&w).map(|(&i, &wj)| [i, wj as f32]).collect();
    let meta = ModelMeta {
        name: cfg.name.clone(),
        features: cfg.features.clone(),
        neutral_band: cfg.neutral_band,
        emoticon_logit: cfg.emoticon_logit,
        lexicon_logit,
        three_class: None,
        training: serde_json::json!({
            "data": "Sentiment140 training set (normalised: mentions USER, links URL)",
            "train_rows": docs.len(),
            "l2": cfg.l2,
            "max_iters": cfg.max_iters,
            "seed": cfg.seed,
            "trainer": cfg.trainer,
            "nb_scaling": cfg.nb_scaling,
            "noise_filter": cfg.noise_filter,
        }),
    };
    let model = Model::new(meta, bias as f32, table);
    let mut scorer = model.scorer();
    let right = val.iter().filter(|(t, pos)| (scorer.score_normalized(t) > 0.5) == *pos).count();
    let report = TrainReport {
        rows_read: corpus.rows_read,
        duplicates_dropped: corpus.duplicates_dropped,
        conflicting_dropped: corpus.conflicting_dropped,
        train_rows: docs.len(),
        validation_rows: val.len(),
        noise_dropped,
        nonzero_weights: w.iter().filter(|v| **v != 0.0).count(),
        evaluations,
        final_objective: objective,
        seconds_read,
        seconds_features,
        seconds_optimise,
        peak_rss_mib: peak_rss_mib(),
        validation_accuracy: if val.is_empty() { 0.0 } else { right as f64 / val.len() as f64 },
        manual_test: manual_test.map(|rows| evaluate(&model, rows)),
        config: cfg.clone(),
    };
    Ok((model, report))
}
