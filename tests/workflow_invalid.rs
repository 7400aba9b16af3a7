//! Broken workflow files: each problem reported with its exact message and
//! `line:col`, all of them at once, before anything is read or written.

use std::collections::HashMap;
use std::path::PathBuf;

use dataflare::workflow::{Diagnostics, LoadOptions, Workflow};

const ORDERS: &str = "id,user,category,amount,qty\n1,ana,books,120.5,2\n2,bo,toys,80,1\n";

/// Writes `yaml` as `flow.yaml` beside an `orders.csv`, loads it, and gives
/// every problem as `"line:col message"`.
fn problems(yaml: &str) -> Vec<String> {
    problems_with(yaml, HashMap::new())
}

fn problems_with(yaml: &str, env: HashMap<String, String>) -> Vec<String> {
    let (dir, diagnostics) = load(yaml, env);
    let list = diagnostics
        .iter()
        .map(|d| match d.pos() {
            Some(pos) => format!("{pos} {}", d.message()),
            None => d.message().to_string(),
        })
        .collect();
    // Nothing was written next to the inputs.
    let mut files: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, ["flow.yaml", "orders.csv"]);
    list
}

fn load(yaml: &str, env: HashMap<String, String>) -> (tempfile::TempDir, Diagnostics) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("orders.csv"), ORDERS).unwrap();
    let file: PathBuf = dir.path().join("flow.yaml");
    std::fs::write(&file, yaml).unwrap();
    let options = LoadOptions {
        env: Some(env),
        ..LoadOptions::default()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let diagnostics = match runtime.block_on(Workflow::load(&file, &options)) {
        Ok(_) => panic!("the workflow should be refused:\n{yaml}"),
        Err(d) => d,
    };
    (dir, diagnostics)
}

fn help(yaml: &str) -> Vec<Option<String>> {
    let (_dir, d) = load(yaml, HashMap::new());
    d.iter()
        .map(|d| d.help_text().map(str::to_string))
        .collect()
}

const SOURCE: &str =
    "sources:\n  orders: { type: csv, path: orders.csv, schema: { amount: float, qty: int } }\n";

#[test]
fn unknown_top_level_key_suggests_the_closest() {
    let yaml = format!("{SOURCE}sinkz:\n  out: {{ inputs: [orders], type: csv, path: out.csv }}\n");
    assert_eq!(
        problems(&yaml),
        [
            "1:1 the workflow has no `sinks`",
            "3:1 unknown key `sinkz` in the workflow"
        ]
    );
    assert_eq!(help(&yaml)[1].as_deref(), Some("did you mean `sinks`?"));
}

#[test]
fn unknown_key_in_a_node() {
    let yaml = format!("{SOURCE}sinks:\n  out: {{ inptus: [orders], type: csv, path: out.csv }}\n");
    let got = problems(&yaml);
    assert_eq!(
        got,
        [
            "4:8 sink `out` needs `inputs`",
            "4:10 unknown key `inptus` in sink `out`"
        ]
    );
    assert_eq!(help(&yaml)[1].as_deref(), Some("did you mean `inputs`?"));
}

#[test]
fn wrong_type_of_a_value() {
    let yaml = format!(
        "{SOURCE}sinks:\n  out: {{ inputs: [orders], type: csv, path: out.csv }}\nmax_errors: lots\n"
    );
    assert_eq!(
        problems(&yaml),
        ["5:13 `max_errors` should be a whole number ≥ 0, found \"lots\""]
    );
    let yaml = format!("{SOURCE}sinks:\n  out: {{ inputs: 5, type: csv, path: out.csv }}\n");
    assert_eq!(
        problems(&yaml),
        ["4:18 `inputs` should be a list of names, found an integer"]
    );
}

#[test]
fn unknown_node_type() {
    let yaml = format!(
        "{SOURCE}transforms:\n  big: {{ inputs: [orders], type: filtr, expr: \"amount > 1.0\" }}\nsinks:\n  out: {{ inputs: [big], type: csv, path: out.csv }}\n"
    );
    assert_eq!(problems(&yaml), ["4:34 unknown transform type `filtr`"]);
    assert_eq!(help(&yaml)[0].as_deref(), Some("did you mean `filter`?"));
}

#[test]
fn unknown_input() {
    let yaml = format!("{SOURCE}sinks:\n  out: {{ inputs: [ordrs], type: csv, path: out.csv }}\n");
    assert_eq!(problems(&yaml), ["4:19 unknown input `ordrs`"]);
    assert_eq!(help(&yaml)[0].as_deref(), Some("did you mean `orders`?"));
}

#[test]
fn a_cycle_is_named() {
    let yaml = format!(
        "{SOURCE}transforms:\n  a: {{ inputs: [orders, b], type: select, columns: [id] }}\n  b: {{ inputs: [a], type: select, columns: [id] }}\nsinks:\n  out: {{ inputs: [b], type: csv, path: out.csv }}\n"
    );
    assert_eq!(problems(&yaml), ["4:3 a cycle: a → b → a"]);
}

#[test]
fn unset_variable_without_default() {
    let yaml = "sources:\n  orders: { type: csv, path: \"${IN_DIR}/orders.csv\" }\nsinks:\n  out: { inputs: [orders], type: csv, path: out.csv }\n";
    assert_eq!(problems(yaml), ["2:31 $IN_DIR is not set"]);
    assert_eq!(
        help(yaml)[0].as_deref(),
        Some("set it in the environment, or give a default: `${IN_DIR:-default}`")
    );
}

#[test]
fn unset_variable_with_a_message() {
    let yaml = "sources:\n  orders: { type: csv, path: \"${IN_DIR:?the input directory}/orders.csv\" }\nsinks:\n  out: { inputs: [orders], type: csv, path: out.csv }\n";
    assert_eq!(
        problems(yaml),
        ["2:31 $IN_DIR is not set: the input directory"]
    );
}

#[test]
fn output_equal_to_input() {
    let yaml =
        format!("{SOURCE}sinks:\n  out: {{ inputs: [orders], type: csv, path: ./orders.csv }}\n");
    let got = problems(&yaml);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with("4:45 sink `out` would overwrite `"),
        "{got:?}"
    );
    assert!(
        got[0].ends_with("orders.csv`, the input of source `orders`"),
        "{got:?}"
    );
}

#[test]
fn unused_output() {
    let yaml = format!(
        "{SOURCE}transforms:\n  big: {{ inputs: [orders], type: select, columns: [id] }}\nsinks:\n  out: {{ inputs: [orders], type: csv, path: out.csv }}\n"
    );
    assert_eq!(problems(&yaml), ["4:3 the output of `big` is never used"]);
}

#[test]
fn a_key_given_twice() {
    let yaml = format!(
        "{SOURCE}sinks:\n  out: {{ inputs: [orders], type: csv, path: out.csv }}\nsinks:\n  other: {{ inputs: [orders], type: csv, path: o.csv }}\n"
    );
    assert_eq!(problems(&yaml), ["5:1 `sinks` is given twice; keep one"]);
}

#[test]
fn yaml_syntax_error() {
    let yaml = format!("{SOURCE}sinks:\n  out: {{ inputs: [orders, type: csv, path: out.csv }}\n");
    let got = problems(&yaml);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].starts_with("4:"), "{got:?}");
}

#[test]
fn unknown_column_in_a_select() {
    let yaml = format!(
        "{SOURCE}transforms:\n  pick: {{ inputs: [orders], type: select, columns: [id, usr] }}\nsinks:\n  out: {{ inputs: [pick], type: csv, path: out.csv }}\n"
    );
    assert_eq!(problems(&yaml), ["4:57 unknown column `usr` in `pick`"]);
    assert_eq!(help(&yaml)[0].as_deref(), Some("did you mean `user`?"));
}

#[test]
fn schema_column_missing_from_the_header() {
    let yaml = "sources:\n  orders: { type: csv, path: orders.csv, schema: { amount: float, qtty: int } }\nsinks:\n  out: { inputs: [orders], type: csv, path: out.csv }\n";
    let got = problems(yaml);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with("2:67 unknown column `qtty` in `orders`'s header"),
        "{got:?}"
    );
    assert_eq!(help(yaml)[0].as_deref(), Some("did you mean `qty`?"));
}

#[test]
fn unknown_type_in_a_schema() {
    let yaml = "sources:\n  orders: { type: csv, path: orders.csv, schema: { amount: money } }\nsinks:\n  out: { inputs: [orders], type: csv, path: out.csv }\n";
    assert_eq!(
        problems(yaml),
        ["2:60 unknown type `money` for column `amount`"]
    );
}

#[test]
fn missing_path_and_missing_file() {
    let yaml = "sources:\n  orders: { type: csv }\nsinks:\n  out: { inputs: [orders], type: csv, path: out.csv }\n";
    assert_eq!(problems(yaml), ["2:11 source `orders` needs `path`"]);
    let yaml = "sources:\n  orders: { type: csv, path: nope.csv }\nsinks:\n  out: { inputs: [orders], type: csv, path: out.csv }\n";
    let got = problems(yaml);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with("2:30 cannot read the CSV header: "),
        "{got:?}"
    );
    assert!(got[0].contains("nope.csv"), "{got:?}");
}

#[test]
fn reading_from_a_sink_or_a_route_without_its_output() {
    let yaml = format!(
        "{SOURCE}transforms:\n  split: {{ inputs: [orders], type: route, routes: {{ big: \"amount > 100.0\" }} }}\nsinks:\n  out: {{ inputs: [split], type: csv, path: out.csv }}\n  again: {{ inputs: [out], type: csv, path: again.csv }}\n"
    );
    assert_eq!(
        problems(&yaml),
        [
            "6:19 `split` is a route: read one of its outputs",
            "7:21 `out` is a sink: nothing reads from a sink"
        ]
    );
    let yaml = format!(
        "{SOURCE}transforms:\n  split: {{ inputs: [orders], type: route, routes: {{ big: \"amount > 100.0\" }} }}\nsinks:\n  out: {{ inputs: [split.bigg], type: csv, path: out.csv }}\n"
    );
    assert_eq!(problems(&yaml), ["6:19 route `split` has no output `bigg`"]);
}

#[test]
fn dead_letter_without_a_path() {
    let yaml = format!(
        "{SOURCE}sinks:\n  out: {{ inputs: [orders], type: csv, path: out.csv }}\non_error: dead_letter\n"
    );
    assert_eq!(problems(&yaml), ["5:11 `dead_letter` needs a `path`"]);
}

#[test]
fn every_problem_at_once_in_file_order() {
    let yaml = "sources:\n  orders: { type: csv, path: orders.csv, delimter: \";\" }\ntransforms:\n  big: { inputs: [orders], type: frobnicate }\nsinks:\n  out: { inputs: [orders], type: parquet, path: out.pq }\nmax_errors: -1\n";
    assert_eq!(
        problems(yaml),
        [
            "2:42 unknown key `delimter` in source `orders`",
            "4:34 unknown transform type `frobnicate`",
            "6:34 unknown sink type `parquet`",
            "7:13 `max_errors` should be a whole number ≥ 0, found -1",
        ]
    );
}

#[test]
fn rendered_with_the_line_and_a_caret() {
    let yaml = format!("{SOURCE}sinks:\n  out: {{ inputs: [ordrs], type: csv, path: out.csv }}\n");
    let (_dir, d) = load(&yaml, HashMap::new());
    let text = d.to_string();
    let file_line = text.lines().next().unwrap();
    assert!(
        file_line.ends_with("flow.yaml:4:19: error: unknown input `ordrs`"),
        "{text}"
    );
    assert!(text.contains("4 |   out: { inputs: [ordrs], type: csv, path: out.csv }\n  |                   ^^^^^\n"), "{text}");
    assert!(text.contains("= help: did you mean `orders`?"), "{text}");
    assert!(text.ends_with("1 error"), "{text}");
}

#[test]
fn unknown_column_in_an_expression_points_into_the_string() {
    let yaml = format!(
        "{SOURCE}transforms:\n  big: {{ inputs: [orders], type: filter, expr: \"amount > 100.0 && categry == 'books'\" }}\nsinks:\n  out: {{ inputs: [big], type: csv, path: out.csv }}\n"
    );
    let got = problems(&yaml);
    assert_eq!(got.len(), 1, "{got:?}");
    let col = "  big: { inputs: [orders], type: filter, expr: \"amount > 100.0 && "
        .chars()
        .count()
        + 1;
    assert!(got[0].starts_with(&format!("4:{col} ")), "{got:?}");
    assert!(got[0].contains("categry"), "{got:?}");
    assert_eq!(help(&yaml)[0].as_deref(), Some("did you mean `category`?"));
}

#[test]
fn expression_syntax_error() {
    let yaml = format!(
        "{SOURCE}transforms:\n  big: {{ inputs: [orders], type: filter, expr: \"amount > \" }}\nsinks:\n  out: {{ inputs: [big], type: csv, path: out.csv }}\n"
    );
    let got = problems(&yaml);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].starts_with("4:"), "{got:?}");
}

#[test]
fn a_filter_that_is_not_a_test() {
    let yaml = format!(
        "{SOURCE}transforms:\n  big: {{ inputs: [orders], type: filter, expr: \"amount * 2.0\" }}\nsinks:\n  out: {{ inputs: [big], type: csv, path: out.csv }}\n"
    );
    assert_eq!(
        problems(&yaml),
        ["4:49 a filter must give a bool, and this gives double"]
    );
}

#[test]
fn a_text_column_compared_with_a_number() {
    // Without a schema every CSV column is text: the comparison cannot work.
    let yaml = "sources:\n  orders: { type: csv, path: orders.csv }\ntransforms:\n  big: { inputs: [orders], type: filter, expr: \"amount > 100.0\" }\nsinks:\n  out: { inputs: [big], type: csv, path: out.csv }\n";
    assert_eq!(problems(yaml), ["4:49 no such overload: string > double"]);
    let help = help(yaml)[0].clone().unwrap();
    assert!(help.contains("schema"), "{help}");
}

#[test]
fn aggregates_and_windows_check_their_columns() {
    let yaml = format!(
        "{SOURCE}transforms:\n  by: {{ inputs: [orders], type: aggregate, key: [category], aggregates: {{ n: count, r: \"total(amount)\", s: \"sum(user)\" }} }}\nsinks:\n  out: {{ inputs: [by], type: csv, path: out.csv }}\n"
    );
    assert_eq!(
        problems(&yaml),
        [
            "4:88 unknown aggregate `total`",
            "4:108 `sum(user)`: `user` is string, not a number"
        ]
    );
    let yaml = format!(
        "{SOURCE}transforms:\n  w: {{ inputs: [orders], type: window, key: [category], time: id, size: 1h, aggregates: {{ n: count }} }}\nsinks:\n  out: {{ inputs: [w], type: csv, path: out.csv }}\n"
    );
    assert_eq!(problems(&yaml), ["4:63 `id` is string, not a timestamp"]);
}

#[test]
fn on_error_where_nothing_can_fail() {
    let yaml = format!(
        "{SOURCE}transforms:\n  pick: {{ inputs: [orders], type: select, columns: [id], on_error: skip }}\nsinks:\n  out: {{ inputs: [pick], type: csv, path: out.csv }}\n"
    );
    assert_eq!(
        problems(&yaml),
        ["4:58 `on_error` has no effect on transform `pick`: it cannot fail"]
    );
}

#[test]
fn a_source_that_is_not_a_regular_file() {
    let yaml = "sources:\n  orders: { type: csv, path: . }\nsinks:\n  out: { inputs: [orders], type: csv, path: out.csv }\n";
    let got = problems(yaml);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with("2:30 `") && got[0].ends_with("` is not a regular file"),
        "{got:?}"
    );
}

#[test]
fn key_problems_and_column_problems_are_reported_together() {
    // An unknown key does not hide an unknown column in an expression, nor a
    // bad node type an unknown input elsewhere; an unset variable in a path
    // is reported once, not again as an unreadable file.
    let yaml = "sources:\n  orders: { type: csv, path: orders.csv, schema: { amount: float }, colour: red }\n  other: { type: csv, path: \"${NOPE}/x.csv\" }\ntransforms:\n  big: { inputs: [orders], type: filter, expr: \"amont > 1.0\" }\n  bad: { inputs: [other], type: nope }\nsinks:\n  out: { inputs: [big, bgi], type: csv, path: out.csv }\n";
    assert_eq!(
        problems(yaml),
        [
            "2:69 unknown key `colour` in source `orders`",
            "3:30 $NOPE is not set",
            "5:49 no column `amont`",
            "6:33 unknown transform type `nope`",
            "8:24 unknown input `bgi`",
        ]
    );
}

#[test]
fn a_lookup_whose_table_and_input_share_a_source() {
    // The lookup reads its table to the end first; fed by one tee, the input
    // would wait for ever: refused before the run, not a hang or a panic.
    let yaml = format!(
        "{SOURCE}transforms:\n  firsts: {{ inputs: [orders], type: dedup, key: [user] }}\n  joined: {{ inputs: [orders], type: lookup, table: firsts, on: user, prefix: f_ }}\nsinks:\n  out: {{ inputs: [joined], type: csv, path: out.csv }}\n"
    );
    let got = problems(&yaml);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with(
            "5:52 the table `firsts` and the input of `joined` both come from `orders`"
        ),
        "{got:?}"
    );
}

#[test]
fn options_that_would_make_no_sense_at_run_time() {
    let yaml = format!(
        "{SOURCE}transforms:\n  by: {{ inputs: [orders], type: aggregate, key: [], aggregates: {{ n: count }}, max_keys: 0 }}\n  w: {{ inputs: [orders], type: window, key: [category], time: id, size: 1m, slide: 1h, aggregates: {{ n: count }} }}\nsinks:\n  out: {{ inputs: [by], type: csv, path: out.csv }}\n  out2: {{ inputs: [w], type: csv, path: out2.csv }}\nmax_in_flight_bytes: 0\n"
    );
    assert_eq!(
        problems(&yaml),
        [
            "4:49 `key` names no column",
            "4:89 `max_keys` should be 1 at least",
            "5:63 `id` is string, not a timestamp",
            "5:84 `slide` is longer than `size`: records between windows would be in none",
            "9:22 `max_in_flight_bytes` should be 1 at least",
        ]
    );
}
