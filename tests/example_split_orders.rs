//! `examples/split_orders.rs` run as a user runs it, on the shipped orders.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::entries;

fn example() -> PathBuf {
    support::example_binary("split_orders")
}

fn orders() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/orders.csv")
}

fn run(input: &Path, outdir: &Path) -> std::process::Output {
    Command::new(example())
        .arg(input)
        .arg(outdir)
        .output()
        .unwrap()
}

#[test]
fn one_file_per_category_an_audit_copy_and_the_rejects() {
    let dir = tempfile::tempdir().unwrap();
    let outdir = dir.path().join("out"); // created by the run
    let output = run(&orders(), &outdir);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("completed with errors"), "{stdout}");

    let input = std::fs::read_to_string(orders()).unwrap();
    let header = input.lines().next().unwrap();
    let mut rows: Vec<(String, u64)> = Vec::new(); // (category, id) of valid rows, in order
    let mut reader = ::csv::Reader::from_path(orders()).unwrap();
    for record in reader.records() {
        let record = record.unwrap();
        if record[4].parse::<f64>().is_ok() {
            rows.push((record[3].to_string(), record[0].parse().unwrap()));
        }
    }
    let mut categories: Vec<String> = rows.iter().map(|(c, _)| c.clone()).collect();
    categories.sort();
    categories.dedup();
    let mut expected: Vec<String> = categories.iter().map(|c| format!("{c}.csv")).collect();
    expected.extend(["audit.jsonl".to_string(), "rejects.jsonl".to_string()]);
    expected.sort();
    assert_eq!(entries(&outdir), expected);

    for category in &categories {
        let text = std::fs::read_to_string(outdir.join(format!("{category}.csv"))).unwrap();
        assert_eq!(text.lines().next(), Some(header));
        let mut file = ::csv::Reader::from_reader(text.as_bytes());
        let ids: Vec<u64> = file
            .records()
            .map(|r| r.unwrap()[0].parse().unwrap())
            .collect();
        let want: Vec<u64> = rows
            .iter()
            .filter(|(c, _)| c == category)
            .map(|(_, id)| *id)
            .collect();
        assert_eq!(ids, want, "{category}.csv: input order kept");
    }
    let audit = std::fs::read_to_string(outdir.join("audit.jsonl")).unwrap();
    assert_eq!(audit.lines().count(), rows.len());
    let rejects = std::fs::read_to_string(outdir.join("rejects.jsonl")).unwrap();
    assert_eq!(rejects.lines().count(), 1);
    let reject: serde_json::Value = serde_json::from_str(rejects.lines().next().unwrap()).unwrap();
    assert_eq!(reject["line"], 222);
    assert!(
        reject["record"].as_str().unwrap().contains("n/a"),
        "{reject}"
    );
}

#[test]
fn files_of_earlier_runs_are_left_alone_and_a_clean_input_gives_an_empty_rejects_file() {
    let dir = tempfile::tempdir().unwrap();
    let outdir = dir.path();
    std::fs::write(outdir.join("old.csv"), "kept\n").unwrap();
    let input = dir.path().join("in.csv");
    std::fs::write(
        &input,
        "id,ts,user,category,amount,qty,note\n1,t,ana,books,1.5,2,x\n2,t,bo,toys,3,1,\n",
    )
    .unwrap();
    let output = run(&input, outdir);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        entries(outdir),
        vec![
            "audit.jsonl",
            "books.csv",
            "in.csv",
            "old.csv",
            "rejects.jsonl",
            "toys.csv"
        ]
    );
    assert_eq!(
        std::fs::read_to_string(outdir.join("old.csv")).unwrap(),
        "kept\n"
    );
    assert_eq!(
        std::fs::read_to_string(outdir.join("rejects.jsonl")).unwrap(),
        ""
    );
}

#[test]
fn a_failure_leaves_none_of_the_runs_files() {
    let dir = tempfile::tempdir().unwrap();
    let outdir = dir.path().join("out");
    std::fs::create_dir(&outdir).unwrap();
    std::fs::write(outdir.join("books.csv"), "old books\n").unwrap();
    // A category that is no file name fails the run after other rows went
    // through every branch.
    let input = dir.path().join("in.csv");
    std::fs::write(
        &input,
        "id,ts,user,category,amount,qty,note\n1,t,ana,books,1.5,2,x\n2,t,bo,x,y,1,bad row\n3,t,bo,../up,3,1,\n",
    )
    .unwrap();
    let output = run(&input, &outdir);
    assert!(!output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("failed"), "{stdout}");
    assert!(stdout.contains("../up"), "{stdout}");
    // The rejects are committed with the run, so none were kept either.
    assert!(stdout.contains("nothing committed\n"), "{stdout}");
    assert_eq!(entries(&outdir), vec!["books.csv"]);
    assert_eq!(
        std::fs::read_to_string(outdir.join("books.csv")).unwrap(),
        "old books\n"
    );
    assert_eq!(entries(dir.path()), vec!["in.csv", "out"]);
}
