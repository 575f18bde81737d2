//! Clean: readable text, extracted entities and the model's input, from a validated tweet.

use crate::envelope::Entities;
use regex::Regex;
use std::borrow::Cow;
use std::sync::LazyLock;

static HASHTAG: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?:^|[^\w&])#(\w+)").expect("valid regex"));
static MENTION: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?:^|[^\w])@(\w{1,15})").expect("valid regex"));
static URL: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"https?://\S+").expect("valid regex"));

/// The cleaned form of one tweet; the model's input borrows from the tweet when normalising changes nothing.
#[derive(Clone, Debug, PartialEq)]
pub struct CleanTweet<'a> {
    /// HTML entities decoded, whitespace collapsed; the original is kept in the envelope.
    pub clean_text: String,
    /// What the sentiment model reads: exactly the Sentiment140 normalisation, as `tweetlake score` and
    /// the evaluation apply it (whitespace is not collapsed: the model's tokeniser splits on it anyway).
    pub model_text: Cow<'a, str>,
    /// Hashtags without `#`, lowercased (X matches them case-insensitively), in order, unique.
    pub hashtags: Vec<String>,
    /// Mentioned usernames without `@`, lowercased, in order, unique.
    pub mentions: Vec<String>,
    /// Links, expanded where X expanded them, in order, unique.
    pub urls: Vec<String>,
}

/// The owned part of a cleaned tweet: what goes into its row once the model has read its input.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Cleaned {
    /// See [`CleanTweet::clean_text`].
    pub clean_text: String,
    /// See [`CleanTweet::hashtags`].
    pub hashtags: Vec<String>,
    /// See [`CleanTweet::mentions`].
    pub mentions: Vec<String>,
    /// See [`CleanTweet::urls`].
    pub urls: Vec<String>,
}

impl<'a> CleanTweet<'a> {
    /// The model's input, and the owned rest: dropping the input ends the borrow of the tweet, so the
    /// tweet's own text can then move into its row.
    pub fn split(self) -> (Cow<'a, str>, Cleaned) {
        let CleanTweet { clean_text, model_text, hashtags, mentions, urls } = self;
        (model_text, Cleaned { clean_text, hashtags, mentions, urls })
    }
}

/// Per byte: 0 not whitespace, 1 ASCII whitespace, 2 the lead byte of a char that may be Unicode
/// whitespace (U+0085, U+00A0, U+1680, U+2000–U+205F, U+3000 start with C2, E1, E2 or E3).
const WHITESPACE_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let ascii = [b' ', b'\t', b'\n', 0x0B, 0x0C, b'\r'];
    let mut k = 0;
    while k < ascii.len() {
        t[ascii[k] as usize] = 1;
        k += 1;
    }
    t[0xC2] = 2;
    t[0xE1] = 2;
    t[0xE2] = 2;
    t[0xE3] = 2;
    t
};

/// Length of the whitespace char starting at byte `i` of `s`, 0 if it is not whitespace (Unicode's
/// White_Space, as `str::split_whitespace`). A table lookup per byte; a char is decoded only at the
/// few lead bytes whitespace chars share (and a lead byte always starts a char, so slicing is safe).
#[inline(always)]
fn whitespace_len(s: &str, i: usize) -> usize {
    match WHITESPACE_CLASS[s.as_bytes()[i] as usize] {
        0 => 0,
        1 => 1,
        _ => s[i..].chars().next().filter(|c| c.is_whitespace()).map_or(0, char::len_utf8),
    }
}

/// True if `s` has leading, trailing, repeated or non-space whitespace.
fn needs_collapse(s: &str) -> bool {
    let (mut prev_space, mut i) = (true, 0);
    while i < s.len() {
        match whitespace_len(s, i) {
            0 => prev_space = false,
            1 if s.as_bytes()[i] == b' ' && !prev_space => prev_space = true,
            _ => return true,
        }
        i += 1;
    }
    prev_space && !s.is_empty()
}

fn push_word(out: &mut String, word: &str) {
    if !out.is_empty() {
        out.push(' ');
    }
    out.push_str(word);
}

/// `s` with whitespace runs turned into one space and none at either end. Most tweets need no change:
/// one byte scan, then `s` itself is returned.
fn collapse_whitespace(s: Cow<'_, str>) -> String {
    if !needs_collapse(&s) {
        return s.into_owned();
    }
    let mut out = String::with_capacity(s.len());
    let (mut word_start, mut i) = (None, 0);
    while i < s.len() {
        match whitespace_len(&s, i) {
            0 => {
                word_start.get_or_insert(i);
                i += 1;
            }
            w => {
                if let Some(start) = word_start.take() {
                    push_word(&mut out, &s[start..i]);
                }
                i += w;
            }
        }
    }
    if let Some(start) = word_start {
        push_word(&mut out, &s[start..]);
    }
    out
}

fn unique(items: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

/// Cleans a post's whole text ([`crate::post::Post::full_text`]). Entities come from X's `entities`
/// for that text when present, else from the text itself.
pub fn clean<'a>(text: &'a str, entities: Option<&Entities>) -> CleanTweet<'a> {
    let decoded = html_escape::decode_html_entities(text);
    let clean_text = collapse_whitespace(decoded);
    let model_text = tweetlake_sentiment::normalize(text);
    let hashtags = match entities.filter(|e| !e.hashtags.is_empty()) {
        Some(e) => unique(e.hashtags.iter().map(|h| h.tag.to_lowercase())),
        None => unique(HASHTAG.captures_iter(&clean_text).map(|c| c[1].to_lowercase())),
    };
    let mentions = match entities.filter(|e| !e.mentions.is_empty()) {
        Some(e) => unique(e.mentions.iter().map(|m| m.username.to_lowercase())),
        None => unique(MENTION.captures_iter(&clean_text).map(|c| c[1].to_lowercase())),
    };
    let urls = match entities.filter(|e| !e.urls.is_empty()) {
        Some(e) => unique(e.urls.iter().map(|u| u.expanded_url.clone().unwrap_or_else(|| u.url.clone()))),
        None => unique(URL.find_iter(&clean_text).map(|m| m.as_str().to_owned())),
    };
    CleanTweet { clean_text, model_text, hashtags, mentions, urls }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{TagEntity, Tweet};
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn fast_path_equals_split_whitespace(s in "[ a\t\n\u{a0}\u{85}\u{2003}\u{3000}\u{1c}\u{1680}\u{2028}\u{205f}\u{2019}é😀]{0,12}") {
            prop_assert_eq!(collapse_whitespace(Cow::Borrowed(&s)), s.split_whitespace().collect::<Vec<_>>().join(" "));
        }
    }

    #[test]
    fn decodes_collapses_and_extracts_from_text() {
        let t = Tweet { text: "@Alice  loving #RustLang &amp; #rustlang\n http://t.co/x @bob".into(), ..Tweet::default() };
        let c = clean(&t.text, t.entities.as_ref());
        assert_eq!(c.clean_text, "@Alice loving #RustLang & #rustlang http://t.co/x @bob");
        assert_eq!(c.model_text, "USER  loving #RustLang & #rustlang\n URL USER");
        assert_eq!(c.hashtags, vec!["rustlang"]);
        assert_eq!(c.mentions, vec!["alice", "bob"]);
        assert_eq!(c.urls, vec!["http://t.co/x"]);
    }

    #[test]
    fn prefers_x_entities() {
        let t = Tweet {
            text: "no tags in text".into(),
            entities: Some(Entities { hashtags: vec![TagEntity { tag: "Brexit".into() }], ..Entities::default() }),
            ..Tweet::default()
        };
        assert_eq!(clean(&t.text, t.entities.as_ref()).hashtags, vec!["brexit"]);
    }
}
