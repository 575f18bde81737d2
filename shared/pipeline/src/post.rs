//! Post: what a validated message is as a post — its kind, the whole text a reader means by it, the
//! post it refers to, its edit chain, and whether the sentiment model may score it.
//!
//! - A long post's `text` holds its first 280 characters; its `note_tweet` holds all of it.
//! - A retweet's `text` is `RT @user: ` and its original's text cut to fit; when ingest expanded the
//!   original (`referenced_tweet`), the row carries the original's whole text instead.
//! - Every version of an edited post names its first version in `edit_history_tweet_ids[0]`.

use crate::envelope::{Entities, ReferenceKind, TweetMessage};

/// What kind of post a tweet is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Not a retweet, quote or reply.
    Original,
    /// A retweet: someone else's words, passed on.
    Retweet,
    /// A quote: the author's words on top of another post.
    Quote,
    /// A reply to another post.
    Reply,
}

impl Kind {
    /// The value of the `kind` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Original => "original",
            Kind::Retweet => "retweet",
            Kind::Quote => "quote",
            Kind::Reply => "reply",
        }
    }

    /// The kind a `kind` column value names (anything else reads as an original).
    pub fn parse(s: &str) -> Self {
        [Kind::Retweet, Kind::Quote, Kind::Reply].into_iter().find(|k| k.as_str() == s).unwrap_or(Kind::Original)
    }
}

/// A message read as a post: borrowed from it, so nothing is copied on the hot path.
#[derive(Clone, Copy, Debug)]
pub struct Post<'a> {
    /// Its kind; a retweet wins over a quote or reply (X marks a retweet of a reply with both).
    pub kind: Kind,
    /// The whole text: the original's for a retweet when expanded, else the note text of a long
    /// post, else `text`.
    pub full_text: &'a str,
    /// The entities that go with `full_text` (`None` where X gave none for it: the cleaner then reads
    /// them off the text).
    pub entities: Option<&'a Entities>,
    /// The id of the post this one retweets, quotes or replies to.
    pub referenced_id: Option<&'a str>,
    /// The id of the first version of the post (the tweet's own id unless it was edited).
    pub edit_root_id: &'a str,
    /// Whether `text` is not the whole post (a long post, or a retweet cut short of its original).
    pub truncated: bool,
}

/// What a post adds to its row, owned (the message moves into the row after the model has read the
/// text).
#[derive(Clone, Debug, PartialEq)]
pub struct PostColumns {
    /// See [`Post::kind`].
    pub kind: Kind,
    /// See [`Post::full_text`].
    pub full_text: String,
    /// See [`Post::referenced_id`].
    pub referenced_id: Option<String>,
    /// See [`Post::edit_root_id`].
    pub edit_root_id: String,
    /// See [`Post::truncated`].
    pub truncated: bool,
}

impl<'a> Post<'a> {
    /// The owned columns of the post.
    pub fn columns(&self) -> PostColumns {
        PostColumns {
            kind: self.kind,
            full_text: self.full_text.to_owned(),
            referenced_id: self.referenced_id.map(str::to_owned),
            edit_root_id: self.edit_root_id.to_owned(),
            truncated: self.truncated,
        }
    }

    /// Reads `message` as a post.
    pub fn of(message: &'a TweetMessage) -> Self {
        let t = &message.tweet;
        let (kind, reference) = [
            (Kind::Retweet, ReferenceKind::Retweeted),
            (Kind::Quote, ReferenceKind::Quoted),
            (Kind::Reply, ReferenceKind::RepliedTo),
        ]
        .into_iter()
        .find_map(|(kind, r)| t.reference(r).map(|r| (kind, Some(r.id.as_str()))))
        .unwrap_or((Kind::Original, None));
        let own_note = t.note_text();
        let original = message.referenced_tweet.as_deref().filter(|o| kind == Kind::Retweet && Some(o.id.as_str()) == reference);
        let (full_text, entities) = match (original, own_note) {
            (Some(o), _) => match o.note_text() {
                Some(note) => (note, None),
                None => (o.text.as_str(), o.entities.as_ref()),
            },
            (None, Some(note)) => (note, None),
            (None, None) => (t.text.as_str(), t.entities.as_ref()),
        };
        let truncated = match original {
            // The retweet's text holds the original's only if it was not cut.
            Some(_) => !t.text.contains(full_text),
            None => own_note.is_some_and(|n| n != t.text),
        };
        Post { kind, full_text, entities, referenced_id: reference, edit_root_id: t.edit_root_id(), truncated }
    }
}

/// Which tweets the sentiment model may score: those in the languages it was trained for. X tags a
/// tweet with the BCP 47 code it detected; the rule for the rest:
/// - X's codes for text without language (`zxx`, and `qme` media/links only, `qam` mentions only,
///   `qht` hashtags only, `qct` cashtags only, `art` emoji only, `qst` very short) are never scored;
/// - `und` (undetermined) or no tag is scored when the text has a word of two or more Latin letters
///   outside links, mentions and hashtags: a short English line is often `und`, while emoji or links
///   alone say nothing the model can read;
/// - any other tag is scored only if listed (subtags ignored: `en-GB` counts as `en`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Languages {
    /// Primary language subtags, lowercase; empty means every language.
    scored: Vec<String>,
}

const NO_LANGUAGE: [&str; 7] = ["zxx", "qme", "qam", "qht", "qct", "art", "qst"];

impl Default for Languages {
    fn default() -> Self {
        Self { scored: vec!["en".into()] }
    }
}

impl Languages {
    /// The list of `TWEETLAKE_SENTIMENT_LANGUAGES`: comma-separated codes, or `*` for every language.
    pub fn parse(list: &str) -> Result<Self, String> {
        if list.trim() == "*" {
            return Ok(Self { scored: Vec::new() });
        }
        let scored: Vec<String> = list.split(',').map(|c| c.trim().to_ascii_lowercase()).filter(|c| !c.is_empty()).collect();
        if scored.is_empty() {
            return Err("no language given; list codes such as `en,es`, or `*` for every language".into());
        }
        if let Some(bad) = scored.iter().find(|c| !(2..=3).contains(&c.len()) || !c.bytes().all(|b| b.is_ascii_lowercase())) {
            return Err(format!("{bad:?} is not a two- or three-letter language code"));
        }
        Ok(Self { scored })
    }

    /// Whether a tweet tagged `lang` with the whole text `text` is scored.
    pub fn scores(&self, lang: Option<&str>, text: &str) -> bool {
        let primary = lang.map(|l| l.split(['-', '_']).next().unwrap_or(l).to_ascii_lowercase());
        match primary.as_deref() {
            Some(code) if NO_LANGUAGE.contains(&code) => false,
            None | Some("und" | "") => has_latin_word(text),
            Some(code) => self.scored.is_empty() || self.scored.iter().any(|s| s == code),
        }
    }
}

/// True if `text` has a word of two or more Latin letters that is not a link, mention or hashtag.
fn has_latin_word(text: &str) -> bool {
    text.split_whitespace()
        .filter(|w| !(w.starts_with('@') || w.starts_with('#') || w.starts_with("http://") || w.starts_with("https://")))
        .any(|w| w.chars().filter(|c| c.is_ascii_alphabetic() || matches!(c, 'À'..='ɏ')).nth(1).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{NoteTweet, ReferencedTweet, Tweet};

    fn msg(tweet: Tweet, referenced: Option<Tweet>) -> TweetMessage {
        TweetMessage { v: 2, tweet, referenced_tweet: referenced.map(Box::new), ..TweetMessage::default() }
    }
    fn refers(kind: ReferenceKind, id: &str) -> Vec<ReferencedTweet> {
        vec![ReferencedTweet { kind, id: id.into() }]
    }

    #[test]
    fn reads_kind_full_text_reference_and_edit_root() {
        let long = "a".repeat(300);
        let m = msg(
            Tweet {
                id: "3".into(),
                text: long[..280].into(),
                note_tweet: Some(NoteTweet { text: long.clone() }),
                edit_history_tweet_ids: vec!["1".into(), "3".into()],
                ..Tweet::default()
            },
            None,
        );
        let p = Post::of(&m);
        assert_eq!(
            (p.kind, p.full_text, p.edit_root_id, p.truncated, p.referenced_id),
            (Kind::Original, &*long, "1", true, None)
        );

        let original = Tweet { id: "9".into(), text: "the whole original text, longer than the cut".into(), ..Tweet::default() };
        let rt = Tweet {
            id: "4".into(),
            text: "RT @a: the whole original…".into(),
            referenced_tweets: refers(ReferenceKind::Retweeted, "9"),
            ..Tweet::default()
        };
        let m = msg(rt.clone(), Some(original.clone()));
        let p = Post::of(&m);
        assert_eq!((p.kind, p.full_text, p.referenced_id, p.truncated), (Kind::Retweet, original.text.as_str(), Some("9"), true));
        let m = msg(rt, None);
        assert_eq!(Post::of(&m).full_text, "RT @a: the whole original…", "without the expansion the retweet keeps its own text");

        let quote = Tweet {
            id: "5".into(),
            text: "so true".into(),
            referenced_tweets: refers(ReferenceKind::Quoted, "9"),
            ..Tweet::default()
        };
        let m = msg(quote, Some(original));
        let p = Post::of(&m);
        assert_eq!((p.kind, p.full_text, p.truncated), (Kind::Quote, "so true", false), "a quote is scored on its own words");
        let reply = Tweet {
            id: "6".into(),
            text: "@a no".into(),
            referenced_tweets: refers(ReferenceKind::RepliedTo, "2"),
            ..Tweet::default()
        };
        let m = msg(reply, None);
        assert_eq!((Post::of(&m).kind, Post::of(&m).edit_root_id), (Kind::Reply, "6"));
    }

    #[test]
    fn scores_listed_languages_and_undetermined_text_with_words() {
        let en = Languages::default();
        assert!(en.scores(Some("en"), "hello there"));
        assert!(en.scores(Some("en-GB"), "hello there"));
        assert!(!en.scores(Some("es"), "hola amigos"));
        assert!(!en.scores(Some("ko"), "안녕하세요"));
        assert!(en.scores(Some("und"), "lol ok"));
        assert!(en.scores(None, "lol ok"));
        assert!(!en.scores(Some("und"), "😀😀 https://t.co/x @someone #tag"));
        assert!(!en.scores(Some("zxx"), "https://t.co/x"));
        assert!(!en.scores(Some("art"), "😀"));
        let all = Languages::parse("*").unwrap();
        assert!(all.scores(Some("es"), "hola") && !all.scores(Some("qme"), "https://t.co/x"));
        assert!(Languages::parse("en, ES").unwrap().scores(Some("es"), "hola"));
        assert!(Languages::parse(" , ").is_err());
        assert!(Languages::parse("english").unwrap_err().contains("english"));
    }
}
