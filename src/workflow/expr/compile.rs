//! From `cel`'s checked AST to closures over column indexes.
//!
//! Every node gets its static type (the set of CEL types its value can
//! have, [`Ty`]) and its [`Code`]: a literal, a column read, or a closure
//! that gives a bool, a double or any value. Operators read their operands'
//! `Code` directly (a column is read by index and borrowed, a literal is not
//! boxed), so a filter such as `amount > 100.0 && category in ['books']` is
//! three closure calls per record and no allocation.

use crate::workflow::read::closest;
use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;

use cel::common::ast::{CallExpr, Expr as Ast, IdedExpr, LiteralValue, SourceInfo, operators};

use super::error::{EvalError, ExprError, Fault, Shape, Site};
use super::num::{self, At, Leaf};
use super::ops::{self, Func, Op};
use super::value::{Kind, Ty, V};
use crate::record::{Bytes, Record, Schema, Text};

/// A closure giving any value.
pub(super) type AnyFn = Box<dyn for<'r> Fn(&'r Record) -> Result<V<'r>, EvalError> + Send + Sync>;
/// A closure giving a bool (or an error).
pub(super) type BoolFn = Box<dyn Fn(&Record) -> Result<bool, EvalError> + Send + Sync>;
/// A closure giving a double (or an error).
pub(super) type F64Fn = Box<dyn Fn(&Record) -> Result<f64, EvalError> + Send + Sync>;

fn any<F>(f: F) -> AnyFn
where
    F: for<'r> Fn(&'r Record) -> Result<V<'r>, EvalError> + Send + Sync + 'static,
{
    Box::new(f)
}

/// How a node is evaluated.
pub(super) enum Code {
    /// A constant.
    Lit(V<'static>),
    /// The column at this index.
    Col(usize, Arc<Site>),
    /// A bool, or an error.
    Bool(BoolFn),
    /// A double, or an error; and how an operation on it can read it
    /// directly.
    F64(F64Fn, Leaf),
    /// Any value, or an error.
    Any(AnyFn),
}

impl Code {
    /// The node's value on `record`.
    #[inline]
    pub(super) fn get<'r>(&self, record: &'r Record) -> Result<V<'r>, EvalError> {
        match self {
            Code::Lit(v) => Ok(v.clone()),
            Code::Col(i, site) => read(record, *i, site),
            Code::Bool(f) => f(record).map(V::Bool),
            Code::F64(f, _) => f(record).map(V::Double),
            Code::Any(f) => f(record),
        }
    }

    /// The node's value as a bool: an error if it is another type (CEL's
    /// `&&`, `||`, `!` and `? :` on a non-bool).
    #[inline]
    pub(super) fn test(&self, record: &Record, site: &Site, what: &str) -> Result<bool, EvalError> {
        match self {
            Code::Bool(f) => f(record),
            Code::Lit(V::Bool(b)) => Ok(*b),
            other => match other.get(record)? {
                V::Bool(b) => Ok(b),
                v => Err(not_bool(site, what, &v)),
            },
        }
    }
}

#[cold]
#[inline(never)]
fn not_bool(site: &Site, what: &str, v: &V<'_>) -> EvalError {
    let column = site.columns.iter().flatten().next();
    match (v, column) {
        (V::Null, Some(column)) => site.message(format_args!(
            "{what} takes a bool, not null (column {column} is empty)"
        )),
        _ => site.message(format_args!("{what} takes a bool, not {}", v.kind().name())),
    }
}

/// The value of column `i` of `record`.
#[inline]
fn read<'r>(record: &'r Record, i: usize, site: &Site) -> Result<V<'r>, EvalError> {
    match record.values().get(i) {
        Some(value) => V::of(value).map_err(|what| unsupported_value(site, what)),
        None => Err(site.message(format_args!(
            "the record has {} columns, not the expression's schema",
            record.values().len()
        ))),
    }
}

#[cold]
#[inline(never)]
fn unsupported_value(site: &Site, what: &str) -> EvalError {
    let column = site.columns.first().cloned().flatten();
    site.message(format_args!(
        "column {} holds {what}, which expressions do not take yet",
        column.as_deref().unwrap_or("?")
    ))
}

/// A unary operator's function.
type Unary = for<'r> fn(&V<'r>) -> Result<V<'r>, Fault>;

/// A compiled node.
pub(super) struct Node {
    pub(super) code: Code,
    pub(super) ty: Ty,
    pub(super) span: Range<usize>,
    /// The column, for a column reference.
    pub(super) column: Option<Arc<str>>,
}

/// Compiles ASTs of one source against one schema.
pub(super) struct Compiler<'a> {
    pub(super) source: Arc<str>,
    pub(super) schema: &'a Schema,
    pub(super) info: &'a SourceInfo,
}

impl Compiler<'_> {
    /// The source range of the token node `id` was made from.
    fn token(&self, id: u64) -> Range<usize> {
        let len = self.source.len();
        match self.info.offset_for(id) {
            Some((start, stop)) => {
                let start = (start as usize).min(len);
                let stop = (stop as usize).max(start).min(len);
                let end = self.source[stop..]
                    .chars()
                    .next()
                    .map_or(stop, |c| stop + c.len_utf8());
                start..end
            }
            None => 0..0,
        }
    }

    /// `span` widened to whole parentheses: a call's closing one, a
    /// parenthesized operand's.
    fn balanced(&self, span: Range<usize>) -> Range<usize> {
        let s = self.source.as_bytes();
        let (mut depth, mut lowest, mut quote) = (0isize, 0isize, None);
        for &c in &s[span.clone()] {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, b'\'' | b'"') => quote = Some(c),
                (None, b'(') => depth += 1,
                (None, b')') => {
                    depth -= 1;
                    lowest = lowest.min(depth);
                }
                _ => {}
            }
        }
        let (mut start, mut end) = (span.start, span.end);
        // Unmatched `)`: back to their `(`.
        let mut missing = -lowest;
        while missing > 0 && start > 0 {
            start -= 1;
            match s[start] {
                b'(' => missing -= 1,
                b')' => missing += 1,
                _ => {}
            }
        }
        // Unmatched `(`: on to their `)`.
        let mut open = depth - lowest;
        while open > 0 && end < s.len() {
            match s[end] {
                b'(' => open += 1,
                b')' => open -= 1,
                _ => {}
            }
            end += 1;
        }
        start..end
    }

    fn site(&self, span: &Range<usize>, columns: Vec<Option<Arc<str>>>) -> Arc<Site> {
        let text = self.source[span.clone()].trim();
        let part = (text != self.source.trim()).then(|| text.into());
        Arc::new(Site {
            source: self.source.clone(),
            part,
            columns,
        })
    }

    pub(super) fn node(&self, e: &IdedExpr) -> Result<Node, ExprError> {
        let token = self.token(e.id);
        match &e.expr {
            Ast::Literal(literal) => {
                let v = literal_value(literal);
                let mut span = token;
                // A negative number's token may leave out its `-`.
                let negative = matches!(v, V::Int(i) if i < 0)
                    || matches!(v, V::Double(d) if d.is_sign_negative());
                let before = self.source[..span.start].trim_end();
                if negative && !self.source[span.clone()].starts_with('-') && before.ends_with('-')
                {
                    span.start = before.len() - 1;
                }
                Ok(lit(v, span))
            }
            Ast::Ident(name) => self.column(name, token),
            Ast::List(list) => {
                if !list.optional_indices.is_empty() {
                    return Err(ExprError::new(
                        "optional list elements (`?x`) are not supported",
                        token,
                    ));
                }
                let items = list
                    .elements
                    .iter()
                    .map(|e| self.node(e))
                    .collect::<Result<Vec<_>, _>>()?;
                let span = items
                    .iter()
                    .fold(token, |span, item| union(&span, &item.span));
                let span = self.balanced(self.bracketed(span));
                if items.iter().all(|item| matches!(item.code, Code::Lit(_))) {
                    let values: Vec<V<'static>> = items
                        .into_iter()
                        .map(|item| match item.code {
                            Code::Lit(v) => v,
                            _ => unreachable!("all literals"),
                        })
                        .collect();
                    return Ok(lit(V::List(Arc::from(values)), span));
                }
                let codes: Vec<Code> = items.into_iter().map(|item| item.code).collect();
                Ok(Node {
                    code: Code::Any(any(move |r| {
                        let values = codes
                            .iter()
                            .map(|c| c.get(r))
                            .collect::<Result<Vec<_>, _>>()?;
                        Ok(V::List(Arc::from(values)))
                    })),
                    ty: Ty::of(Kind::List),
                    span,
                    column: None,
                })
            }
            Ast::Call(call) => self.call(call, token),
            Ast::Select(select) => Err(ExprError::new(
                if select.test {
                    "`has()` is not supported: every column is always present (test for `null`)"
                        .to_string()
                } else {
                    format!(
                        "field selection (`.{}`) is not supported: a column is a plain name",
                        select.field
                    )
                },
                token,
            )),
            Ast::Map(_) => Err(ExprError::new("map literals are not supported", token)),
            Ast::Struct(_) => Err(ExprError::new("messages are not supported", token)),
            Ast::Comprehension(_) => Err(ExprError::new(
                "macros (`all`, `exists`, `map`, `filter`) are not supported",
                token,
            )),
            Ast::Unspecified => Err(ExprError::new("syntax error", token)),
        }
    }

    /// `span` widened to its closing `]`.
    fn bracketed(&self, span: Range<usize>) -> Range<usize> {
        let s = &*self.source;
        let text = &s[span.clone()];
        if text.matches('[').count() > text.matches(']').count()
            && let Some(at) = s[span.end..].find(']')
        {
            return span.start..span.end + at + 1;
        }
        span
    }

    fn column(&self, name: &str, span: Range<usize>) -> Result<Node, ExprError> {
        let Some(index) = self.schema.index_of(name) else {
            let mut error = ExprError::new(format!("no column `{name}`"), span);
            let names: Vec<&str> = self.schema.names().collect();
            match closest(name, names.iter().copied()) {
                Some(best) => error = error.with_help(format!("did you mean `{best}`?")),
                None if names.is_empty() => {
                    error = error.with_help("the input has no columns");
                }
                None => {
                    error = error.with_help(format!("the columns: {}", names.join(", ")));
                }
            }
            return Err(error);
        };
        let field = self.schema.field(index).expect("index from the schema");
        let ty = Ty::column(field.data_type()).map_err(|what| {
            ExprError::new(
                format!(
                    "column `{name}` is {what}; {} are not supported in expressions yet",
                    match field.data_type() {
                        crate::record::DataType::Json => "JSON values",
                        crate::record::DataType::Date => "dates",
                        crate::record::DataType::Timestamp => "timestamps",
                        _ => "its values",
                    }
                ),
                span.clone(),
            )
        })?;
        let column: Arc<str> = name.into();
        let site = self.site(&span, vec![Some(column.clone())]);
        Ok(Node {
            code: Code::Col(index, site),
            ty,
            span,
            column: Some(column),
        })
    }

    fn call(&self, call: &CallExpr, token: Range<usize>) -> Result<Node, ExprError> {
        let name = call.func_name.as_str();
        let args = &call.args;
        if call.target.is_none() {
            match (name, args.len()) {
                (operators::CONDITIONAL, 3) => return self.conditional(args, token),
                (operators::LOGICAL_AND, 2) => return self.logic(true, args, token),
                (operators::LOGICAL_OR, 2) => return self.logic(false, args, token),
                (operators::LOGICAL_NOT, 1) => return self.unary(true, &args[0], token),
                (operators::NEGATE, 1) => return self.unary(false, &args[0], token),
                (operators::INDEX | operators::OPT_INDEX, _) => {
                    return Err(ExprError::new("indexing (`a[i]`) is not supported", token));
                }
                _ => {}
            }
            if let Some(op) = Op::of(name).filter(|_| args.len() == 2) {
                return self.binary(op, &args[0], &args[1], token);
            }
        }
        let member = call.target.is_some();
        let Some(func) = Func::of(name, member) else {
            let mut error = ExprError::new(format!("unknown function `{name}`"), token.clone());
            if Func::of(name, !member).is_some() {
                error = ExprError::new(
                    if member {
                        format!("`{name}` is not called on a value: write `{name}(x)`")
                    } else {
                        format!("`{name}` is called on a string: write `text.{name}(x)`")
                    },
                    token,
                );
            } else if let Some(best) = closest(name, Func::NAMES) {
                error = error.with_help(format!("did you mean `{best}`?"));
            } else {
                error = error.with_help(format!("the functions: {}", Func::NAMES.join(", ")));
            }
            return Err(error);
        };
        let mut nodes = Vec::with_capacity(args.len() + 1);
        if let Some(target) = &call.target {
            nodes.push(self.node(target)?);
        }
        for arg in args {
            nodes.push(self.node(arg)?);
        }
        let span = nodes
            .iter()
            .fold(token.clone(), |span, n| union(&span, &n.span));
        let mut span = self.balanced(span);
        if !member {
            // From the function's name (the call's token may be its `(`).
            let before = self.source[..span.start].trim_end();
            if before.ends_with(func.name()) {
                span.start = before.len() - func.name().len();
            }
        }
        if nodes.len() != func.arity() {
            return Err(ExprError::new(
                format!(
                    "`{}` takes {} argument{}, not {}",
                    func.name(),
                    func.arity(),
                    if func.arity() == 1 { "" } else { "s" },
                    nodes.len()
                ),
                span,
            ));
        }
        self.function(func, member, nodes, span)
    }

    fn function(
        &self,
        func: Func,
        member: bool,
        nodes: Vec<Node>,
        span: Range<usize>,
    ) -> Result<Node, ExprError> {
        let shape = if member {
            Shape::Member(func.name())
        } else {
            Shape::Call(func.name())
        };
        // Static type: over every combination of the arguments' types.
        let mut ty = Ty::NONE;
        let kinds: Vec<Vec<Kind>> = nodes.iter().map(|n| n.ty.kinds().collect()).collect();
        for combo in product(&kinds) {
            if let Some(kind) = func.result(&combo) {
                ty = ty.or(Ty::of(kind));
            }
        }
        // A literal pattern is compiled once.
        let mut regex = None;
        if func == Func::Matches
            && let Code::Lit(pattern) = &nodes[1].code
            && let Some(p) = pattern.str()
        {
            match regex::Regex::new(p) {
                Ok(r) => regex = Some(r),
                Err(e) => {
                    return Err(ExprError::new(
                        format!("invalid regular expression: {e}"),
                        nodes[1].span.clone(),
                    ));
                }
            }
        }
        if ty.is_empty() {
            let types: Vec<String> = nodes.iter().map(|n| describe(n.ty)).collect();
            let message = match (member, types.split_first()) {
                (true, Some((target, rest))) => format!(
                    "no such overload: {target}.{}({})",
                    func.name(),
                    rest.join(", ")
                ),
                _ => format!("no such overload: {}({})", func.name(), types.join(", ")),
            };
            return Err(self.type_error(message, span, &nodes));
        }
        let site = self.site(&span, nodes.iter().map(|n| n.column.clone()).collect());
        // All literal: evaluated now.
        if nodes.iter().all(|n| matches!(n.code, Code::Lit(_))) {
            let values: Vec<V<'static>> = nodes
                .iter()
                .map(|n| match &n.code {
                    Code::Lit(v) => v.clone(),
                    _ => unreachable!("all literals"),
                })
                .collect();
            return match ops::call(func, &values, regex.as_ref()) {
                Ok(v) => Ok(lit(v, span)),
                Err(fault) => {
                    let refs: Vec<&V<'_>> = values.iter().collect();
                    let e = site.error(shape, fault, &refs);
                    Err(ExprError::new(e.message().to_string(), span))
                }
            };
        }
        let code = match (func, nodes.len()) {
            (Func::Double, 1) => {
                let a = nodes.into_iter().next().expect("one argument").code;
                let source = self.source.clone();
                num::to_double(
                    a,
                    At {
                        site,
                        shape,
                        source,
                    },
                )
            }
            (Func::Contains | Func::StartsWith | Func::EndsWith | Func::Matches, 2) => {
                let mut it = nodes.into_iter();
                let a = it.next().expect("two arguments").code;
                let b = it.next().expect("two arguments").code;
                Code::Bool(Box::new(move |r| {
                    let x = a.get(r)?;
                    let y = b.get(r)?;
                    match ops::call(func, &[x.clone(), y.clone()], regex.as_ref()) {
                        Ok(V::Bool(b)) => Ok(b),
                        Ok(other) => Err(site.message(format_args!(
                            "{} gave {}",
                            func.name(),
                            other.kind().name()
                        ))),
                        Err(f) => Err(site.error(shape, f, &[&x, &y])),
                    }
                }))
            }
            _ => {
                let codes: Vec<Code> = nodes.into_iter().map(|n| n.code).collect();
                Code::Any(any(move |r| {
                    let values = codes
                        .iter()
                        .map(|c| c.get(r))
                        .collect::<Result<Vec<_>, _>>()?;
                    ops::call(func, &values, regex.as_ref()).map_err(|f| {
                        let refs: Vec<&V<'_>> = values.iter().collect();
                        site.error(shape, f, &refs)
                    })
                }))
            }
        };
        Ok(Node {
            code,
            ty,
            span,
            column: None,
        })
    }

    fn type_error(&self, message: String, span: Range<usize>, nodes: &[Node]) -> ExprError {
        let mut error = ExprError::new(message, span);
        let text_column = nodes
            .iter()
            .find(|n| n.column.is_some() && n.ty.without(Kind::Null) == Ty::of(Kind::String));
        let numbers = nodes
            .iter()
            .any(|n| n.ty.has(Kind::Int) || n.ty.has(Kind::Double) || n.ty.has(Kind::UInt));
        if let (Some(text), true) = (text_column, numbers) {
            let name = text.column.as_deref().unwrap_or_default();
            error = error.with_help(format!(
                "column `{name}` is a string column: declare the column's type in `schema:` \
                 (e.g. `{name}: int` or `{name}: float`), or convert it with `int({name})` \
                 or `double({name})`"
            ));
        } else if nodes.iter().any(|n| n.ty == Ty::of(Kind::Null)) {
            error =
                error.with_help("to test for a missing value, compare with `null`: `x == null`");
        }
        error
    }

    fn binary(
        &self,
        op: Op,
        a: &IdedExpr,
        b: &IdedExpr,
        token: Range<usize>,
    ) -> Result<Node, ExprError> {
        let a = self.node(a)?;
        let b = self.node(b)?;
        let span = self.balanced(union(&union(&token, &a.span), &b.span));
        let mut ty = Ty::NONE;
        for ka in a.ty.kinds() {
            for kb in b.ty.kinds() {
                if let Some(kind) = ops::binary_result(op, ka, kb) {
                    ty = ty.or(Ty::of(kind));
                }
            }
        }
        if ty.is_empty() {
            let message = format!(
                "no such overload: {} {} {}",
                describe(a.ty),
                op.symbol(),
                describe(b.ty)
            );
            return Err(self.type_error(message, span, &[a, b]));
        }
        let shape = Shape::Infix(op.symbol());
        let site = self.site(&span, vec![a.column.clone(), b.column.clone()]);
        if let (Code::Lit(x), Code::Lit(y)) = (&a.code, &b.code) {
            return match ops::binary(op, x, y) {
                Ok(v) => Ok(lit(v, span)),
                Err(fault) => {
                    let e = site.error(shape, fault, &[x, y]);
                    Err(ExprError::new(e.message().to_string(), span))
                }
            };
        }
        // Both operands doubles (or null): ordered as `f64`s.
        let double =
            |ty: Ty| ty.has(Kind::Double) && ty.without(Kind::Null) == Ty::of(Kind::Double);
        let doubles = double(a.ty) && double(b.ty);
        let (ca, cb) = (a.code, b.code);
        let source = self.source.clone();
        let code = match op {
            Op::Eq | Op::Ne => {
                let eq = op == Op::Eq;
                Code::Bool(Box::new(move |r| {
                    let x = ca.get(r)?;
                    let y = cb.get(r)?;
                    Ok(ops::equals(&x, &y) == eq)
                }))
            }
            Op::Lt | Op::Le | Op::Gt | Op::Ge if doubles => Code::Bool(num::compare(
                op,
                ca,
                cb,
                At {
                    site,
                    shape,
                    source,
                },
            )),
            Op::Lt | Op::Le | Op::Gt | Op::Ge => Code::Bool(Box::new(move |r| {
                let x = ca.get(r)?;
                let y = cb.get(r)?;
                match ops::compare(&x, &y) {
                    Ok(o) => Ok(op.holds(o)),
                    Err(f) => Err(site.error(shape, f, &[&x, &y])),
                }
            })),
            Op::In => match cb {
                Code::Lit(V::List(items)) => in_list(ca, items),
                cb => Code::Bool(Box::new(move |r| {
                    let x = ca.get(r)?;
                    let y = cb.get(r)?;
                    match &y {
                        V::List(items) => Ok(items.iter().any(|item| ops::equals(item, &x))),
                        _ => Err(site.error(shape, Fault::Overload, &[&x, &y])),
                    }
                })),
            },
            // Doubles only: read and computed as `f64`s.
            _ if ty == Ty::of(Kind::Double) => num::arith(
                op,
                ca,
                cb,
                At {
                    site,
                    shape,
                    source,
                },
            ),
            _ => Code::Any(any(move |r| {
                let x = ca.get(r)?;
                let y = cb.get(r)?;
                ops::binary(op, &x, &y).map_err(|f| site.error(shape, f, &[&x, &y]))
            })),
        };
        Ok(Node {
            code,
            ty,
            span,
            column: None,
        })
    }

    fn unary(&self, not: bool, arg: &IdedExpr, token: Range<usize>) -> Result<Node, ExprError> {
        let a = self.node(arg)?;
        let span = self.balanced(union(&token, &a.span));
        let (symbol, f): (&'static str, Unary) = if not {
            ("!", ops::not)
        } else {
            ("-", ops::negate)
        };
        let mut ty = Ty::NONE;
        for kind in a.ty.kinds() {
            if let Ok(v) = f(&kind.sample()) {
                ty = ty.or(Ty::of(v.kind()));
            }
        }
        if ty.is_empty() {
            let message = format!("no such overload: {symbol}{}", describe(a.ty));
            return Err(self.type_error(message, span, &[a]));
        }
        let shape = Shape::Prefix(symbol);
        let site = self.site(&span, vec![a.column.clone()]);
        if let Code::Lit(x) = &a.code {
            return match f(x) {
                Ok(v) => Ok(lit(v, span)),
                Err(fault) => {
                    let e = site.error(shape, fault, &[x]);
                    Err(ExprError::new(e.message().to_string(), span))
                }
            };
        }
        let ca = a.code;
        let code = if not {
            Code::Bool(Box::new(move |r| match &ca {
                Code::Bool(g) => g(r).map(|b| !b),
                ca => {
                    let x = ca.get(r)?;
                    match x {
                        V::Bool(b) => Ok(!b),
                        _ => Err(site.error(shape, Fault::Overload, &[&x])),
                    }
                }
            }))
        } else {
            Code::Any(any(move |r| {
                let x = ca.get(r)?;
                f(&x).map_err(|fault| site.error(shape, fault, &[&x]))
            }))
        };
        Ok(Node {
            code,
            ty,
            span,
            column: None,
        })
    }

    /// `a && b` (`and`) or `a || b`, as the `cel` interpreter evaluates them:
    /// the left side decides if it can (`false &&`, `true ||`), else the
    /// right side is evaluated and its error is the result's; then a right
    /// side that decides (`&& false`, `|| true`) does so even when the left
    /// side failed.
    fn logic(&self, and: bool, args: &[IdedExpr], token: Range<usize>) -> Result<Node, ExprError> {
        let a = self.node(&args[0])?;
        let b = self.node(&args[1])?;
        let span = self.balanced(union(&union(&token, &a.span), &b.span));
        let symbol = if and { "&&" } else { "||" };
        // As CEL: refused only when neither side can be a bool (`1 && false`
        // is false).
        if !a.ty.has(Kind::Bool) && !b.ty.has(Kind::Bool) {
            let message = format!(
                "`{symbol}` takes bools, not {} and {}",
                describe(a.ty),
                describe(b.ty)
            );
            return Err(self.type_error(message, span, &[a, b]));
        }
        let site_a = self.site(&a.span, vec![a.column.clone()]);
        let site_b = self.site(&b.span, vec![b.column.clone()]);
        let what: &'static str = if and { "`&&`" } else { "`||`" };
        let (ca, cb) = (a.code, b.code);
        let code: BoolFn = if and {
            Box::new(move |r| match ca.test(r, &site_a, what) {
                Ok(false) => Ok(false),
                left => {
                    let right = cb.test(r, &site_b, what)?;
                    match left {
                        Ok(_) => Ok(right),
                        Err(e) if right => Err(e),
                        Err(_) => Ok(false),
                    }
                }
            })
        } else {
            Box::new(move |r| match ca.test(r, &site_a, what) {
                Ok(true) => Ok(true),
                left => {
                    let right = cb.test(r, &site_b, what)?;
                    match left {
                        Ok(_) => Ok(right),
                        Err(_) if right => Ok(true),
                        Err(e) => Err(e),
                    }
                }
            })
        };
        Ok(Node {
            code: Code::Bool(code),
            ty: Ty::of(Kind::Bool),
            span,
            column: None,
        })
    }

    fn conditional(&self, args: &[IdedExpr], token: Range<usize>) -> Result<Node, ExprError> {
        let c = self.node(&args[0])?;
        let a = self.node(&args[1])?;
        let b = self.node(&args[2])?;
        let span = self.balanced(union(&union(&union(&token, &c.span), &a.span), &b.span));
        if !c.ty.has(Kind::Bool) {
            let message = format!("the condition of `? :` is {}, not bool", describe(c.ty));
            return Err(self.type_error(message, span, &[c]));
        }
        let ty = a.ty.or(b.ty);
        let site = self.site(&c.span, vec![c.column.clone()]);
        let (cc, ca, cb) = (c.code, a.code, b.code);
        let code = if let (Code::Bool(_), Code::Bool(_)) = (&ca, &cb) {
            Code::Bool(Box::new(move |r| {
                if cc.test(r, &site, "`? :`")? {
                    ca.test(r, &site, "`? :`")
                } else {
                    cb.test(r, &site, "`? :`")
                }
            }))
        } else {
            Code::Any(any(move |r| {
                if cc.test(r, &site, "`? :`")? {
                    ca.get(r)
                } else {
                    cb.get(r)
                }
            }))
        };
        Ok(Node {
            code,
            ty,
            span,
            column: None,
        })
    }
}

/// `x in [literals]`: strings looked up without copying the record's text.
fn in_list(ca: Code, items: Arc<[V<'static>]>) -> Code {
    let strings: Option<Vec<Box<str>>> = items.iter().map(|v| v.str().map(Box::from)).collect();
    match strings {
        Some(strings) if strings.len() > 8 => {
            let set: HashSet<Box<str>> = strings.into_iter().collect();
            Code::Bool(Box::new(move |r| {
                let x = ca.get(r)?;
                Ok(x.str().is_some_and(|s| set.contains(s)))
            }))
        }
        Some(strings) => Code::Bool(Box::new(move |r| {
            let x = ca.get(r)?;
            Ok(x.str().is_some_and(|s| strings.iter().any(|t| **t == *s)))
        })),
        None => Code::Bool(Box::new(move |r| {
            let x = ca.get(r)?;
            Ok(items.iter().any(|item| ops::equals(item, &x)))
        })),
    }
}

fn lit(v: V<'static>, span: Range<usize>) -> Node {
    let ty = Ty::of(v.kind());
    Node {
        code: Code::Lit(v),
        ty,
        span,
        column: None,
    }
}

fn literal_value(literal: &LiteralValue) -> V<'static> {
    match literal {
        LiteralValue::Boolean(b) => V::Bool(*b.inner()),
        LiteralValue::Bytes(b) => V::OwnedBytes(Bytes::from(b.inner())),
        LiteralValue::Double(d) => V::Double(*d.inner()),
        LiteralValue::Int(i) => V::Int(*i.inner()),
        LiteralValue::Null => V::Null,
        LiteralValue::String(s) => V::Text(Text::from(s.inner())),
        LiteralValue::UInt(u) => V::UInt(*u.inner()),
    }
}

fn union(a: &Range<usize>, b: &Range<usize>) -> Range<usize> {
    if a.is_empty() && a.start == 0 {
        return b.clone();
    }
    a.start.min(b.start)..a.end.max(b.end)
}

/// A type set for messages: without its null when it has other types (a
/// column may be null, but an int column is an int).
fn describe(ty: Ty) -> String {
    let without = ty.without(Kind::Null);
    if without.is_empty() {
        ty.describe()
    } else {
        without.describe()
    }
}

/// Every combination of one kind from each list.
fn product(lists: &[Vec<Kind>]) -> Vec<Vec<Kind>> {
    let mut out = vec![Vec::new()];
    for list in lists {
        out = out
            .into_iter()
            .flat_map(|prefix| {
                list.iter().map(move |k| {
                    let mut next = prefix.clone();
                    next.push(*k);
                    next
                })
            })
            .collect();
    }
    out
}
