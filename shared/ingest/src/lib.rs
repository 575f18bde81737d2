//! Tweetlake's ingest library: the scheduled function's logic. Data flows one way:
//! [`rules`] → a source ([`xapi`] recent search or [`stream`] with its [`coverage`] fill, or [`replay`]) → [`collect`] (one
//! envelope per tweet, every matching rule) → [`kafka`] (acknowledged by all replicas) → only then
//! [`watermark`]. [`run`] ties them together for one invocation; `functions/ingest` is a thin wrapper.
#![warn(missing_docs)]

pub mod clock;
pub mod collect;
pub mod config;
pub mod coverage;
pub mod error;
pub mod kafka;
pub mod msk;
pub mod replay;
pub mod rules;
pub mod run;
pub mod search;
pub mod stream;
pub mod watermark;
pub mod xapi;

pub use config::IngestConfig;
pub use error::Error;
pub use run::{Ingest, RunReport};
