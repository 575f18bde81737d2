//! The ingest library's one error type, split into what a retry can fix and what it cannot.

/// Errors of an ingest run. None of them carries the bearer token: the client never formats a header
/// or a request into an error.
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
    /// A user rule would be rejected by the X API; names the rule.
    #[error("rule {tag:?}: {message}")]
    Rule {
        /// The rule's tag.
        tag: String,
        /// What went wrong, for a person.
        message: String,
    },
    /// The X API answered with an error that retrying in this run cannot fix (401, 403, 400 …).
    #[error("X API {endpoint}: HTTP {status}: {detail}")]
    Api {
        /// The API endpoint.
        endpoint: &'static str,
        /// The HTTP status.
        status: u16,
        /// The answer's problem detail.
        detail: String,
    },
    /// The X API could not be reached or its answer could not be read.
    #[error("X API {endpoint}: {message}")]
    Transport {
        /// The API endpoint.
        endpoint: &'static str,
        /// What went wrong, for a person.
        message: String,
    },
    /// A recorded response (replay source) could not be read.
    #[error("replay {path}: {message}")]
    Replay {
        /// The file or object path.
        path: String,
        /// What went wrong, for a person.
        message: String,
    },
    /// Kafka did not acknowledge every message; the watermark was left where it was.
    #[error("kafka: {0}")]
    Kafka(String),
    /// Reading or writing the watermark object failed.
    #[error("watermark {uri}: {message}")]
    Watermark {
        /// The table or object location.
        uri: String,
        /// What went wrong, for a person.
        message: String,
    },
    /// The bearer token or SASL secret could not be read from Secrets Manager.
    #[error("secret {arn}: {message}")]
    Secret {
        /// The secret's ARN.
        arn: String,
        /// What went wrong, for a person.
        message: String,
    },
}

impl Error {
    /// Whether invoking again can succeed: network, broker and storage failures are transient; a bad
    /// setting, rule or credential fails the same way every time.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Transport { .. } | Error::Kafka(_) | Error::Watermark { .. } | Error::Secret { .. } => true,
            Error::Api { status, .. } => *status == 429 || *status >= 500,
            Error::Config { .. } | Error::Rule { .. } | Error::Replay { .. } => false,
        }
    }
}

// A bad setting, retryable or not, and the report to Lambda, as the contract defines them.
tweetlake_contract::failure_impls!(Error);
