//! Tweetlake's ingest library: the scheduled function's logic. Data flows one way:
//! [`rules`] → a source ([`xapi`] recent search or [`stream`] with its [`coverage`] fill, or [`replay`]) → [`collect`] (one
//! envelope per tweet, every matching rule) → [`kafka`] (acknowledged by all replicas) → only then
//! [`watermark`]. [`run`] ties them together for one invocation; `functions/ingest` is a thin wrapper.
//! [`compliance`] is the X API's batch compliance jobs, for the maintenance function's compliance step,
//! which builds without the Kafka parts (feature `kafka`, on by default).
#![warn(missing_docs)]

pub mod clock;
pub mod collect;
pub mod compliance;
pub mod config;
pub mod coverage;
pub mod error;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod msk;
pub mod replay;
pub mod rules;
#[cfg(feature = "kafka")]
pub mod run;
pub mod search;
pub mod stream;
pub mod watermark;
pub mod xapi;

pub use config::IngestConfig;
pub use error::Error;
#[cfg(feature = "kafka")]
pub use run::{Ingest, RunReport};
