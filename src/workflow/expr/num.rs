//! Doubles read straight from a record: the fast paths of double arithmetic
//! (`amount * double(qty)`), of ordering doubles (`amount > 100.0`) and of
//! `double(column)`.
//!
//! An operand is a [`Leaf`]: a column read as a double (a `Float` cell),
//! `double(column)` (an `Int` or `Float` cell converted), a double literal,
//! or any other node's code. An operation reads its two leaves inline, in
//! one closure, and computes on `f64`s. A leaf gives `None` when the record
//! does not hold what its fast path reads (a null, a decimal, a record of
//! another schema...): the operation is then evaluated again from the start
//! the generic way, which gives the same value or error as before (the
//! nodes are pure).

use std::cmp::Ordering;
use std::sync::Arc;

use super::compile::{BoolFn, Code, F64Fn};
use super::error::{EvalError, Shape, Site};
use super::ops::{self, Op};
use super::value::V;
use crate::record::{Record, Value};

/// How to read a double-valued operand directly.
#[derive(Debug, Clone, Copy)]
pub(super) enum Leaf {
    /// Column `i`: its `Float` cell.
    Col(usize),
    /// `double(column i)`: its `Int` or `Float` cell, as a double.
    ToDouble(usize),
    /// A double literal.
    Const(f64),
    /// Any other node: its code, when it gives a double.
    Code,
}

impl Leaf {
    /// How to read `code` directly.
    pub(super) fn of(code: &Code) -> Leaf {
        match code {
            Code::Col(i, _) => Leaf::Col(*i),
            Code::Lit(V::Double(d)) => Leaf::Const(*d),
            Code::F64(_, leaf) => *leaf,
            _ => Leaf::Code,
        }
    }

    /// The operand's double on `record` (`code` is its node's code), `None`
    /// when it is not read this way (the generic path then decides), or the
    /// error its code gives.
    #[inline(always)]
    fn read(self, code: &Code, record: &Record) -> Result<Option<f64>, EvalError> {
        Ok(match self {
            Leaf::Col(i) => match record.values().get(i) {
                Some(Value::Float(f)) => Some(*f),
                _ => None,
            },
            Leaf::ToDouble(i) => match record.values().get(i) {
                Some(Value::Float(f)) => Some(*f),
                Some(Value::Int(n)) => Some(*n as f64),
                _ => None,
            },
            Leaf::Const(d) => Some(d),
            Leaf::Code => match code {
                Code::F64(f, _) => Some(f(record)?),
                code => match code.get(record)? {
                    V::Double(d) => Some(d),
                    _ => None,
                },
            },
        })
    }
}

/// Where an operation's errors are reported.
pub(super) struct At {
    pub(super) site: Arc<Site>,
    pub(super) shape: Shape,
    pub(super) source: Arc<str>,
}

/// `a op b` for an arithmetic `op` whose result is known to be a double.
pub(super) fn arith(op: Op, a: Code, b: Code, at: At) -> Code {
    let code = match op {
        Op::Add => arith_with(op, a, b, at, |x, y| x + y),
        Op::Sub => arith_with(op, a, b, at, |x, y| x - y),
        Op::Mul => arith_with(op, a, b, at, |x, y| x * y),
        Op::Div => arith_with(op, a, b, at, |x, y| x / y),
        _ => Box::new(move |r: &Record| arith_slow(op, &a, &b, r, &at)),
    };
    Code::F64(code, Leaf::Code)
}

fn arith_with<F>(op: Op, a: Code, b: Code, at: At, f: F) -> F64Fn
where
    F: Fn(f64, f64) -> f64 + Send + Sync + 'static,
{
    let (la, lb) = (Leaf::of(&a), Leaf::of(&b));
    Box::new(move |r| {
        let Some(x) = la.read(&a, r)? else {
            return arith_slow(op, &a, &b, r, &at);
        };
        let Some(y) = lb.read(&b, r)? else {
            return arith_slow(op, &a, &b, r, &at);
        };
        Ok(f(x, y))
    })
}

/// `a op b` the generic way.
#[cold]
#[inline(never)]
fn arith_slow(op: Op, a: &Code, b: &Code, r: &Record, at: &At) -> Result<f64, EvalError> {
    let x = a.get(r)?;
    let y = b.get(r)?;
    match ops::binary(op, &x, &y) {
        Ok(V::Double(d)) => Ok(d),
        Ok(other) => Err(EvalError::new(
            &at.source,
            format!("expected a double, got {}", other.kind().name()),
        )),
        Err(f) => Err(at.site.error(at.shape, f, &[&x, &y])),
    }
}

/// `a op b` for an ordering `op` (`<`, `<=`, `>`, `>=`) on operands known
/// to be doubles (or null).
pub(super) fn compare(op: Op, a: Code, b: Code, at: At) -> BoolFn {
    match op {
        Op::Lt => compare_with(op, a, b, at, |o| o == Ordering::Less),
        Op::Le => compare_with(op, a, b, at, |o| o != Ordering::Greater),
        Op::Gt => compare_with(op, a, b, at, |o| o == Ordering::Greater),
        _ => compare_with(op, a, b, at, |o| o != Ordering::Less),
    }
}

fn compare_with<F>(op: Op, a: Code, b: Code, at: At, holds: F) -> BoolFn
where
    F: Fn(Ordering) -> bool + Send + Sync + 'static,
{
    let (la, lb) = (Leaf::of(&a), Leaf::of(&b));
    Box::new(move |r| {
        let Some(x) = la.read(&a, r)? else {
            return compare_slow(op, &a, &b, r, &at);
        };
        let Some(y) = lb.read(&b, r)? else {
            return compare_slow(op, &a, &b, r, &at);
        };
        match x.partial_cmp(&y) {
            Some(o) => Ok(holds(o)),
            None => compare_slow(op, &a, &b, r, &at),
        }
    })
}

/// `a op b` for an ordering `op`, the generic way.
#[cold]
#[inline(never)]
fn compare_slow(op: Op, a: &Code, b: &Code, r: &Record, at: &At) -> Result<bool, EvalError> {
    let x = a.get(r)?;
    let y = b.get(r)?;
    match ops::compare(&x, &y) {
        Ok(o) => Ok(op.holds(o)),
        Err(f) => Err(at.site.error(at.shape, f, &[&x, &y])),
    }
}

/// `double(a)`.
pub(super) fn to_double(a: Code, at: At) -> Code {
    match a {
        Code::Col(i, _) => Code::F64(
            Box::new(move |r: &Record| match r.values().get(i) {
                Some(Value::Float(f)) => Ok(*f),
                Some(Value::Int(n)) => Ok(*n as f64),
                _ => to_double_slow(&a, r, &at),
            }),
            Leaf::ToDouble(i),
        ),
        a => Code::F64(
            Box::new(move |r: &Record| to_double_slow(&a, r, &at)),
            Leaf::Code,
        ),
    }
}

/// `double(a)` the generic way.
#[cold]
#[inline(never)]
fn to_double_slow(a: &Code, r: &Record, at: &At) -> Result<f64, EvalError> {
    let x = a.get(r)?;
    ops::to_double(&x).map_err(|f| at.site.error(at.shape, f, &[&x]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{DataType, Schema};
    use crate::workflow::expr::Expr;

    #[test]
    fn fast_paths_fall_back_to_the_generic_errors() {
        let schema = Arc::new(Schema::new([
            ("amount", DataType::Float),
            ("qty", DataType::Int),
        ]));
        let row = |a: Value, q: Value| Record::new(schema.clone(), vec![a, q]);
        let total = Expr::compile("amount * double(qty)", &schema).unwrap();
        assert_eq!(
            total.eval(&row(Value::Float(1.5), Value::Int(2))).unwrap(),
            Value::Float(3.0)
        );
        let e = total.eval(&row(Value::Null, Value::Int(2))).unwrap_err();
        assert!(
            e.message().contains("no such overload: null * double"),
            "{e}"
        );
        let e = total
            .eval(&row(Value::Float(1.0), Value::Null))
            .unwrap_err();
        assert!(e.message().contains("double(null)"), "{e}");
        let above = Expr::compile_predicate("amount > 1.0", &schema).unwrap();
        let e = above
            .test(&row(Value::Float(f64::NAN), Value::Null))
            .unwrap_err();
        assert!(e.message().contains("NaN"), "{e}");
        assert!(!above.test(&row(Value::Float(0.5), Value::Null)).unwrap());
    }
}
