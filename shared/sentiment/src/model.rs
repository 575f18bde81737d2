//! The trained model: hashed TF-IDF weights, logistic-regression coefficients and the experts' constants,
//! in one binary file.
//!
//! File layout (little-endian): magic `TWLKSENT`, format `u32`, header length `u32`, the JSON
//! [`ModelMeta`], the bias `f32`, then `2^hash_bits` pairs of `f32` (idf, weight). A bucket never seen in
//! training has idf 0 and so is ignored, as a vocabulary model ignores unknown words.

use crate::features::{FeatureBuf, FeatureConfig, Featurizer};
use crate::normalize::normalize;
use serde::{Deserialize, Serialize};
use std::path::Path;

const MAGIC: &[u8; 8] = b"TWLKSENT";
const FORMAT: u32 = 1;

/// Errors loading or saving a model file.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The file could not be read or written.
    #[error("model file {path}: {source}")]
    Io {
        /// The file or object path.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The bytes are not a Tweetlake sentiment model, or are cut short.
    #[error("not a Tweetlake sentiment model: {0}")]
    Format(String),
    /// The JSON header is malformed.
    #[error("model header: {0}")]
    Header(#[from] serde_json::Error),
}

/// Descriptive header stored with the weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelMeta {
    /// Human-chosen name, e.g. `s140-lr`.
    pub name: String,
    /// How text becomes features.
    pub features: FeatureConfig,
    /// Predictions with `|p - 0.5| < neutral_band` are labelled neutral.
    pub neutral_band: f32,
    /// Logit added per net emoticon (positive minus negative, clamped to ±1).
    #[serde(default)]
    pub emoticon_logit: f32,
    /// `[slope, intercept]` turning the lexicon score into a logit, fitted on the training data; present
    /// exactly when `features.lexicon` is on.
    #[serde(default)]
    pub lexicon_logit: Option<[f32; 2]>,
    /// The three-class head, when the model has one: it turns the experts' outputs into calibrated
    /// negative / neutral / positive probabilities, and the label is the most probable class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub three_class: Option<ThreeClassHead>,
    /// Free-form training provenance (data, rows, parameters): no timestamps, so retraining with the
    /// same seed gives identical bytes.
    pub training: serde_json::Value,
}

/// What the three-class head reads of a text, in [`ThreeClassHead::weights`] order: the n-gram
/// expert's logit and its size, the lexicon score and its size, the net emoticons, `ln(1 + n)` of the
/// text's distinct features (how much text there is to judge), and the two in-domain experts' logits
/// (0 without them).
pub const HEAD_INPUTS: [&str; 8] = [
    "ngram_logit",
    "abs_ngram_logit",
    "lexicon",
    "abs_lexicon",
    "emoticons",
    "ln_features",
    "subjective_logit",
    "polarity_logit",
];

/// The in-domain experts' header: two logistic regressions fitted on the human-labelled rows over the
/// same hashed n-grams folded into `2^bits` buckets — subjective (negative or positive) against
/// neutral, and positive against negative. Their `[idf, subjective weight, polarity weight]` table
/// follows the main one in the file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainHeader {
    /// log2 of the bucket count; at most the main model's `hash_bits`.
    pub bits: u32,
    /// Intercepts of the subjective and the polarity expert.
    pub bias: [f32; 2],
}

/// A multinomial logistic regression over [`HEAD_INPUTS`], fitted on human-labelled tweets: the experts
/// learn from the 1.6M distant-supervision rows, the head learns from people how their outputs map to
/// three classes, neutral included.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThreeClassHead {
    /// Per class (negative, neutral, positive): the intercept, then one weight per input.
    pub weights: [[f32; 1 + HEAD_INPUTS.len()]; 3],
    /// Each class's share of the rows the head was fitted on. The label is the class whose
    /// probability most exceeds its share (the most probable class after dividing by the prior), the
    /// decision that maximises recall averaged over the classes; the probabilities stay as fitted, so
    /// sums of them count each class as often as it occurs.
    pub priors: [f32; 3],
    /// The in-domain experts, when fitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<DomainHeader>,
}

impl ThreeClassHead {
    /// Class probabilities (negative, neutral, positive) for the inputs, summing to 1.
    pub fn probabilities(&self, inputs: &[f32; HEAD_INPUTS.len()]) -> [f32; 3] {
        let z: [f32; 3] = std::array::from_fn(|c| {
            let w = &self.weights[c];
            w[0] + inputs.iter().zip(&w[1..]).map(|(x, w)| x * w).sum::<f32>()
        });
        let top = z.iter().copied().fold(f32::MIN, f32::max);
        let e = z.map(|v| (v - top).exp());
        let sum: f32 = e.iter().sum();
        e.map(|v| v / sum)
    }
}

/// Three-way sentiment label: the head's most probable class, or for a binary model a band around 0.5.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Label {
    /// Negative.
    Negative,
    /// Neither.
    Neutral,
    /// Positive.
    Positive,
}

impl Label {
    /// The classes in the order of every probability triple and confusion row.
    pub const ALL: [Label; 3] = [Label::Negative, Label::Neutral, Label::Positive];

    /// This class's position in [`Label::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The lowercase name used in JSON and in the tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Label::Negative => "negative",
            Label::Neutral => "neutral",
            Label::Positive => "positive",
        }
    }
}

/// Position of the largest of three values (the middle, neutral, one when none is larger).
pub fn top_class(values: &[f32; 3]) -> usize {
    (0..3).max_by(|&a, &b| values[a].total_cmp(&values[b])).unwrap_or(1)
}

/// A scored text.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// The most probable class (a binary model: after its neutral band).
    pub label: Label,
    /// Probability that the text is positive rather than negative (the binary experts' view).
    pub score: f32,
    /// Negative, neutral and positive probabilities, summing to 1, from the three-class head; `None`
    /// for a model without one (a binary model does not know how likely neutral is).
    pub probabilities: Option<[f32; 3]>,
}

/// A loaded sentiment model; cheap to share across threads, score through a [`Scorer`].
#[derive(Clone, Debug)]
pub struct Model {
    meta: ModelMeta,
    featurizer: Featurizer,
    bias: f32,
    table: Vec<[f32; 2]>,
    /// The in-domain experts' `[idf, subjective, polarity]` per bucket (empty without them).
    domain: Vec<[f32; 3]>,
    version: String,
}

impl Model {
    /// Assembles a model from trained parts; `table` holds one `[idf, weight]` per bucket.
    pub fn new(meta: ModelMeta, bias: f32, table: Vec<[f32; 2]>) -> Self {
        Self::with_domain(meta, bias, table, Vec::new())
    }

    /// Assembles a model whose head has in-domain experts, `domain` holding their table.
    pub fn with_domain(meta: ModelMeta, bias: f32, table: Vec<[f32; 2]>, domain: Vec<[f32; 3]>) -> Self {
        let featurizer = Featurizer::new(meta.features.clone());
        assert_eq!(table.len(), featurizer.buckets(), "table length must equal the bucket count");
        assert_eq!(meta.lexicon_logit.is_some(), meta.features.lexicon, "a lexicon score needs its calibration");
        let bits = meta.three_class.as_ref().and_then(|h| h.domain.as_ref()).map(|d| d.bits);
        assert_eq!(domain.len(), bits.map_or(0, |b| 1 << b), "the domain table must match its header");
        let mut m = Self { meta, featurizer, bias, table, domain, version: String::new() };
        m.version = format!("{}@{:016x}", m.meta.name, m.checksum());
        m
    }

    /// Name plus a checksum of the weights: recorded with every scored row.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The header stored with the weights.
    pub fn meta(&self) -> &ModelMeta {
        &self.meta
    }

    /// The feature extractor this model was trained with.
    pub fn featurizer(&self) -> &Featurizer {
        &self.featurizer
    }

    /// Returns a copy with another neutral band (a deployment setting, not part of the weights).
    pub fn with_neutral_band(mut self, band: f32) -> Self {
        self.meta.neutral_band = band;
        self
    }

    /// Returns a copy with a three-class head and its in-domain table (empty without in-domain
    /// experts); its weights become part of the version.
    pub fn with_head(self, head: ThreeClassHead, domain: Vec<[f32; 3]>) -> Self {
        let Self { mut meta, bias, table, .. } = self;
        meta.three_class = Some(head);
        Self::with_domain(meta, bias, table, domain)
    }

    /// Returns a copy without its three-class head: the binary experts alone, labelled by the band.
    pub fn without_head(self) -> Self {
        let Self { mut meta, bias, table, .. } = self;
        meta.three_class = None;
        Self::new(meta, bias, table)
    }

    /// The in-domain experts' logits (subjective, polarity) for already-extracted features: the
    /// text's buckets folded into the domain table, TF-IDF weighted and L2-normalised like the main one.
    /// Buckets arrive sorted, so folded ones that collide are adjacent and summed before weighting.
    pub fn domain_logits(&self, features: &FeatureBuf) -> [f32; 2] {
        let Some(d) = self.meta.three_class.as_ref().and_then(|h| h.domain.as_ref()) else { return [0.0; 2] };
        let shift = self.meta.features.hash_bits - d.bits;
        let (mut dot, mut norm2) = ([0f32; 2], 0f32);
        let mut k = 0;
        let counts = &features.counts;
        while k < counts.len() {
            let bucket = (counts[k].0 >> shift) as usize;
            let mut tf = 0f32;
            while k < counts.len() && (counts[k].0 >> shift) as usize == bucket {
                tf += counts[k].1;
                k += 1;
            }
            let [idf, ws, wp] = self.domain[bucket];
            let v = tf * idf;
            norm2 += v * v;
            dot[0] += v * ws;
            dot[1] += v * wp;
        }
        let inv = if norm2 > 0.0 { 1.0 / norm2.sqrt() } else { 0.0 };
        [d.bias[0] + dot[0] * inv, d.bias[1] + dot[1] * inv]
    }

    /// A scorer with its own scratch buffers.
    pub fn scorer(&self) -> Scorer<'_> {
        Scorer { model: self, buf: FeatureBuf::default() }
    }

    /// The label for a probability of positive, after the neutral band.
    pub fn label_for(&self, p: f32) -> Label {
        if (p - 0.5).abs() < self.meta.neutral_band {
            Label::Neutral
        } else if p > 0.5 {
            Label::Positive
        } else {
            Label::Negative
        }
    }

    /// The n-gram expert's logit: bias plus the TF-IDF-weighted sum of the text's bucket weights.
    fn ngram_logit(&self, features: &FeatureBuf) -> f32 {
        let (mut dot, mut norm2) = (0f32, 0f32);
        for &(id, tf) in &features.counts {
            let [idf, w] = self.table[id as usize];
            let v = tf * idf;
            norm2 += v * v;
            dot += v * w;
        }
        if norm2 > 0.0 { self.bias + dot / norm2.sqrt() } else { self.bias }
    }

    /// Probability of positive from already-extracted features: the product of the n-gram, emoticon
    /// and lexicon experts.
    pub fn probability(&self, features: &FeatureBuf) -> f32 {
        self.binary(self.ngram_logit(features), features)
    }

    fn binary(&self, ngram_logit: f32, features: &FeatureBuf) -> f32 {
        let mut z = ngram_logit + self.meta.emoticon_logit * features.emoticons.clamp(-1, 1) as f32;
        if let Some([slope, intercept]) = self.meta.lexicon_logit {
            z += slope * features.lexicon + intercept;
        }
        1.0 / (1.0 + (-z).exp())
    }

    /// What the three-class head reads of already-extracted features ([`HEAD_INPUTS`]).
    pub fn head_inputs(&self, features: &FeatureBuf) -> [f32; HEAD_INPUTS.len()] {
        self.inputs_with(self.ngram_logit(features), features)
    }

    /// [`Self::head_inputs`] given the n-gram logit `z`, so a prediction walks the weight table once.
    fn inputs_with(&self, z: f32, features: &FeatureBuf) -> [f32; HEAD_INPUTS.len()] {
        let e = features.emoticons.clamp(-1, 1) as f32;
        let [subjective, polarity] = self.domain_logits(features);
        let n = (features.counts.len() as f32).ln_1p();
        [z, z.abs(), features.lexicon, features.lexicon.abs(), e, n, subjective, polarity]
    }

    /// The prediction for already-extracted features.
    pub fn prediction(&self, features: &FeatureBuf) -> Prediction {
        let z = self.ngram_logit(features);
        let score = self.binary(z, features);
        match &self.meta.three_class {
            Some(head) => {
                let probabilities = head.probabilities(&self.inputs_with(z, features));
                let lift: [f32; 3] = std::array::from_fn(|c| probabilities[c] / head.priors[c].max(1e-6));
                Prediction { label: Label::ALL[top_class(&lift)], score, probabilities: Some(probabilities) }
            }
            None => Prediction { label: self.label_for(score), score, probabilities: None },
        }
    }

    /// FNV-1a of the serialised weights and the lexicon calibration, folded over the table without
    /// building the 8 MB payload: this runs on every model load.
    fn checksum(&self) -> u64 {
        let fold = |h: u64, v: f32| v.to_le_bytes().iter().fold(h, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
        let h = self.table.iter().fold(fold(0xcbf2_9ce4_8422_2325, self.bias), |h, &[idf, w]| fold(fold(h, idf), w));
        let h = self.meta.lexicon_logit.into_iter().flatten().fold(h, fold);
        let h = self
            .meta
            .three_class
            .iter()
            .flat_map(|head| head.weights.iter().flatten().chain(&head.priors).copied())
            .fold(h, fold);
        let h = self.meta.three_class.iter().filter_map(|head| head.domain.as_ref()).flat_map(|d| d.bias).fold(h, fold);
        self.domain.iter().flatten().copied().fold(h, fold)
    }

    fn payload(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + self.table.len() * 8 + self.domain.len() * 12);
        out.extend_from_slice(&self.bias.to_le_bytes());
        for v in self.table.iter().flatten().chain(self.domain.iter().flatten()) {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// Serialises the model to its file format.
    pub fn to_bytes(&self) -> Result<Vec<u8>, ModelError> {
        let header = serde_json::to_vec(&self.meta)?;
        let mut out = Vec::with_capacity(16 + header.len() + 4 + self.table.len() * 8 + self.domain.len() * 12);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT.to_le_bytes());
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&self.payload());
        Ok(out)
    }

    /// Parses a model file's bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ModelError> {
        let fail = |m: &str| ModelError::Format(m.to_owned());
        if bytes.len() < 16 || &bytes[..8] != MAGIC {
            return Err(fail("bad magic bytes"));
        }
        let format = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if format != FORMAT {
            return Err(fail(&format!("unsupported format {format}, this build reads {FORMAT}")));
        }
        let hlen = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes")) as usize;
        let header = bytes.get(16..16 + hlen).ok_or_else(|| fail("header cut short"))?;
        let meta: ModelMeta = serde_json::from_slice(header)?;
        if !(8..=26).contains(&meta.features.hash_bits) {
            return Err(fail("hash_bits out of range"));
        }
        if meta.lexicon_logit.is_some() != meta.features.lexicon {
            return Err(fail("the lexicon score and its calibration must come together"));
        }
        let body = &bytes[16 + hlen..];
        let buckets = 1usize << meta.features.hash_bits;
        let domain_bits = meta.three_class.as_ref().and_then(|h| h.domain.as_ref()).map(|d| d.bits);
        if domain_bits.is_some_and(|b| b > meta.features.hash_bits) {
            return Err(fail("the domain table cannot have more buckets than the main one"));
        }
        let domain_buckets = domain_bits.map_or(0, |b| 1usize << b);
        let expected = 4 + buckets * 8 + domain_buckets * 12;
        if body.len() != expected {
            return Err(fail(&format!("expected {expected} weight bytes, found {}", body.len())));
        }
        let f = |b: &[u8]| f32::from_le_bytes(b.try_into().expect("4 bytes"));
        let bias = f(&body[..4]);
        let (main, rest) = body[4..].split_at(buckets * 8);
        let table = main.chunks_exact(8).map(|c| [f(&c[..4]), f(&c[4..])]).collect();
        let domain = rest.chunks_exact(12).map(|c| [f(&c[..4]), f(&c[4..8]), f(&c[8..])]).collect();
        Ok(Self::with_domain(meta, bias, table, domain))
    }

    /// Loads a model file from disk.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ModelError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| ModelError::Io { path: path.display().to_string(), source })?;
        Self::from_bytes(&bytes)
    }

    /// Writes the model file to disk.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), ModelError> {
        let path = path.as_ref();
        std::fs::write(path, self.to_bytes()?).map_err(|source| ModelError::Io { path: path.display().to_string(), source })
    }
}

/// Scores texts with one model, reusing its buffers between calls.
pub struct Scorer<'m> {
    model: &'m Model,
    buf: FeatureBuf,
}

impl Scorer<'_> {
    /// Probability of positive for a text that is already normalised.
    pub fn score_normalized(&mut self, text: &str) -> f32 {
        self.model.featurizer.extract(text, &mut self.buf);
        self.model.probability(&self.buf)
    }

    /// Predicts the label and probabilities of an already-normalised text.
    pub fn predict_normalized(&mut self, text: &str) -> Prediction {
        self.model.featurizer.extract(text, &mut self.buf);
        self.model.prediction(&self.buf)
    }

    /// Normalises a raw tweet text and predicts its label and probabilities.
    pub fn predict(&mut self, raw_text: &str) -> Prediction {
        self.predict_normalized(&normalize(raw_text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Model {
        let features = FeatureConfig { hash_bits: 8, lexicon: false, ..FeatureConfig::default() };
        let meta = ModelMeta {
            name: "tiny".into(),
            features,
            neutral_band: 0.1,
            emoticon_logit: 2.0,
            lexicon_logit: None,
            three_class: None,
            training: serde_json::json!({}),
        };
        let f = Featurizer::new(meta.features.clone());
        let mut table = vec![[0f32; 2]; f.buckets()];
        let mut buf = FeatureBuf::default();
        f.extract("good", &mut buf);
        for &(id, _) in &buf.counts {
            table[id as usize] = [1.0, 3.0];
        }
        Model::new(meta, 0.0, table)
    }

    #[test]
    fn round_trips_through_bytes_and_scores_the_same() {
        let m = tiny();
        let back = Model::from_bytes(&m.to_bytes().unwrap()).unwrap();
        assert_eq!(back.version(), m.version());
        let p = back.scorer().predict("good");
        assert!(p.score > 0.9, "{p:?}");
        assert_eq!(p.label, Label::Positive);
        assert_eq!(back.scorer().predict("unknown words").label, Label::Neutral);
        assert_eq!(back.scorer().predict("unknown words :(").label, Label::Negative);
    }

    #[test]
    fn the_lexicon_expert_scores_rated_words_the_table_never_saw_and_is_part_of_the_version() {
        let plain = tiny();
        let mut meta = plain.meta().clone();
        meta.features.lexicon = true;
        meta.lexicon_logit = Some([4.0, 0.0]);
        let table = vec![[0f32; 2]; plain.featurizer().buckets()];
        let m = Model::new(meta.clone(), 0.0, table.clone());
        let mut s = m.scorer();
        assert_eq!(s.predict("a wonderful day").label, Label::Positive);
        assert_eq!(s.predict("not a wonderful day").label, Label::Negative, "negation flips the valence");
        assert_eq!(s.predict("a day").label, Label::Neutral);
        let back = Model::from_bytes(&m.to_bytes().unwrap()).unwrap();
        assert_eq!(back.version(), m.version());
        meta.lexicon_logit = Some([3.0, 0.0]);
        assert_ne!(Model::new(meta.clone(), 0.0, table).version(), m.version(), "the calibration is in the checksum");

        // A header with the score but no calibration is refused, not half-applied.
        meta.features.lexicon = false;
        let header = serde_json::to_vec(&meta).unwrap();
        let mut bad = MAGIC.to_vec();
        bad.extend_from_slice(&FORMAT.to_le_bytes());
        bad.extend_from_slice(&(header.len() as u32).to_le_bytes());
        bad.extend_from_slice(&header);
        bad.extend_from_slice(&m.payload());
        let err = Model::from_bytes(&bad).unwrap_err();
        assert!(err.to_string().contains("calibration"), "{err}");
    }

    #[test]
    fn rejects_foreign_and_truncated_files() {
        assert!(matches!(Model::from_bytes(b"not a model at all"), Err(ModelError::Format(_))));
        let bytes = tiny().to_bytes().unwrap();
        let err = Model::from_bytes(&bytes[..bytes.len() - 1]).unwrap_err();
        assert!(err.to_string().contains("weight bytes"), "{err}");
    }

    #[test]
    fn a_head_gives_three_probabilities_summing_to_one_and_its_weights_change_the_version() {
        let binary = tiny();
        let p = binary.scorer().predict("good");
        assert_eq!(p.probabilities, None, "a binary model does not claim a neutral probability");
        // Neutral unless the n-gram logit is large: the positive class needs it.
        let mut weights = [[0f32; 1 + HEAD_INPUTS.len()]; 3];
        weights[1][0] = 1.0;
        weights[2][1] = 1.0;
        let head = ThreeClassHead { weights, priors: [1.0 / 3.0; 3], domain: None };
        let three = tiny().with_head(head.clone(), Vec::new());
        assert_ne!(three.version(), binary.version());
        let mut s = three.scorer();
        let (good, plain) = (s.predict("good"), s.predict("table"));
        for p in [good, plain] {
            assert!((p.probabilities.unwrap().iter().sum::<f32>() - 1.0).abs() < 1e-6, "{p:?}");
        }
        assert_eq!((good.label, plain.label), (Label::Positive, Label::Neutral), "{good:?} {plain:?}");
        let again = Model::from_bytes(&three.to_bytes().unwrap()).unwrap();
        assert_eq!((again.version(), again.meta().three_class.as_ref()), (three.version(), Some(&head)));
    }
}
