//! CEL's operators and functions on [`V`]s, as the `cel` crate's
//! interpreter defines them (read from its source: `common/types/*.rs` and
//! `objects.rs`): the compiled closures fall back to these for any value
//! their fast path does not cover, and the compiler evaluates them on sample
//! values to find result types.

use std::cmp::Ordering;
use std::sync::Arc;

use super::error::Fault;
use super::value::{Kind, V};
use crate::record::{Bytes, Text};

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
}

impl Op {
    /// The operator of a CEL call name (`_+_`).
    pub(super) fn of(name: &str) -> Option<Op> {
        use cel::common::ast::operators as o;
        Some(match name {
            o::ADD => Op::Add,
            o::SUBSTRACT => Op::Sub,
            o::MULTIPLY => Op::Mul,
            o::DIVIDE => Op::Div,
            o::MODULO => Op::Rem,
            o::EQUALS => Op::Eq,
            o::NOT_EQUALS => Op::Ne,
            o::LESS => Op::Lt,
            o::LESS_EQUALS => Op::Le,
            o::GREATER => Op::Gt,
            o::GREATER_EQUALS => Op::Ge,
            o::IN => Op::In,
            _ => return None,
        })
    }

    pub(super) fn symbol(self) -> &'static str {
        match self {
            Op::Add => "+",
            Op::Sub => "-",
            Op::Mul => "*",
            Op::Div => "/",
            Op::Rem => "%",
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::In => "in",
        }
    }

    /// An ordering operator's verdict on an ordering.
    #[inline]
    pub(super) fn holds(self, ordering: Ordering) -> bool {
        match self {
            Op::Lt => ordering == Ordering::Less,
            Op::Le => ordering != Ordering::Greater,
            Op::Gt => ordering == Ordering::Greater,
            Op::Ge => ordering != Ordering::Less,
            Op::Eq => ordering == Ordering::Equal,
            Op::Ne => ordering != Ordering::Equal,
            _ => false,
        }
    }
}

/// `a op b`.
pub(super) fn binary<'r>(op: Op, a: &V<'r>, b: &V<'r>) -> Result<V<'r>, Fault> {
    match op {
        Op::Eq => Ok(V::Bool(equals(a, b))),
        Op::Ne => Ok(V::Bool(!equals(a, b))),
        Op::Lt | Op::Le | Op::Gt | Op::Ge => compare(a, b).map(|o| V::Bool(op.holds(o))),
        Op::In => match b {
            V::List(items) => Ok(V::Bool(items.iter().any(|item| equals(item, a)))),
            _ => Err(Fault::Overload),
        },
        Op::Add => add(a, b),
        Op::Sub => arith(a, b, i64::checked_sub, u64::checked_sub, |x, y| x - y),
        Op::Mul => arith(a, b, i64::checked_mul, u64::checked_mul, |x, y| x * y),
        Op::Div => match (a, b) {
            (V::Int(_), V::Int(0)) | (V::UInt(_), V::UInt(0)) => Err(Fault::DivisionByZero),
            _ => arith(a, b, i64::checked_div, u64::checked_div, |x, y| x / y),
        },
        Op::Rem => match (a, b) {
            (V::Int(_), V::Int(0)) | (V::UInt(_), V::UInt(0)) => Err(Fault::RemainderByZero),
            (V::Double(_), _) => Err(Fault::Overload),
            _ => arith(a, b, i64::checked_rem, u64::checked_rem, |x, y| x % y),
        },
    }
}

#[inline]
fn arith<'r>(
    a: &V<'r>,
    b: &V<'r>,
    int: fn(i64, i64) -> Option<i64>,
    uint: fn(u64, u64) -> Option<u64>,
    double: fn(f64, f64) -> f64,
) -> Result<V<'r>, Fault> {
    match (a, b) {
        (V::Int(x), V::Int(y)) => int(*x, *y).map(V::Int).ok_or(Fault::Overflow),
        (V::UInt(x), V::UInt(y)) => uint(*x, *y).map(V::UInt).ok_or(Fault::Overflow),
        (V::Double(x), V::Double(y)) => Ok(V::Double(double(*x, *y))),
        _ => Err(Fault::Overload),
    }
}

fn add<'r>(a: &V<'r>, b: &V<'r>) -> Result<V<'r>, Fault> {
    match (a, b) {
        (V::List(x), V::List(y)) => {
            let items: Vec<V<'r>> = x.iter().chain(y.iter()).cloned().collect();
            Ok(V::List(Arc::from(items)))
        }
        _ => {
            if let (Some(x), Some(y)) = (a.str(), b.str()) {
                let mut s = String::with_capacity(x.len() + y.len());
                s.push_str(x);
                s.push_str(y);
                return Ok(V::Text(Text::from(s)));
            }
            if let (Some(x), Some(y)) = (a.bytes(), b.bytes()) {
                let mut v = Vec::with_capacity(x.len() + y.len());
                v.extend_from_slice(x);
                v.extend_from_slice(y);
                return Ok(V::OwnedBytes(Bytes::from(v)));
            }
            arith(a, b, i64::checked_add, u64::checked_add, |x, y| x + y)
        }
    }
}

/// CEL's ordering: numbers across int, uint and double (a NaN is not
/// ordered), strings, bytes and bools each among themselves.
#[inline]
pub(super) fn compare(a: &V<'_>, b: &V<'_>) -> Result<Ordering, Fault> {
    match (a, b) {
        (V::Int(x), V::Int(y)) => Ok(x.cmp(y)),
        (V::Double(x), V::Double(y)) => x.partial_cmp(y).ok_or(Fault::NotComparable),
        (V::Int(x), V::Double(y)) => (*x as f64).partial_cmp(y).ok_or(Fault::NotComparable),
        (V::Double(x), V::Int(y)) => x.partial_cmp(&(*y as f64)).ok_or(Fault::NotComparable),
        (V::UInt(x), V::UInt(y)) => Ok(x.cmp(y)),
        (V::Int(x), V::UInt(y)) => Ok(u64::try_from(*x).map_or(Ordering::Less, |x| x.cmp(y))),
        (V::UInt(x), V::Int(y)) => Ok(u64::try_from(*y).map_or(Ordering::Greater, |y| x.cmp(&y))),
        (V::UInt(x), V::Double(y)) => (*x as f64).partial_cmp(y).ok_or(Fault::NotComparable),
        (V::Double(x), V::UInt(y)) => x.partial_cmp(&(*y as f64)).ok_or(Fault::NotComparable),
        (V::Bool(x), V::Bool(y)) => Ok(x.cmp(y)),
        _ => {
            if let (Some(x), Some(y)) = (a.str(), b.str()) {
                return Ok(x.cmp(y));
            }
            if let (Some(x), Some(y)) = (a.bytes(), b.bytes()) {
                return Ok(x.cmp(y));
            }
            Err(Fault::Overload)
        }
    }
}

/// CEL's equality: never an error; numbers compare across types, `null`
/// equals only `null`, values of different types are not equal.
#[inline]
pub(super) fn equals(a: &V<'_>, b: &V<'_>) -> bool {
    match (a, b) {
        (V::Null, V::Null) => true,
        (V::Bool(x), V::Bool(y)) => x == y,
        (V::Int(_) | V::UInt(_) | V::Double(_), V::Int(_) | V::UInt(_) | V::Double(_)) => {
            compare(a, b) == Ok(Ordering::Equal)
        }
        (V::List(x), V::List(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(x, y)| equals(x, y))
        }
        _ => {
            if let (Some(x), Some(y)) = (a.str(), b.str()) {
                return x == y;
            }
            if let (Some(x), Some(y)) = (a.bytes(), b.bytes()) {
                return x == y;
            }
            false
        }
    }
}

/// `-a`.
pub(super) fn negate<'r>(a: &V<'r>) -> Result<V<'r>, Fault> {
    match a {
        V::Int(x) => x.checked_neg().map(V::Int).ok_or(Fault::Overflow),
        V::Double(x) => Ok(V::Double(-x)),
        _ => Err(Fault::Overload),
    }
}

/// `!a`.
pub(super) fn not<'r>(a: &V<'r>) -> Result<V<'r>, Fault> {
    match a {
        V::Bool(b) => Ok(V::Bool(!b)),
        _ => Err(Fault::Overload),
    }
}

/// A function an expression can call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Func {
    Size,
    Double,
    Int,
    String,
    Contains,
    StartsWith,
    EndsWith,
    Matches,
}

impl Func {
    /// The function `name` called globally (`member` false: `size(s)`) or
    /// on a target (`s.size()`), with its arguments counted with the target.
    pub(super) fn of(name: &str, member: bool) -> Option<Func> {
        Some(match (name, member) {
            ("size", _) => Func::Size,
            ("double", false) => Func::Double,
            ("int", false) => Func::Int,
            ("string", false) => Func::String,
            ("contains", true) => Func::Contains,
            ("startsWith", true) => Func::StartsWith,
            ("endsWith", true) => Func::EndsWith,
            ("matches", _) => Func::Matches,
            _ => return None,
        })
    }

    /// Every function's name, for "did you mean".
    pub(super) const NAMES: [&'static str; 8] = [
        "size",
        "double",
        "int",
        "string",
        "contains",
        "startsWith",
        "endsWith",
        "matches",
    ];

    pub(super) fn name(self) -> &'static str {
        match self {
            Func::Size => "size",
            Func::Double => "double",
            Func::Int => "int",
            Func::String => "string",
            Func::Contains => "contains",
            Func::StartsWith => "startsWith",
            Func::EndsWith => "endsWith",
            Func::Matches => "matches",
        }
    }

    /// How many arguments it takes, the target included.
    pub(super) fn arity(self) -> usize {
        match self {
            Func::Size | Func::Double | Func::Int | Func::String => 1,
            _ => 2,
        }
    }

    /// The types of results the function gives for arguments of these
    /// types, `None` if it fails for any value of them.
    pub(super) fn result(self, args: &[Kind]) -> Option<Kind> {
        use Kind as K;
        Some(match (self, args) {
            (Func::Size, [K::String | K::Bytes | K::List]) => K::Int,
            (Func::Double, [K::Double | K::Int | K::UInt | K::String]) => K::Double,
            (Func::Int, [K::Int | K::UInt | K::Double | K::String]) => K::Int,
            (Func::String, [K::String | K::Bool | K::Int | K::UInt | K::Double | K::Bytes]) => {
                K::String
            }
            (
                Func::Contains | Func::StartsWith | Func::EndsWith | Func::Matches,
                [K::String, K::String],
            ) => K::Bool,
            _ => return None,
        })
    }
}

/// `f(args)` (for a member call, the target first). `regex` is the pattern
/// of `matches` compiled once, when it is a literal.
pub(super) fn call<'r>(
    func: Func,
    args: &[V<'r>],
    regex: Option<&regex::Regex>,
) -> Result<V<'r>, Fault> {
    match (func, args) {
        (Func::Size, [a]) => {
            if let Some(s) = a.str() {
                Ok(V::Int(s.chars().count() as i64))
            } else if let Some(b) = a.bytes() {
                Ok(V::Int(b.len() as i64))
            } else if let V::List(items) = a {
                Ok(V::Int(items.len() as i64))
            } else {
                Err(Fault::Overload)
            }
        }
        (Func::Double, [a]) => to_double(a).map(V::Double),
        (Func::Int, [a]) => match a {
            V::Int(i) => Ok(V::Int(*i)),
            V::UInt(u) => i64::try_from(*u)
                .map(V::Int)
                .map_err(|_| Fault::Function("integer overflow".into())),
            V::Double(d) => {
                // As cel: (i64::MIN, i64::MAX) exclusive; NaN and infinities fail.
                if *d > i64::MIN as f64 && *d < i64::MAX as f64 {
                    Ok(V::Int(*d as i64))
                } else {
                    Err(Fault::Function("integer overflow".into()))
                }
            }
            _ => match a.str() {
                Some(s) => s
                    .parse::<i64>()
                    .map(V::Int)
                    .map_err(|e| Fault::Function(format!("string parse error: {e}"))),
                None => Err(Fault::Overload),
            },
        },
        (Func::String, [a]) => match a {
            V::Str(s) => Ok(V::Str(s)),
            V::Text(t) => Ok(V::Text(t.clone())),
            V::Bool(b) => Ok(V::Str(if *b { "true" } else { "false" })),
            V::Int(i) => Ok(V::Text(Text::from(i.to_string()))),
            V::UInt(u) => Ok(V::Text(Text::from(u.to_string()))),
            V::Double(d) => Ok(V::Text(Text::from(d.to_string()))),
            _ => match a.bytes() {
                Some(b) => std::str::from_utf8(b)
                    .map(|s| V::Text(Text::from(s)))
                    .map_err(|_| {
                        Fault::Function("invalid UTF-8 in bytes, cannot convert to string".into())
                    }),
                None => Err(Fault::Overload),
            },
        },
        (Func::Contains | Func::StartsWith | Func::EndsWith | Func::Matches, [a, b]) => {
            let (Some(a), Some(b)) = (a.str(), b.str()) else {
                return Err(Fault::Overload);
            };
            Ok(V::Bool(match func {
                Func::Contains => a.contains(b),
                Func::StartsWith => a.starts_with(b),
                Func::EndsWith => a.ends_with(b),
                _ => match regex {
                    Some(regex) => regex.is_match(a),
                    None => regex::Regex::new(b)
                        .map_err(|e| Fault::Function(format!("'{b}' not a valid regex:\n{e}")))?
                        .is_match(a),
                },
            }))
        }
        _ => Err(Fault::Overload),
    }
}

/// `double(a)`.
#[inline]
pub(super) fn to_double(a: &V<'_>) -> Result<f64, Fault> {
    match a {
        V::Double(d) => Ok(*d),
        V::Int(i) => Ok(*i as f64),
        V::UInt(u) => Ok(*u as f64),
        _ => match a.str() {
            Some(s) => s
                .parse::<f64>()
                .map_err(|e| Fault::Function(format!("string parse error: {e}"))),
            None => Err(Fault::Overload),
        },
    }
}

/// The types `a op b` gives for operands of types `a` and `b`, `None` if it
/// fails for all their values.
pub(super) fn binary_result(op: Op, a: Kind, b: Kind) -> Option<Kind> {
    binary(op, &a.sample(), &b.sample()).ok().map(|v| v.kind())
}
