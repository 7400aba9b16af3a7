//! CEL expressions of workflow files, as a user relies on them: filters and
//! derived columns, the errors a mistake gets (where and what to do), CEL's
//! null and error semantics.

use std::sync::Arc;

use dataflare::record::{DataType, Record, Schema, Value};
use dataflare::workflow::expr::Expr;

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new([
        ("id", DataType::Int),
        ("user", DataType::Str),
        ("category", DataType::Str),
        ("amount", DataType::Float),
        ("qty", DataType::Int),
        ("vip", DataType::Bool),
    ]))
}

fn row(category: Value, amount: Value, qty: Value) -> Record {
    Record::new(
        schema(),
        vec![
            Value::Int(1),
            Value::from("ann"),
            category,
            amount,
            qty,
            Value::Bool(false),
        ],
    )
}

fn books(amount: f64, qty: i64) -> Record {
    row(Value::from("books"), Value::Float(amount), Value::Int(qty))
}

#[test]
fn the_sketchs_filter_and_derive() {
    let s = schema();
    let filter =
        Expr::compile_predicate("amount > 100.0 && category in ['books', 'garden']", &s).unwrap();
    assert!(filter.test(&books(120.0, 1)).unwrap());
    assert!(!filter.test(&books(99.5, 1)).unwrap());
    let toys = row(Value::from("toys"), Value::Float(500.0), Value::Int(1));
    assert!(!filter.test(&toys).unwrap());
    assert_eq!(filter.data_type(), Some(DataType::Bool));

    let total = Expr::compile("amount * double(qty)", &s).unwrap();
    assert_eq!(total.eval(&books(2.5, 4)).unwrap(), Value::Float(10.0));
    assert_eq!(total.data_type(), Some(DataType::Float));
    assert_eq!(total.source(), "amount * double(qty)");
    // Shared between threads.
    let clone = total.clone();
    std::thread::spawn(move || clone.eval(&books(1.0, 2)).unwrap())
        .join()
        .unwrap();
}

#[test]
fn unknown_columns_are_named_with_a_suggestion() {
    let source = "amonut > 100.0";
    let e = Expr::compile(source, &schema()).unwrap_err();
    assert_eq!(e.message(), "no column `amonut`");
    assert_eq!(&source[e.span()], "amonut");
    assert_eq!(e.help(), Some("did you mean `amount`?"));
    let e = Expr::compile("zzz == 1", &schema()).unwrap_err();
    assert!(
        e.help().unwrap().starts_with("the columns: id, user"),
        "{e}"
    );
    assert_eq!(
        Expr::columns_of("amonut > 1.0 && user == 'x'").unwrap(),
        ["amonut", "user"]
    );
}

#[test]
fn syntax_errors_point_at_their_position() {
    let source = "amount > && qty";
    let e = Expr::compile(source, &schema()).unwrap_err();
    assert!(e.message().starts_with("syntax error"), "{e}");
    assert_eq!(e.span().start, 9, "{e}");
    let source = "qty > 1 &&\n  (amount <)";
    let e = Expr::compile(source, &schema()).unwrap_err();
    assert_eq!(&source[e.span()], ")", "{e}");
    assert!(Expr::columns_of("a +").is_err());
}

#[test]
fn type_errors_are_refused_at_compile_time() {
    let source = "qty > 1 && category > 3";
    let e = Expr::compile(source, &schema()).unwrap_err();
    assert_eq!(e.message(), "no such overload: string > int");
    assert_eq!(&source[e.span()], "category > 3");
    assert!(e.help().unwrap().contains("schema:"), "{e}");
    // CEL compares numbers across types, but does no arithmetic across them.
    assert!(Expr::compile("qty > 1.5", &schema()).is_ok());
    let e = Expr::compile("qty * 1.5", &schema()).unwrap_err();
    assert_eq!(e.message(), "no such overload: int * double");
    let e = Expr::compile("sizes(user)", &schema()).unwrap_err();
    assert_eq!(e.message(), "unknown function `sizes`");
    assert_eq!(e.help(), Some("did you mean `size`?"));
    let e = Expr::compile("size(user, 2)", &schema()).unwrap_err();
    assert_eq!(e.message(), "`size` takes 1 argument, not 2");
    let e = Expr::compile_predicate("amount * 2.0", &schema()).unwrap_err();
    assert!(e.message().contains("must give a bool"), "{e}");
    let dated = Schema::new([("d", DataType::Date)]);
    let e = Expr::compile("d == null", &dated).unwrap_err();
    assert!(e.message().contains("dates are not supported"), "{e}");
}

#[test]
fn division_by_zero_and_overflow_fail_the_record() {
    let s = schema();
    let per = Expr::compile("id / qty", &s).unwrap();
    assert_eq!(per.eval(&books(1.0, 2)).unwrap(), Value::Int(0));
    let e = per.eval(&books(1.0, 0)).unwrap_err();
    assert_eq!(e.to_string(), r#""id / qty": division by zero: 1 / 0"#);
    let big = Expr::compile("qty * 9223372036854775807", &s).unwrap();
    assert!(
        big.eval(&books(1.0, 2))
            .unwrap_err()
            .message()
            .contains("overflow")
    );
    // Doubles follow IEEE 754.
    let inf = Expr::compile("amount / 0.0", &s).unwrap();
    assert_eq!(
        inf.eval(&books(1.0, 1)).unwrap(),
        Value::Float(f64::INFINITY)
    );
}

#[test]
fn nulls_compare_as_cel_does() {
    let s = schema();
    let empty = row(Value::Null, Value::Null, Value::Null);
    let eval = |src: &str| Expr::compile(src, &s).unwrap().eval(&empty);
    assert_eq!(eval("amount == null").unwrap(), Value::Bool(true));
    assert_eq!(eval("amount != null").unwrap(), Value::Bool(false));
    assert_eq!(eval("amount == 1.0").unwrap(), Value::Bool(false));
    assert_eq!(eval("amount").unwrap(), Value::Null);
    let e = eval("amount > 100.0").unwrap_err();
    assert_eq!(
        e.to_string(),
        r#""amount > 100.0": no such overload: null > double (column amount is empty)"#
    );
    // `&&` and `||` absorb an error when the other side decides.
    assert_eq!(eval("amount > 1.0 && false").unwrap(), Value::Bool(false));
    assert_eq!(eval("amount > 1.0 || true").unwrap(), Value::Bool(true));
    assert!(eval("amount > 1.0 || false").is_err());
    assert_eq!(
        eval("amount == null ? 0.0 : amount").unwrap(),
        Value::Float(0.0)
    );
    let filter = Expr::compile_predicate("amount > 100.0", &s).unwrap();
    assert!(filter.test(&empty).is_err());
}

#[test]
fn in_lists() {
    let s = schema();
    let many = Expr::compile(
        "category in ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'books']",
        &s,
    )
    .unwrap();
    assert!(many.test(&books(1.0, 1)).unwrap());
    let numbers = Expr::compile("qty in [1, 2.0, 3]", &s).unwrap();
    assert!(numbers.test(&books(1.0, 2)).unwrap());
    assert!(!numbers.test(&books(1.0, 4)).unwrap());
    let dynamic = Expr::compile("qty in [id, 5]", &s).unwrap();
    assert!(dynamic.test(&books(1.0, 1)).unwrap());
    let empty = row(Value::Null, Value::Null, Value::Null);
    assert!(!many.test(&empty).unwrap());
}

#[test]
fn string_functions() {
    let s = schema();
    let r = books(1.0, 1);
    let eval = |src: &str| Expr::compile(src, &s).unwrap().eval(&r).unwrap();
    assert_eq!(eval("size(category)"), Value::Int(5));
    assert_eq!(eval("category.size()"), Value::Int(5));
    assert_eq!(eval("category.contains('ook')"), Value::Bool(true));
    assert_eq!(eval("category.startsWith('bo')"), Value::Bool(true));
    assert_eq!(eval("category.endsWith('x')"), Value::Bool(false));
    assert_eq!(eval("user + ':' + string(qty)"), Value::from("ann:1"));
    assert_eq!(eval("int('42') + qty"), Value::Int(43));
    assert_eq!(eval("double('2.5') * amount"), Value::Float(2.5));
    assert_eq!(eval("string(2.5)"), Value::from("2.5"));
    let e = Expr::compile("int(user)", &s)
        .unwrap()
        .eval(&r)
        .unwrap_err();
    assert!(e.message().contains("string parse error"), "{e}");
}

#[test]
fn matches_compiles_a_literal_pattern_once() {
    let s = schema();
    let r = books(1.0, 1);
    let m = Expr::compile("category.matches('^b.*s$')", &s).unwrap();
    assert!(m.test(&r).unwrap());
    let global = Expr::compile("matches(user, 'n+')", &s).unwrap();
    assert!(global.test(&r).unwrap());
    let source = "category.matches('(')";
    let e = Expr::compile(source, &s).unwrap_err();
    assert!(e.message().starts_with("invalid regular expression"), "{e}");
    assert_eq!(&source[e.span()], "'('");
    // A pattern from a column is compiled per record, as in CEL.
    let dynamic = Expr::compile("'books'.matches(category)", &s).unwrap();
    assert!(dynamic.test(&r).unwrap());
}
