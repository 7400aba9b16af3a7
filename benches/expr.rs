//! Compiled CEL expressions against a hand-written closure and the `cel`
//! interpreter, per record: `cargo bench --bench expr`.
//!
//! Plain loops over 1M generated records (id, user, category, amount, qty),
//! in interleaved rounds; the best round of each is printed in ns/record.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use dataflare::record::{DataType, Record, Schema, Value};
use dataflare::workflow::expr::Expr;

const RECORDS: usize = 1_000_000;
const ROUNDS: usize = 5;
const FILTER: &str = "amount > 100.0 && category in ['books', 'garden']";
const DERIVE: &str = "amount * double(qty)";

fn records() -> Vec<Record> {
    let schema = Arc::new(Schema::new([
        ("id", DataType::Int),
        ("user", DataType::Str),
        ("category", DataType::Str),
        ("amount", DataType::Float),
        ("qty", DataType::Int),
    ]));
    let categories = ["books", "garden", "toys", "food", "tools"];
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    (0..RECORDS)
        .map(|i| {
            let r = next();
            Record::new(
                schema.clone(),
                vec![
                    Value::Int(i as i64),
                    Value::from(format!("user{}", r % 1000).as_str()),
                    Value::from(categories[(r >> 10) as usize % categories.len()]),
                    Value::Float((r >> 20) as f64 % 20_000.0 / 100.0),
                    Value::Int((r >> 40) as i64 % 10),
                ],
            )
        })
        .collect()
}

fn time<T>(rows: &[Record], mut f: impl FnMut(&Record) -> T) -> f64 {
    let start = Instant::now();
    for row in rows {
        black_box(f(black_box(row)));
    }
    start.elapsed().as_nanos() as f64 / rows.len() as f64
}

fn closure_filter(r: &Record) -> Result<bool, &'static str> {
    let v = r.values();
    let amount = match &v[3] {
        Value::Float(x) => *x,
        _ => return Err("amount"),
    };
    if amount <= 100.0 {
        return Ok(false);
    }
    match &v[2] {
        Value::Str(s) => Ok(matches!(s.as_str(), "books" | "garden")),
        _ => Err("category"),
    }
}

fn closure_derive(r: &Record) -> Result<Value, &'static str> {
    let v = r.values();
    match (&v[3], &v[4]) {
        (Value::Float(a), Value::Int(q)) => Ok(Value::Float(a * *q as f64)),
        _ => Err("types"),
    }
}

fn cel_run(program: &cel::Program, rows: &[Record], columns: &[(&str, usize)]) -> f64 {
    let mut context = cel::Context::default();
    time(rows, |r| {
        for (name, i) in columns {
            let value = match &r.values()[*i] {
                Value::Float(x) => cel::Value::Float(*x),
                Value::Int(x) => cel::Value::Int(*x),
                Value::Str(s) => cel::Value::String(Arc::new(s.to_string())),
                _ => cel::Value::Null,
            };
            context.add_variable_from_value(*name, value);
        }
        program.execute(&context).is_ok()
    })
}

fn main() {
    let rows = records();
    let schema = rows[0].schema().clone();
    let filter = Expr::compile_predicate(FILTER, &schema).expect("filter compiles");
    let derive = Expr::compile(DERIVE, &schema).expect("derive compiles");
    let cel_filter = cel::Program::compile(FILTER).expect("cel parses");
    let cel_derive = cel::Program::compile(DERIVE).expect("cel parses");

    // Same answers first.
    for r in rows.iter().take(10_000) {
        assert_eq!(filter.test(r).unwrap(), closure_filter(r).unwrap());
        assert_eq!(derive.eval(r).unwrap(), closure_derive(r).unwrap());
    }

    let mut best = [f64::MAX; 6];
    for _ in 0..ROUNDS {
        let t = [
            time(&rows, |r| filter.test(r)),
            time(&rows, closure_filter),
            cel_run(&cel_filter, &rows, &[("amount", 3), ("category", 2)]),
            time(&rows, |r| derive.eval(r)),
            time(&rows, closure_derive),
            cel_run(&cel_derive, &rows, &[("amount", 3), ("qty", 4)]),
        ];
        for (b, t) in best.iter_mut().zip(t) {
            *b = b.min(t);
        }
    }
    println!("filter `{FILTER}` over {RECORDS} records (best of {ROUNDS} rounds):");
    println!("  compiled      {:7.1} ns/record", best[0]);
    println!("  Rust closure  {:7.1} ns/record", best[1]);
    println!("  cel interp.   {:7.1} ns/record", best[2]);
    println!(
        "  compiled/closure {:.2}x, cel/compiled {:.1}x",
        best[0] / best[1],
        best[2] / best[0]
    );
    println!("derive `{DERIVE}`:");
    println!("  compiled      {:7.1} ns/record", best[3]);
    println!("  Rust closure  {:7.1} ns/record", best[4]);
    println!("  cel interp.   {:7.1} ns/record", best[5]);
    println!(
        "  compiled/closure {:.2}x, cel/compiled {:.1}x",
        best[3] / best[4],
        best[5] / best[3]
    );
}
