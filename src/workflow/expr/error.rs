//! [`ExprError`] (an expression refused when compiled) and [`EvalError`]
//! (one record an expression could not be evaluated on).

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use super::value::V;

/// Why an expression was refused when compiled: a CEL syntax error, an
/// unknown column or function, a call with the wrong number of arguments, or
/// an operation that fails for every record of the schema (`category > 3`
/// with `category` a string column).
///
/// [`span`](ExprError::span) is the byte range of the offending part of the
/// source (for a caret under it), [`help`](ExprError::help) an optional hint.
///
/// ```
/// use dataflare::record::{DataType, Schema};
/// use dataflare::workflow::expr::Expr;
///
/// let schema = Schema::new([("amount", DataType::Float)]);
/// let e = Expr::compile("amonut > 1.0", &schema).unwrap_err();
/// assert_eq!(e.message(), "no column `amonut`");
/// assert_eq!(e.span(), 0..6);
/// assert_eq!(e.help(), Some("did you mean `amount`?"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ExprError {
    message: String,
    span: Range<usize>,
    help: Option<String>,
}

impl ExprError {
    pub(super) fn new(message: impl Into<String>, span: Range<usize>) -> Self {
        ExprError {
            message: message.into(),
            span,
            help: None,
        }
    }

    pub(super) fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// What is wrong, without the expression's text.
    ///
    /// ```
    /// use dataflare::record::{DataType, Schema};
    /// use dataflare::workflow::expr::Expr;
    ///
    /// let schema = Schema::new([("n", DataType::Int)]);
    /// let e = Expr::compile("n +", &schema).unwrap_err();
    /// assert!(e.message().starts_with("syntax error"), "{e}");
    /// ```
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The byte range within the expression's source the error points at.
    ///
    /// ```
    /// use dataflare::record::{DataType, Schema};
    /// use dataflare::workflow::expr::Expr;
    ///
    /// let schema = Schema::new([("category", DataType::Str)]);
    /// let source = "size(category) > 1 && category > 3";
    /// let e = Expr::compile(source, &schema).unwrap_err();
    /// assert_eq!(&source[e.span()], "category > 3");
    /// ```
    pub fn span(&self) -> Range<usize> {
        self.span.clone()
    }

    /// Advice, if any: the closest column's name for an unknown column, or
    /// to declare a column's type when text is compared with a number.
    ///
    /// ```
    /// use dataflare::record::{DataType, Schema};
    /// use dataflare::workflow::expr::Expr;
    ///
    /// let schema = Schema::new([("qty", DataType::Str)]);
    /// let e = Expr::compile("qty > 3", &schema).unwrap_err();
    /// assert!(e.help().unwrap().contains("schema:"));
    /// ```
    pub fn help(&self) -> Option<&str> {
        self.help.as_deref()
    }
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(help) = &self.help {
            write!(f, " ({help})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ExprError {}

/// Why an expression could not be evaluated on one record: what CEL makes
/// an error (an operator applied to a null or to values of other types than
/// it takes, a division by zero, an integer overflow, a string that does not
/// parse as a number...). A record-level error: the stage's error policy
/// decides what becomes of the record.
///
/// ```
/// use dataflare::record::{DataType, Record, Schema, Value};
/// use dataflare::workflow::expr::Expr;
/// use std::sync::Arc;
///
/// let schema = Arc::new(Schema::new([("amount", DataType::Float)]));
/// let expr = Expr::compile("amount > 100.0", &schema).unwrap();
/// let row = Record::new(schema, vec![Value::Null]);
/// let e = expr.test(&row).unwrap_err();
/// assert_eq!(
///     e.to_string(),
///     r#""amount > 100.0": no such overload: null > double (column amount is empty)"#
/// );
/// ```
#[derive(Debug, Clone)]
pub struct EvalError(Box<Inner>);

#[derive(Debug, Clone)]
struct Inner {
    source: Arc<str>,
    message: String,
}

impl EvalError {
    pub(super) fn new(source: &Arc<str>, message: String) -> Self {
        EvalError(Box::new(Inner {
            source: source.clone(),
            message,
        }))
    }

    /// What went wrong, without the expression's text.
    ///
    /// ```
    /// use dataflare::record::{DataType, Record, Schema, Value};
    /// use dataflare::workflow::expr::Expr;
    /// use std::sync::Arc;
    ///
    /// let schema = Arc::new(Schema::new([("qty", DataType::Int)]));
    /// let expr = Expr::compile("10 / qty", &schema).unwrap();
    /// let row = Record::new(schema, vec![Value::Int(0)]);
    /// assert_eq!(expr.eval(&row).unwrap_err().message(), "division by zero: 10 / 0");
    /// ```
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The source of the expression that failed.
    ///
    /// ```
    /// use dataflare::record::{DataType, Record, Schema, Value};
    /// use dataflare::workflow::expr::Expr;
    /// use std::sync::Arc;
    ///
    /// let schema = Arc::new(Schema::new([("qty", DataType::Int)]));
    /// let expr = Expr::compile("-qty", &schema).unwrap();
    /// let row = Record::new(schema, vec![Value::Int(i64::MIN)]);
    /// assert_eq!(expr.eval(&row).unwrap_err().expression(), "-qty");
    /// ```
    pub fn expression(&self) -> &str {
        &self.0.source
    }
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", &*self.0.source, self.0.message)
    }
}

impl std::error::Error for EvalError {}

/// Where an operation is in an expression, for its error messages: built at
/// compile time, read only when an error is made.
#[derive(Debug)]
pub(super) struct Site {
    /// The whole expression.
    pub(super) source: Arc<str>,
    /// The operation's text, when it is not the whole expression.
    pub(super) part: Option<Box<str>>,
    /// The column each operand reads directly, if any.
    pub(super) columns: Vec<Option<Arc<str>>>,
}

/// Something an operation could not do, before the site names it.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Fault {
    /// No overload of the operator or function takes these types.
    Overload,
    /// An integer divided by zero.
    DivisionByZero,
    /// An integer remainder by zero.
    RemainderByZero,
    /// An integer result out of range.
    Overflow,
    /// An ordering involving a NaN.
    NotComparable,
    /// A function's own error (a string that does not parse...).
    Function(String),
}

/// How an operation is written, for messages.
#[derive(Debug, Clone, Copy)]
pub(super) enum Shape {
    /// `a op b`.
    Infix(&'static str),
    /// `op a`.
    Prefix(&'static str),
    /// `f(a, b)`.
    Call(&'static str),
    /// `a.f(b)`.
    Member(&'static str),
}

impl Site {
    /// The error for `fault` of the operation written `shape` on `args`.
    #[cold]
    #[inline(never)]
    pub(super) fn error(&self, shape: Shape, fault: Fault, args: &[&V<'_>]) -> EvalError {
        let types: Vec<&str> = args.iter().map(|a| a.kind().name()).collect();
        let shown: Vec<String> = args.iter().map(|a| a.show()).collect();
        let mut message = match (&fault, shape) {
            (Fault::Overload, Shape::Infix(op)) if types.len() == 2 => {
                format!("no such overload: {} {op} {}", types[0], types[1])
            }
            (Fault::Overload, Shape::Prefix(op)) => {
                format!("no such overload: {op}{}", types.join(", "))
            }
            (Fault::Overload, Shape::Member(f)) if !types.is_empty() => {
                format!(
                    "no such overload: {}.{f}({})",
                    types[0],
                    types[1..].join(", ")
                )
            }
            (Fault::Overload, Shape::Call(f) | Shape::Member(f) | Shape::Infix(f)) => {
                format!("no such overload: {f}({})", types.join(", "))
            }
            (Fault::DivisionByZero, _) => {
                format!("division by zero: {}", shown.join(" / "))
            }
            (Fault::RemainderByZero, _) => {
                format!("remainder by zero: {}", shown.join(" % "))
            }
            (Fault::Overflow, Shape::Infix(op)) => {
                format!("integer overflow: {}", shown.join(&format!(" {op} ")))
            }
            (Fault::Overflow, Shape::Prefix(op)) => {
                format!("integer overflow: {op}{}", shown.join(", "))
            }
            (Fault::Overflow, Shape::Call(f) | Shape::Member(f)) => {
                format!("integer overflow: {f}({})", shown.join(", "))
            }
            (Fault::NotComparable, _) => {
                format!("{} can not be ordered (NaN)", shown.join(" and "))
            }
            (Fault::Function(m), Shape::Call(f) | Shape::Member(f)) => format!("{f}: {m}"),
            (Fault::Function(m), _) => m.clone(),
        };
        if let Some(part) = &self.part {
            message = format!("in `{part}`: {message}");
        }
        let notes: Vec<String> = self
            .columns
            .iter()
            .zip(args)
            .filter_map(|(column, arg)| {
                let column = column.as_ref()?;
                Some(match arg {
                    V::Null => format!("column {column} is empty"),
                    _ if fault == Fault::Overload => {
                        format!("column {column} holds {}", arg.kind().name())
                    }
                    _ => return None,
                })
            })
            .collect();
        if !notes.is_empty() {
            message = format!("{message} ({})", notes.join(", "));
        }
        EvalError::new(&self.source, message)
    }

    /// An error with a message of its own.
    #[cold]
    #[inline(never)]
    pub(super) fn message(&self, message: impl fmt::Display) -> EvalError {
        let message = match &self.part {
            Some(part) => format!("in `{part}`: {message}"),
            None => message.to_string(),
        };
        EvalError::new(&self.source, message)
    }
}
