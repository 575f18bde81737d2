//! Gathers the tweets of one run into envelopes: one message per tweet id, however many rules (or
//! pages, or reconnects) returned it, carrying every rule that matched.

use crate::xapi::Includes;
use std::collections::HashMap;
use tweetlake_contract::envelope::{ENVELOPE_VERSION, IngestMeta, MatchingRule, ReferenceKind, Tweet, TweetMessage};

/// The run's messages so far, in first-seen order.
#[derive(Debug)]
pub struct Collector {
    meta: IngestMeta,
    index: HashMap<String, usize>,
    messages: Vec<TweetMessage>,
    /// Stream lines that could not be read (cut off by a disconnect, not JSON); forwarded raw so the
    /// process function quarantines them with the reason instead of them being lost here.
    pub unreadable: Vec<Vec<u8>>,
}

impl Collector {
    /// An empty collection; every message will carry `meta`.
    pub fn new(meta: IngestMeta) -> Self {
        Self { meta, index: HashMap::new(), messages: Vec::new(), unreadable: Vec::new() }
    }

    /// Adds the tweets of one response with their authors and the tweets they retweet or quote from
    /// `includes`; returns how many were new.
    pub fn add(&mut self, tweets: Vec<Tweet>, includes: &Includes, rules: &[MatchingRule]) -> usize {
        let mut new = 0;
        for tweet in tweets {
            if let Some(&i) = self.index.get(&tweet.id) {
                let have = &mut self.messages[i].rules;
                for r in rules {
                    if !have.iter().any(|h| h.tag == r.tag && (h.id == r.id || h.id.is_none() || r.id.is_none())) {
                        have.push(r.clone());
                    }
                }
                continue;
            }
            let author = tweet.author_id.as_ref().and_then(|a| includes.users.iter().find(|u| &u.id == a)).cloned();
            let referenced_tweet = referenced(&tweet, includes).map(Box::new);
            self.index.insert(tweet.id.clone(), self.messages.len());
            self.messages.push(TweetMessage {
                v: ENVELOPE_VERSION,
                tweet,
                author,
                referenced_tweet,
                rules: rules.to_vec(),
                ingest: self.meta.clone(),
            });
            new += 1;
        }
        new
    }

    /// Distinct tweets collected.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// Whether nothing was collected.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// The messages, in first-seen order.
    pub fn messages(&self) -> &[TweetMessage] {
        &self.messages
    }
}

/// The tweet whose words `tweet` carries besides its own: the retweeted one, else the quoted one
/// (a reply's parent is context, not content).
fn referenced(tweet: &Tweet, includes: &Includes) -> Option<Tweet> {
    let r = tweet.reference(ReferenceKind::Retweeted).or_else(|| tweet.reference(ReferenceKind::Quoted))?;
    includes.tweets.iter().find(|t| t.id == r.id).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tweetlake_contract::envelope::User;

    fn tweet(id: &str, author: &str) -> Tweet {
        Tweet { id: id.into(), text: format!("t{id}"), author_id: Some(author.into()), ..Default::default() }
    }
    fn rule(tag: &str) -> Vec<MatchingRule> {
        vec![MatchingRule { id: None, tag: Some(tag.into()) }]
    }

    #[test]
    fn one_message_per_tweet_with_every_matching_rule_and_its_author() {
        let mut c = Collector::new(IngestMeta { source: "recent_search".into(), run_id: "r".into(), fetched_at: None });
        let inc =
            Includes { users: vec![User { id: "u1".into(), username: "ann".into(), name: "Ann".into() }], ..Default::default() };
        assert_eq!(c.add(vec![tweet("1", "u1"), tweet("2", "u2")], &inc, &rule("a")), 2);
        assert_eq!(c.add(vec![tweet("2", "u2"), tweet("3", "u1")], &inc, &rule("b")), 1);
        assert_eq!(c.add(vec![tweet("2", "u2")], &inc, &rule("b")), 0);
        let m = c.messages();
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].author.as_ref().unwrap().username, "ann");
        assert!(m[1].author.is_none());
        let tags: Vec<_> = m[1].rules.iter().map(|r| r.tag.clone().unwrap()).collect();
        assert_eq!(tags, ["a", "b"]);
        assert!(m.iter().all(|m| m.v == ENVELOPE_VERSION && m.ingest.run_id == "r"));
    }

    #[test]
    fn a_retweet_or_quote_carries_the_tweet_it_refers_to_and_a_reply_does_not() {
        use tweetlake_contract::envelope::ReferencedTweet;
        let refers = |id: &str, kind, to: &str| Tweet {
            referenced_tweets: vec![ReferencedTweet { kind, id: to.into() }],
            ..tweet(id, "u1")
        };
        let inc = Includes { tweets: vec![tweet("10", "u2"), tweet("11", "u2")], ..Default::default() };
        let batch = vec![
            refers("1", ReferenceKind::Retweeted, "10"),
            refers("2", ReferenceKind::Quoted, "11"),
            refers("3", ReferenceKind::RepliedTo, "10"),
            refers("4", ReferenceKind::Retweeted, "99"),
        ];
        let mut c = Collector::new(IngestMeta::default());
        c.add(batch, &inc, &rule("a"));
        let got: Vec<Option<&str>> = c.messages().iter().map(|m| m.referenced_tweet.as_ref().map(|t| t.id.as_str())).collect();
        assert_eq!(got, [Some("10"), Some("11"), None, None], "the reply has none; 99 was not expanded");
    }
}
