use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

/// Bytes of text kept inline: a [`Text`] is 24 bytes either way.
const INLINE: usize = 22;

/// The text of a [`Value::Str`](super::Value::Str): up to 22 bytes kept inline,
/// longer text shared (`Arc<str>`).
///
/// Most fields of a row are short (names, codes, timestamps): inline, decoding
/// them allocates nothing, and nothing is freed later on the thread that drops
/// the record. Cloning never copies more than 24 bytes. Reads as a `&str`.
///
/// ```
/// use dataflare::record::Text;
///
/// let short = Text::from("books");
/// let long = Text::from("a note longer than twenty-two bytes");
/// assert_eq!(&*short, "books");
/// assert_eq!(long.len(), 35);
/// assert_eq!(short, Text::from(String::from("books")));
/// ```
#[derive(Clone)]
pub struct Text(Repr);

#[derive(Clone)]
enum Repr {
    Inline { len: u8, bytes: [u8; INLINE] },
    Shared(Arc<str>),
}

impl Text {
    /// The text.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Inline { len, bytes } => std::str::from_utf8(&bytes[..usize::from(*len)])
                .expect("inline text is copied from a str"),
            Repr::Shared(s) => s,
        }
    }

    /// True when `text` is short enough to be kept inline.
    pub(crate) fn fits_inline(text: &str) -> bool {
        text.len() <= INLINE
    }

    /// The text's bytes (UTF-8).
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Repr::Shared(s) => s.as_bytes(),
        }
    }

    fn inline(text: &str) -> Option<Self> {
        let len = text.len();
        (len <= INLINE).then(|| {
            let mut bytes = [0; INLINE];
            bytes[..len].copy_from_slice(text.as_bytes());
            Text(Repr::Inline {
                len: len as u8,
                bytes,
            })
        })
    }
}

impl Deref for Text {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Text {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for Text {
    fn from(text: &str) -> Self {
        Text::inline(text).unwrap_or_else(|| Text(Repr::Shared(Arc::from(text))))
    }
}

impl From<String> for Text {
    fn from(text: String) -> Self {
        Text::inline(&text).unwrap_or_else(|| Text(Repr::Shared(Arc::from(text))))
    }
}

impl From<Arc<str>> for Text {
    fn from(text: Arc<str>) -> Self {
        Text(Repr::Shared(text))
    }
}

impl From<Text> for String {
    fn from(text: Text) -> Self {
        text.as_str().to_owned()
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Text {}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialOrd for Text {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Text {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Hash for Text {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_inline_and_long_text_shared() {
        let edge = "x".repeat(INLINE);
        assert!(matches!(Text::from(edge.as_str()).0, Repr::Inline { .. }));
        let long = "y".repeat(INLINE + 1);
        let text = Text::from(long.clone());
        assert!(matches!(text.0, Repr::Shared(_)));
        assert_eq!(&*text, long);
        assert_eq!(&*Text::from(""), "");
        assert_eq!(&*Text::from("é€𝄞"), "é€𝄞");
    }

    #[test]
    fn text_and_its_value_stay_small() {
        assert_eq!(std::mem::size_of::<Text>(), 24);
        assert_eq!(std::mem::size_of::<super::super::Value>(), 24);
    }
}
