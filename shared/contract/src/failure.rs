//! How a failed invocation is reported: every error says whether a retry can help, and the Lambda
//! functions report that as the error type (`Tweetlake.Retryable` or `Tweetlake.NonRetryable`), so
//! operators and alarms can tell a storage outage from a poison event or a bad setting.

/// An error that knows whether invoking again can succeed.
pub trait Failure: std::fmt::Display {
    /// True if a retry may succeed (network, broker, storage); false if it fails the same way again.
    fn is_retryable(&self) -> bool;
}

/// The Lambda error type of a failure.
pub fn error_type(e: &impl Failure) -> String {
    let kind = if e.is_retryable() { "Retryable" } else { "NonRetryable" };
    format!("Tweetlake.{kind}")
}

/// The failure as the Lambda runtime reports it.
#[cfg(feature = "lambda")]
pub fn diagnostic(e: &impl Failure) -> lambda_runtime::Diagnostic {
    lambda_runtime::Diagnostic { error_type: error_type(e), error_message: e.to_string() }
}

/// The value of a function's start-up, or the end of the process: the error's message (not its debug
/// dump) and whether waiting can help, on stderr, then exit code 1, so Lambda's init failure log reads
/// as the cause.
pub fn or_exit<T, E: Failure>(started: Result<T, E>, function: &str) -> T {
    started.unwrap_or_else(|e| {
        let kind = if e.is_retryable() { "retryable: it may start once storage answers" } else { "not retryable: fix it first" };
        eprintln!("{function} cannot start: {e} ({kind})");
        std::process::exit(1)
    })
}

/// For a crate's error type `$error` (with a `Config { var, message }` variant and an inherent
/// `is_retryable`): the conversion from [`crate::SettingError`], [`Failure`], and, where the calling
/// crate's `lambda` feature is on, the conversion to `lambda_runtime::Diagnostic` (the orphan rule
/// puts these impls in the crate that owns the type; this writes them once).
#[macro_export]
macro_rules! failure_impls {
    ($error:ty) => {
        impl From<$crate::SettingError> for $error {
            fn from(e: $crate::SettingError) -> Self {
                Self::Config { var: e.var, message: e.message }
            }
        }

        impl $crate::Failure for $error {
            fn is_retryable(&self) -> bool {
                <$error>::is_retryable(self)
            }
        }

        /// How the Lambda runtime reports a failed invocation (see `tweetlake_contract::failure`).
        #[cfg(feature = "lambda")]
        impl From<$error> for lambda_runtime::Diagnostic {
            fn from(e: $error) -> Self {
                $crate::failure::diagnostic(&e)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    struct E(bool);
    impl std::fmt::Display for E {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("e")
        }
    }
    impl Failure for E {
        fn is_retryable(&self) -> bool {
            self.0
        }
    }

    #[test]
    fn the_error_type_says_whether_a_retry_helps() {
        assert_eq!(error_type(&E(true)), "Tweetlake.Retryable");
        assert_eq!(error_type(&E(false)), "Tweetlake.NonRetryable");
    }
}
