//! The Kafka message contract between the ingest and process functions: one tweet per message, in a
//! versioned JSON envelope. Defined once here; both sides use these types.
//!
//! ```json
//! {"v": 1,
//!  "tweet": { …X API v2 tweet object: id, text, created_at, author_id, lang, entities, public_metrics… },
//!  "author": { …X API v2 user object from includes.users, when expanded… },
//!  "rules": [{"id": "1", "tag": "rust"}],
//!  "ingest": {"source": "recent_search", "run_id": "…", "fetched_at": "2026-11-27T06:00:00Z"}}
//! ```
//! Message key: the tweet id (so every copy of a tweet lands in the same partition). Headers: see
//! [`headers`].

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

/// The envelope version this build writes and reads.
pub const ENVELOPE_VERSION: u32 = 1;

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
}

/// Engagement counters of a tweet.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PublicMetrics {
    /// Retweets.
    #[serde(default)]
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
}
