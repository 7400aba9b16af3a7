//! `dataflare run`, `validate` and `graph` on workflow files that load: the
//! end-to-end path from a YAML file to its output, through the binary as a
//! user runs it. These need the workflow library (`dataflare::workflow`)
//! to load and run files; `cli_workflow.rs` has the parts that do not.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use support::{stderr_of as stderr, stdout_of as stdout};

/// The workflow of the module docs: orders over 100 in two categories, with
/// a derived total, written as CSV (paths relative to the file).
const WORKFLOW: &str = r#"name: orders-daily
sources:
  orders: { type: csv, path: orders.csv, schema: { amount: float, qty: int } }
transforms:
  big:    { inputs: [orders], type: filter, expr: "amount > 100.0 && category in ['books', 'garden']" }
  totals: { inputs: [big], type: derive, columns: { total: "amount * double(qty)" }, select: [id, user, category, total] }
sinks:
  out:    { inputs: [totals], type: csv, path: out/totals.csv }
"#;

/// Orders: 1 and 4 pass the filter; 2 is too small, 3 in another category.
const ORDERS: &str = "\
id,user,category,amount,qty
1,ada,books,120.25,2
2,bo,garden,99.5,1
3,cy,toys,500.0,1
4,di,garden,150.75,3
";

/// The output: the orders that passed, with their totals.
const TOTALS: &str = "\
id,user,category,total
1,ada,books,240.5
4,di,garden,452.25
";

/// A directory holding `orders-daily.yaml` and `orders.csv`.
fn workflow_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("orders-daily.yaml");
    std::fs::write(&file, WORKFLOW).unwrap();
    std::fs::write(dir.path().join("orders.csv"), ORDERS).unwrap();
    (dir, file)
}

/// `dataflare ARGS...`, run from `cwd` (not the workflow's directory, to
/// show that its relative paths are the file's).
fn dataflare(cwd: &Path, args: &[&str]) -> Output {
    support::run_binary(env!("CARGO_BIN_EXE_dataflare"), Some(cwd), args)
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn run_writes_the_output_relative_to_the_workflow_file() {
    let (dir, file) = workflow_dir();
    let elsewhere = tempfile::tempdir().unwrap();
    let out = dataflare(elsewhere.path(), &["run", path(&file)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out/totals.csv")).unwrap(),
        TOTALS
    );
    // Nothing written where it was run from, nothing on stdout.
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    // The report on stderr.
    assert!(stderr(&out).starts_with("completed in"), "{}", stderr(&out));
}

#[test]
fn run_json_reports_a_completed_run() {
    let (dir, file) = workflow_dir();
    let out = dataflare(dir.path(), &["run", path(&file), "--json", "--quiet"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["status"], "completed");
    assert!(report["stages"].as_array().is_some_and(|s| !s.is_empty()));
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out/totals.csv")).unwrap(),
        TOTALS
    );
}

#[test]
fn run_strict_exits_0_when_nothing_was_put_aside() {
    let (dir, file) = workflow_dir();
    let out = dataflare(dir.path(), &["run", path(&file), "--strict", "-q"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn set_overrides_a_value_of_the_file() {
    let (dir, file) = workflow_dir();
    std::fs::write(
        dir.path().join("other.csv"),
        "id,user,category,amount,qty\n9,ed,books,200.5,1\n",
    )
    .unwrap();
    let out = dataflare(
        dir.path(),
        &["run", path(&file), "--set", "sources.orders.path=other.csv"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out/totals.csv")).unwrap(),
        "id,user,category,total\n9,ed,books,200.5\n"
    );
}

#[test]
fn validate_says_ok_and_writes_nothing() {
    let (dir, file) = workflow_dir();
    let out = dataflare(dir.path(), &["validate", path(&file)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!("{}: ok (orders-daily)\n", file.display())
    );
    assert!(!dir.path().join("out").exists());
}

#[test]
fn graph_prints_mermaid_by_default_and_dot_when_asked() {
    let (dir, file) = workflow_dir();
    let out = dataflare(dir.path(), &["graph", path(&file), "--format", "dot"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let dot = stdout(&out);
    assert!(dot.starts_with("digraph"), "{dot}");
    for node in ["orders", "big", "totals", "out"] {
        assert!(dot.contains(node), "{node}: {dot}");
    }
    let out = dataflare(dir.path(), &["graph", path(&file)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("flowchart"), "{}", stdout(&out));
    assert!(!dir.path().join("out").exists());
}

#[test]
fn an_invalid_workflow_is_told_with_its_line_and_nothing_runs() {
    let (dir, file) = workflow_dir();
    // Line 6 (`totals`) names an input that does not exist.
    let text = WORKFLOW.replace("inputs: [big]", "inputs: [bgi]");
    std::fs::write(&file, text).unwrap();
    for args in [
        &["run", path(&file), "--json"][..],
        &["validate", path(&file)],
        &["graph", path(&file)],
    ] {
        let sub = args[0];
        let out = dataflare(dir.path(), args);
        assert_eq!(out.status.code(), Some(78), "{sub}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains(&format!("{}:6:", file.display())),
            "{sub}: {err}"
        );
        assert!(err.contains("error"), "{sub}: {err}");
        assert!(stdout(&out).is_empty(), "{sub}: {}", stdout(&out));
    }
    assert!(!dir.path().join("out").exists());
}
