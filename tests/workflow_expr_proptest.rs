//! Compiled CEL expressions agree with the `cel` crate's interpreter: on
//! random expressions over an int, a float, a string and a bool column (any
//! of them possibly null) and random records, both give the same value or
//! both fail; an expression refused at compile time points at a part that
//! the interpreter fails on.

use std::sync::Arc;

use dataflare::record::{DataType, Record, Schema, Value};
use dataflare::workflow::expr::Expr;
use proptest::prelude::*;

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new([
        ("i", DataType::Int),
        ("f", DataType::Float),
        ("s", DataType::Str),
        ("b", DataType::Bool),
    ]))
}

fn leaf() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec!["i", "f", "s", "b"]).prop_map(String::from),
        1 => prop::sample::select(vec![
            "0", "1", "2", "-3", "7", "9223372036854775807", "-9223372036854775808",
        ]).prop_map(String::from),
        1 => prop::sample::select(vec!["0u", "1u", "5u"]).prop_map(String::from),
        1 => prop::sample::select(vec!["0.0", "1.5", "-2.0", "100.0", "1e300"]).prop_map(String::from),
        1 => prop::sample::select(vec!["''", "'a'", "'abc'", "'1'", "'2.5'", "'héllo'"]).prop_map(String::from),
        1 => prop::sample::select(vec!["true", "false", "null"]).prop_map(String::from),
    ]
}

fn expr() -> impl Strategy<Value = String> {
    leaf().prop_recursive(4, 24, 3, |inner| {
        let op = prop::sample::select(vec![
            "+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=", "&&", "||",
        ]);
        prop_oneof![
            4 => (inner.clone(), op, inner.clone()).prop_map(|(a, op, b)| format!("({a} {op} {b})")),
            1 => (prop::sample::select(vec!["-", "!"]), inner.clone()).prop_map(|(op, a)| format!("({op}{a})")),
            1 => (inner.clone(), inner.clone(), inner.clone()).prop_map(|(c, a, b)| format!("({c} ? {a} : {b})")),
            1 => (inner.clone(), prop::sample::select(vec![
                "['a', 'abc', '']", "[1, 2.5, 'a']", "[]", "[1, 2, 3]", "[true, null]",
                "['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'abc']",
            ])).prop_map(|(a, list)| format!("({a} in {list})")),
            1 => (prop::sample::select(vec!["size", "double", "int", "string"]), inner.clone())
                .prop_map(|(f, a)| format!("{f}({a})")),
            1 => (inner.clone(), prop::sample::select(vec!["contains", "startsWith", "endsWith"]), inner.clone())
                .prop_map(|(a, f, b)| format!("{a}.{f}({b})")),
            1 => inner.clone().prop_map(|a| format!("{a}.matches('^a.*c$')")),
            1 => inner.clone().prop_map(|a| format!("{a}.size()")),
        ]
    })
}

fn record() -> impl Strategy<Value = Vec<Value>> {
    let int = prop_oneof![
        1 => Just(Value::Null),
        4 => prop::sample::select(vec![0i64, 1, -1, 2, 7, i64::MAX, i64::MIN]).prop_map(Value::Int),
        1 => any::<i64>().prop_map(Value::Int),
    ];
    let float = prop_oneof![
        1 => Just(Value::Null),
        4 => prop::sample::select(vec![0.0, 1.5, -2.0, 100.5, f64::NAN, f64::INFINITY, 1.0])
            .prop_map(Value::Float),
        1 => any::<f64>().prop_map(Value::Float),
    ];
    let string = prop_oneof![
        1 => Just(Value::Null),
        4 => prop::sample::select(vec!["", "a", "abc", "1", "2.5", "héllo", "books", "azc"])
            .prop_map(Value::from),
    ];
    let boolean = prop_oneof![
        1 => Just(Value::Null),
        2 => any::<bool>().prop_map(Value::Bool),
    ];
    (int, float, string, boolean).prop_map(|(i, f, s, b)| vec![i, f, s, b])
}

fn to_cel(value: &Value) -> cel::Value {
    match value {
        Value::Null => cel::Value::Null,
        Value::Int(i) => cel::Value::Int(*i),
        Value::Float(f) => cel::Value::Float(*f),
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Str(s) => cel::Value::String(Arc::new(s.to_string())),
        other => panic!("no CEL value for {other:?}"),
    }
}

fn from_cel(value: &cel::Value) -> Option<Value> {
    Some(match value {
        cel::Value::Null => Value::Null,
        cel::Value::Int(i) => Value::Int(*i),
        cel::Value::UInt(u) => Value::Int(i64::try_from(*u).ok()?),
        cel::Value::Float(f) => Value::Float(*f),
        cel::Value::Bool(b) => Value::Bool(*b),
        cel::Value::String(s) => Value::from(s.as_str()),
        _ => return None,
    })
}

fn interpret(source: &str, values: &[Value]) -> Result<cel::Value, String> {
    let program = cel::Program::compile(source).map_err(|e| format!("parse: {e}"))?;
    let mut context = cel::Context::default();
    for (name, value) in ["i", "f", "s", "b"].iter().zip(values) {
        context.add_variable_from_value(*name, to_cel(value));
    }
    program.execute(&context).map_err(|e| e.to_string())
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => x == y || (x.is_nan() && y.is_nan()),
        _ => a == b,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn compiled_expressions_agree_with_the_interpreter(source in expr(), values in record()) {
        let schema = schema();
        let theirs = interpret(&source, &values);
        prop_assume!(!matches!(&theirs, Err(e) if e.starts_with("parse:")));
        match Expr::compile(&source, &schema) {
            Ok(expr) => {
                let row = Record::new(schema.clone(), values.clone());
                let ours = expr.eval(&row);
                match (&ours, &theirs) {
                    (Ok(a), Ok(b)) => {
                        let b = from_cel(b);
                        prop_assert!(
                            b.as_ref().is_some_and(|b| same(a, b)),
                            "{source} on {values:?}: ours {a:?}, cel {theirs:?}"
                        );
                    }
                    (Err(_), Err(_)) => {}
                    _ => prop_assert!(false, "{source} on {values:?}: ours {ours:?}, cel {theirs:?}"),
                }
                // A filter's verdict is the value's, when a bool.
                match (expr.test(&row), &ours) {
                    (Ok(t), Ok(Value::Bool(v))) => prop_assert_eq!(t, *v),
                    (Err(_), Ok(Value::Bool(_))) => prop_assert!(false, "{source}: test failed"),
                    (Ok(_), _) => prop_assert!(false, "{source}: test of a non-bool"),
                    _ => {}
                }
            }
            Err(e) => {
                // The part pointed at fails in the interpreter for this record.
                let part = &source[e.span()];
                let theirs = interpret(part, &values);
                prop_assert!(
                    theirs.is_err() && !theirs.as_ref().unwrap_err().starts_with("parse:"),
                    "{source}: refused ({e}) at {part:?}, which cel evaluates to {theirs:?} on {values:?}"
                );
            }
        }
    }
}
