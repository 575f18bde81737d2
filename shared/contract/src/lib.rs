//! What Tweetlake's two sides agree on, in a crate of its own so that neither needs the other: the
//! Kafka message ([`envelope`], its header names), how a setting is read from the environment
//! ([`settings`]), how a failed invocation is reported to Lambda ([`failure`]) and how metrics are logged
//! ([`metrics`]).
#![warn(missing_docs)]

pub mod envelope;
pub mod failure;
pub mod metrics;
pub mod settings;

pub use failure::Failure;
pub use settings::{Overrides, SettingError, parse_setting, vars};
