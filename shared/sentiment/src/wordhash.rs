//! The hash of one word as the featuriser sees it (lowercased, elongations cut, apostrophes dropped),
//! shared by the featuriser and the word lists keyed by it (negations, the lexicon).

/// The hash of the empty word.
pub(crate) const SEED: u64 = 0x243f_6a88_85a3_08d3;
/// Adds one byte to a running hash.
#[inline]
pub(crate) fn step(h: u64, byte: u8) -> u64 {
    (h.rotate_left(5) ^ u64::from(byte)).wrapping_mul(0x517c_c1b7_2722_0a95)
}

/// Running hash of one word under the featuriser's rules: characters arrive lowercased, and a run of one
/// character counts twice at most, so elongations ("sooooo") share the features of "soo".
#[derive(Clone, Copy)]
pub(crate) struct WordHasher {
    pub(crate) hash: u64,
    last: char,
    run: u32,
}

impl WordHasher {
    pub(crate) const NEW: Self = Self { hash: SEED, last: '\0', run: 0 };

    /// Adds one lowercase char; its bytes also go to `keep` unless the char is cut as an elongation.
    #[inline(always)]
    pub(crate) fn push(&mut self, lc: char, keep: Option<&mut Vec<u8>>) {
        if lc == self.last {
            self.run = self.run.saturating_add(1);
            if self.run > 2 {
                return;
            }
        } else {
            self.last = lc;
            self.run = 1;
        }
        let mut tmp = [0u8; 4];
        let bytes = lc.encode_utf8(&mut tmp).as_bytes();
        for &b in bytes {
            self.hash = step(self.hash, b);
        }
        if let Some(k) = keep {
            k.extend_from_slice(bytes);
        }
    }
}

/// The hash the featuriser gives `word` as one token (case, elongation and apostrophes as in
/// [`crate::Featurizer::extract`]); word lists such as the negations and the lexicon are keyed by it.
pub fn hash_token(word: &str) -> u64 {
    let mut h = WordHasher::NEW;
    for c in word.chars().filter(|&c| c != '\'' && c != '\u{2019}') {
        for lc in c.to_lowercase() {
            h.push(lc, None);
        }
    }
    h.hash
}
