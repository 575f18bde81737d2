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
}
