//! The `dataflare` binary, run as a user would.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

/// A scratch directory holding one input file, `name`, with `text`.
fn scratch(name: &str, text: impl AsRef<[u8]>) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join(name);
    std::fs::write(&input, text).unwrap();
    (dir, input)
}

/// `dataflare convert INPUT OUTPUT FLAGS...`, as a user types it.
fn convert(input: &Path, output: &Path, flags: &[&str]) -> std::process::Output {
    let mut args = vec!["convert", input.to_str().unwrap(), output.to_str().unwrap()];
    args.extend_from_slice(flags);
    dataflare(&args)
}

fn dataflare(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dataflare"))
        .args(args)
        .output()
        .expect("the dataflare binary runs")
}

/// Runs `dataflare` in `dir` with `input` on its stdin.
fn dataflare_with_stdin(dir: &Path, args: &[&str], input: &[u8]) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dataflare"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the dataflare binary runs");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    // Written from a thread: the child may fill its stdout before it has read
    // all of its stdin.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn converts_csv_to_json_lines_with_typed_columns() {
    let (dir, input) = scratch("in.csv", "id,name,score\n1,ada,9.5\n2,\"bo, jr\",7\n");
    let output = dir.path().join("out.jsonl");
    let out = convert(&input, &output, &["--infer-schema", "10"]);
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
    let (dir, input) = scratch("in.csv", "id,amount\n1,2.5\n2,ab\"c\n");
    let output = dir.path().join("out.csv");
    let out = convert(&input, &output, &[]);
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
    let (dir, input) = scratch("in.tsv", "id\tamount\n1\t2.5\n2\tn/a\n3\t4\n");
    let output = dir.path().join("out.csv");
    let rejects = dir.path().join("rejects.jsonl");
    let out = convert(
        &input,
        &output,
        &[
            "--infer-schema",
            "1",
            "--rejects",
            rejects.to_str().unwrap(),
        ],
    );
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
    assert!(String::from_utf8_lossy(&out.stderr).contains("Usage: dataflare convert"));
    let out = dataflare(&["convert", "a.xls", "out.csv"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("a.xls: unknown format") && err.contains("--from"),
        "{err}"
    );
    let out = dataflare(&["convert", "a.jsonl", "out.csv", "--no-header"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--no-header applies to CSV input"));
    let out = dataflare(&["convert", "missing.csv", "out.csv"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.csv"));
}

#[test]
fn version_and_equals_forms() {
    let out = dataflare(&["--version"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("dataflare {}", env!("CARGO_PKG_VERSION"))
    );
    let (dir, input) = scratch("in.txt", "id;n\n1;x\n2;y\n");
    let output = dir.path().join("out.data");
    let out = dataflare(&[
        "convert",
        "--from=csv",
        "--delimiter=;",
        "--infer-schema=5",
        "--to=jsonl",
        input.to_str().unwrap(),
        output.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(&output).unwrap(),
        "{\"id\":1,\"n\":\"x\"}\n{\"id\":2,\"n\":\"y\"}\n"
    );
}

#[test]
fn dash_is_stdin_and_stdout_in_the_format_named() {
    let dir = tempfile::tempdir().unwrap();
    // JSON Lines in on stdin, TSV out on stdout.
    let out = dataflare_with_stdin(
        dir.path(),
        &["convert", "-", "-", "--from", "jsonl", "--to", "tsv"],
        b"{\"a\":1,\"b\":\"x y\"}\n{\"a\":2,\"b\":null}\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a\tb\n1\tx y\n2\t\n");
    // `-` alone is CSV; --to names the output's format.
    let out = dataflare_with_stdin(
        dir.path(),
        &["convert", "-", "-", "--to", "jsonl"],
        b"a,b\n1,x\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "{\"a\":\"1\",\"b\":\"x\"}\n"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "stdout is not a file named `-`"
    );
}

#[test]
fn csv_reading_options_and_the_output_delimiter() {
    let dir = tempfile::tempdir().unwrap();
    let run = |input: &[u8], args: &[&str]| {
        let mut all = vec!["convert", "-", "-"];
        all.extend_from_slice(args);
        dataflare_with_stdin(dir.path(), &all, input)
    };
    // Ragged rows: an error, unless --flexible.
    let ragged = b"a,b\n1,2\n3\n";
    assert_eq!(run(ragged, &[]).status.code(), Some(1));
    let out = run(ragged, &["--flexible", "--to", "jsonl"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // A stray quote: an error, unless --lenient-quotes.
    let quoted = b"a,b\n1,x\"y\n";
    assert_eq!(run(quoted, &[]).status.code(), Some(1));
    let out = run(quoted, &["--lenient-quotes", "--out-delimiter", ";"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a;b\n1;\"x\"\"y\"\n");
    // Invalid UTF-8: an error, unless --lossy-utf8.
    let latin1 = b"a,b\n1,caf\xe9\n";
    assert_eq!(run(latin1, &[]).status.code(), Some(1));
    let out = run(latin1, &["--lossy-utf8", "--out-delimiter=tab"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "a\tb\n1\tcaf\u{fffd}\n"
    );
    // No header: columns are numbered.
    let out = run(b"1,2\n", &["--no-header", "--to", "jsonl"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "{\"col0\":\"1\",\"col1\":\"2\"}\n"
    );
}

#[test]
fn rejects_with_skip_bad_rows_are_kept_and_counted_as_dead_lettered() {
    let (dir, input) = scratch("in.csv", "id,amount\n1,2.5\n2,n/a\n3,4\n");
    let output = dir.path().join("out.jsonl");
    let rejects = dir.path().join("rejects.jsonl");
    let out = convert(
        &input,
        &output,
        &[
            "--infer-schema",
            "1",
            "--skip-bad-rows",
            "--rejects",
            rejects.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&output).unwrap().lines().count(), 2);
    let rejects = std::fs::read_to_string(&rejects).unwrap();
    assert_eq!(rejects.lines().count(), 1);
    assert!(rejects.contains("\"line\":3"), "{rejects}");
    let err = stderr(&out);
    assert!(err.contains("1 put aside (1 dead-lettered)"), "{err}");
}

#[test]
fn errors_on_stdin_and_stdout_name_them() {
    let dir = tempfile::tempdir().unwrap();
    let out = dataflare_with_stdin(
        dir.path(),
        &["convert", "-", "out.csv"],
        b"id,amount\n1,2.5\n2,ab\"c\n",
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("<stdin>: record 2 (line 3, byte 20)"), "{err}");
    // A device that is always full.
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let input = dir.path().join("in.csv");
    std::fs::write(&input, "a\n1\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dataflare"))
        .args(["convert", input.to_str().unwrap(), "-"])
        .stdout(full)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("stage \"sink\": <stdout>: ") && err.contains("I/O error"),
        "{err}"
    );
}

#[test]
fn a_closed_stdout_ends_quietly_with_status_0() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("big.csv");
    let mut text = String::from("id,name\n");
    for i in 0..200_000 {
        text.push_str(&format!("{i},name {i}\n"));
    }
    std::fs::write(&input, text).unwrap(); // 3 MB: more than a pipe holds
    for to in ["csv", "jsonl"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_dataflare"))
            .args(["convert", input.to_str().unwrap(), "-", "--to", to])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // `| head -1`: read one line, then close the pipe.
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(first.starts_with(if to == "csv" { "id,name" } else { "{\"id\"" }));
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "--to {to}: {err}");
        assert_eq!(err, "", "--to {to}: nothing on stderr, no panic");
    }
}

/// Feeds rows to a running `dataflare convert - -` whose stdin stays open (as
/// `tail -f in.csv | dataflare convert - -`), and reads the converted rows.
fn streams(to: &str, expected: &[&str]) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dataflare"))
        .args(["convert", "-", "-", "--to", to])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    stdin.write_all(b"id,name\n1,ada\n2,bo\n").unwrap();
    stdin.flush().unwrap();
    // The sync point is the read returning: the rows came out while stdin is
    // still open. The timeout only guards against a hang (it kills the child,
    // which ends the read).
    let pid = child.id();
    let (done, guard) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if guard
            .recv_timeout(std::time::Duration::from_secs(60))
            .is_err()
        {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    });
    let mut lines = Vec::new();
    for _ in expected {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        lines.push(line);
    }
    let _ = done.send(());
    watchdog.join().unwrap();
    assert_eq!(
        lines, expected,
        "rows came out while stdin was open (--to {to})"
    );
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

#[test]
fn csv_on_stdout_streams_while_stdin_is_open() {
    streams("csv", &["id,name\n", "1,ada\n", "2,bo\n"]);
}

#[test]
fn json_lines_on_stdout_stream_while_stdin_is_open() {
    streams(
        "jsonl",
        &[
            "{\"id\":\"1\",\"name\":\"ada\"}\n",
            "{\"id\":\"2\",\"name\":\"bo\"}\n",
        ],
    );
}

#[test]
fn a_failed_run_prints_its_report_then_the_error() {
    let (dir, input) = scratch("in.csv", "id,amount\n1,2.5\n2,ab\"c\n");
    let output = dir.path().join("out.csv");
    let out = convert(&input, &output, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.starts_with("failed"), "the report comes first: {err}");
    assert!(err.contains("records in"), "with its counts: {err}");
    let last = err.lines().last().unwrap();
    assert!(
        last.starts_with("dataflare: ") && last.contains("record 2 (line 3, byte 20)"),
        "then the error: {err}"
    );
}

#[test]
fn skipped_rows_are_named_in_the_report_and_the_run_exits_0() {
    let (dir, input) = scratch("in.csv", "id,amount\n1,2.5\n2,ab\"c\n3,4\n");
    let output = dir.path().join("out.csv");
    let out = convert(&input, &output, &["--skip-bad-rows"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(&output).unwrap(),
        "id,amount\n1,2.5\n3,4\n"
    );
    let err = stderr(&out);
    assert!(err.contains("1 skipped"), "{err}");
    assert!(
        err.contains("line 3"),
        "the report names the skipped row: {err}"
    );
}

#[test]
fn an_output_that_names_the_input_is_refused_and_the_input_is_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    let original = "id,amount\n1,2.5\n2,x\n";
    std::fs::write(&input, original).unwrap();
    let output = dir.path().join("out.jsonl");
    // The rejects file is the input, written another way.
    let same = format!("{}/./in.csv", dir.path().display());
    let out = convert(
        &input,
        &output,
        &["--infer-schema", "100", "--rejects", &same],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is the input, but it is also the dead-letter output"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&input).unwrap(), original);
    assert!(!output.exists());

    // The rejects file is the output.
    std::fs::write(&output, "keep\n").unwrap();
    let out = convert(&input, &output, &["--rejects", output.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("output of stage \"sink\""), "{err}");
    assert!(err.contains("dead-letter output"), "{err}");
    assert_eq!(std::fs::read_to_string(&output).unwrap(), "keep\n");
    let mut left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    left.sort();
    assert_eq!(left, ["in.csv", "out.jsonl"]);
}

#[test]
fn rejects_that_cannot_be_written_leave_no_output() {
    let (dir, input) = scratch("good.csv", "id,amount\n1,2.5\n");
    let output = dir.path().join("g.jsonl");
    let rejects = dir.path().join("ro/rej.jsonl");
    let out = convert(&input, &output, &["--rejects", rejects.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not exist"), "{err}");
    assert!(!output.exists(), "the main output was not committed");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn a_header_only_csv_keeps_its_header() {
    let (dir, input) = scratch("in.csv", "id,name,amount\n");
    let output = dir.path().join("out.tsv");
    let out = convert(&input, &output, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&output).unwrap(),
        "id\tname\tamount\n"
    );
}

#[test]
fn repeated_header_names_are_refused_or_renamed_on_request() {
    let (dir, input) = scratch("in.csv", "a,a,b\n1,2,3\n");
    let output = dir.path().join("out.jsonl");
    let out = convert(&input, &output, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("appears twice, as columns 1 and 2"), "{err}");
    assert!(err.contains("--rename-duplicate-headers"), "{err}");
    assert!(!output.exists());
    let out = convert(&input, &output, &["--rename-duplicate-headers"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&output).unwrap(),
        "{\"a\":\"1\",\"a_2\":\"2\",\"b\":\"3\"}\n"
    );
}

#[test]
fn a_record_past_max_record_bytes_fails_even_when_skipping_bad_rows() {
    let dir = tempfile::tempdir().unwrap();
    let long = "x".repeat(300);
    for (name, text, line) in [
        ("in.csv", format!("id,note\n1,\"{long}\"\n2,ok\n"), "line 2"),
        (
            "in.jsonl",
            format!("{{\"note\":\"{long}\"}}\n{{}}\n"),
            "line 1",
        ),
    ] {
        let input = dir.path().join(name);
        std::fs::write(&input, text).unwrap();
        let output = dir.path().join("out.csv");
        let out = convert(
            &input,
            &output,
            &["--skip-bad-rows", "--max-record-bytes=100"],
        );
        assert_eq!(out.status.code(), Some(1), "{name}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(line), "{name}: {err}");
        assert!(err.contains("--max-record-bytes"), "{name}: {err}");
        assert!(!output.exists());
    }
}

#[test]
fn progress_always_draws_on_a_captured_stderr_then_clears_it_before_the_report() {
    let (dir, input) = scratch("in.csv", "id,name\n1,ada\n2,bo\n3,cy\n");
    let output = dir.path().join("out.jsonl");
    let out = convert(&input, &output, &["--progress=always"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(std::fs::read_to_string(&output).unwrap().lines().count(), 3);
    let report = err
        .find("completed in")
        .unwrap_or_else(|| panic!("the report: {err:?}"));
    // Before the report: records read and their rate, or bytes of the total
    // once the source knows its size.
    let drawn = &err[..report];
    assert!(
        drawn.contains("starting") && (drawn.contains("records read, ") || drawn.contains("B/s")),
        "a progress line before the report: {err:?}"
    );
    // The bar's line is cleared before the report, which is all that follows.
    let cleared = err[..report]
        .rfind("\x1b[2K")
        .unwrap_or_else(|| panic!("the bar is cleared: {err:?}"));
    assert_eq!(&err[cleared + "\x1b[2K".len()..report], "", "{err:?}");
    assert!(!err[report..].contains('\x1b'), "{err:?}");
}

#[test]
fn by_default_a_captured_stderr_gets_no_bar_only_the_report() {
    let (dir, input) = scratch("in.csv", "id,name\n1,ada\n2,bo\n");
    let output = dir.path().join("out.csv");
    for flags in [&[][..], &["--progress=auto"], &["--progress", "never"]] {
        let out = convert(&input, &output, flags);
        let err = stderr(&out);
        assert!(out.status.success(), "{flags:?}: {err}");
        assert!(err.starts_with("completed in"), "{flags:?}: {err:?}");
        assert!(
            !err.contains('\x1b') && !err.contains('\r') && !err.contains("starting"),
            "{flags:?}: no bar drawn: {err:?}"
        );
    }
}

#[test]
fn quiet_prints_nothing_on_success() {
    let (dir, input) = scratch("in.csv", "id,name\n1,ada\n2,bo\n");
    let output = dir.path().join("out.jsonl");
    for quiet in ["--quiet", "-q"] {
        let out = convert(&input, &output, &[quiet]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(stderr(&out), "", "{quiet}: no bar, no report");
        assert!(out.stdout.is_empty());
        assert_eq!(std::fs::read_to_string(&output).unwrap().lines().count(), 2);
    }
    // It leaves stdout alone.
    let out = convert(&input, Path::new("-"), &["--quiet"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stderr(&out), "");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "id,name\n1,ada\n2,bo\n"
    );
}

#[test]
fn quiet_still_tells_a_failure() {
    let (dir, input) = scratch("in.csv", "id,amount\n1,2.5\n2,ab\"c\n");
    let output = dir.path().join("out.csv");
    let out = convert(&input, &output, &["--quiet"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(
        err.lines().count(),
        1,
        "the error alone, no report: {err:?}"
    );
    assert!(
        err.starts_with("dataflare: ") && err.contains("record 2 (line 3, byte 20)"),
        "{err:?}"
    );
    assert!(!output.exists());
}

#[test]
fn help_names_the_progress_flags() {
    let out = dataflare(&["convert", "--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for text in ["--progress <WHEN>", "auto", "always", "never", "--quiet"] {
        assert!(help.contains(text), "{text}: {help}");
    }
}
