//! [`PartitionKey`], a key that is safe as a file name, and [`Keyed`], a
//! record with its key: what a partitioned sink takes.

use std::fmt;

use crate::{Error, Result};

/// The longest key, in bytes: with the extension and the temporary file's
/// suffix (`.KEY.csv.PID-N.dataflare-tmp`) the name stays within the 255
/// bytes file systems allow.
const MAX_KEY_BYTES: usize = 200;

/// The key of a partitioned output's record: which file of the output
/// directory it goes to (`DIR/KEY.csv` for
/// [`csv::write_partitioned`](crate::csv::write_partitioned)).
///
/// A key is checked when it is made, so that whatever the data holds, a
/// record can only ever land in a file directly inside the output directory.
/// [`PartitionKey::new`] refuses, with a
/// [record-level](Error::is_record_level) error naming the key, saying why and
/// what to do (so the stage's [`ErrorPolicy`](crate::ErrorPolicy) decides
/// whether a bad key skips, dead-letters or fails):
///
/// - an empty key;
/// - `.` and `..`, and any key starting with `.`: its file would be hidden
///   (`ls`, and readers such as Spark and Hadoop, skip names starting with
///   `.`), so a run could write data no one sees;
/// - `/` and `\` anywhere: a key names one file, never a path;
/// - NUL and every other control character (`char::is_control`: tabs, line
///   breaks, escapes): file systems refuse some of them and terminals hide
///   the others;
/// - more than 200 bytes (UTF-8): file names are limited to 255 bytes, and
///   the sink adds an extension and a temporary suffix.
///
/// Everything else is kept as it is: case, spaces, Unicode. (Names that only
/// Windows reserves, such as `CON` or `a:b`, are not refused; writing them on
/// Windows fails the run, naming the file.) Keys of one run that differ only in
/// case are refused by the sink, not here: see
/// [`write_partitioned`](crate::csv::write_partitioned).
///
/// ```
/// use dataflare::sink::PartitionKey;
///
/// let key = PartitionKey::new("books")?;
/// assert_eq!(key.as_str(), "books");
/// assert_eq!(key.to_string(), "books");
///
/// let err = PartitionKey::new("../etc").unwrap_err();
/// assert!(err.is_record_level());
/// assert!(err.to_string().contains("\"../etc\""), "{err}");
/// assert!(PartitionKey::new("").is_err());
/// assert!(PartitionKey::new(".hidden").is_err());
/// # Ok::<(), dataflare::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionKey(String);

impl PartitionKey {
    /// Checks `key` and makes it a partition key; see [`PartitionKey`] for
    /// what is refused. The error is record-level and names the key.
    ///
    /// ```
    /// use dataflare::sink::PartitionKey;
    ///
    /// assert!(PartitionKey::new("2024-06-01").is_ok());
    /// assert!(PartitionKey::new("Île-de-France").is_ok());
    /// let err = PartitionKey::new("a/b").unwrap_err();
    /// assert!(err.to_string().contains("path separator"), "{err}");
    /// ```
    pub fn new(key: impl Into<String>) -> Result<PartitionKey> {
        let key = key.into();
        match refusal(&key) {
            None => Ok(PartitionKey(key)),
            Some(why) => {
                Err(Error::msg(format!("partition key {} {why}", shown(&key))).at_record_level())
            }
        }
    }

    /// The key as text, as it names its file.
    ///
    /// ```
    /// use dataflare::sink::PartitionKey;
    ///
    /// assert_eq!(PartitionKey::new("toys")?.as_str(), "toys");
    /// # Ok::<(), dataflare::Error>(())
    /// ```
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why `key` cannot be a partition key, and what to do; `None` when it can.
fn refusal(key: &str) -> Option<String> {
    let why = if key.is_empty() {
        "is empty: a key names a file; give records without a key one of their own \
         (e.g. \"unknown\"), or filter them out first"
            .to_string()
    } else if key == "." || key == ".." {
        "names a directory, not a file: replace it before making the key".to_string()
    } else if key.starts_with('.') {
        "starts with '.': its file would be hidden (ls, Spark and Hadoop skip such \
         names); strip or replace the leading '.'"
            .to_string()
    } else if let Some(c) = key.chars().find(|c| matches!(c, '/' | '\\')) {
        format!(
            "contains {c:?}, a path separator: a key names one file in the output \
             directory, never a path; replace it (e.g. with '_')"
        )
    } else if let Some(c) = key.chars().find(|c| c.is_control()) {
        format!(
            "contains the control character U+{:04X}: file names cannot hold it \
             safely; remove or replace it",
            c as u32
        )
    } else if key.len() > MAX_KEY_BYTES {
        format!(
            "is {} bytes long, over the {MAX_KEY_BYTES} a key may have (file names \
             are limited to 255 bytes); shorten it, e.g. to a prefix and a hash",
            key.len()
        )
    } else {
        return None;
    };
    Some(why)
}

/// `key` quoted and escaped for a message, cut after 40 characters.
fn shown(key: &str) -> String {
    match key.char_indices().nth(40) {
        Some((cut, _)) => format!("{:?}...", &key[..cut]),
        None => format!("{key:?}"),
    }
}

impl fmt::Display for PartitionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for PartitionKey {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A record with the [`PartitionKey`] of the file it goes to: what a
/// partitioned sink such as
/// [`csv::write_partitioned`](crate::csv::write_partitioned) takes. Only
/// `record` is written; the key chooses the file.
///
/// ```
/// use dataflare::sink::{Keyed, PartitionKey};
///
/// let keyed = Keyed::new(PartitionKey::new("books")?, (1, 9.5));
/// assert_eq!(keyed.key.as_str(), "books");
/// assert_eq!(keyed.record, (1, 9.5));
/// # Ok::<(), dataflare::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Keyed<T> {
    /// Which file the record goes to.
    pub key: PartitionKey,
    /// The record written.
    pub record: T,
}

impl<T> Keyed<T> {
    /// `record`, to be written to the file of `key`.
    ///
    /// ```
    /// use dataflare::sink::{Keyed, PartitionKey};
    ///
    /// let keyed = Keyed::new(PartitionKey::new("toys")?, "a yo-yo");
    /// assert_eq!(keyed.record, "a yo-yo");
    /// # Ok::<(), dataflare::Error>(())
    /// ```
    pub fn new(key: PartitionKey, record: T) -> Self {
        Keyed { key, record }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_keys_are_kept_as_they_are() {
        for key in [
            "books",
            "Books",
            "a b",
            "x.csv",
            "a..b",
            "é",
            "-",
            "2024-06-01",
        ] {
            assert_eq!(PartitionKey::new(key).unwrap().as_str(), key);
        }
        let longest = "k".repeat(MAX_KEY_BYTES);
        assert!(PartitionKey::new(longest).is_ok());
    }

    #[test]
    fn unsafe_keys_are_refused_at_record_level_saying_why() {
        let cases = [
            ("", "is empty"),
            (".", "names a directory"),
            ("..", "names a directory"),
            (".hidden", "starts with '.'"),
            ("a/b", "path separator"),
            ("/etc", "path separator"),
            ("a\\b", "path separator"),
            ("a\0b", "control character U+0000"),
            ("a\nb", "control character U+000A"),
            ("a\u{7f}", "control character U+007F"),
            ("a\u{85}", "control character U+0085"),
        ];
        for (key, why) in cases {
            let e = PartitionKey::new(key).unwrap_err();
            assert!(e.is_record_level(), "{key:?}");
            let text = e.to_string();
            assert!(text.contains(why), "{key:?}: {text}");
            assert!(text.contains(&format!("{key:?}")), "{key:?}: {text}");
        }
        let long = "é".repeat(101); // 202 bytes
        let text = PartitionKey::new(long).unwrap_err().to_string();
        assert!(text.contains("is 202 bytes long, over the 200"), "{text}");
        assert!(text.contains("\"éééé") && text.contains("..."), "{text}");
    }
}
