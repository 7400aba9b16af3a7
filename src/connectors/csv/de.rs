//! Deserializing typed rows with serde straight from a chunk's text.
//!
//! The `csv` crate deserializes only its own `StringRecord`s, so each row
//! would be copied into one first. [`RowDe`] reads the fields where they are
//! instead, following the crate's deserializer method by method, for what
//! rows are made of in practice (structs by header name or by position,
//! tuples, numbers, text, options). On anything else, and on any error, it
//! gives up with [`Retry`], and the row is deserialized again by the crate,
//! whose result and error messages are then the source's: the fast path can
//! only ever agree with it.

use std::fmt;

use ::csv::{StringRecord, StringRecordIter};
use serde::de::value::BorrowedBytesDeserializer;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::row::RowText;

/// This row is left to the `csv` crate's deserializer.
#[derive(Debug)]
pub(super) struct Retry;

impl fmt::Display for Retry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("left to the csv crate")
    }
}

impl std::error::Error for Retry {}

impl de::Error for Retry {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Retry
    }
}

/// A row's fields, and the header's names to match them with.
pub(super) struct RowDe<'a> {
    row: RowText<'a>,
    /// The next field.
    at: usize,
    headers: Option<StringRecordIter<'a>>,
}

impl<'a> RowDe<'a> {
    pub(super) fn new(row: RowText<'a>, headers: Option<&'a StringRecord>) -> Self {
        RowDe {
            row,
            at: 0,
            headers: headers.map(StringRecord::iter),
        }
    }

    fn next_field(&mut self) -> Result<&'a str, Retry> {
        let field = self.row.get(self.at).ok_or(Retry)?;
        self.at += 1;
        Ok(field)
    }

    fn peek_field(&self) -> Option<&'a str> {
        self.row.get(self.at)
    }

    fn parse<T: std::str::FromStr>(&mut self) -> Result<T, Retry> {
        self.next_field()?.parse().map_err(|_| Retry)
    }
}

macro_rules! parsed {
    ($($method:ident => $visit:ident,)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Retry> {
            // A hexadecimal `0x..` integer does not parse here: the crate reads it.
            visitor.$visit(self.parse()?)
        }
    )*};
}

/// As `csv`'s `impl Deserializer for &mut DeRecordWrap<_>`, method by method.
impl<'de> Deserializer<'de> for &mut RowDe<'de> {
    type Error = Retry;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Retry> {
        // The crate guesses the type from the text.
        Err(Retry)
    }

    parsed! {
        deserialize_bool => visit_bool,
        deserialize_u8 => visit_u8,
        deserialize_u16 => visit_u16,
        deserialize_u32 => visit_u32,
        deserialize_u64 => visit_u64,
        deserialize_u128 => visit_u128,
        deserialize_i8 => visit_i8,
        deserialize_i16 => visit_i16,
        deserialize_i32 => visit_i32,
        deserialize_i64 => visit_i64,
        deserialize_i128 => visit_i128,
        deserialize_f32 => visit_f32,
        deserialize_f64 => visit_f64,
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Retry> {
        let mut chars = self.next_field()?.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => visitor.visit_char(c),
            _ => Err(Retry),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Retry> {
        visitor.visit_borrowed_str(self.next_field()?)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Retry> {
        visitor.visit_str(self.next_field()?)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Retry> {
        visitor.visit_borrowed_bytes(self.next_field()?.as_bytes())
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Retry> {
        visitor.visit_byte_buf(self.next_field()?.as_bytes().to_vec())
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Retry> {
        match self.peek_field() {
            None => visitor.visit_none(),
            Some("") => {
                self.at += 1;
                visitor.visit_none()
            }
            Some(_) => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Retry> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Retry> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Retry> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Retry> {
        visitor.visit_seq(self)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Retry> {
        visitor.visit_seq(self)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Retry> {
        visitor.visit_seq(self)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Retry> {
        if self.headers.is_none() {
            visitor.visit_seq(self)
        } else {
            visitor.visit_map(self)
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Retry> {
        self.deserialize_map(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Retry> {
        Err(Retry)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Retry> {
        Err(Retry)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Retry> {
        self.next_field()?;
        visitor.visit_unit()
    }
}

impl<'de> SeqAccess<'de> for &mut RowDe<'de> {
    type Error = Retry;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Retry> {
        if self.peek_field().is_none() {
            Ok(None)
        } else {
            seed.deserialize(&mut **self).map(Some)
        }
    }
}

impl<'de> MapAccess<'de> for &mut RowDe<'de> {
    type Error = Retry;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Retry> {
        let Some(name) = self.headers.as_mut().and_then(Iterator::next) else {
            return Ok(None);
        };
        seed.deserialize(BorrowedBytesDeserializer::new(name.as_bytes()))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Retry> {
        seed.deserialize(&mut **self)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use serde::Deserialize;
    use serde::de::DeserializeOwned;

    use super::*;
    use crate::connectors::csv::row::RowText;

    #[derive(Debug, PartialEq, Deserialize)]
    struct Row {
        a: Option<u32>,
        b: f64,
        c: String,
        d: Option<bool>,
        #[serde(default)]
        e: Option<char>,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    struct Id(i64);

    #[derive(Debug, PartialEq, Deserialize)]
    enum Kind {
        Big,
        Small,
    }

    /// What the fast path makes of `fields`, and what the `csv` crate makes.
    fn both<T: DeserializeOwned>(
        fields: &[String],
        header: Option<&StringRecord>,
    ) -> (Option<T>, Option<T>) {
        let text = fields.concat();
        let ends: Vec<usize> = fields
            .iter()
            .scan(0, |end, f| {
                *end += f.len();
                Some(*end)
            })
            .collect();
        let row = RowText::new(&text, 0, &ends);
        let fast = T::deserialize(&mut RowDe::new(row, header)).ok();
        let record = StringRecord::from(fields.to_vec());
        (fast, record.deserialize(header).ok())
    }

    fn agree<T: DeserializeOwned + fmt::Debug>(
        fields: &[String],
        header: Option<&StringRecord>,
    ) -> Result<(), TestCaseError> {
        let (fast, csv) = both::<T>(fields, header);
        if fast.is_some() {
            // As text, so that NaN equals NaN.
            prop_assert_eq!(format!("{fast:?}"), format!("{csv:?}"));
        }
        Ok(())
    }

    #[test]
    fn the_common_shapes_take_the_fast_path() {
        let fields: Vec<String> = ["7", "2.5", "x", ""].map(String::from).into();
        let header = StringRecord::from(vec!["a", "b", "c", "d"]);
        let (fast, csv) = both::<Row>(&fields, Some(&header));
        assert!(fast.is_some());
        assert_eq!(fast, csv);
        let (fast, csv) = both::<(u8, f32, String, Option<i8>)>(&fields, None);
        assert!(fast.is_some());
        assert_eq!(fast, csv);
        // Hexadecimal numbers and enums are the crate's.
        let hex: Vec<String> = vec!["0x1f".into()];
        assert_eq!(both::<(u32,)>(&hex, None), (None, Some((31,))));
        let big: Vec<String> = vec!["Big".into()];
        assert_eq!(both::<(Kind,)>(&big, None), (None, Some((Kind::Big,))));
    }

    proptest! {
        /// Whenever the fast path gives a value, it is the crate's.
        #[test]
        fn agrees_with_the_csv_crate(
            fields in prop::collection::vec(
                prop::sample::select(vec![
                    "", "0", "7", "-3", "300", "0x1f", "2.5", "-0.0", "1e3", "nan", "true",
                    "false", "x", "é", "ab", " 1", "Big", "Small",
                ]).prop_map(String::from),
                0..7,
            ),
            names in prop::collection::vec(
                prop::sample::select(vec!["a", "b", "c", "d", "e", "z"]), 0..7),
        ) {
            let header = StringRecord::from(names);
            for header in [None, Some(&header)] {
                agree::<Row>(&fields, header)?;
                agree::<(u8, i64, Option<f64>, String)>(&fields, header)?;
                agree::<(Option<u32>, bool, char)>(&fields, header)?;
                agree::<(Id, Option<Kind>)>(&fields, header)?;
                agree::<Vec<String>>(&fields, header)?;
                agree::<Vec<Option<u16>>>(&fields, header)?;
                agree::<BTreeMap<String, String>>(&fields, header)?;
                agree::<(String, ())>(&fields, header)?;
            }
        }
    }
}
