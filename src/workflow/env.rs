//! Variables in a workflow file, substituted **after** parsing and in string
//! values only: `${VAR}`, `${VAR:-default}`, `${VAR:?message}`, and `$${`
//! for a literal `${`. A bare `$1` (a regex, a price) is left alone and a
//! commented-out line is never read, so a `$` cannot break a file, and a
//! value cannot change the file's structure.

use super::yaml::{Node, Pos, Yaml};

/// A variable that could not be substituted.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EnvError {
    /// Where the string value is.
    pub(crate) pos: Pos,
    /// The value, as written.
    pub(crate) value: String,
    /// Bytes into the value where the variable is.
    pub(crate) offset: usize,
    pub(crate) message: String,
    pub(crate) help: Option<String>,
}

/// Substitutes the variables in every string value of `node` (not in keys),
/// pushing one error per variable that cannot be substituted.
pub(crate) fn interpolate(
    node: &mut Node,
    lookup: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<EnvError>,
) {
    match &mut node.value {
        Yaml::Str(text) if text.contains('$') => match substitute(text, lookup) {
            Ok(done) => *text = done,
            Err((offset, message, help)) => errors.push(EnvError {
                pos: node.pos,
                value: text.clone(),
                offset,
                message,
                help,
            }),
        },
        Yaml::Seq(items) => {
            for item in items {
                interpolate(item, lookup, errors);
            }
        }
        Yaml::Map(entries) => {
            for (_, value) in entries {
                interpolate(value, lookup, errors);
            }
        }
        _ => {}
    }
}

/// The text with its variables substituted, or where (bytes into the text)
/// the first one that cannot be is, why, and what to do.
pub(crate) fn substitute(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, (usize, String, Option<String>)> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
            continue;
        }
        let Some(body) = tail.strip_prefix("${") else {
            out.push('$');
            rest = &tail[1..];
            continue;
        };
        let Some(end) = body.find('}') else {
            return Err((
                text.len() - tail.len(),
                format!("`${{` is not closed: `{}`", tail),
                Some("write `${VAR}`, or `$${` for a literal `${`".into()),
            ));
        };
        let inner = &body[..end];
        let (name, rule) = match inner.find(":-").or_else(|| inner.find(":?")) {
            Some(i) => (&inner[..i], Some((&inner[i..i + 2], &inner[i + 2..]))),
            None => (inner, None),
        };
        let valid = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            return Err((
                text.len() - tail.len(),
                format!("`${{{inner}}}` is not a variable"),
                Some(
                    "a variable is `${NAME}`, `${NAME:-default}` or `${NAME:?message}` (letters, digits, `_`); `$${` gives a literal `${`"
                        .into(),
                ),
            ));
        }
        let value = lookup(name).filter(|v| !v.is_empty() || rule.is_none());
        match (value, rule) {
            (Some(value), _) => out.push_str(&value),
            (None, Some((":-", default))) => out.push_str(default),
            (None, Some((_, message))) => {
                let message = if message.is_empty() {
                    format!("${name} is not set")
                } else {
                    format!("${name} is not set: {message}")
                };
                return Err((text.len() - tail.len(), message, None));
            }
            (None, None) => {
                return Err((
                    text.len() - tail.len(),
                    format!("${name} is not set"),
                    Some(format!(
                        "set it in the environment, or give a default: `${{{name}:-default}}`"
                    )),
                ));
            }
        }
        rest = &body[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "DIR" => Some("/data".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn substitutes_only_variables() {
        let s = |t: &str| substitute(t, &env);
        assert_eq!(s("${DIR}/a.csv").unwrap(), "/data/a.csv");
        assert_eq!(s("${NOPE:-x}/a").unwrap(), "x/a");
        assert_eq!(s("${EMPTY:-x}").unwrap(), "x");
        assert_eq!(s("${EMPTY}").unwrap(), "");
        assert_eq!(s("^a$|\\$1 costs $5").unwrap(), "^a$|\\$1 costs $5");
        assert_eq!(s("$${DIR}").unwrap(), "${DIR}");
        assert_eq!(s("$$").unwrap(), "$$");
        let (at, message, help) = s("in ${NOPE}").unwrap_err();
        assert_eq!((at, message.as_str()), (3, "$NOPE is not set"));
        assert!(help.unwrap().contains("${NOPE:-default}"));
        let (at, message, _) = s("é${NOPE:?give the input directory}").unwrap_err();
        assert_eq!(
            (at, message.as_str()),
            (2, "$NOPE is not set: give the input directory")
        );
        assert!(s("${DIR").unwrap_err().1.contains("not closed"));
        assert!(s("${1X}").unwrap_err().1.contains("not a variable"));
    }
}
