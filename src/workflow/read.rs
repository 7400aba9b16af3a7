//! Reading the positioned tree into the workflow's types, collecting every
//! problem (wrong type, unknown key with "did you mean", missing key) with
//! its position instead of stopping at the first.

use super::yaml::{Key, Node, Pos, Yaml};

/// A problem found while reading: where, what, and what to do.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Problem {
    pub(crate) pos: Pos,
    pub(crate) message: String,
    pub(crate) help: Option<String>,
    /// Characters to underline.
    pub(crate) width: usize,
}

/// The problems found so far.
#[derive(Debug, Default)]
pub(crate) struct Problems(pub(crate) Vec<Problem>);

impl Problems {
    pub(crate) fn at(&mut self, pos: Pos, message: impl Into<String>) -> &mut Problem {
        self.0.push(Problem {
            pos,
            message: message.into(),
            help: None,
            width: 1,
        });
        self.0.last_mut().expect("just pushed")
    }

    pub(crate) fn with_help(
        &mut self,
        pos: Pos,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.at(pos, message).help = Some(help.into());
    }
}

/// The closest of `candidates` to `word`, if close enough to be a typo: at
/// most one edit (insertion, deletion, substitution or transposition, case
/// aside) per three characters. One rule for keys, node types, inputs,
/// columns and functions.
pub(crate) fn closest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    let word = word.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(&word, &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// "did you mean `x`?" or the list of what is allowed.
pub(crate) fn suggestion(word: &str, allowed: &[&str]) -> String {
    match closest(word, allowed.iter().copied()) {
        Some(best) => format!("did you mean `{best}`?"),
        None => format!(
            "expected one of {}",
            allowed
                .iter()
                .map(|a| format!("`{a}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The entries of a mapping, taken one by one; what is left at the end is
/// unknown.
pub(crate) struct Fields<'a> {
    /// Where the mapping is.
    pub(crate) pos: Pos,
    entries: Vec<(&'a Key, &'a Node, bool)>,
    /// What the mapping is, for messages: "source `orders`".
    what: String,
}

impl<'a> Fields<'a> {
    /// The mapping `node`, or a problem if it is something else.
    pub(crate) fn of(node: &'a Node, what: &str, problems: &mut Problems) -> Option<Fields<'a>> {
        match &node.value {
            Yaml::Map(entries) => Some(Fields {
                pos: node.pos,
                entries: entries.iter().map(|(k, v)| (k, v, false)).collect(),
                what: what.to_string(),
            }),
            other => {
                problems.at(
                    node.pos,
                    format!(
                        "{what} should be a mapping (`key: value` lines), found {}",
                        other.kind()
                    ),
                );
                None
            }
        }
    }

    /// The value of `key`, if given.
    pub(crate) fn get(&mut self, key: &str) -> Option<&'a Node> {
        let entry = self.entries.iter_mut().find(|(k, _, _)| k.name == key)?;
        entry.2 = true;
        Some(entry.1)
    }

    /// The key's own position, if given.
    pub(crate) fn key_pos(&self, key: &str) -> Option<Pos> {
        self.entries
            .iter()
            .find(|(k, _, _)| k.name == key)
            .map(|(k, _, _)| k.pos)
    }

    /// The value of `key`, or a problem saying it is missing.
    pub(crate) fn require(&mut self, key: &str, problems: &mut Problems) -> Option<&'a Node> {
        let found = self.get(key);
        if found.is_none() {
            problems.at(self.pos, format!("{} needs `{key}`", self.what));
        }
        found
    }

    /// Reports every key not taken, with the closest allowed one.
    pub(crate) fn finish(self, allowed: &[&str], problems: &mut Problems) {
        for (key, _, taken) in &self.entries {
            if !taken {
                let p = problems.at(
                    key.pos,
                    format!("unknown key `{}` in {}", key.name, self.what),
                );
                p.help = Some(suggestion(&key.name, allowed));
                p.width = key.name.chars().count();
            }
        }
    }

    /// Every entry, marking all taken (for maps of user names).
    pub(crate) fn all(&mut self) -> Vec<(&'a Key, &'a Node)> {
        self.entries
            .iter_mut()
            .map(|e| {
                e.2 = true;
                (e.0, e.1)
            })
            .collect()
    }
}

/// A string value (a YAML number is taken as its text only where text is
/// expected: `delimiter: 1`).
pub(crate) fn string(node: &Node, what: &str, problems: &mut Problems) -> Option<String> {
    match &node.value {
        Yaml::Str(s) => Some(s.clone()),
        Yaml::Int(i) => Some(i.to_string()),
        other => {
            problems.at(
                node.pos,
                format!("{what} should be text, found {}", other.kind()),
            );
            None
        }
    }
}

/// A non-negative integer (also from a string such as `${ROWS}`).
pub(crate) fn count(node: &Node, what: &str, problems: &mut Problems) -> Option<u64> {
    let parsed = match &node.value {
        Yaml::Int(i) => u64::try_from(*i).ok(),
        Yaml::Str(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    if parsed.is_none() {
        problems.at(
            node.pos,
            format!(
                "{what} should be a whole number ≥ 0, found {}",
                describe(node)
            ),
        );
    }
    parsed
}

/// A boolean (also `"true"` / `"false"` from a variable).
pub(crate) fn boolean(node: &Node, what: &str, problems: &mut Problems) -> Option<bool> {
    let parsed = match &node.value {
        Yaml::Bool(b) => Some(*b),
        Yaml::Str(s) if s == "true" => Some(true),
        Yaml::Str(s) if s == "false" => Some(false),
        _ => None,
    };
    if parsed.is_none() {
        problems.at(
            node.pos,
            format!(
                "{what} should be `true` or `false`, found {}",
                describe(node)
            ),
        );
    }
    parsed
}

/// A list of strings (a single string is a list of one).
pub(crate) fn strings(
    node: &Node,
    what: &str,
    problems: &mut Problems,
) -> Option<Vec<(Pos, String)>> {
    match &node.value {
        Yaml::Str(s) => Some(vec![(node.pos, s.clone())]),
        Yaml::Seq(items) => {
            let mut out = Vec::new();
            let mut ok = true;
            for item in items {
                match string(item, &format!("each of {what}"), problems) {
                    Some(s) => out.push((item.pos, s)),
                    None => ok = false,
                }
            }
            ok.then_some(out)
        }
        other => {
            problems.at(
                node.pos,
                format!("{what} should be a list of names, found {}", other.kind()),
            );
            None
        }
    }
}

/// What a value is, with the value when it is short: for "found `lots`".
pub(crate) fn describe(node: &Node) -> String {
    match &node.value {
        Yaml::Str(s) if s.chars().count() <= 30 => format!("\"{s}\""),
        Yaml::Int(i) => i.to_string(),
        Yaml::Float(f) => f.to_string(),
        Yaml::Bool(b) => b.to_string(),
        other => other.kind().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_get_the_closest_known_one() {
        assert_eq!(
            suggestion("inptus", &["inputs", "type", "expr"]),
            "did you mean `inputs`?"
        );
        assert_eq!(
            suggestion("zzz", &["inputs", "type"]),
            "expected one of `inputs`, `type`"
        );
    }
}
