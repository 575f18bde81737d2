//! The lexicon expert: human-rated word valences from VADER (Hutto & Gilbert, ICWSM 2014), looked up by
//! the featuriser's own word hash while it walks the text, so the score costs one probe per word.
//!
//! Why a lexicon next to the learned weights: Sentiment140's labels come from emoticons, so the learned
//! weights also learn what people tweeted about on happy and sad days ("Lebron", "bank", "exam"). VADER's
//! valences were rated by people for the word alone. The model adds the two as a product of experts,
//! each calibrated on the training data (see `models/MODEL.md`).
//!
//! The data file is `data/vader_lexicon.txt` of vaderSentiment 3.3.2 (MIT, `data/VADER-LICENSE.txt`),
//! byte for byte. Only VADER's word entries are used: emoticon entries are left to the emoticon prior,
//! and VADER's rules are reduced to the negation flip (its ×−0.74, within the featuriser's negation
//! scope) and its normalisation of the valence sum to (−1, 1).

use crate::wordhash::hash_token;
use std::sync::OnceLock;

/// VADER's factor for a word inside a negation's scope.
pub const NEGATED_VALENCE: f32 = -0.74;

/// VADER's `alpha`: `s / sqrt(s² + alpha)` maps a valence sum into (−1, 1).
const ALPHA: f32 = 15.0;

const VADER_LEXICON: &str = include_str!("../data/vader_lexicon.txt");

/// Word valences keyed by word hash, in an open-addressed table (empty slots hold NaN).
///
/// Most words of a tweet are not in the lexicon; a one-bit-per-hash-value filter small enough for L1
/// cache answers those without touching the 192 KB table (this cut the lookups' cost by more than half
/// in the `features/extract_*` benches).
#[derive(Debug)]
pub struct Lexicon {
    keys: Vec<u64>,
    valences: Vec<f32>,
    mask: usize,
    filter: Vec<u64>,
}

/// log2 of the filter's bits: 2^16 bits = 8 KB; with ~7,200 words set, ~11 % of other words pass it.
const FILTER_BITS: u32 = 16;

impl Lexicon {
    /// The VADER word lexicon, built once per process and shared.
    pub fn vader() -> &'static Lexicon {
        static VADER: OnceLock<Lexicon> = OnceLock::new();
        VADER.get_or_init(Lexicon::build_vader)
    }

    /// Parses the embedded VADER lexicon into a new table (what [`Lexicon::vader`] does once).
    pub fn build_vader() -> Lexicon {
        Lexicon::parse(VADER_LEXICON)
    }

    /// Reads `token<TAB>mean valence<TAB>…` lines. VADER looks words up lowercased, so entries with
    /// capitals are never matched there and are skipped here too; entries that are not one word (emoticons)
    /// can never be a token of the featuriser. Apostrophes are dropped as the featuriser drops them. Of two
    /// entries for one word the later wins, as in VADER's own dictionary (`lol` is listed twice).
    fn parse(text: &str) -> Lexicon {
        let entries: Vec<(u64, f32)> = text
            .lines()
            .filter_map(|line| {
                let mut cols = line.split('\t');
                let word = cols.next()?;
                let valence: f32 = cols.next()?.trim().parse().ok()?;
                let is_word = word.chars().all(|c| (c.is_alphanumeric() && !c.is_uppercase()) || c == '\'');
                (is_word && word.chars().any(char::is_alphanumeric)).then(|| (hash_token(word), valence))
            })
            .collect();
        let slots = (entries.len() * 2).next_power_of_two().max(16);
        let mut lex = Lexicon {
            keys: vec![0; slots],
            valences: vec![f32::NAN; slots],
            mask: slots - 1,
            filter: vec![0; 1 << (FILTER_BITS - 6)],
        };
        for (key, valence) in entries {
            let f = Self::filter_bit(key);
            lex.filter[f >> 6] |= 1 << (f & 63);
            let i = lex.find(key);
            lex.keys[i] = key;
            lex.valences[i] = valence;
        }
        lex
    }

    #[inline]
    fn filter_bit(key: u64) -> usize {
        (key.wrapping_mul(0xd6e8_feb8_6659_fd93) >> (64 - FILTER_BITS)) as usize
    }

    #[inline]
    fn slot(&self, key: u64) -> usize {
        // The key is a multiplicative hash whose low bits are weak; the high ones index the table.
        (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize & self.mask
    }

    /// Valence of the word with this featuriser hash, if the lexicon has it.
    #[inline(always)]
    pub fn valence(&self, key: u64) -> Option<f32> {
        let f = Self::filter_bit(key);
        if self.filter[f >> 6] & (1 << (f & 63)) == 0 {
            return None;
        }
        self.probe(key)
    }

    /// The table probe behind the filter, kept out of line so the featuriser's loop stays small.
    #[inline(never)]
    fn probe(&self, key: u64) -> Option<f32> {
        let v = self.valences[self.find(key)];
        (!v.is_nan()).then_some(v)
    }

    /// The slot holding `key`, or the empty slot where it belongs (linear probing; the table is at most
    /// half full, so an empty slot always ends the walk).
    fn find(&self, key: u64) -> usize {
        let mut i = self.slot(key);
        while !self.valences[i].is_nan() && self.keys[i] != key {
            i = (i + 1) & self.mask;
        }
        i
    }

    /// Number of words in the table.
    pub fn len(&self) -> usize {
        self.valences.iter().filter(|v| !v.is_nan()).count()
    }

    /// Whether the table holds no word.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// VADER's normalisation of a text's valence sum into (−1, 1).
#[inline]
pub fn normalize_valence(sum: f32) -> f32 {
    sum / (sum * sum + ALPHA).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vader_words_are_found_by_the_featurisers_hash() {
        let lex = Lexicon::vader();
        assert!(lex.len() > 7_000, "{} words", lex.len());
        assert_eq!(lex.valence(hash_token("good")), Some(1.9));
        assert_eq!(lex.valence(hash_token("GOOD")), Some(1.9), "lookups are case-blind");
        assert_eq!(lex.valence(hash_token("lol")), Some(1.8), "the later of the two entries, as VADER reads it");
        assert!(lex.valence(hash_token("hate")).unwrap() < -2.0);
        assert_eq!(lex.valence(hash_token("table")), None);
    }

    #[test]
    fn parse_skips_emoticons_and_capitalised_entries_and_keeps_the_last_duplicate() {
        let lex = Lexicon::parse(":)\t2.0\t0\t[]\nLOL\t2.9\nok\t0.9\nok\t5.0\ndon't\t-1\n");
        assert_eq!(lex.len(), 2);
        assert_eq!(lex.valence(hash_token("ok")), Some(5.0));
        assert_eq!(lex.valence(hash_token("dont")), Some(-1.0));
        assert_eq!(lex.valence(hash_token("lol")), None);
    }

    #[test]
    fn normalisation_is_odd_bounded_and_monotone() {
        assert_eq!(normalize_valence(0.0), 0.0);
        assert!((normalize_valence(1.9) + normalize_valence(-1.9)).abs() < 1e-7);
        assert!(normalize_valence(100.0) < 1.0 && normalize_valence(2.0) < normalize_valence(3.0));
    }
}
