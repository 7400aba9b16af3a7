//! Workflow files mangled at random: loading one never panics, and a file
//! that loads always builds its graph (the library's own panics, such as a
//! taken stage name, an empty key or a lookup deadlock, are refused by
//! `validate` first).

use proptest::prelude::*;

use dataflare::workflow::{LoadOptions, Workflow};

const ORDERS: &str =
    "id,user,category,amount,qty,note\n1,ana,books,120.5,2,gift\n2,bo,toys,80,1,\n";
const USERS: &str = "user,region\nana,eu\n";

const BASE: &str = r#"name: fuzz
sources:
  orders: { type: csv, path: orders.csv, schema: { amount: float, qty: int } }
  users: { type: csv, path: users.csv }
transforms:
  big: { inputs: [orders], type: filter, expr: "amount > 100.0 && category in ['books']" }
  totals: { inputs: [big], type: derive, columns: { total: "amount * double(qty)" }, select: [id, user, total] }
  split: { inputs: [orders], type: route, routes: { hi: "amount > 90.0", lo: "amount <= 90.0" } }
  region: { inputs: [split.hi], type: lookup, table: users, on: user }
  by: { inputs: [split.lo, big], type: aggregate, key: [category], aggregates: { n: count, s: "sum(amount)" } }
  once: { inputs: [totals], type: dedup, key: [user] }
sinks:
  out: { inputs: [once], type: csv, path: out/totals.csv }
  cats: { inputs: [by], type: jsonl, path: out/cats.jsonl }
  reg: { inputs: [region], type: csv, path: out/region.csv }
on_error: skip
"#;

/// Words a mangled file may get in place of another: node names, types,
/// keys, columns, values.
const WORDS: &[&str] = &[
    "orders",
    "users",
    "big",
    "totals",
    "split",
    "split.hi",
    "split.lo",
    "split._unmatched",
    "region",
    "by",
    "once",
    "out",
    "filter",
    "derive",
    "route",
    "lookup",
    "aggregate",
    "dedup",
    "window",
    "select",
    "drop",
    "rename",
    "cast",
    "fill_null",
    "csv",
    "jsonl",
    "inputs",
    "type",
    "key",
    "table",
    "on",
    "amount",
    "qty",
    "user",
    "category",
    "[]",
    "{}",
    "0",
    "-1",
    "\"\"",
    "tee",
    "merge",
    ":",
    "- x",
    "${X}",
    "$${",
    "'",
    "\"",
    "[",
    "{",
];

fn mangle(base: &str, edits: &[(usize, usize, usize)]) -> String {
    let mut text = base.to_string();
    for &(at, len, word) in edits {
        let start = at % (text.len() + 1);
        let start = (0..=start)
            .rev()
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        let end = (start + len % 12).min(text.len());
        let end = (end..=text.len())
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(text.len());
        text.replace_range(start..end, WORDS[word % WORDS.len()]);
    }
    text
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn a_mangled_file_is_refused_or_builds(edits in prop::collection::vec((0usize..2000, 0usize..12, 0usize..64), 1..4)) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("orders.csv"), ORDERS).unwrap();
        std::fs::write(dir.path().join("users.csv"), USERS).unwrap();
        let file = dir.path().join("flow.yaml");
        let text = mangle(BASE, &edits);
        std::fs::write(&file, &text).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let loaded = runtime.block_on(Workflow::load(&file, &LoadOptions { env: Some(Default::default()), ..LoadOptions::default() }));
        match loaded {
            Ok(workflow) => {
                let _ = workflow.describe(dataflare::graph::Format::Dot);
                let graph = workflow.into_graph();
                prop_assert!(graph.is_ok(), "{text}");
            }
            Err(problems) => {
                prop_assert!(!problems.is_empty());
                // Every problem has a position in the file, or none (the file as a whole).
                for p in problems.iter() {
                    if let Some(pos) = p.pos() {
                        prop_assert!(pos.line as usize <= text.lines().count() + 1, "{p}\n{text}");
                    }
                }
            }
        }
    }
}

#[test]
fn the_base_file_loads() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("orders.csv"), ORDERS).unwrap();
    std::fs::write(dir.path().join("users.csv"), USERS).unwrap();
    let file = dir.path().join("flow.yaml");
    std::fs::write(&file, BASE).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let workflow = runtime
        .block_on(Workflow::load(&file, &LoadOptions::default()))
        .unwrap_or_else(|d| panic!("{d}"));
    assert!(workflow.into_graph().is_ok());
}
