//! The Kafka message contract between the ingest and process functions: one tweet per message, in a
//! versioned JSON envelope. Defined once here; both sides use these types.
//!
//! ```json
//! {"v": 2,
//!  "tweet": { …X API v2 tweet object: id, text, created_at, author_id, lang, entities, public_metrics,
//!             note_tweet, referenced_tweets, edit_history_tweet_ids, edit_controls… },
//!  "author": { …X API v2 user object from includes.users, when expanded… },
//!  "referenced_tweet": { …the retweeted or quoted tweet from includes.tweets, when expanded… },
//!  "rules": [{"id": "1", "tag": "rust"}],
//!  "ingest": {"source": "recent_search", "run_id": "…", "fetched_at": "2026-11-27T06:00:00Z"}}
//! ```
//! Message key: the id of the post's first version ([`Tweet::edit_root_id`]; the tweet id unless the
//! post was edited), so every copy and every version of a post lands in the same partition. Headers:
//! see [`headers`].
//!
//! Version 2 added `referenced_tweet` and the tweet fields from `note_tweet` on; a version-1 message
//! is a version-2 message without them, so the process side reads both ([`READABLE_VERSIONS`]).

use serde::{Deserialize, Serialize};

/// Header names the producer sets on every message (informational: the process side reads the value).
pub mod headers {
    /// `recent_search`, `filtered_stream` or `replay`.
    pub const SOURCE: &str = "tweetlake-source";
    /// Comma-separated tags of the rules that matched.
    pub const RULES: &str = "tweetlake-rules";
    /// The envelope version of the value.
    pub const ENVELOPE_VERSION: &str = "tweetlake-envelope-version";
    /// The ingest run's id.
    pub const RUN_ID: &str = "tweetlake-run-id";
}

/// The envelope version this build writes.
pub const ENVELOPE_VERSION: u32 = 2;

/// The envelope versions this build reads: every field a later version added is optional.
pub const READABLE_VERSIONS: std::ops::RangeInclusive<u32> = 1..=ENVELOPE_VERSION;

/// One tweet as carried on the topic.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TweetMessage {
    /// Envelope version; 0 when absent, which the quality rules reject.
    #[serde(default)]
    pub v: u32,
    /// The X API v2 tweet object.
    #[serde(default)]
    pub tweet: Tweet,
    /// The author from `includes.users`, when the request expanded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<User>,
    /// The tweet a retweet or quote refers to, from `includes.tweets` (version 2 on): a retweet's own
    /// text is cut to 140 characters after `RT @user: `, its original's is whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referenced_tweet: Option<Box<Tweet>>,
    /// Every user rule that matched this tweet (a tweet matched by several rules is sent once).
    #[serde(default)]
    pub rules: Vec<MatchingRule>,
    /// Where and when the ingest function got it.
    #[serde(default)]
    pub ingest: IngestMeta,
}

/// The fields of an X API v2 tweet that Tweetlake keeps; others are ignored.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Tweet {
    /// Snowflake id as a decimal string.
    #[serde(default)]
    pub id: String,
    /// Tweet text as the API returns it (HTML entities still encoded).
    #[serde(default)]
    pub text: String,
    /// RFC 3339 creation time, e.g. `2021-09-22T16:37:29.000Z`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// Author's user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author_id: Option<String>,
    /// BCP 47 language tag detected by X.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    /// Id of the conversation's first tweet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    /// Engagement counters at fetch time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_metrics: Option<PublicMetrics>,
    /// Hashtags, mentions and URLs as parsed by X.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entities: Option<Entities>,
    /// The whole text of a post longer than 280 characters (`text` then holds its first 280).
    /// The spec's recent-search endpoint names it `note_post`.
    #[serde(default, alias = "note_post", skip_serializing_if = "Option::is_none")]
    pub note_tweet: Option<NoteTweet>,
    /// The tweets this one retweets, quotes or replies to.
    #[serde(default, alias = "referenced_posts", skip_serializing_if = "Vec::is_empty")]
    pub referenced_tweets: Vec<ReferencedTweet>,
    /// Ids of every version of the post, oldest first, this one included.
    #[serde(default, alias = "edit_history_post_ids", skip_serializing_if = "Vec::is_empty")]
    pub edit_history_tweet_ids: Vec<String>,
    /// Whether and how long the post can still be edited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edit_controls: Option<EditControls>,
    /// X's flag for links to sensitive content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub possibly_sensitive: Option<bool>,
    /// Who may reply (`everyone`, `mentionedUsers`, `following`…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_settings: Option<String>,
    /// The app the post was made with (deprecated by X, often absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl Tweet {
    /// The id of the post's first version: what every version of an edited post shares.
    pub fn edit_root_id(&self) -> &str {
        self.edit_history_tweet_ids.first().map_or(&self.id, String::as_str)
    }

    /// The whole text of a long post (`note_tweet`), when X sent a non-blank one.
    pub fn note_text(&self) -> Option<&str> {
        self.note_tweet.as_ref().map(|n| n.text.as_str()).filter(|n| !n.trim().is_empty())
    }

    /// The first reference of `kind`, if any.
    pub fn reference(&self, kind: ReferenceKind) -> Option<&ReferencedTweet> {
        self.referenced_tweets.iter().find(|r| r.kind == kind)
    }
}

/// The whole text of a long post.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NoteTweet {
    /// The full text.
    #[serde(default)]
    pub text: String,
}

/// How a tweet refers to another.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReferenceKind {
    /// A retweet of the referenced tweet.
    Retweeted,
    /// A quote of it.
    Quoted,
    /// A reply to it.
    RepliedTo,
    /// A kind this build does not know.
    #[default]
    #[serde(other)]
    Other,
}

/// One reference from a tweet to another.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReferencedTweet {
    /// How it refers.
    #[serde(default, rename = "type")]
    pub kind: ReferenceKind,
    /// The referenced tweet's id.
    #[serde(default)]
    pub id: String,
}

/// Edit eligibility at fetch time.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EditControls {
    /// Edits left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edits_remaining: Option<i64>,
    /// Whether the post may be edited at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_edit_eligible: Option<bool>,
    /// Until when (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub editable_until: Option<String>,
}

/// Engagement counters of a tweet.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PublicMetrics {
    /// Retweets (`repost_count` in the spec's newer terms).
    #[serde(default, alias = "repost_count")]
    pub retweet_count: i64,
    /// Replies.
    #[serde(default)]
    pub reply_count: i64,
    /// Likes.
    #[serde(default)]
    pub like_count: i64,
    /// Quote tweets.
    #[serde(default)]
    pub quote_count: i64,
}

/// Entities parsed by X; each list may be absent.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Entities {
    /// `#tag` entities.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hashtags: Vec<TagEntity>,
    /// `@user` entities.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<MentionEntity>,
    /// Link entities.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<UrlEntity>,
}

/// A hashtag entity.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TagEntity {
    /// The tag without `#`.
    pub tag: String,
}

/// A mention entity.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MentionEntity {
    /// The username without `@`.
    pub username: String,
}

/// A link entity.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UrlEntity {
    /// The t.co link as it appears in the text.
    pub url: String,
    /// The link it expands to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expanded_url: Option<String>,
}

/// The expanded author.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// User id.
    pub id: String,
    /// Handle without `@`.
    #[serde(default)]
    pub username: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
}

/// A user rule that matched the tweet. The stream API has sent ids as numbers as well as strings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MatchingRule {
    /// Rule id, when the rule came from the API.
    #[serde(default, deserialize_with = "string_or_number", skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The user's tag for the rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

/// Provenance added by the ingest function.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct IngestMeta {
    /// `recent_search`, `filtered_stream` or `replay`.
    #[serde(default)]
    pub source: String,
    /// Id of the ingest run that produced the message.
    #[serde(default)]
    pub run_id: String,
    /// RFC 3339 time the API response was received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetched_at: Option<String>,
}

fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        Some(serde_json::Value::String(s)) => Some(s),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stream_rule_ids_given_as_numbers_and_ignores_unknown_fields() {
        let m: TweetMessage = serde_json::from_str(
            r#"{"v":1,"tweet":{"id":"1","text":"hi","possibly_sensitive":false},"rules":[{"id":1378,"tag":null}],"ingest":{}}"#,
        )
        .unwrap();
        assert_eq!(m.rules[0].id.as_deref(), Some("1378"));
        assert_eq!(m.rules[0].tag, None);
        let back: TweetMessage = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn reads_both_namings_of_the_new_fields_and_finds_the_edit_root() {
        let wire = r#"{"id":"3","text":"t","referenced_tweets":[{"type":"quoted","id":"9"}],"edit_history_tweet_ids":["1","3"],"note_tweet":{"text":"long"}}"#;
        let spec = r#"{"id":"3","text":"t","referenced_posts":[{"type":"quoted","id":"9"}],"edit_history_post_ids":["1","3"],"note_post":{"text":"long"}}"#;
        let (a, b): (Tweet, Tweet) = (serde_json::from_str(wire).unwrap(), serde_json::from_str(spec).unwrap());
        assert_eq!(a, b);
        assert_eq!(a.edit_root_id(), "1");
        assert_eq!(a.reference(ReferenceKind::Quoted).map(|r| r.id.as_str()), Some("9"));
        assert_eq!(a.note_tweet.map(|n| n.text).as_deref(), Some("long"));
        let plain: Tweet =
            serde_json::from_str(r#"{"id":"5","text":"t","referenced_tweets":[{"type":"new_kind","id":"2"}]}"#).unwrap();
        assert_eq!((plain.edit_root_id(), plain.referenced_tweets[0].kind), ("5", ReferenceKind::Other));
    }
}
