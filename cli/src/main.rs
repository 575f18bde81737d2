//! `tweetlake`: train, evaluate and score the sentiment model ([`model`]); run the ingest, process and
//! maintenance functions and the event source mapping locally, report, query and manage the topic
//! ([`pipeline`]).

use anyhow::Result;
use clap::{Parser, Subcommand};

mod model;
#[cfg(feature = "pipeline")]
mod pipeline;

// The Lambda binaries' allocator, so `tweetlake process` runs the pipeline as the function does.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Tweetlake's local tool.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Model(model::Command),
    #[cfg(feature = "pipeline")]
    #[command(flatten)]
    Pipeline(pipeline::Command),
}

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().command {
        // Training and scoring use every core themselves and never wait on I/O: off the runtime.
        Command::Model(c) => tokio::task::spawn_blocking(move || model::run(c)).await?,
        #[cfg(feature = "pipeline")]
        Command::Pipeline(c) => pipeline::run(c).await,
    }
}
