//! The text normalisation the Sentiment140 training files were made with, applied to live tweets too.
//!
//! The training set's `prep.py` replaced `@[\w_]+` by `USER`, then `http\S+` by `URL`, stripped the text
//! and decoded HTML entities, in that order. Doing exactly the same to a live tweet keeps its features in
//! the distribution the model was trained on.

use regex::Regex;
use std::borrow::Cow;
use std::sync::LazyLock;

static MENTION: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"@[\w_]+").expect("valid regex"));
static LINK: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"http\S+").expect("valid regex"));

/// Normalises a raw tweet text the way the training data was normalised (mentions → `USER`,
/// links → `URL`, trimmed, HTML entities decoded). Borrows when nothing changes.
pub fn normalize(text: &str) -> Cow<'_, str> {
    // Most tweets lack one of the three triggers; skipping the regex engine keeps scoring fast.
    let mut out: Cow<'_, str> = Cow::Borrowed(text);
    if out.contains('@')
        && let Cow::Owned(s) = MENTION.replace_all(&out, "USER")
    {
        out = Cow::Owned(s);
    }
    if out.contains("http")
        && let Cow::Owned(s) = LINK.replace_all(&out, "URL")
    {
        out = Cow::Owned(s);
    }
    let trimmed = out.trim();
    if trimmed.len() != out.len() {
        out = Cow::Owned(trimmed.to_owned());
    }
    if out.contains('&')
        && let Cow::Owned(s) = html_escape::decode_html_entities(&out)
    {
        out = Cow::Owned(s);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_training_preparation() {
        assert_eq!(
            normalize("  @stellargirl I loooove it http://t.co/x?y=1 &amp; more &quot;x&quot; "),
            "USER I loooove it URL & more \"x\""
        );
        assert_eq!(normalize("mail me@example.com"), "mail meUSER.com");
        assert!(matches!(normalize("plain text"), Cow::Borrowed(_)));
    }
}
