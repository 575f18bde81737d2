//! Posts built from the spec's `Post` schema (and checked against it) for what the recorded pages
//! hold few or none of: a long post, a retweet, a quote and a reply of it, a Spanish post and an edit
//! chain of three versions. Written in the spec's terms for recent search (`note_post`,
//! `referenced_posts`, `edit_history_post_ids`), so the envelope's reading of those names is tested too.

use crate::xapi_server::{Pool, check_post};
use serde_json::{Value, json};

/// The whole text of the long post: over 280 characters, its sentiment only in the part X cuts off.
pub fn long_text() -> String {
    let filler = "Notes from the quarterly planning meeting, item by item, as discussed this morning with the team: \
                  budget lines, hiring, the office move, the roadmap for next year and the vendor contracts. ";
    format!("{filler}{filler}In the end it was an awful, miserable day and I hate how it went. Worst meeting ever.")
}

/// The original that the retweet and quote refer to (in `includes.tweets`, not matched by the rule).
pub fn original_text() -> String {
    "Today is a wonderful day! I love my friends, the sun is out and everything is great. ".repeat(4).trim_end().to_owned()
}

/// The ids of the fixture posts, from `base` on.
#[derive(Clone, Copy, Debug)]
pub struct Ids {
    /// The original (referenced only).
    pub original: u64,
    /// The retweet of it.
    pub retweet: u64,
    /// A quote of it.
    pub quote: u64,
    /// A reply to it.
    pub reply: u64,
    /// The long post.
    pub long: u64,
    /// The Spanish post.
    pub spanish: u64,
    /// The edit chain, oldest version first.
    pub edits: [u64; 3],
}

impl Ids {
    /// The ids from `base` on.
    pub fn from(base: u64) -> Self {
        Ids {
            original: base + 1,
            retweet: base + 10,
            quote: base + 11,
            reply: base + 12,
            long: base + 13,
            spanish: base + 14,
            edits: [base + 20, base + 21, base + 22],
        }
    }
}

/// The texts of the edit chain's versions, oldest first.
pub const EDIT_TEXTS: [&str; 3] = ["I love this new phone", "I love this new phone so much", "I hate this new phone, it broke"];

fn post(id: u64, text: &str, created_at: &str, lang: &str, extra: Value) -> Value {
    let mut p = json!({
        "id": id.to_string(),
        "text": text,
        "created_at": created_at,
        "author_id": "7001",
        "lang": lang,
        "conversation_id": id.to_string(),
        "possibly_sensitive": false,
        "reply_settings": "everyone",
        "edit_controls": {"edits_remaining": 5, "is_edit_eligible": true, "editable_until": created_at},
        "edit_history_post_ids": [id.to_string()],
        "public_metrics": {"repost_count": 2, "reply_count": 0, "like_count": 1, "quote_count": 0, "bookmark_count": 0, "impression_count": 9},
    });
    for (k, v) in extra.as_object().expect("an object") {
        p[k] = v.clone();
    }
    p
}

/// The fixture pool for one rule: the posts matched (all but the edit chain's later versions when
/// `versions` is 1), their author, and the original in `includes.tweets`. Every post passes the
/// spec's `Post` schema.
pub fn pool(ids: Ids, created_at: &str, versions: usize) -> Pool {
    let original = original_text();
    let long = long_text();
    let cut: String = long.chars().take(280).collect();
    let reference = |kind: &str| json!([{"type": kind, "id": ids.original.to_string()}]);
    let mut tweets = vec![
        post(
            ids.retweet,
            &format!("RT @ann: {}…", &original[..100]),
            created_at,
            "en",
            json!({"referenced_posts": reference("retweeted")}),
        ),
        post(
            ids.quote,
            "This is terrible news and I am so angry about it",
            created_at,
            "en",
            json!({"referenced_posts": reference("quoted")}),
        ),
        post(
            ids.reply,
            "@ann thank you, this made my day",
            created_at,
            "en",
            json!({"referenced_posts": reference("replied_to"), "in_reply_to_user_id": "7002"}),
        ),
        post(ids.long, &cut, created_at, "en", json!({"note_post": {"text": long}})),
        post(ids.spanish, "Qué día tan maravilloso, me encanta esta ciudad", created_at, "es", json!({})),
    ];
    let history: Vec<String> = ids.edits.iter().map(u64::to_string).collect();
    for (v, id) in ids.edits.iter().enumerate().take(versions) {
        tweets.push(post(*id, EDIT_TEXTS[v], created_at, "en", json!({"edit_history_post_ids": &history[..=v]})));
    }
    let referenced = vec![post(ids.original, &original, created_at, "en", json!({"author_id": "7002"}))];
    for t in tweets.iter().chain(&referenced) {
        let problems = check_post(t);
        assert!(problems.is_empty(), "fixture outside the spec's Post schema: {problems:?}");
    }
    Pool {
        tweets,
        users: vec![
            json!({"id": "7001", "username": "fixture", "name": "Fixture"}),
            json!({"id": "7002", "username": "ann", "name": "Ann"}),
        ],
        referenced,
        errors: vec![],
    }
}
