//! Tweetlake on one machine: [`esm`] emulates Lambda's Kafka event source mapping, [`local`] runs the
//! whole pipeline (ingest → broker → process → Delta), [`query`] runs SQL over the tables as Athena
//! names them, [`report`] renders them as HTML, [`redrive`] reads quarantined rows back as records.
#![warn(missing_docs)]

pub mod esm;
pub mod local;
/// SQL over the tables (DataFusion), as the pipeline's maintenance reads them.
pub use tweetlake_pipeline::query;
pub mod redrive;
pub mod report;
