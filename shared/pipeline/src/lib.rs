//! Tweetlake's pipeline library. Data flows one way through one module per stage:
//! [`decode`] → [`quality`] → [`post`] → [`dedup`] → [`clean`] → score (the `tweetlake-sentiment` crate) →
//! [`aggregate`]; the rows go to their [`tables`] and are committed by the protocol in [`commit`]
//! through the Delta [`sink`]. [`process`] runs them for one Kafka batch (or a [`redrive`] of one);
//! [`offsets`] names where a record came from. The functions in `functions/` are thin wrappers around this crate.
#![warn(missing_docs)]

pub mod aggregate;
pub mod clean;
pub mod commit;
#[cfg(feature = "maintenance")]
pub mod compliance;
pub mod config;
pub mod decode;
pub mod dedup;
pub mod error;
#[cfg(feature = "maintenance")]
pub mod maintenance;
pub mod metrics;
pub mod offsets;
pub mod post;
pub mod process;
pub mod quality;
#[cfg(feature = "maintenance")]
pub mod query;
pub mod redrive;
pub mod sink;
pub mod tables;

pub use config::{MaintenanceConfig, ProcessConfig};
pub use error::Error;
pub use process::{BatchSummary, Processor, RedriveSummary};
/// The Kafka message contract, shared with the ingest side.
pub use tweetlake_contract::envelope;
