//! The library's one error type, split into what a retry can fix and what it cannot.

/// Errors of the process pipeline.
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
    /// The invocation payload is not a usable Kafka event.
    #[error(transparent)]
    Decode(#[from] crate::decode::DecodeError),
    /// The sentiment model could not be loaded.
    #[error(transparent)]
    Model(#[from] tweetlake_sentiment::ModelError),
    /// A Delta operation failed (commit conflicts exhausted, S3 unreachable, …).
    #[error("delta table {uri}: {}", explain(source.as_ref()))]
    Delta {
        /// The table or object location.
        uri: String,
        /// The underlying error.
        source: Box<deltalake::DeltaTableError>,
    },
    /// Reading or writing a side object beside a table failed.
    #[error("storage at {uri}: {}", explain(source.as_ref()))]
    Storage {
        /// The table or object location.
        uri: String,
        /// The underlying error.
        source: Box<deltalake::ObjectStoreError>,
    },
    /// Offsets between what the tables hold and this batch are missing: an earlier batch of the
    /// partition is still in flight or failed. Retried until the gap has lasted the grace period.
    #[error(
        "{topic}-{partition}: offsets {} to {} are not in the tables yet (they hold {} to {}, this batch is {} to {}): \
         an earlier batch of this partition is still being processed or failed, so this one waits (retry). A gap that \
         lasts {grace_secs}s (TWEETLAKE_OFFSET_GAP_GRACE_SECS; seen for {waited_secs}s) is taken as offsets that do not \
         exist (compacted topic, transaction markers, retention) and accepted",
        missing.0, missing.1, held.0, held.1, batch.0, batch.1
    )]
    OffsetGap {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// The missing offsets, first and last.
        missing: (i64, i64),
        /// What the tables hold, first and last.
        held: (i64, i64),
        /// The batch's offsets, first and last.
        batch: (i64, i64),
        /// How long the gap has been seen.
        waited_secs: i64,
        /// `TWEETLAKE_OFFSET_GAP_GRACE_SECS`.
        grace_secs: i64,
    },
    /// Code below the batch boundary panicked (a library's or ours); caught so the function stays up.
    #[error("internal failure while processing the batch (panic: {0}); nothing of it is committed past the recorded offsets")]
    Panic(String),
    /// Building an Arrow batch failed (a bug: the rows are validated first).
    #[error("arrow: {0}")]
    Arrow(#[from] deltalake::arrow::error::ArrowError),
    /// A side object is corrupt.
    #[error("corrupt state object {path}: {message}")]
    State {
        /// The file or object path.
        path: String,
        /// What went wrong, for a person.
        message: String,
    },
}

impl Error {
    pub(crate) fn delta(uri: &str, source: deltalake::DeltaTableError) -> Self {
        Error::Delta { uri: uri.to_owned(), source: Box::new(source) }
    }

    pub(crate) fn storage(uri: &str, source: deltalake::ObjectStoreError) -> Self {
        Error::Storage { uri: uri.to_owned(), source: Box::new(source) }
    }

    /// Whether the event source mapping should retry the batch. Storage and commit failures are
    /// transient; a bad event, setting or model will fail the same way again.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Delta { source, .. } => is_transient(source),
            Error::Storage { .. } | Error::OffsetGap { .. } | Error::Panic(_) => true,
            Error::Config { .. } | Error::Decode(_) | Error::Model(_) | Error::Arrow(_) | Error::State { .. } => false,
        }
    }
}

/// True for Delta errors that another attempt may not hit (conflicts, storage trouble).
fn is_transient(e: &deltalake::DeltaTableError) -> bool {
    use deltalake::DeltaTableError as E;
    !matches!(e, E::InvalidTableLocation(_) | E::NotATable(_) | E::Arrow { .. })
}

/// A storage error in words a person can act on: the causes joined (the S3 client's own text ends in the
/// start of an XML body, e.g. `404 Not Found: <`), with the common S3 answers named.
pub fn explain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut chain = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        if !chain.iter().any(|t| t.contains(&text)) {
            chain.push(text);
        }
        cur = c.source();
    }
    let all = chain.join(": ");
    let hint = if all.contains("NoSuchBucket") {
        Some("the bucket does not exist (create it, or fix the URI)")
    } else if all.contains("404 Not Found") {
        Some("S3 answered 404 Not Found: the bucket or path does not exist")
    } else if all.contains("AccessDenied") || all.contains("403 Forbidden") {
        Some("S3 denied access: check the function's role or the credentials")
    } else if all.contains("Connection refused") || all.contains("error trying to connect") || all.contains("dns error") {
        Some("cannot connect to S3: check AWS_ENDPOINT_URL, the network or the VPC endpoint")
    } else if all.contains("timed out") || all.contains("deadline has elapsed") || all.contains("error sending request") {
        Some("S3 could not be reached or did not answer in time (TWEETLAKE_S3_TIMEOUT_SECS bounds one request)")
    } else {
        None
    };
    match hint {
        Some(h) => format!("{h} [{all}]"),
        None => all,
    }
}

// A bad setting, retryable or not, and the report to Lambda, as the contract defines them.
tweetlake_contract::failure_impls!(Error);

pub use tweetlake_contract::failure::or_exit;
