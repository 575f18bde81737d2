//! Hashed word n-gram features of a normalised tweet.
//!
//! Feature hashing instead of a vocabulary: the model file is a fixed array indexed by hash bucket, there
//! is no string table to load or look up, and scoring one tweet touches only its own buckets.

use crate::lexicon::{Lexicon, NEGATED_VALENCE, normalize_valence};
use crate::wordhash::{SEED, WordHasher, hash_token, step};
use serde::{Deserialize, Serialize};

/// How text becomes features; stored in the model file so inference uses what training used.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureConfig {
    /// The model has `2^hash_bits` buckets.
    pub hash_bits: u32,
    /// Adds word bigrams to the unigrams.
    pub bigrams: bool,
    /// Marks words between a negation ("not", "don't", …) and the next clause punctuation.
    pub negation: bool,
    /// Adds character n-grams of each word with boundary marks, `[min, max]` in characters.
    pub char_ngrams: Option<[usize; 2]>,
    /// Uses `1 + ln(tf)` instead of the raw term count.
    pub sublinear_tf: bool,
    /// Counts the emoticons Sentiment140 labelled its training data with (see [`emoticon_polarity`]).
    #[serde(default)]
    pub emoticons: bool,
    /// Sums VADER word valences into [`FeatureBuf::lexicon`] (see [`crate::lexicon`]).
    #[serde(default)]
    pub lexicon: bool,
    /// Leaves out the `USER` and `URL` placeholders normalisation puts for mentions and links: in
    /// Sentiment140 they lean positive for how it was collected, not for what anyone said.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skip_placeholders: bool,
}

impl Default for FeatureConfig {
    fn default() -> Self {
        Self {
            hash_bits: 20,
            bigrams: true,
            negation: true,
            char_ngrams: None,
            sublinear_tf: true,
            emoticons: true,
            lexicon: true,
            skip_placeholders: false,
        }
    }
}

/// Words that flip the polarity of what follows them (apostrophes are dropped before the lookup).
const NEGATIONS: &[&str] = &[
    "not", "no", "never", "none", "nothing", "nobody", "nowhere", "neither", "nor", "cannot", "cant", "dont", "doesnt", "didnt",
    "isnt", "arent", "wasnt", "werent", "wont", "wouldnt", "couldnt", "shouldnt", "havent", "hasnt", "hadnt", "aint", "mustnt",
    "neednt", "without",
];

const BIGRAM_SALT: u64 = 0x9e37_79b9_7f4a_7c15;
const NEGATED_SALT: u64 = 0xc2b2_ae3d_27d4_eb4f;
const CHAR_SALT: u64 = 0x1656_67b1_9e37_79f9;

/// MurmurHash3's finaliser: spreads the multiplicative hash over the top bits used as the bucket.
#[inline]
fn fmix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Scratch space reused between texts so the hot path does not allocate.
#[derive(Default, Debug)]
pub struct FeatureBuf {
    ids: Vec<u32>,
    word: Vec<u8>,
    /// `(bucket, term frequency)` pairs of the last text, sorted by bucket.
    pub counts: Vec<(u32, f32)>,
    /// Positive minus negative emoticons of the last text, when the config counts them.
    pub emoticons: i32,
    /// The last text's lexicon score in (−1, 1), when the config sums valences (else 0).
    pub lexicon: f32,
}

/// Emoticons that mark a tweet positive or negative, after Go, Bhayani & Huang (2009), who labelled
/// Sentiment140 by them and then removed them from the text. A model trained on that text never sees
/// one, so their weight is a model parameter instead of a learned feature.
const POSITIVE_EMOTICONS: &[&str] = &[":)", ":-)", ": )", ":D", ":-D", "=)", "=]", ":]", ";)", ";-)"];
const NEGATIVE_EMOTICONS: &[&str] = &[":(", ":-(", ": (", "=(", ":[", ":'("];

/// Positive minus negative emoticons in `text`.
pub fn emoticon_polarity(text: &str) -> i32 {
    // One pass over the bytes: every emoticon starts with `:`, `;` or `=` and none can overlap itself,
    // so counting the start positions equals counting each emoticon's matches separately.
    let bytes = text.as_bytes();
    let starting_at = |set: &[&str], rest: &[u8]| set.iter().filter(|e| rest.starts_with(e.as_bytes())).count() as i32;
    let mut score = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if matches!(b, b':' | b';' | b'=') {
            score += starting_at(POSITIVE_EMOTICONS, &bytes[i..]) - starting_at(NEGATIVE_EMOTICONS, &bytes[i..]);
        }
    }
    score
}

/// Turns normalised text into `(bucket, tf)` pairs according to a [`FeatureConfig`].
#[derive(Clone, Debug)]
pub struct Featurizer {
    cfg: FeatureConfig,
    shift: u32,
    negations: Vec<u64>,
    lexicon: Option<&'static Lexicon>,
    /// Hashes of the placeholders left out, when the config says so.
    placeholders: Vec<u64>,
}

impl Featurizer {
    /// Builds the extractor for `cfg`; `hash_bits` must be in 8..=26.
    pub fn new(cfg: FeatureConfig) -> Self {
        assert!((8..=26).contains(&cfg.hash_bits), "hash_bits must be in 8..=26");
        let mut negations: Vec<u64> = NEGATIONS.iter().map(|w| hash_token(w)).collect();
        negations.sort_unstable();
        let lexicon = cfg.lexicon.then(Lexicon::vader);
        let placeholders = if cfg.skip_placeholders { vec![hash_token("user"), hash_token("url")] } else { Vec::new() };
        Self { shift: 64 - cfg.hash_bits, cfg, negations, lexicon, placeholders }
    }

    /// The configuration this extractor applies.
    pub fn config(&self) -> &FeatureConfig {
        &self.cfg
    }

    /// Number of hash buckets, the length of the model's weight table.
    pub fn buckets(&self) -> usize {
        1 << self.cfg.hash_bits
    }

    #[inline]
    fn bucket(&self, h: u64) -> u32 {
        (fmix(h) >> self.shift) as u32
    }

    /// Extracts the features of one normalised text into `buf.counts`, sorted by bucket, with the
    /// configured term-frequency transform applied.
    pub fn extract(&self, text: &str, buf: &mut FeatureBuf) {
        buf.ids.clear();
        buf.counts.clear();
        buf.emoticons = if self.cfg.emoticons { emoticon_polarity(text) } else { 0 };
        let mut prev: Option<u64> = None;
        let mut negated = false;
        let mut word = WordHasher::NEW;
        let mut valence = 0f32;
        buf.word.clear();
        let mut last_punct = '\0';

        // The word's bytes are only kept when character n-grams need them; `in_word` tracks the rest.
        let keep_word = self.cfg.char_ngrams.is_some();
        let mut in_word = false;
        // Bytes, not chars: ASCII (most of every tweet) needs no UTF-8 decoding; other chars are
        // decoded where they start. A trailing space closes the last word like any other separator.
        let bytes = text.as_bytes();
        let mut i = 0;
        while i <= bytes.len() {
            let c = match bytes.get(i) {
                None => ' ',
                Some(&b) if b.is_ascii() => char::from(b),
                Some(_) => text[i..].chars().next().expect("i is at a char boundary"),
            };
            i += c.len_utf8();
            if c.is_alphanumeric() {
                last_punct = '\0';
                in_word = true;
                let keep = if keep_word { Some(&mut buf.word) } else { None };
                if c.is_ascii() {
                    word.push(c.to_ascii_lowercase(), keep);
                } else {
                    let mut keep = keep;
                    for lc in c.to_lowercase() {
                        word.push(lc, keep.as_deref_mut());
                    }
                }
            } else if c == '\'' || c == '\u{2019}' {
                // "don't" and "dont" are the same word.
            } else {
                if in_word && self.placeholders.contains(&word.hash) {
                    // A left-out placeholder is no word: the bigram spans it.
                    buf.word.clear();
                    in_word = false;
                } else if in_word {
                    self.emit(word.hash, &mut prev, negated, buf);
                    if let Some(v) = self.lexicon.and_then(|l| l.valence(word.hash)) {
                        valence += if negated { NEGATED_VALENCE * v } else { v };
                    }
                    if self.cfg.negation && self.negations.binary_search(&word.hash).is_ok() {
                        negated = true;
                    }
                    buf.word.clear();
                    in_word = false;
                }
                word = WordHasher::NEW;
                match c {
                    '!' | '?' => {
                        if last_punct != c {
                            self.emit(step(SEED, c as u8), &mut prev, false, buf);
                            last_punct = c;
                        }
                        negated = false;
                    }
                    '.' | ',' | ';' | ':' => {
                        negated = false;
                        last_punct = '\0';
                    }
                    _ => {}
                }
            }
        }

        buf.lexicon = normalize_valence(valence);
        buf.ids.sort_unstable();
        let sublinear = self.cfg.sublinear_tf;
        let mut i = 0;
        while i < buf.ids.len() {
            let id = buf.ids[i];
            let mut j = i + 1;
            while j < buf.ids.len() && buf.ids[j] == id {
                j += 1;
            }
            let tf = (j - i) as f32;
            buf.counts.push((id, if sublinear { 1.0 + tf.ln() } else { tf }));
            i = j;
        }
    }

    #[inline]
    fn emit(&self, h: u64, prev: &mut Option<u64>, negated: bool, buf: &mut FeatureBuf) {
        let tok = if negated { h ^ NEGATED_SALT } else { h };
        buf.ids.push(self.bucket(tok));
        if self.cfg.bigrams
            && let Some(p) = *prev
        {
            buf.ids.push(self.bucket(p.rotate_left(23) ^ tok.wrapping_mul(BIGRAM_SALT)));
        }
        if let Some([lo, hi]) = self.cfg.char_ngrams
            && !buf.word.is_empty()
        {
            // Boundary marks make "ing" at a word's end differ from "ing" inside it.
            let mut marked = Vec::with_capacity(buf.word.len() + 2);
            marked.push(b'<');
            marked.extend_from_slice(&buf.word);
            marked.push(b'>');
            let chars: Vec<usize> = std::str::from_utf8(&marked)
                .map(|s| s.char_indices().map(|(i, _)| i).chain([marked.len()]).collect())
                .unwrap_or_default();
            let n_chars = chars.len().saturating_sub(1);
            for n in lo..=hi.min(n_chars) {
                for s in 0..=(n_chars - n) {
                    let g = &marked[chars[s]..chars[s + n]];
                    let hg = g.iter().fold(CHAR_SALT, |h, &b| step(h, b));
                    buf.ids.push(self.bucket(hg));
                }
            }
        }
        *prev = Some(tok);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn one_pass_emoticon_count_equals_counting_each_emoticon(s in "[:;=()\\[\\]D' a-]{0,16}") {
            let count = |set: &[&str]| set.iter().map(|e| s.matches(e).count() as i32).sum::<i32>();
            prop_assert_eq!(emoticon_polarity(&s), count(POSITIVE_EMOTICONS) - count(NEGATIVE_EMOTICONS));
        }
    }

    fn feats(f: &Featurizer, s: &str) -> Vec<(u32, f32)> {
        let mut b = FeatureBuf::default();
        f.extract(s, &mut b);
        b.counts
    }

    #[test]
    fn case_elongation_and_apostrophes_do_not_change_features() {
        let f = Featurizer::new(FeatureConfig::default());
        assert_eq!(feats(&f, "I LOVE it"), feats(&f, "i love it"));
        assert_eq!(feats(&f, "soooo good"), feats(&f, "sooo good"));
        assert_eq!(feats(&f, "don't go"), feats(&f, "dont go"));
    }

    #[test]
    fn negation_changes_the_words_it_scopes_until_punctuation() {
        let f = Featurizer::new(FeatureConfig::default());
        let neg = feats(&f, "not good");
        let plain = feats(&f, "good");
        assert!(plain.iter().all(|p| !neg.contains(p)), "negated 'good' must differ from 'good'");
        let ended = feats(&f, "not. good");
        assert!(plain.iter().all(|p| ended.contains(p)), "a full stop ends the negation scope");
    }

    #[test]
    fn counts_are_sorted_merged_and_sublinear() {
        let f = Featurizer::new(FeatureConfig { bigrams: false, negation: false, ..FeatureConfig::default() });
        let c = feats(&f, "ha ha ha");
        assert_eq!(c.len(), 1);
        assert!((c[0].1 - (1.0 + 3f32.ln())).abs() < 1e-6);
        let many = feats(&f, "a b c d e f g h");
        assert!(many.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn emoticons_are_counted_by_polarity() {
        assert_eq!(emoticon_polarity("great :) :-D"), 2);
        assert_eq!(emoticon_polarity("oh no :( but :)"), 0);
        assert_eq!(emoticon_polarity("sad :'("), -1);
        assert_eq!(emoticon_polarity("URL and 10:30"), 0);
    }

    #[test]
    fn char_ngrams_add_features() {
        let base = Featurizer::new(FeatureConfig::default());
        let chars = Featurizer::new(FeatureConfig { char_ngrams: Some([3, 4]), ..FeatureConfig::default() });
        assert!(feats(&chars, "lovely day").len() > feats(&base, "lovely day").len() + 8);
        assert!(feats(&chars, "").is_empty());
    }

    #[test]
    fn placeholders_are_left_out_when_asked_and_the_bigram_spans_them() {
        let skip = Featurizer::new(FeatureConfig { skip_placeholders: true, ..FeatureConfig::default() });
        let keep = Featurizer::new(FeatureConfig::default());
        let (mut a, mut b) = (FeatureBuf::default(), FeatureBuf::default());
        skip.extract("USER", &mut a);
        assert!(a.counts.is_empty(), "a lone mention says nothing");
        skip.extract("thanks USER URL great", &mut a);
        skip.extract("thanks great", &mut b);
        assert_eq!(a.counts, b.counts);
        keep.extract("thanks USER URL great", &mut b);
        assert_ne!(a.counts, b.counts, "kept unless asked");
    }
}
