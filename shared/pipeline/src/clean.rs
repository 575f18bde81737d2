//! Clean: readable text, extracted entities and the model's input, from a validated tweet.

use crate::envelope::Tweet;
use regex::Regex;
use std::sync::LazyLock;

static HASHTAG: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?:^|[^\w&])#(\w+)").expect("valid regex"));
static MENTION: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?:^|[^\w])@(\w{1,15})").expect("valid regex"));
static URL: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"https?://\S+").expect("valid regex"));

/// The cleaned form of one tweet.
#[derive(Clone, Debug, PartialEq)]
pub struct CleanTweet {
    /// HTML entities decoded, whitespace collapsed; the original is kept in the envelope.
    pub clean_text: String,
    /// What the sentiment model reads: the Sentiment140 normalisation, whitespace collapsed.
    pub model_text: String,
    /// Hashtags without `#`, lowercased (X matches them case-insensitively), in order, unique.
    pub hashtags: Vec<String>,
    /// Mentioned usernames without `@`, lowercased, in order, unique.
    pub mentions: Vec<String>,
    /// Links, expanded where X expanded them, in order, unique.
    pub urls: Vec<String>,
}

fn collapse_whitespace(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for word in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
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

/// Cleans a tweet. Entities come from X's `entities` when present, else from the text itself.
pub fn clean(tweet: &Tweet) -> CleanTweet {
    let decoded = html_escape::decode_html_entities(&tweet.text);
    let clean_text = collapse_whitespace(&decoded);
    let model_text = collapse_whitespace(&tweetlake_sentiment::normalize(&tweet.text));
    let entities = tweet.entities.as_ref();
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
    use crate::envelope::{Entities, TagEntity};

    #[test]
    fn decodes_collapses_and_extracts_from_text() {
        let t = Tweet { text: "@Alice  loving #RustLang &amp; #rustlang\n http://t.co/x @bob".into(), ..Tweet::default() };
        let c = clean(&t);
        assert_eq!(c.clean_text, "@Alice loving #RustLang & #rustlang http://t.co/x @bob");
        assert_eq!(c.model_text, "USER loving #RustLang & #rustlang URL USER");
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
        assert_eq!(clean(&t).hashtags, vec!["brexit"]);
    }
}
