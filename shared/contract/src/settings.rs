//! Settings from environment variables (or any lookup), validated at start-up: a bad value fails
//! naming the variable and what it should be.

/// A setting that is missing or invalid; names the variable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("configuration: {var}: {message}")]
pub struct SettingError {
    /// The environment variable.
    pub var: &'static str,
    /// What is wrong with it, for a person.
    pub message: String,
}

impl SettingError {
    /// An error for `var`.
    pub fn new(var: &'static str, message: impl Into<String>) -> Self {
        Self { var, message: message.into() }
    }
}

/// Reads setting `var` through `get`: `default` when unset or blank, else parsed and checked with `ok`;
/// an invalid value fails naming the variable and what it should be (`what`). Shared by every
/// function's configuration.
pub fn parse_setting<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: T,
    ok: impl Fn(&T) -> bool,
    what: &str,
) -> Result<T, SettingError>
where
    T::Err: std::fmt::Display,
{
    match get(var).filter(|v| !v.trim().is_empty()) {
        None => Ok(default),
        Some(v) => {
            let parsed: T = v.trim().parse().map_err(|e| SettingError::new(var, format!("{v:?} is not {what}: {e}")))?;
            if ok(&parsed) { Ok(parsed) } else { Err(SettingError::new(var, format!("{v:?} is not {what}"))) }
        }
    }
}

/// The environment variables that more than one part of Tweetlake reads (a function's configuration
/// and the CLI flag standing for it), each named once here; a misspelt name is a compile error.
pub mod vars {
    /// The tweets table: `s3://bucket/prefix` or a local path.
    pub const TABLE_URI: &str = "TWEETLAKE_TABLE_URI";
    /// The quarantine table.
    pub const QUARANTINE_URI: &str = "TWEETLAKE_QUARANTINE_URI";
    /// The aggregates table (default: the tweets table's location with `_aggregates` appended).
    pub const AGGREGATES_URI: &str = "TWEETLAKE_AGGREGATES_URI";
    /// A model file to use instead of the embedded one.
    pub const MODEL_PATH: &str = "TWEETLAKE_MODEL_PATH";
    /// Override of the model's neutral band.
    pub const NEUTRAL_BAND: &str = "TWEETLAKE_NEUTRAL_BAND";
    /// The languages the sentiment model scores: comma-separated codes, or `*` for every language.
    pub const SENTIMENT_LANGUAGES: &str = "TWEETLAKE_SENTIMENT_LANGUAGES";
    /// Kafka bootstrap servers.
    pub const KAFKA_BOOTSTRAP: &str = "TWEETLAKE_KAFKA_BOOTSTRAP";
    /// The topic.
    pub const TOPIC: &str = "TWEETLAKE_TOPIC";
    /// Inline ingest rules (`tag: query` lines or a JSON array).
    pub const RULES: &str = "TWEETLAKE_RULES";
    /// A file of ingest rules.
    pub const RULES_FILE: &str = "TWEETLAKE_RULES_FILE";
    /// Recorded X API responses to replay instead of calling the API.
    pub const REPLAY_PATH: &str = "TWEETLAKE_REPLAY_PATH";
    /// `recent_search` or `filtered_stream`.
    pub const INGEST_MODE: &str = "TWEETLAKE_INGEST_MODE";
    /// The ingest watermarks: `s3://bucket/key` or a local file.
    pub const WATERMARK_URI: &str = "TWEETLAKE_WATERMARK_URI";
    /// The X API bearer token.
    pub const X_BEARER_TOKEN: &str = "TWEETLAKE_X_BEARER_TOKEN";
}

/// Settings given on a command line, over the process environment: a value set here stands for its
/// variable, a variable [`hidden`](Overrides::hide) reads as unset, then the environment (non-empty
/// values), then the [`fallback`](Overrides::fallback)s.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    set: Vec<(&'static str, String)>,
    hidden: Vec<&'static str>,
    fallbacks: Vec<(&'static str, String)>,
}

impl Overrides {
    /// No overrides: the process environment as it is.
    pub fn new() -> Self {
        Self::default()
    }

    /// `var` reads as `value` when it is `Some`.
    pub fn set(mut self, var: &'static str, value: Option<impl ToString>) -> Self {
        if let Some(v) = value {
            self.set.push((var, v.to_string()));
        }
        self
    }

    /// `var` reads as unset when `hide` is true (a flag that replaces it was given).
    pub fn hide(mut self, var: &'static str, hide: bool) -> Self {
        if hide {
            self.hidden.push(var);
        }
        self
    }

    /// `var` reads as `value` when neither set here nor in the environment.
    pub fn fallback(mut self, var: &'static str, value: impl ToString) -> Self {
        self.fallbacks.push((var, value.to_string()));
        self
    }

    /// The value of `var`.
    pub fn get(&self, var: &str) -> Option<String> {
        let find = |list: &[(&str, String)]| list.iter().find(|(k, _)| *k == var).map(|(_, v)| v.clone());
        if let Some(v) = find(&self.set) {
            return Some(v);
        }
        if self.hidden.contains(&var) {
            return None;
        }
        std::env::var(var).ok().filter(|v| !v.is_empty()).or_else(|| find(&self.fallbacks))
    }

    /// [`Overrides::get`] as the lookup the configurations read through.
    pub fn lookup(&self) -> impl Fn(&str) -> Option<String> + Clone + '_ {
        move |var| self.get(var)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_value_names_its_variable_and_a_blank_one_takes_the_default() {
        let get = |v: &str| (v == "N").then(|| "many".to_owned()).or_else(|| (v == "B").then(|| " ".to_owned()));
        let e = parse_setting(&get, "N", 1u32, |_| true, "a count").unwrap_err();
        assert_eq!(e.var, "N");
        assert!(e.to_string().contains("\"many\" is not a count"), "{e}");
        assert_eq!(parse_setting(&get, "B", 7u32, |_| true, "a count"), Ok(7));
        assert!(parse_setting(&|_: &str| Some("0".to_owned()), "Z", 1u32, |n| *n > 0, "positive").is_err());
    }

    #[test]
    fn overrides_come_before_the_environment_and_defaults_after_it() {
        let o = Overrides::new()
            .set("TWEETLAKE_TEST_SET", Some("flag"))
            .set("PATH", Some("flag"))
            .hide("HOME", true)
            .fallback("TWEETLAKE_TEST_UNSET", "fallback")
            .fallback("PATH", "fallback");
        assert_eq!(o.get("PATH").as_deref(), Some("flag"), "a flag wins over the environment");
        assert_eq!(o.get("HOME"), None, "hidden");
        assert_eq!(o.get("TWEETLAKE_TEST_UNSET").as_deref(), Some("fallback"));
        assert_eq!(
            Overrides::new().fallback("PATH", "fallback").get("PATH"),
            std::env::var("PATH").ok(),
            "the environment wins over a default"
        );
        assert_eq!(o.get("TWEETLAKE_TEST_SET").as_deref(), Some("flag"));
    }
}
