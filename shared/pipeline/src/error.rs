//! The library's one error type, split into what a retry can fix and what it cannot.

/// Errors of the process pipeline.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting is missing or invalid; names the environment variable.
    #[error("configuration: {var}: {message}")]
    Config { var: &'static str, message: String },
    /// The invocation payload is not a usable Kafka event.
    #[error(transparent)]
    Decode(#[from] crate::decode::DecodeError),
    /// The sentiment model could not be loaded.
    #[error(transparent)]
    Model(#[from] tweetlake_sentiment::ModelError),
    /// A Delta operation failed (commit conflicts exhausted, S3 unreachable, …).
    #[error("delta table {uri}: {source}")]
    Delta { uri: String, source: Box<deltalake::DeltaTableError> },
    /// Reading or writing a side object beside a table failed.
    #[error("storage at {uri}: {source}")]
    Storage { uri: String, source: Box<deltalake::ObjectStoreError> },
    /// Building an Arrow batch failed (a bug: the rows are validated first).
    #[error("arrow: {0}")]
    Arrow(#[from] deltalake::arrow::error::ArrowError),
    /// A side object is corrupt.
    #[error("corrupt state object {path}: {message}")]
    State { path: String, message: String },
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
            Error::Delta { source, .. } => crate::sink::is_transient(source),
            Error::Storage { .. } => true,
            Error::Config { .. } | Error::Decode(_) | Error::Model(_) | Error::Arrow(_) | Error::State { .. } => false,
        }
    }
}

/// How the Lambda runtime reports a failed invocation: the type says whether a retry can help, so
/// operators (and alarms) can tell a storage outage from a poison event or a bad setting.
#[cfg(feature = "lambda")]
impl From<Error> for lambda_runtime::Diagnostic {
    fn from(e: Error) -> Self {
        let kind = if e.is_retryable() { "Retryable" } else { "NonRetryable" };
        lambda_runtime::Diagnostic { error_type: format!("Tweetlake.{kind}"), error_message: e.to_string() }
    }
}
