//! The workflow file as a tree of values, each with its line and column:
//! serde-saphyr parses the YAML; the workflow's own reader then walks the
//! tree, so that every problem (not only the first) is reported where it is.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// A line and column in the workflow file, both from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    /// The line, from 1.
    pub line: u32,
    /// The column, in characters, from 1.
    pub col: u32,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// A value of the file and where it is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub(crate) pos: Pos,
    pub(crate) value: Yaml,
}

/// A YAML value: scalars keep the type the YAML gave them (`100` is an
/// integer, `"100"` a string).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Yaml {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Keys in file order, each with its position.
    Map(Vec<(Key, Node)>),
}

/// A mapping's key and where it is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Key {
    pub(crate) pos: Pos,
    pub(crate) name: String,
}

impl Yaml {
    /// What the value is, for "expected a list, found a string".
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Yaml::Null => "nothing (null)",
            Yaml::Bool(_) => "a boolean",
            Yaml::Int(_) => "an integer",
            Yaml::Float(_) => "a number",
            Yaml::Str(_) => "a string",
            Yaml::Seq(_) => "a list",
            Yaml::Map(_) => "a mapping",
        }
    }
}

/// Where the character `offset` bytes into the scalar `value` (found at
/// `pos` in `text`) is: past the opening quote of a quoted scalar.
pub(crate) fn pos_within(text: &str, pos: Pos, value: &str, offset: usize) -> Pos {
    let line = text
        .lines()
        .nth(pos.line.saturating_sub(1) as usize)
        .unwrap_or("");
    let quoted = matches!(
        line.chars().nth(pos.col.saturating_sub(1) as usize),
        Some('"' | '\'')
    );
    let offset = value.get(..offset).map_or(0, |v| v.chars().count()) as u32;
    Pos {
        line: pos.line,
        col: pos.col + u32::from(quoted) + offset,
    }
}

/// A YAML syntax error and where it is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SyntaxError {
    pub(crate) pos: Pos,
    pub(crate) message: String,
}

/// Parses `text` into a positioned tree.
pub(crate) fn parse(text: &str) -> Result<Node, SyntaxError> {
    if text.trim().is_empty() {
        return Err(SyntaxError {
            pos: Pos { line: 1, col: 1 },
            message: "the file is empty: a workflow has `sources`, `transforms` and `sinks`".into(),
        });
    }
    // YAML 1.2 booleans only: `n`, `no`, `on`, `off` are text (a column
    // named `n` or the country code `NO` stay what they say); `007` stays
    // text rather than becoming 7.
    let options = serde_saphyr::options! {
        strict_booleans: true,
        leading_zero_numbers_as_strings: true,
    };
    match serde_saphyr::from_str_with_options::<Spanned<Yaml>>(text, options) {
        Ok(node) => Ok(node_of(node)),
        Err(e) => {
            let pos = e
                .location()
                .map(|l| pos_of(&l))
                .unwrap_or(Pos { line: 1, col: 1 });
            Err(SyntaxError {
                pos,
                message: message_of(&e.without_snippet().to_string()),
            })
        }
    }
}

/// serde-saphyr's message, first line, without its own position and without
/// advice meant for the programmer calling it.
fn message_of(text: &str) -> String {
    let mut line = text.lines().next().unwrap_or(text).trim();
    if let Some(i) = line.rfind(" at line ") {
        line = &line[..i];
    }
    if let Some(rest) = line.strip_prefix("duplicate mapping key: ") {
        let key = rest.split(',').next().unwrap_or(rest).trim();
        return format!("`{key}` is given twice; keep one");
    }
    line.to_string()
}

fn pos_of(location: &serde_saphyr::Location) -> Pos {
    Pos {
        line: u32::try_from(location.line()).unwrap_or(u32::MAX).max(1),
        col: u32::try_from(location.column()).unwrap_or(u32::MAX).max(1),
    }
}

fn node_of(spanned: Spanned<Yaml>) -> Node {
    Node {
        pos: pos_of(&spanned.referenced),
        value: spanned.value,
    }
}

impl<'de> Deserialize<'de> for Yaml {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(YamlVisitor)
    }
}

struct YamlVisitor;

impl<'de> Visitor<'de> for YamlVisitor {
    type Value = Yaml;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Yaml, E> {
        Ok(Yaml::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Yaml, E> {
        Ok(Yaml::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Yaml, D::Error> {
        Yaml::deserialize(d)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Yaml, E> {
        Ok(Yaml::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Yaml, E> {
        Ok(Yaml::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Yaml, E> {
        match i64::try_from(v) {
            Ok(v) => Ok(Yaml::Int(v)),
            Err(_) => Ok(Yaml::Float(v as f64)),
        }
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Yaml, E> {
        Ok(Yaml::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Yaml, E> {
        Ok(Yaml::Str(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Yaml, E> {
        Ok(Yaml::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Yaml, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Yaml>>()? {
            items.push(node_of(item));
        }
        Ok(Yaml::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Yaml, A::Error> {
        let mut entries: Vec<(Key, Node)> = Vec::new();
        while let Some(key) = map.next_key::<Spanned<KeyName>>()? {
            let value = node_of(map.next_value::<Spanned<Yaml>>()?);
            let key = Key {
                pos: pos_of(&key.referenced),
                name: key.value.0,
            };
            if let Some((first, _)) = entries.iter().find(|(k, _)| k.name == key.name) {
                return Err(de::Error::custom(format!(
                    "`{}` is given twice (first at line {}); keep one",
                    key.name, first.pos.line
                )));
            }
            entries.push((key, value));
        }
        Ok(Yaml::Map(entries))
    }
}

/// A mapping key: any scalar, as its text.
struct KeyName(String);

impl<'de> Deserialize<'de> for KeyName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = KeyName;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key (a name)")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyName, E> {
                Ok(KeyName(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<KeyName, E> {
                Ok(KeyName(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<KeyName, E> {
                Ok(KeyName(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<KeyName, E> {
                Ok(KeyName(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<KeyName, E> {
                Ok(KeyName(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<KeyName, E> {
                Ok(KeyName("null".into()))
            }
        }
        deserializer.deserialize_any(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_positions_and_scalar_types() {
        let text = "n: x\nsources:\n  orders: { type: csv, path: \"a.csv\", n: 3, f: 1.5, q: '7' }\nlist: [a, b]\nempty:\n";
        let node = parse(text).unwrap();
        let Yaml::Map(entries) = &node.value else {
            panic!("{node:?}")
        };
        assert_eq!(entries[0].0.name, "n");
        assert_eq!(entries[0].0.pos, Pos { line: 1, col: 1 });
        assert_eq!(entries[0].1.pos, Pos { line: 1, col: 4 });
        let Yaml::Map(sources) = &entries[1].1.value else {
            panic!()
        };
        let Yaml::Map(orders) = &sources[0].1.value else {
            panic!()
        };
        assert_eq!(orders[0].0.pos, Pos { line: 3, col: 13 });
        assert_eq!(orders[1].1.value, Yaml::Str("a.csv".into()));
        assert_eq!(orders[1].1.pos.line, 3);
        assert_eq!(orders[2].1.value, Yaml::Int(3));
        assert_eq!(orders[3].1.value, Yaml::Float(1.5), "{orders:?}");
        assert_eq!(orders[4].1.value, Yaml::Str("7".into()));
        assert_eq!(
            entries[2].1.value,
            Yaml::Seq(vec![
                Node {
                    pos: Pos { line: 4, col: 8 },
                    value: Yaml::Str("a".into())
                },
                Node {
                    pos: Pos { line: 4, col: 11 },
                    value: Yaml::Str("b".into())
                },
            ])
        );
        assert_eq!(entries[3].1.value, Yaml::Null);
    }

    #[test]
    fn syntax_errors_and_duplicates_have_positions() {
        let e = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e.pos.line >= 1, "{e:?}");
        let e = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(e.message, "`a` is given twice; keep one");
        assert_eq!(e.pos.line, 3, "{e:?}");
    }
}
