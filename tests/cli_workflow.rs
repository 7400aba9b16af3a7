//! The `dataflare` binary's workflow subcommands (`run`, `validate`, `graph`,
//! `completions`) and the `--json` / `--strict` reporting they share with
//! `convert`, run as a user would: the parts that hold whatever the workflow
//! library accepts (help, usage errors, unreadable or invalid files).
//! Workflows that load and run are in `cli_workflow_run.rs`.

mod support;

use std::path::Path;
use std::process::Output;

use support::{stderr_of as stderr, stdout_of as stdout};

/// `dataflare ARGS...`.
fn dataflare(args: &[&str]) -> Output {
    support::run_binary(env!("CARGO_BIN_EXE_dataflare"), None, args)
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn every_subcommand_help_shows_examples_and_the_exit_codes() {
    for sub in ["run", "validate", "graph", "convert", "completions"] {
        let out = dataflare(&[sub, "--help"]);
        assert_eq!(out.status.code(), Some(0), "{sub}: {}", stderr(&out));
        let help = stdout(&out);
        assert!(help.contains("Examples:"), "{sub}: {help}");
        assert!(
            help.contains(&format!("  dataflare {sub} ")),
            "{sub}: {help}"
        );
        assert!(help.contains("Exit status:"), "{sub}: {help}");
        for code in [
            "\n  0 ", "\n  1 ", "\n  2 ", "\n  3 ", "\n  78 ", "\n  130 ",
        ] {
            assert!(help.contains(code), "{sub}: no {code:?} in {help}");
        }
        assert!(help.contains("with --strict"), "{sub}: {help}");
        assert!(help.contains("invalid workflow file"), "{sub}: {help}");
    }
    let help = stdout(&dataflare(&["--help"]));
    for sub in ["convert", "run", "validate", "graph", "completions"] {
        assert!(help.contains(sub), "{help}");
    }
    assert!(help.contains("\n  78 "), "{help}");
}

#[test]
fn run_help_lists_its_options() {
    let help = stdout(&dataflare(&["run", "--help"]));
    for flag in ["--set", "--json", "--strict", "--progress", "--quiet"] {
        assert!(help.contains(flag), "{flag}: {help}");
    }
    let help = stdout(&dataflare(&["graph", "--help"]));
    assert!(help.contains("mermaid") && help.contains("dot"), "{help}");
}

#[test]
fn completions_are_generated_for_every_shell() {
    let out = dataflare(&["completions", "bash"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let script = stdout(&out);
    assert!(script.contains("dataflare"), "{script}");
    assert!(script.contains("validate"), "{script}");
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let out = dataflare(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}: {}", stderr(&out));
        assert!(stdout(&out).contains("dataflare"), "{shell}");
    }
    assert_eq!(dataflare(&["completions", "tcsh"]).status.code(), Some(2));
}

#[test]
fn a_set_without_an_equals_sign_is_a_usage_error() {
    for sub in ["run", "validate", "graph"] {
        let out = dataflare(&[sub, "workflow.yaml", "--set", "sources.orders.path"]);
        assert_eq!(out.status.code(), Some(2), "{sub}: {}", stderr(&out));
        assert!(stderr(&out).contains("KEY.PATH=VALUE"), "{}", stderr(&out));
        assert!(stdout(&out).is_empty());
    }
    let out = dataflare(&["run", "workflow.yaml", "--set", "=value"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn a_missing_workflow_file_is_invalid_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-workflow.yaml");
    for sub in ["run", "validate", "graph"] {
        let out = dataflare(&[sub, path(&missing)]);
        assert_eq!(out.status.code(), Some(78), "{sub}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(path(&missing)),
            "{sub}: {}",
            stderr(&out)
        );
        assert!(stdout(&out).is_empty(), "{sub}: {}", stdout(&out));
    }
    // Nothing was written beside it.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn run_json_on_an_invalid_file_prints_nothing_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.yaml");
    std::fs::write(&file, "name: [unclosed\nsources: {\n").unwrap();
    let out = dataflare(&["run", path(&file), "--json"]);
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains("broken.yaml"), "{err}");
    assert!(err.contains("error"), "{err}");
}

/// A CSV file with one malformed row (`ab"c`) among good ones.
fn bad_row_input(dir: &Path) -> std::path::PathBuf {
    let input = dir.join("in.csv");
    std::fs::write(&input, "id,amount\n1,2.5\n2,ab\"c\n3,4\n").unwrap();
    input
}

#[test]
fn convert_strict_exits_3_when_rows_were_put_aside() {
    let dir = tempfile::tempdir().unwrap();
    let input = bad_row_input(dir.path());
    let output = dir.path().join("out.csv");
    let args = ["convert", path(&input), path(&output), "--skip-bad-rows"];

    let out = dataflare(&args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let out = dataflare(&[&args[..], &["--strict"]].concat());
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("1 skipped"), "{err}");
    assert!(err.contains("--strict"), "{err}");
    // Completed: the output is written all the same.
    assert_eq!(
        std::fs::read_to_string(&output).unwrap(),
        "id,amount\n1,2.5\n3,4\n"
    );

    // Dead-lettered rows are put aside too.
    let rejects = dir.path().join("rejects.jsonl");
    let out = dataflare(&[
        "convert",
        path(&input),
        path(&output),
        "--rejects",
        path(&rejects),
        "--strict",
        "--quiet",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("1 record put aside"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn convert_strict_exits_0_when_nothing_was_put_aside() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    std::fs::write(&input, "id,amount\n1,2.5\n").unwrap();
    let output = dir.path().join("out.jsonl");
    let out = dataflare(&["convert", path(&input), path(&output), "--strict"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // A failed run is still 1 with --strict.
    let input = bad_row_input(dir.path());
    let out = dataflare(&["convert", path(&input), path(&output), "--strict"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}

#[test]
fn convert_json_prints_the_report_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    std::fs::write(&input, "id,amount\n1,2.5\n2,4\n").unwrap();
    let output = dir.path().join("out.jsonl");
    let out = dataflare(&["convert", path(&input), path(&output), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("\"status\""), "{text}");
    let report: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(report["status"], "completed");
    assert_eq!(report["records_out"], 2);
    // The table still goes to stderr.
    assert!(stderr(&out).starts_with("completed in"), "{}", stderr(&out));

    // With --quiet: the JSON, and nothing on stderr.
    let out = dataflare(&["convert", path(&input), path(&output), "--json", "-q"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("\"status\": \"completed\""));
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));

    // A failed run's report says so, with its error.
    let input = bad_row_input(dir.path());
    let out = dataflare(&["convert", path(&input), path(&output), "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["status"], "failed");
    assert!(report["error"].as_str().unwrap().contains("in.csv"));
}

#[test]
fn convert_json_to_stdout_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    std::fs::write(&input, "id\n1\n").unwrap();
    let out = dataflare(&["convert", path(&input), "-", "--json"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--json"), "{}", stderr(&out));
    assert!(stdout(&out).is_empty());
}
