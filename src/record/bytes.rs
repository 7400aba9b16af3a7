use std::fmt;
use std::ops::Deref;
use std::str::FromStr;
use std::sync::Arc;

use serde::ser::{Serialize, Serializer};

use super::excerpt;

/// Binary data: shared (`Arc<[u8]>`), so cloning copies a pointer.
///
/// In text — a CSV field, a JSON string, [`Display`](fmt::Display) — it is
/// **base64**, standard alphabet (`A–Z a–z 0–9 + /`) with `=` padding (RFC 4648
/// §4), the common form of binary in JSON and the one most tools read back.
///
/// Parsing ([`FromStr`]) takes that base64, strictly: no line breaks or
/// spaces, padding required, and the unused bits of the last character zero,
/// so that each value has one spelling and prints back as it was read. It also
/// takes PostgreSQL's hex form, `\x` then two hex digits a byte (`\x00ff`), as
/// `COPY` and `psql` write `bytea`: `\` is not a base64 character, so the two
/// cannot be confused. It always prints base64.
///
/// ```
/// use dataflare::record::Bytes;
///
/// let b = Bytes::from(&b"hi!\x00"[..]);
/// assert_eq!(b.to_string(), "aGkhAA==");
/// assert_eq!("aGkhAA==".parse::<Bytes>(), Ok(b.clone()));
/// assert_eq!(r"\x68692100".parse::<Bytes>(), Ok(b.clone()));
/// assert_eq!(&b[..3], b"hi!");
/// assert!("aGkhAA".parse::<Bytes>().is_err()); // no padding
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Bytes(Arc<[u8]>);

impl Bytes {
    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }
}

impl Deref for Bytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for Bytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(bytes: Vec<u8>) -> Self {
        Bytes(bytes.into())
    }
}

impl From<&[u8]> for Bytes {
    fn from(bytes: &[u8]) -> Self {
        Bytes(bytes.into())
    }
}

impl From<Arc<[u8]>> for Bytes {
    fn from(bytes: Arc<[u8]>) -> Self {
        Bytes(bytes)
    }
}

/// As a byte string: `b"hi!\x00"`.
impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b\"{}\"", self.0.escape_ascii())
    }
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Base64, standard alphabet, padded.
impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut quad = [0u8; 4];
        for chunk in self.0.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
            for (i, c) in quad.iter_mut().enumerate() {
                *c = if i <= chunk.len() {
                    ALPHABET[(n >> (18 - 6 * i) & 63) as usize]
                } else {
                    b'='
                };
            }
            f.write_str(std::str::from_utf8(&quad).expect("ASCII"))?;
        }
        Ok(())
    }
}

/// As base64 text, a JSON string.
impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The error for text that is neither base64 nor `\x` hex: it names the text
/// and what is wrong with it.
///
/// ```
/// use dataflare::record::Bytes;
///
/// let e = "abc".parse::<Bytes>().unwrap_err();
/// assert!(e.to_string().starts_with(r#""abc" is not base64: "#));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text} is not {form}: {reason}")]
pub struct ParseBytesError {
    /// The text, quoted (and cut short when long).
    text: String,
    form: &'static str,
    reason: String,
}

impl FromStr for Bytes {
    type Err = ParseBytesError;

    fn from_str(s: &str) -> Result<Bytes, ParseBytesError> {
        let (form, result) = match s.strip_prefix("\\x") {
            Some(hex) => ("hex (\\x...)", from_hex(hex)),
            None => ("base64", from_base64(s)),
        };
        result.map(Bytes::from).map_err(|reason| ParseBytesError {
            text: excerpt(s),
            form,
            reason,
        })
    }
}

fn from_hex(hex: &str) -> Result<Vec<u8>, String> {
    if !hex.len().is_multiple_of(2) {
        return Err(format!("{} hex digits, an odd number", hex.len()));
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    hex.as_bytes()
        .chunks(2)
        .map(|pair| match (digit(pair[0]), digit(pair[1])) {
            (Some(h), Some(l)) => Ok(h << 4 | l),
            _ => Err(format!(
                "{} is not a hex digit",
                excerpt(&String::from_utf8_lossy(pair))
            )),
        })
        .collect()
}

fn from_base64(text: &str) -> Result<Vec<u8>, String> {
    let b = text.as_bytes();
    if !b.len().is_multiple_of(4) {
        return Err(format!(
            "{} characters, not a multiple of 4 (padding with = is required)",
            b.len()
        ));
    }
    let padding = b.iter().rev().take_while(|&&c| c == b'=').count();
    if padding > 2 {
        return Err("more than two = at the end".into());
    }
    let sextet = |at: usize| -> Result<u32, String> {
        let c = b[at];
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => {
                let ch = text[at..].chars().next().expect("at a char boundary");
                return Err(format!("{ch:?} at byte {at} is not a base64 character"));
            }
        };
        Ok(u32::from(v))
    };
    let mut out = Vec::with_capacity(b.len() / 4 * 3);
    for q in 0..b.len() / 4 {
        let last = q + 1 == b.len() / 4;
        let pad = if last { padding } else { 0 };
        let mut n = 0;
        for i in 0..4 - pad {
            n |= sextet(q * 4 + i)? << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..4 - pad]);
        let spare = n & ((1 << (8 * pad)) - 1);
        if spare != 0 {
            return Err("the last character has bits past the data (not canonical)".into());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn b(s: &str) -> Result<Vec<u8>, String> {
        s.parse::<Bytes>()
            .map(|b| b.to_vec())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_rfc_4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(Bytes::from(plain.as_bytes()).to_string(), encoded);
            assert_eq!(b(encoded), Ok(plain.as_bytes().to_vec()));
        }
        assert_eq!(Bytes::from(vec![0xfb, 0xff]).to_string(), "+/8=");
    }

    #[test]
    fn refuses_what_is_not_canonical_base64() {
        for (bad, why) in [
            ("Zg", "not a multiple of 4"),
            ("Zg=", "not a multiple of 4"),
            ("Z===", "more than two ="),
            ("Zh==", "bits past the data"),
            ("Zm9=", "bits past the data"),
            ("Zm9v\nYg==", "not a multiple of 4"),
            ("Zm 9", "' ' at byte 2"),
            ("Zg==Zg==", "'=' at byte 2"),
            ("Zm-_", "'-' at byte 2"),
            ("Zé=", "'é' at byte 1"),
        ] {
            let e = b(bad).unwrap_err();
            assert!(
                e.contains("is not base64") && e.contains(why),
                "{bad:?}: {e}"
            );
        }
    }

    #[test]
    fn reads_postgres_hex() {
        assert_eq!(b(r"\x"), Ok(vec![]));
        assert_eq!(b(r"\x00FFa0"), Ok(vec![0, 255, 0xa0]));
        let e = b(r"\x0").unwrap_err();
        assert!(e.contains(r#"is not hex (\x...): 1 hex digits"#), "{e}");
        let e = b(r"\x0g").unwrap_err();
        assert!(e.contains(r#""0g" is not a hex digit"#), "{e}");
    }

    #[test]
    fn debug_and_json() {
        let x = Bytes::from(&b"a\"\x00"[..]);
        assert_eq!(format!("{x:?}"), r#"b"a\"\x00""#);
        assert_eq!(serde_json::to_string(&x).unwrap(), "\"YSIA\"");
    }

    proptest! {
        #[test]
        fn prints_then_parses_back(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let x = Bytes::from(data.clone());
            let text = x.to_string();
            prop_assert_eq!(text.len(), data.len().div_ceil(3) * 4);
            prop_assert_eq!(text.parse::<Bytes>(), Ok(x));
        }
    }
}
