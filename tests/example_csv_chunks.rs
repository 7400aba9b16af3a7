//! `examples/csv_chunks.rs` run as a user runs it: on the shipped sample and on
//! a generated file of several chunks (quoted line breaks and commas, bad
//! amounts), against the job computed here with the `csv` crate.

mod support;

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

/// The big orders of `input` as the example writes them, and the lines of the
/// rows whose amount or quantity does not parse.
fn reference(input: &Path) -> (String, Vec<u64>) {
    let mut out = String::from("id,user,category,total\n");
    let mut bad = Vec::new();
    let mut reader = ::csv::Reader::from_path(input).unwrap();
    for r in reader.records() {
        let r = r.unwrap();
        let (Ok(amount), Ok(qty)) = (r[4].parse::<f64>(), r[5].parse::<u32>()) else {
            bad.push(r.position().unwrap().line());
            continue;
        };
        if amount > 100.0 && ["books", "garden", "toys", "music", "games"].contains(&&r[3]) {
            let total = amount * f64::from(qty);
            writeln!(out, "{},{},{},{total:.2}", &r[0], &r[2], &r[3]).unwrap();
        }
    }
    (out, bad)
}

fn run_example(input: &Path, output: &Path) -> String {
    let run = Command::new(support::example_binary("csv_chunks"))
        .arg(input)
        .arg(output)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    stdout
}

#[test]
fn the_shipped_sample_gives_the_big_orders_and_sets_the_bad_row_aside() {
    let input = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/orders.csv");
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("big.csv");
    let stdout = run_example(&input, &output);
    let (expected, bad) = reference(&input);
    assert_eq!(std::fs::read_to_string(&output).unwrap(), expected);
    assert_eq!(bad, vec![222]);
    // The same position the CSV source gives for that row.
    assert!(
        stdout.contains("line 222, byte 10671, field \"amount\""),
        "{stdout}"
    );
    assert!(stdout.contains("(1 rows set aside)"), "{stdout}");
}

#[test]
fn a_file_of_many_chunks_keeps_its_order_and_every_bad_row() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("orders.csv");
    let mut text = String::from("id,ts,user,category,amount,qty,note\n");
    let categories = ["books", "garden", "toys", "music", "games", "food", "tools"];
    for i in 0..60_000u32 {
        let amount = match i % 997 {
            0 => "n/a".to_string(),
            _ => format!("{}.{:02}", 50 + i % 400, i % 100),
        };
        let note = match i % 5 {
            0 => "\"two\nlines, and a comma\"",
            1 => "\"said \"\"hi\"\"\"",
            _ => "plain",
        };
        writeln!(
            text,
            "{i},2026-01-01T00:00:00Z,user{},{},{amount},{},{note}",
            i % 13,
            categories[i as usize % 7],
            1 + i % 5
        )
        .unwrap();
    }
    std::fs::write(&input, &text).unwrap();
    assert!(text.len() > 3 << 20, "several 1 MiB chunks");
    let output = dir.path().join("big.csv");
    let stdout = run_example(&input, &output);
    let (expected, bad) = reference(&input);
    assert_eq!(std::fs::read_to_string(&output).unwrap(), expected);
    assert_eq!(bad.len(), 61);
    assert!(
        stdout.contains(&format!("({} rows set aside)", bad.len())),
        "{stdout}"
    );
    for line in bad {
        assert!(
            stdout.contains(&format!("line {line}, ")),
            "{line}: {stdout}"
        );
    }
}
