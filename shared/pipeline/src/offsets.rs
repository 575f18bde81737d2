//! Kafka positions: a topic-partition, a value per topic-partition, and the run of offsets of one
//! partition that a table holds. Every stage that tracks where a batch came from speaks these types.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::{Deref, DerefMut};

/// One Kafka topic-partition.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: String,
    /// Partition number.
    pub partition: i32,
}

impl TopicPartition {
    /// The topic-partition `topic`/`partition`.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        Self { topic: topic.into(), partition }
    }

    /// Whether this is `topic`/`partition` (compared without building an owned key).
    pub fn is(&self, topic: &str, partition: i32) -> bool {
        self.partition == partition && self.topic == topic
    }
}

/// `topic-partition`, as Lambda's Kafka event keys its record groups.
impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// A value per topic-partition (an offset, a coverage, a range), ordered by topic then partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PerPartition<V>(BTreeMap<TopicPartition, V>);

impl<V> Default for PerPartition<V> {
    fn default() -> Self {
        Self(BTreeMap::new())
    }
}

impl<V> PerPartition<V> {
    /// The value of `topic`/`partition`, looked up without building an owned key: a batch spans a
    /// handful of partitions and rows ask per row, so a scan beats allocating a `String` each time.
    pub fn lookup(&self, topic: &str, partition: i32) -> Option<&V> {
        self.0.iter().find(|(k, _)| k.is(topic, partition)).map(|(_, v)| v)
    }
}

impl<V> Deref for PerPartition<V> {
    type Target = BTreeMap<TopicPartition, V>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<V> DerefMut for PerPartition<V> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl<V> FromIterator<(TopicPartition, V)> for PerPartition<V> {
    fn from_iter<I: IntoIterator<Item = (TopicPartition, V)>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl<V> IntoIterator for PerPartition<V> {
    type Item = (TopicPartition, V);
    type IntoIter = std::collections::btree_map::IntoIter<TopicPartition, V>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a, V> IntoIterator for &'a PerPartition<V> {
    type Item = (&'a TopicPartition, &'a V);
    type IntoIter = std::collections::btree_map::Iter<'a, TopicPartition, V>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// The offsets of one topic-partition a table holds: every offset from `first` through `last`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Coverage {
    /// First offset covered; `None` when it was not looked up (a batch wholly above `last` does not need
    /// it, and a commit then leaves the recorded value as it is). Tables written before the first offset
    /// was recorded cover everything from 0.
    pub first: Option<i64>,
    /// Last offset covered.
    pub last: i64,
}

impl Coverage {
    /// Whether `offset` is covered. Only meaningful for offsets above `last` when `first` is unknown.
    pub fn contains(&self, offset: i64) -> bool {
        offset <= self.last && self.first.is_none_or(|f| offset >= f)
    }

    /// Whether every offset from `first` through `last` is covered.
    pub fn covers(&self, first: i64, last: i64) -> bool {
        self.contains(first) && self.contains(last)
    }

    /// This coverage grown by the batch range `(first, last)`.
    pub fn grown_by(held: Option<&Coverage>, (first, last): (i64, i64)) -> Coverage {
        match held {
            None => Coverage { first: Some(first), last },
            Some(c) => Coverage { first: c.first.map(|f| f.min(first)), last: c.last.max(last) },
        }
    }

    /// The offsets missing between this coverage and a batch `(first, last)` that does not touch it.
    pub fn gap_to(&self, (first, last): (i64, i64)) -> Option<(i64, i64)> {
        let held_first = self.first.unwrap_or(0);
        if first > self.last + 1 {
            Some((self.last + 1, first - 1))
        } else if last < held_first - 1 {
            Some((last + 1, held_first - 1))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_finds_a_partition_by_borrowed_name() {
        let m: PerPartition<i64> = [(TopicPartition::new("a", 1), 5), (TopicPartition::new("b", 0), 7)].into_iter().collect();
        assert_eq!(m.lookup("b", 0), Some(&7));
        assert_eq!(m.lookup("a", 0), None);
        assert_eq!(TopicPartition::new("tweets", 3).to_string(), "tweets-3");
    }

    #[test]
    fn a_gap_is_found_on_either_side_and_not_where_ranges_touch() {
        let held = Coverage { first: Some(10), last: 19 };
        assert_eq!(held.gap_to((20, 29)), None);
        assert_eq!(held.gap_to((25, 29)), Some((20, 24)));
        assert_eq!(held.gap_to((0, 9)), None);
        assert_eq!(held.gap_to((0, 4)), Some((5, 9)));
        assert_eq!(Coverage::grown_by(Some(&held), (20, 29)), Coverage { first: Some(10), last: 29 });
        assert_eq!(Coverage::grown_by(None, (3, 4)), Coverage { first: Some(3), last: 4 });
    }
}
