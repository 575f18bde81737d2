//! Tweet sentiment for Tweetlake: one text normalisation, one feature extractor and one model format,
//! shared by training (feature `train`) and by inference in the process Lambda, so the two can never drift.
//!
//! The model is logistic regression over L2-normalised TF-IDF weights of hashed word unigrams and
//! bigrams (with negation marking), trained on Sentiment140, plus two fixed-form experts added in logit
//! space: an emoticon prior and a calibrated VADER lexicon score. See `models/MODEL.md` for figures.
#![warn(missing_docs)]

#[cfg(feature = "train")]
pub mod eval;
pub mod features;
pub mod lexicon;
pub mod model;
pub mod normalize;
#[cfg(feature = "train")]
pub mod train;
pub mod wordhash;

pub use features::{FeatureConfig, Featurizer};
pub use model::{Label, Model, ModelError, Prediction, Scorer};
pub use normalize::normalize;
