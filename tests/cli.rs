//! The `dataflare` binary, run as a user would.

use std::process::Command;

fn dataflare(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dataflare"))
        .args(args)
        .output()
        .expect("the dataflare binary runs")
}

#[test]
fn converts_csv_to_json_lines_with_typed_columns() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    std::fs::write(&input, "id,name,score\n1,ada,9.5\n2,\"bo, jr\",7\n").unwrap();
    let output = dir.path().join("out.jsonl");
    let out = dataflare(&[
        "convert",
        input.to_str().unwrap(),
        output.to_str().unwrap(),
        "--infer-schema",
        "10",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&output).unwrap(),
        "{\"id\":1,\"name\":\"ada\",\"score\":9.5}\n{\"id\":2,\"name\":\"bo, jr\",\"score\":7.0}\n"
    );
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(report.starts_with("completed in"), "{report}");
}

#[test]
fn a_bad_row_fails_the_run_with_its_position_and_leaves_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    std::fs::write(&input, "id,amount\n1,2.5\n2,ab\"c\n").unwrap();
    let output = dir.path().join("out.csv");
    let out = dataflare(&["convert", input.to_str().unwrap(), output.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in.csv: record 2 (line 3, byte 20)"), "{err}");
    assert!(!output.exists(), "a failed run leaves no output file");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temporary file left"
    );
}

#[test]
fn rejects_go_to_a_file_and_the_rest_completes() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.tsv");
    std::fs::write(&input, "id\tamount\n1\t2.5\n2\tn/a\n3\t4\n").unwrap();
    let output = dir.path().join("out.csv");
    let rejects = dir.path().join("rejects.jsonl");
    let out = dataflare(&[
        "convert",
        input.to_str().unwrap(),
        output.to_str().unwrap(),
        "--infer-schema",
        "1",
        "--rejects",
        rejects.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&output).unwrap(),
        "id,amount\n1,2.5\n3,4\n"
    );
    let rejects = std::fs::read_to_string(&rejects).unwrap();
    assert_eq!(rejects.lines().count(), 1);
    assert!(
        rejects.contains("\"line\":3") && rejects.contains("\"field\":\"amount\""),
        "{rejects}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("completed with errors"));
}

#[test]
fn usage_mistakes_exit_with_2() {
    let out = dataflare(&["convert", "only-one.csv"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage: dataflare convert"));
    let out = dataflare(&["convert", "missing.csv", "out.csv"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.csv"));
}
