//! Tweetlake on one machine: [`esm`] emulates Lambda's Kafka event source mapping, [`local`] runs the
//! whole pipeline (ingest → broker → process → Delta), [`report`] renders the tables as HTML.

pub mod esm;
pub mod local;
pub mod report;
