//! `dataflare run` under SIGINT: the run is cancelled, nothing is committed,
//! the exit status is 130.
//!
//! A workflow reads regular files only (their headers are read before the
//! run), so the test cannot hold the run on a blocked input as
//! `cli_signals.rs` does with a FIFO. It waits instead for the run's first
//! progress line on stderr (the run is going), then sends the signal; should
//! the run have ended first (a fast machine), it tries again on a file four
//! times larger. No sleep: each step waits for what the binary writes.

use std::io::Read;
use std::process::{Command, Stdio};

fn orders(rows: usize) -> String {
    let mut text = String::from("id,user,category,amount,qty\n");
    for i in 0..rows {
        text.push_str(&format!(
            "{i},user{},books,{}.5,{}\n",
            i % 97,
            i % 500,
            1 + i % 5
        ));
    }
    text
}

const WORKFLOW: &str = r#"
sources:
  orders: { type: csv, path: orders.csv, schema: { amount: float, qty: int } }
transforms:
  big: { inputs: [orders], type: filter, expr: "amount > 100.0" }
  totals: { inputs: [big], type: derive, columns: { total: "amount * double(qty)" } }
sinks:
  out: { inputs: [totals], type: csv, path: out/totals.csv }
"#;

#[test]
fn sigint_cancels_a_workflow_run_and_commits_nothing() {
    let mut rows = 200_000;
    for _ in 0..4 {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("orders.csv"), orders(rows)).unwrap();
        let file = dir.path().join("flow.yaml");
        std::fs::write(&file, WORKFLOW).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_dataflare"))
            .args(["run", "--progress", "always", file.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = child.stderr.take().unwrap();
        // The first bytes of the progress bar: the run has started.
        let mut first = [0u8; 1];
        let started = stderr.read(&mut first).unwrap() == 1;
        assert!(started, "the run drew no progress");
        let status = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        // The bar's spinner may be cut mid-character: read bytes.
        let mut bytes = Vec::new();
        stderr.read_to_end(&mut bytes).unwrap();
        let rest = String::from_utf8_lossy(&bytes);
        let code = child.wait().unwrap().code();
        if code == Some(0) {
            // The run ended before the signal arrived: try a larger file.
            rows *= 4;
            continue;
        }
        assert_eq!(code, Some(130), "{rest}");
        assert!(rest.contains("interrupted"), "{rest}");
        let out = dir.path().join("out");
        let left: Vec<_> = std::fs::read_dir(&out)
            .map(|d| d.map(|e| e.unwrap().file_name()).collect())
            .unwrap_or_default();
        assert!(
            left.is_empty(),
            "nothing committed, no temporary file: {left:?}"
        );
        return;
    }
    panic!("every run ended before the signal; the test needs a larger file");
}
