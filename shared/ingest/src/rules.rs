//! User rules: what to collect, as tagged X query expressions, read from `TWEETLAKE_RULES` or
//! `TWEETLAKE_RULES_FILE` and checked at start for what the X API would reject.
//!
//! Two formats: one rule per line, `tag: query` (blank lines and `#`-comments skipped), or a JSON array
//! of `{"tag": …, "value": …}` — the shape of the filtered-stream rules API.

use crate::error::Error;
use serde::{Deserialize, Serialize};

/// A tagged query, e.g. tag `rust`, value `(#rustlang OR "rust lang") lang:en -is:retweet`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The user's label; rows carry it, so it names the rule everywhere downstream.
    pub tag: String,
    /// The X query expression.
    pub value: String,
}

/// Limits the checks apply; the defaults are those of X's self-serve (Basic/Pro) access.
#[derive(Clone, Copy, Debug)]
pub struct RuleLimits {
    /// Longest query in characters (`TWEETLAKE_RULE_MAX_CHARS`; 512 on Basic, 1024 on Pro).
    pub max_chars: usize,
    /// Most rules (`TWEETLAKE_MAX_RULES`; the stream's limit on Basic is 25).
    pub max_rules: usize,
}

impl Default for RuleLimits {
    fn default() -> Self {
        Self { max_chars: 512, max_rules: 25 }
    }
}

const MAX_TAG_CHARS: usize = 128;

/// Parses rules in either format and validates them.
pub fn parse_rules(text: &str, limits: RuleLimits) -> Result<Vec<Rule>, Error> {
    let trimmed = text.trim_start();
    let rules: Vec<Rule> = if trimmed.starts_with('[') {
        serde_json::from_str(trimmed)
            .map_err(|e| Error::Rule { tag: String::new(), message: format!("not a JSON array of {{tag, value}}: {e}") })?
    } else {
        let mut rules = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (tag, value) = line.split_once(':').ok_or_else(|| Error::Rule {
                tag: String::new(),
                message: format!("line {}: expected `tag: query`, got {line:?}", n + 1),
            })?;
            rules.push(Rule { tag: tag.trim().to_owned(), value: value.trim().to_owned() });
        }
        rules
    };
    if rules.is_empty() {
        return Err(Error::Rule { tag: String::new(), message: "no rules given".into() });
    }
    if rules.len() > limits.max_rules {
        return Err(Error::Rule {
            tag: String::new(),
            message: format!("{} rules, more than the limit of {}", rules.len(), limits.max_rules),
        });
    }
    for (i, r) in rules.iter().enumerate() {
        validate(r, limits)?;
        if rules[..i].iter().any(|o| o.tag == r.tag) {
            return Err(Error::Rule { tag: r.tag.clone(), message: "tag used by more than one rule".into() });
        }
    }
    Ok(rules)
}

/// Checks one rule for what X rejects: empty or over-long text, unbalanced parentheses or quotes,
/// a dangling `OR`, and a query made only of negations.
pub fn validate(rule: &Rule, limits: RuleLimits) -> Result<(), Error> {
    let fail = |message: String| Err(Error::Rule { tag: rule.tag.clone(), message });
    if rule.tag.is_empty() || rule.tag.chars().count() > MAX_TAG_CHARS || rule.tag.chars().any(char::is_control) {
        return fail(format!("tag must be 1-{MAX_TAG_CHARS} printable characters"));
    }
    let v = rule.value.as_str();
    let chars = v.chars().count();
    if v.trim().is_empty() {
        return fail("query is empty".into());
    }
    if chars > limits.max_chars {
        return fail(format!("query is {chars} characters, over the limit of {}", limits.max_chars));
    }
    let mut depth = 0i32;
    let mut in_quote = false;
    let mut tokens: Vec<String> = Vec::new();
    let mut cur = String::new();
    for (i, c) in v.chars().enumerate() {
        match c {
            '"' => {
                in_quote = !in_quote;
                cur.push(c);
            }
            '(' if !in_quote => {
                depth += 1;
                if !cur.is_empty() {
                    tokens.push(std::mem::take(&mut cur));
                }
                tokens.push("(".into());
            }
            ')' if !in_quote => {
                depth -= 1;
                if depth < 0 {
                    return fail(format!("unbalanced ')' at character {}", i + 1));
                }
                if !cur.is_empty() {
                    tokens.push(std::mem::take(&mut cur));
                }
                tokens.push(")".into());
            }
            c if c.is_whitespace() && !in_quote => {
                if !cur.is_empty() {
                    tokens.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        tokens.push(cur);
    }
    if in_quote {
        return fail("unclosed '\"'".into());
    }
    if depth != 0 {
        return fail("unbalanced '(': missing ')'".into());
    }
    for (i, t) in tokens.iter().enumerate() {
        let prev = if i == 0 { "(" } else { tokens[i - 1].as_str() };
        let next = tokens.get(i + 1).map(String::as_str).unwrap_or(")");
        if t == "OR" && (prev == "(" || prev == "OR" || next == ")" || next == "OR") {
            return fail("'OR' needs a term on each side".into());
        }
        if t == "(" && next == ")" {
            return fail("empty parentheses".into());
        }
        if t == "-" || t == "#" || t == "@" {
            return fail(format!("a lone {t:?} is not a term"));
        }
    }
    let positive = tokens.iter().any(|t| t != "(" && t != ")" && t != "OR" && !t.starts_with('-'));
    if !positive {
        return fail("a query of only negated terms matches nothing (X rejects it)".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(value: &str) -> Result<(), Error> {
        validate(&Rule { tag: "t".into(), value: value.into() }, RuleLimits::default())
    }

    #[test]
    fn reads_both_formats() {
        let lines = parse_rules(
            "# comment\nrust: (#rustlang OR \"rust lang\") lang:en -is:retweet\n\ncats: cat has:images\n",
            RuleLimits::default(),
        )
        .unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0], Rule { tag: "rust".into(), value: "(#rustlang OR \"rust lang\") lang:en -is:retweet".into() });
        let json = parse_rules(r#"[{"tag":"rust","value":"(#rustlang OR \"rust lang\") lang:en -is:retweet"},{"tag":"cats","value":"cat has:images"}]"#, RuleLimits::default()).unwrap();
        assert_eq!(json, lines);
    }

    #[test]
    fn accepts_real_queries() {
        for q in [
            "#kpop",
            "(happy OR sad) -is:retweet lang:en",
            "\"a (quoted) phrase\" @user",
            "from:XDevelopers -has:links",
            "café ☕",
        ] {
            one(q).unwrap_or_else(|e| panic!("{q}: {e}"));
        }
    }

    #[test]
    fn rejects_what_x_rejects_and_names_the_rule() {
        for (q, why) in [
            ("", "empty"),
            ("(cat OR dog", "missing ')'"),
            ("cat) dog", "unbalanced ')'"),
            ("\"open quote", "unclosed"),
            ("cat OR", "'OR' needs"),
            ("OR cat", "'OR' needs"),
            ("cat OR OR dog", "'OR' needs"),
            ("cat () dog", "empty parentheses"),
            ("-is:retweet -has:links", "only negated"),
        ] {
            let e = one(q).unwrap_err().to_string();
            assert!(e.contains(why) && e.contains("rule \"t\""), "{q:?} gave {e}");
        }
        let long = "a ".repeat(300);
        assert!(one(&long).unwrap_err().to_string().contains("over the limit of 512"));
        let e = parse_rules("a: cat\na: dog", RuleLimits::default()).unwrap_err().to_string();
        assert!(e.contains("more than one rule"), "{e}");
        let e = parse_rules("no colon here", RuleLimits::default()).unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
        let many: String = (0..26).map(|i| format!("r{i}: cat\n")).collect();
        assert!(parse_rules(&many, RuleLimits::default()).unwrap_err().to_string().contains("limit of 25"));
    }
}
