//! CEL expressions over dynamic records, compiled once to closures.
//!
//! A workflow's `filter` and derived columns are written in the [Common
//! Expression Language]: `amount > 100.0 && category in ['books', 'garden']`,
//! `amount * double(qty)`. [`Expr::compile`] parses the source with the `cel`
//! crate's parser, checks it against the input's [`Schema`] (every
//! identifier is a column; unknown columns and functions, wrong argument
//! counts and operations that fail for every record are refused, each with
//! the byte range it points at) and compiles it into closures over column
//! indexes: a record is evaluated without a name lookup, without copying its
//! text and without CEL's interpreter.
//!
//! The semantics are CEL's, as the `cel` crate's interpreter implements them
//! (a property test checks the two agree on random expressions and records):
//!
//! - a column's value is a CEL value: `int` → `int`, `float` → `double`,
//!   `string` → `string`, `bool` → `bool`, `bytes` → `bytes`, an empty
//!   value → `null`; a `decimal` reads as a `double` (CEL has no decimal
//!   type: rounded to the nearest double). `date`, `timestamp` and `json`
//!   columns are refused (not supported yet);
//! - `null == null` is true, `x == null` is false for any other value, and
//!   ordering or arithmetic on a null is an error ("no such overload"), as is
//!   any operator on types it does not take: `1 + 1.0` (CEL does not convert
//!   numbers implicitly, but compares them across types: `1 < 1.5`, `1 == 1.0`);
//! - integer overflow, division and remainder by zero are errors; double
//!   arithmetic follows IEEE 754 (`1.0 / 0.0` is infinity);
//! - `&&` and `||` are commutative over errors: `false && error` and
//!   `error && false` are `false`, `true || error` and `error || true` are
//!   `true`;
//! - functions: `size`, `double`, `int`, `string`, `contains`,
//!   `startsWith`, `endsWith`, `matches` (a literal pattern is compiled
//!   once).
//!
//! An error while evaluating a record is an [`EvalError`] (a record-level
//! error for the stage's policy); a result is converted back to a [`Value`]:
//! `int` → [`Value::Int`] (a `uint` too, if it fits), `double` →
//! [`Value::Float`], `string` → [`Value::Str`], `bool` → [`Value::Bool`],
//! `bytes` → [`Value::Bytes`], `null` → [`Value::Null`].
//!
//! ```
//! use dataflare::record::{DataType, Record, Schema, Value};
//! use dataflare::workflow::expr::Expr;
//! use std::sync::Arc;
//!
//! let schema = Arc::new(Schema::new([
//!     ("category", DataType::Str),
//!     ("amount", DataType::Float),
//!     ("qty", DataType::Int),
//! ]));
//! let filter = Expr::compile_predicate("amount > 100.0 && category in ['books', 'garden']", &schema)?;
//! let total = Expr::compile("amount * double(qty)", &schema)?;
//!
//! let row = Record::new(schema, vec![Value::from("books"), Value::Float(120.5), Value::Int(2)]);
//! assert!(filter.test(&row)?);
//! assert_eq!(total.eval(&row)?, Value::Float(241.0));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [Common Expression Language]: https://cel.dev

mod compile;
mod error;
mod num;
mod ops;
mod value;

use std::fmt;
use std::sync::Arc;

use cel::common::ast::{Expr as Ast, IdedExpr};
use cel::parser::{ParseErrors, Parser};

use self::compile::{Code, Compiler};
use self::error::Site;
use self::value::{Kind, Ty, V};
use crate::record::{DataType, Record, Schema, Value};

pub use self::error::{EvalError, ExprError};

/// A CEL expression compiled against a schema: cheap to clone (shared) and
/// to use from several threads.
///
/// ```
/// use dataflare::record::{DataType, Record, Schema, Value};
/// use dataflare::workflow::expr::Expr;
/// use std::sync::Arc;
///
/// let schema = Arc::new(Schema::new([("name", DataType::Str)]));
/// let greeting = Expr::compile("'hello, ' + name", &schema).unwrap();
/// let row = Record::new(schema, vec![Value::from("Ann")]);
/// assert_eq!(greeting.eval(&row).unwrap(), Value::from("hello, Ann"));
/// ```
#[derive(Clone)]
pub struct Expr(Arc<Compiled>);

struct Compiled {
    source: Arc<str>,
    code: Code,
    ty: Ty,
    site: Arc<Site>,
}

impl Expr {
    /// Parses `source` as CEL and compiles it against `schema`: every
    /// identifier is a column.
    ///
    /// ```
    /// use dataflare::record::{DataType, Schema};
    /// use dataflare::workflow::expr::Expr;
    ///
    /// let schema = Schema::new([("qty", DataType::Int)]);
    /// assert!(Expr::compile("qty * 2", &schema).is_ok());
    /// let e = Expr::compile("qty * 2.5", &schema).unwrap_err();
    /// assert_eq!(e.message(), "no such overload: int * double");
    /// ```
    pub fn compile(source: &str, schema: &Schema) -> Result<Expr, ExprError> {
        let (ast, info) = parse(source)?;
        let source: Arc<str> = source.into();
        let compiler = Compiler {
            source: source.clone(),
            schema,
            info: &info,
        };
        let node = compiler.node(&ast)?;
        if node.ty == Ty::of(Kind::List) {
            return Err(ExprError::new(
                "the expression gives a list, which a column can't hold",
                node.span,
            ));
        }
        let site = Arc::new(Site {
            source: source.clone(),
            part: None,
            columns: vec![node.column.clone()],
        });
        Ok(Expr(Arc::new(Compiled {
            source,
            code: node.code,
            ty: node.ty,
            site,
        })))
    }

    /// As [`compile`](Expr::compile), for a filter: also refuses an
    /// expression whose value is known never to be a bool.
    ///
    /// ```
    /// use dataflare::record::{DataType, Schema};
    /// use dataflare::workflow::expr::Expr;
    ///
    /// let schema = Schema::new([("qty", DataType::Int)]);
    /// assert!(Expr::compile_predicate("qty > 2", &schema).is_ok());
    /// let e = Expr::compile_predicate("qty + 2", &schema).unwrap_err();
    /// assert_eq!(e.message(), "a filter must give a bool, and this gives int");
    /// ```
    pub fn compile_predicate(source: &str, schema: &Schema) -> Result<Expr, ExprError> {
        let expr = Expr::compile(source, schema)?;
        if !expr.0.ty.has(Kind::Bool) {
            let ty = expr.0.ty.without(Kind::Null);
            let ty = if ty.is_empty() { expr.0.ty } else { ty };
            return Err(ExprError::new(
                format!(
                    "a filter must give a bool, and this gives {}",
                    ty.describe()
                ),
                0..source.len(),
            ));
        }
        Ok(expr)
    }

    /// The columns `source` reads, in the order of their first use (parsed
    /// only: for checking a workflow before its schemas are known).
    ///
    /// ```
    /// use dataflare::workflow::expr::Expr;
    ///
    /// let columns = Expr::columns_of("amount > 1.0 && (category == 'x' || amount < 0.0)").unwrap();
    /// assert_eq!(columns, ["amount", "category"]);
    /// ```
    pub fn columns_of(source: &str) -> Result<Vec<String>, ExprError> {
        let (ast, _) = parse(source)?;
        let mut columns = Vec::new();
        identifiers(&ast, &mut columns);
        Ok(columns)
    }

    /// The type of the expression's value when it is not null, if known
    /// statically (`None`: null, or one of several types).
    ///
    /// ```
    /// use dataflare::record::{DataType, Schema};
    /// use dataflare::workflow::expr::Expr;
    ///
    /// let schema = Schema::new([("amount", DataType::Float), ("qty", DataType::Int)]);
    /// let total = Expr::compile("amount * double(qty)", &schema).unwrap();
    /// assert_eq!(total.data_type(), Some(DataType::Float));
    /// ```
    pub fn data_type(&self) -> Option<DataType> {
        Some(match self.0.ty.without(Kind::Null).single()? {
            Kind::Bool => DataType::Bool,
            Kind::Int | Kind::UInt => DataType::Int,
            Kind::Double => DataType::Float,
            Kind::String => DataType::Str,
            Kind::Bytes => DataType::Bytes,
            Kind::Null | Kind::List => return None,
        })
    }

    /// Evaluates the expression on one record of the schema it was compiled
    /// for.
    ///
    /// ```
    /// use dataflare::record::{DataType, Record, Schema, Value};
    /// use dataflare::workflow::expr::Expr;
    /// use std::sync::Arc;
    ///
    /// let schema = Arc::new(Schema::new([("qty", DataType::Int)]));
    /// let half = Expr::compile("qty / 2", &schema).unwrap();
    /// let row = Record::new(schema, vec![Value::Int(7)]);
    /// assert_eq!(half.eval(&row).unwrap(), Value::Int(3));
    /// ```
    pub fn eval(&self, record: &Record) -> Result<Value, EvalError> {
        let c = &*self.0;
        if let Code::F64(f, _) = &c.code {
            return f(record).map(Value::Float);
        }
        if let Code::Col(i, _) = &c.code
            && let Some(value) = record.values().get(*i)
            && V::of(value).is_ok()
        {
            return Ok(value.clone());
        }
        c.code
            .get(record)?
            .into_value()
            .map_err(|m| c.site.message(m))
    }

    /// Evaluates the expression on one record as a filter: its value as a
    /// bool; an error if it is not a bool (null included).
    ///
    /// ```
    /// use dataflare::record::{DataType, Record, Schema, Value};
    /// use dataflare::workflow::expr::Expr;
    /// use std::sync::Arc;
    ///
    /// let schema = Arc::new(Schema::new([("user", DataType::Str)]));
    /// let admins = Expr::compile_predicate("user.startsWith('admin_')", &schema).unwrap();
    /// let row = Record::new(schema.clone(), vec![Value::from("admin_ann")]);
    /// assert!(admins.test(&row).unwrap());
    /// let empty = Record::new(schema, vec![Value::Null]);
    /// assert!(admins.test(&empty).is_err());
    /// ```
    #[inline]
    pub fn test(&self, record: &Record) -> Result<bool, EvalError> {
        let c = &*self.0;
        match &c.code {
            Code::Bool(f) => f(record),
            code => match code.get(record)? {
                V::Bool(b) => Ok(b),
                v => Err(not_bool(&c.site, &v)),
            },
        }
    }

    /// The expression's source.
    ///
    /// ```
    /// use dataflare::record::{DataType, Schema};
    /// use dataflare::workflow::expr::Expr;
    ///
    /// let schema = Schema::new([("qty", DataType::Int)]);
    /// assert_eq!(Expr::compile("qty > 1", &schema).unwrap().source(), "qty > 1");
    /// ```
    pub fn source(&self) -> &str {
        &self.0.source
    }
}

#[cold]
fn not_bool(site: &Site, v: &V<'_>) -> EvalError {
    match (v, site.columns.first().cloned().flatten()) {
        (V::Null, Some(column)) => site.message(format_args!(
            "a filter must give a bool, not null (column {column} is empty)"
        )),
        _ => site.message(format_args!(
            "a filter must give a bool, not {}",
            v.kind().name()
        )),
    }
}

impl fmt::Debug for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Expr").field(&&*self.0.source).finish()
    }
}

/// Parses `source` with the `cel` crate's parser.
fn parse(source: &str) -> Result<(IdedExpr, cel::common::ast::SourceInfo), ExprError> {
    Parser::default()
        .parse_with_source_info(source)
        .map_err(|errors| syntax_error(source, errors))
}

/// The first of `errors`, its line and column made a byte range.
fn syntax_error(source: &str, errors: ParseErrors) -> ExprError {
    let Some(first) = errors.errors.first() else {
        return ExprError::new("syntax error", 0..0);
    };
    let (line, column) = first.pos;
    let mut start = 0;
    if line >= 1 && column >= 1 {
        let mut lines = source.split_inclusive('\n');
        for _ in 1..line {
            start += lines.next().map_or(0, str::len);
        }
        let rest = &source[start.min(source.len())..];
        start += rest
            .char_indices()
            .nth(column as usize - 1)
            .map_or(rest.len(), |(at, _)| at);
    }
    let start = start.min(source.len());
    let end = source[start..]
        .chars()
        .next()
        .map_or(start, |c| start + c.len_utf8());
    let msg = first
        .msg
        .strip_prefix("Syntax error: ")
        .unwrap_or(&first.msg);
    ExprError::new(format!("syntax error: {msg}"), start..end)
}

/// Collects the identifiers of `e` in order, once each.
fn identifiers(e: &IdedExpr, out: &mut Vec<String>) {
    match &e.expr {
        Ast::Ident(name) => {
            if !out.iter().any(|n| n == name) {
                out.push(name.clone());
            }
        }
        Ast::Call(call) => {
            if let Some(target) = &call.target {
                identifiers(target, out);
            }
            for arg in &call.args {
                identifiers(arg, out);
            }
        }
        Ast::List(list) => {
            for item in &list.elements {
                identifiers(item, out);
            }
        }
        Ast::Select(select) => identifiers(&select.operand, out),
        Ast::Map(map) => {
            for entry in &map.entries {
                if let cel::common::ast::EntryExpr::MapEntry(entry) = &entry.expr {
                    identifiers(&entry.key, out);
                    identifiers(&entry.value, out);
                }
            }
        }
        Ast::Comprehension(c) => identifiers(&c.iter_range, out),
        Ast::Literal(_) | Ast::Struct(_) | Ast::Unspecified => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Arc<Schema> {
        Arc::new(Schema::new([
            ("id", DataType::Int),
            ("user", DataType::Str),
            ("amount", DataType::Float),
            ("flag", DataType::Bool),
        ]))
    }

    #[test]
    fn spans_point_at_the_offending_part() {
        let s = schema();
        let src = "amount > 1.0 && (user > 3)";
        let e = Expr::compile(src, &s).unwrap_err();
        assert_eq!(&src[e.span()], "user > 3", "{e}");
        let src = "size(user) + 'x'";
        let e = Expr::compile(src, &s).unwrap_err();
        assert_eq!(&src[e.span()], src, "{e}");
        let src = "amount > 1.0 &&\n  amonut < 3.0";
        let e = Expr::compile(src, &s).unwrap_err();
        assert_eq!(&src[e.span()], "amonut", "{e}");
        let src = "amount > 1.0 &&\n  é amount";
        let e = Expr::compile(src, &s).unwrap_err();
        assert!(e.message().starts_with("syntax error"), "{e}");
        assert!(e.span().start >= 18, "{e} {:?}", e.span());
    }

    #[test]
    fn expr_is_send_sync() {
        fn check<T: Send + Sync + Clone + fmt::Debug>() {}
        check::<Expr>();
        fn error<T: std::error::Error + Send + Sync + 'static>() {}
        error::<EvalError>();
        error::<ExprError>();
    }
}
