//! PostgreSQL types and DataFlare [`Value`]s, both ways, in PostgreSQL's
//! binary format: the one mapping every PostgreSQL source and sink uses
//! (query results, query parameters, `COPY ... (FORMAT binary)`).
//!
//! | PostgreSQL | [`DataType`] |
//! |---|---|
//! | `bool` | `Bool` |
//! | `int2`, `int4`, `int8` | `Int` |
//! | `float4`, `float8` | `Float` |
//! | `numeric` | `Decimal` (28 digits; larger values are refused, naming the column) |
//! | `text`, `varchar`, `char(n)`, `name` | `Str` |
//! | `date` | `Date` |
//! | `timestamp`, `timestamptz` | `Timestamp` (a `timestamp` without zone is read as UTC) |
//! | `json`, `jsonb` | `Json` |
//! | `bytea` | `Bytes` |
//!
//! `NULL` is [`Value::Null`] in every column.

use std::error::Error as StdError;

use bytes::{BufMut, BytesMut};
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};

use crate::record::{DataType, Date, Decimal, Timestamp, Value};

/// Days from 1970-01-01 to 2000-01-01, PostgreSQL's epoch.
const PG_EPOCH_DAYS: i32 = 10_957;
/// Microseconds from 1970-01-01 to 2000-01-01.
const PG_EPOCH_MICROS: i64 = PG_EPOCH_DAYS as i64 * 86_400_000_000;

/// The [`DataType`] a column of PostgreSQL type `ty` reads as, or `None`
/// when DataFlare cannot map it.
pub(crate) fn data_type(ty: &Type) -> Option<DataType> {
    Some(match *ty {
        Type::BOOL => DataType::Bool,
        Type::INT2 | Type::INT4 | Type::INT8 => DataType::Int,
        Type::FLOAT4 | Type::FLOAT8 => DataType::Float,
        Type::NUMERIC => DataType::Decimal,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => DataType::Str,
        Type::DATE => DataType::Date,
        Type::TIMESTAMP | Type::TIMESTAMPTZ => DataType::Timestamp,
        Type::JSON | Type::JSONB => DataType::Json,
        Type::BYTEA => DataType::Bytes,
        _ => return None,
    })
}

/// The message for a column DataFlare cannot map, naming it.
pub(crate) fn unmappable(column: &str, ty: &Type) -> String {
    format!(
        "column {column:?} has PostgreSQL type {}, which DataFlare cannot map (it maps bool, \
         int2/4/8, float4/8, numeric, text, varchar, char, name, date, timestamp, timestamptz, \
         json, jsonb and bytea); cast it in the query, e.g. \"{column}\"::text",
        ty.name()
    )
}

/// One cell of a result row, read in binary.
#[derive(Debug)]
pub(crate) struct Cell(pub(crate) Value);

impl<'a> FromSql<'a> for Cell {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn StdError + Sync + Send>> {
        decode(ty, raw).map(Cell).map_err(Into::into)
    }

    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn StdError + Sync + Send>> {
        Ok(Cell(Value::Null))
    }

    fn accepts(ty: &Type) -> bool {
        data_type(ty).is_some()
    }
}

fn take<const N: usize>(raw: &[u8]) -> Result<[u8; N], String> {
    raw.try_into()
        .map_err(|_| format!("{} bytes where {N} were expected", raw.len()))
}

/// Decodes a non-null value of type `ty` from its binary form.
pub(crate) fn decode(ty: &Type, raw: &[u8]) -> Result<Value, String> {
    Ok(match *ty {
        Type::BOOL => Value::Bool(take::<1>(raw)?[0] != 0),
        Type::INT2 => Value::Int(i16::from_be_bytes(take(raw)?).into()),
        Type::INT4 => Value::Int(i32::from_be_bytes(take(raw)?).into()),
        Type::INT8 => Value::Int(i64::from_be_bytes(take(raw)?)),
        Type::FLOAT4 => Value::Float(f32::from_be_bytes(take(raw)?).into()),
        Type::FLOAT8 => Value::Float(f64::from_be_bytes(take(raw)?)),
        Type::NUMERIC => Value::Decimal(decode_numeric(raw)?),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => {
            Value::from(std::str::from_utf8(raw).map_err(|e| e.to_string())?)
        }
        Type::DATE => {
            let days = i32::from_be_bytes(take(raw)?);
            match days.checked_add(PG_EPOCH_DAYS) {
                Some(d) if days != i32::MAX && days != i32::MIN => {
                    Value::Date(Date::from_days_since_epoch(d))
                }
                _ => return Err("an infinite or out-of-range date".into()),
            }
        }
        Type::TIMESTAMP | Type::TIMESTAMPTZ => {
            let micros = i64::from_be_bytes(take(raw)?);
            Value::Timestamp(match micros {
                i64::MAX => Timestamp::MAX, // 'infinity'
                i64::MIN => Timestamp::MIN, // '-infinity'
                m => Timestamp::from_micros(
                    m.checked_add(PG_EPOCH_MICROS)
                        .ok_or("a timestamp out of range")?,
                ),
            })
        }
        Type::JSON | Type::JSONB => {
            let text = if *ty == Type::JSONB {
                match raw.split_first() {
                    Some((1, text)) => text,
                    _ => return Err("a jsonb value of an unknown version".into()),
                }
            } else {
                raw
            };
            let json: serde_json::Value =
                serde_json::from_slice(text).map_err(|e| format!("invalid JSON: {e}"))?;
            Value::from(json)
        }
        Type::BYTEA => Value::from(raw),
        _ => return Err(format!("type {} is not mapped", ty.name())),
    })
}

/// A `numeric` in binary: digit count, weight (of the first base-10000
/// digit), sign, display scale, then the base-10000 digits.
fn decode_numeric(raw: &[u8]) -> Result<Decimal, String> {
    let field = |i: usize| -> Result<u16, String> {
        raw.get(i..i + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| "a truncated numeric".to_string())
    };
    let ndigits = field(0)? as usize;
    let weight = field(2)? as i16 as i32;
    let sign = field(4)?;
    let dscale = field(6)? as i32;
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => return Err("NaN does not fit a decimal".into()),
        _ => return Err("an infinite numeric does not fit a decimal".into()),
    }
    let too_big =
        || "a numeric of more than 28 significant digits does not fit a decimal".to_string();
    let mut acc: i128 = 0;
    for i in 0..ndigits {
        let d = field(8 + 2 * i)? as i128;
        acc = acc
            .checked_mul(10_000)
            .and_then(|a| a.checked_add(d))
            .ok_or_else(too_big)?;
    }
    // acc × 10^(-4 × groups after the point); wanted: the mantissa at dscale.
    let frac_groups = ndigits as i32 - 1 - weight;
    let shift = dscale - 4 * frac_groups;
    let mut mantissa = if shift >= 0 {
        10i128
            .checked_pow(shift as u32)
            .and_then(|p| acc.checked_mul(p))
            .ok_or_else(too_big)?
    } else {
        // Only zeros beyond the display scale: exact.
        acc / 10i128.checked_pow((-shift) as u32).ok_or_else(too_big)?
    };
    let mut scale = dscale;
    while scale > Decimal::MAX_SCALE as i32 && mantissa % 10 == 0 {
        mantissa /= 10;
        scale -= 1;
    }
    if sign == 0x4000 {
        mantissa = -mantissa;
    }
    Decimal::from_parts(mantissa, scale.max(0) as u32).ok_or_else(too_big)
}

fn encode_numeric(d: Decimal, out: &mut BytesMut) {
    let mantissa = d.mantissa();
    let scale = d.scale();
    let negative = mantissa < 0;
    // Pad the scale to a multiple of 4 so the point falls between digits.
    let pad = (4 - scale % 4) % 4;
    let mut abs = mantissa.unsigned_abs() * 10u128.pow(pad);
    let frac_groups = ((scale + pad) / 4) as i32;
    let mut groups = Vec::with_capacity(10);
    while abs > 0 {
        groups.push((abs % 10_000) as i16);
        abs /= 10_000;
    }
    // Least significant first; the weight is that of the most significant.
    let weight = groups.len() as i32 - 1 - frac_groups;
    let trailing = groups.iter().take_while(|g| **g == 0).count();
    let digits = &groups[trailing..];
    out.put_i16(digits.len() as i16);
    out.put_i16(if digits.is_empty() { 0 } else { weight as i16 });
    out.put_u16(if negative && !digits.is_empty() {
        0x4000
    } else {
        0
    });
    out.put_u16(scale as u16);
    for g in digits.iter().rev() {
        out.put_i16(*g);
    }
}

/// Encodes `value` as a value of the PostgreSQL type `ty` in binary, into
/// `out`, converting where that is exact: text parsed as the column's type
/// (as [`DataType::parse`] does), integers and decimals into floats and
/// decimals, anything into text columns as its text. Returns `IsNull::Yes`
/// (writing nothing) for [`Value::Null`].
pub(crate) fn encode(value: &Value, ty: &Type, out: &mut BytesMut) -> Result<IsNull, String> {
    if value.is_null() {
        return Ok(IsNull::Yes);
    }
    let Some(target) = data_type(ty) else {
        return Err(format!("PostgreSQL type {} is not mapped", ty.name()));
    };
    // Text for a column of another type: parsed as that type first.
    let parsed;
    let value = match value {
        Value::Str(s) if target != DataType::Str && target != DataType::Json => {
            parsed = target.parse(s)?;
            if parsed.is_null() {
                return Ok(IsNull::Yes);
            }
            &parsed
        }
        v => v,
    };
    let mismatch = || {
        format!(
            "a {} value cannot be written to a column of type {}",
            value
                .data_type()
                .map_or("null".to_string(), |t| t.to_string()),
            ty.name()
        )
    };
    match *ty {
        Type::BOOL => out.put_u8(value.as_bool().ok_or_else(mismatch)? as u8),
        Type::INT2 | Type::INT4 | Type::INT8 => {
            let i = match value {
                Value::Int(i) => *i,
                Value::Decimal(d) if d.scale() == 0 || d.normalize().scale() == 0 => {
                    i64::try_from(d.normalize().mantissa()).map_err(|_| mismatch())?
                }
                _ => return Err(mismatch()),
            };
            let range = || format!("{i} is out of range for type {}", ty.name());
            match *ty {
                Type::INT2 => out.put_i16(i16::try_from(i).map_err(|_| range())?),
                Type::INT4 => out.put_i32(i32::try_from(i).map_err(|_| range())?),
                _ => out.put_i64(i),
            }
        }
        Type::FLOAT4 | Type::FLOAT8 => {
            let f = match value {
                Value::Decimal(d) => d.to_f64(),
                v => v.as_f64().ok_or_else(mismatch)?,
            };
            if *ty == Type::FLOAT4 {
                out.put_f32(f as f32);
            } else {
                out.put_f64(f);
            }
        }
        Type::NUMERIC => {
            let d = match value {
                Value::Decimal(d) => *d,
                Value::Int(i) => Decimal::from_parts(*i as i128, 0).ok_or_else(mismatch)?,
                Value::Float(f) if f.is_finite() => f
                    .to_string()
                    .parse::<Decimal>()
                    .map_err(|e| e.to_string())?,
                _ => return Err(mismatch()),
            };
            encode_numeric(d, out);
        }
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => match value {
            Value::Str(s) => out.put_slice(s.as_bytes()),
            v => {
                use std::fmt::Write;
                let mut text = String::new();
                let _ = write!(text, "{v}");
                out.put_slice(text.as_bytes());
            }
        },
        Type::DATE => {
            let d = value.as_date().ok_or_else(mismatch)?;
            out.put_i32(d.days_since_epoch() - PG_EPOCH_DAYS);
        }
        Type::TIMESTAMP | Type::TIMESTAMPTZ => {
            let micros = match value {
                Value::Timestamp(t) if *t == Timestamp::MAX => i64::MAX,
                Value::Timestamp(t) if *t == Timestamp::MIN => i64::MIN,
                Value::Timestamp(t) => t
                    .micros()
                    .checked_sub(PG_EPOCH_MICROS)
                    .ok_or("a timestamp out of PostgreSQL's range")?,
                Value::Date(d) => {
                    (d.days_since_epoch() as i64 - PG_EPOCH_DAYS as i64) * 86_400_000_000
                }
                _ => return Err(mismatch()),
            };
            out.put_i64(micros);
        }
        Type::JSON | Type::JSONB => {
            if *ty == Type::JSONB {
                out.put_u8(1);
            }
            match value {
                Value::Str(s) => {
                    serde_json::from_str::<serde::de::IgnoredAny>(s).map_err(|e| {
                        format!("text that is not JSON for a {} column: {e}", ty.name())
                    })?;
                    out.put_slice(s.as_bytes());
                }
                v => {
                    let text = serde_json::to_vec(v).map_err(|e| e.to_string())?;
                    out.put_slice(&text);
                }
            }
        }
        Type::BYTEA => out.put_slice(value.as_bytes().ok_or_else(mismatch)?),
        _ => return Err(mismatch()),
    }
    Ok(IsNull::No)
}

/// A [`Value`] as a query parameter, converted to the parameter's type.
#[derive(Debug)]
pub(crate) struct Param<'a>(pub(crate) &'a Value);

impl ToSql for Param<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        encode(self.0, ty, out).map_err(Into::into)
    }

    fn accepts(ty: &Type) -> bool {
        data_type(ty).is_some()
    }

    to_sql_checked!();
}

/// Writes the header of a binary `COPY`.
pub(crate) fn copy_header(out: &mut BytesMut) {
    out.put_slice(b"PGCOPY\n\xff\r\n\0");
    out.put_i32(0); // flags
    out.put_i32(0); // header extension
}

/// Writes the trailer of a binary `COPY`.
pub(crate) fn copy_trailer(out: &mut BytesMut) {
    out.put_i16(-1);
}

/// Writes one field of a binary `COPY` row: its length, then its value.
pub(crate) fn copy_field(value: &Value, ty: &Type, out: &mut BytesMut) -> Result<(), String> {
    let at = out.len();
    out.put_i32(0);
    match encode(value, ty, out)? {
        IsNull::Yes => {
            out[at..at + 4].copy_from_slice(&(-1i32).to_be_bytes());
        }
        IsNull::No => {
            let len =
                i32::try_from(out.len() - at - 4).map_err(|_| "a value over 2 GiB".to_string())?;
            out[at..at + 4].copy_from_slice(&len.to_be_bytes());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(ty: &Type, v: Value) -> Value {
        let mut buf = BytesMut::new();
        assert!(matches!(encode(&v, ty, &mut buf).unwrap(), IsNull::No));
        decode(ty, &buf).unwrap()
    }

    #[test]
    fn numerics_round_trip_exactly() {
        for text in [
            "0",
            "1",
            "-1",
            "12.50",
            "0.0001",
            "0.00001",
            "10000",
            "123456789.123456789",
            "-0.5",
            "9999999999999999999999999999",
            "0.0000000000000000000000000001",
            "100.000",
        ] {
            let d: Decimal = text.parse().unwrap();
            let back = round_trip(&Type::NUMERIC, Value::Decimal(d));
            assert_eq!(back.to_string(), text, "{text}");
        }
    }

    #[test]
    fn dates_and_timestamps_use_the_2000_epoch() {
        let mut buf = BytesMut::new();
        encode(
            &Value::Date(Date::from_ymd(2000, 1, 2).unwrap()),
            &Type::DATE,
            &mut buf,
        )
        .unwrap();
        assert_eq!(&buf[..], &1i32.to_be_bytes());
        let t: Timestamp = "2024-02-29T12:34:56.789012Z".parse().unwrap();
        assert_eq!(
            round_trip(&Type::TIMESTAMPTZ, Value::Timestamp(t)),
            Value::Timestamp(t)
        );
        assert_eq!(
            round_trip(&Type::TIMESTAMP, Value::Timestamp(Timestamp::MAX)),
            Value::Timestamp(Timestamp::MAX)
        );
    }

    #[test]
    fn text_is_parsed_for_typed_columns_and_bad_values_are_named() {
        assert_eq!(round_trip(&Type::INT4, Value::from("42")), Value::Int(42));
        assert_eq!(
            round_trip(&Type::JSONB, Value::from("[1,2]")).to_string(),
            "[1,2]"
        );
        let mut buf = BytesMut::new();
        let e = encode(&Value::Int(70_000), &Type::INT2, &mut buf)
            .err()
            .unwrap();
        assert_eq!(e, "70000 is out of range for type int2");
        let e = encode(&Value::Bool(true), &Type::DATE, &mut buf)
            .err()
            .unwrap();
        assert_eq!(e, "a bool value cannot be written to a column of type date");
    }
}
