//! The compliance step: keeps the lake in line with X's developer terms. A run submits the post ids
//! the tables hold to an X batch compliance job ([`tweetlake_ingest::compliance`]), waits for its
//! results within its time, and removes every post X reports (deleted, protected, suspended,
//! deactivated) from the tables, correcting the aggregates ([`tweetlake_pipeline::compliance`]).
//!
//! A job X has not finished in time is resumed by the next run (its id is kept beside the tweets
//! table); a failed or expired job changes nothing and its ids are checked again by the next. The
//! deleted rows' files stay readable to time travel until maintenance vacuums them, once
//! `TWEETLAKE_VACUUM_RETENTION_HOURS` have passed.
#![warn(missing_docs)]

pub mod config;
pub mod run;

pub use config::{ComplianceConfig, Scope};
pub use run::{ComplianceReport, Outcome, run, run_once};

/// Errors of a compliance run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting is missing or invalid; names the environment variable.
    #[error("configuration: {var}: {message}")]
    Config {
        /// The environment variable.
        var: &'static str,
        /// What went wrong, for a person.
        message: String,
    },
    /// The X API failed (creating, polling or downloading a job).
    #[error(transparent)]
    Api(#[from] tweetlake_ingest::Error),
    /// The tables failed (reading ids, deleting, appending partials, the job's state object).
    #[error(transparent)]
    Tables(#[from] tweetlake_pipeline::Error),
}

impl Error {
    /// Whether invoking again can succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Config { .. } => false,
            Error::Api(e) => e.is_retryable(),
            Error::Tables(e) => e.is_retryable(),
        }
    }
}

tweetlake_contract::failure_impls!(Error);
