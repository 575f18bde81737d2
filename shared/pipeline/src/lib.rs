//! Tweetlake's pipeline library. Data flows one way through one module per stage:
//! [`decode`] → [`quality`] → [`clean`] → [`dedup`] → score (the `tweetlake-sentiment` crate) →
//! [`aggregate`] → [`rows`] → [`sink`]; [`process`] runs them for one Kafka batch. The functions in `functions/` are
//! thin wrappers around this crate.

pub mod aggregate;
pub mod clean;
pub mod config;
pub mod decode;
pub mod dedup;
pub mod envelope;
pub mod error;
#[cfg(feature = "maintenance")]
pub mod maintenance;
pub mod metrics;
pub mod process;
pub mod quality;
pub mod rows;
pub mod sink;

pub use config::{MaintenanceConfig, ProcessConfig};
pub use error::Error;
pub use process::{BatchSummary, Processor};
