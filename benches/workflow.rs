//! A workflow file run by the `dataflare` binary against the same job written
//! in Rust with dynamic records: the connectors issue's headline CSV job (keep
//! rows whose category is one of five and whose amount is over 100, write
//! `id, user, category, total = amount × qty`) on the generated ~100 MB file.
//!
//! - `rust_dynamic`: the Rust pipeline of `Record`s (`common::dynamic_job`,
//!   a schema of every column, default settings), in a child process;
//! - `workflow_binary`: `dataflare run job.yaml`, the same columns and types
//!   declared in the file, the filter and the total as CEL expressions.
//!
//! Both are timed the same way, as whole processes from spawn to exit, in 5
//! interleaved rounds; the ratio is rust / workflow per round (≥ 1 means the
//! workflow is as fast), its median and spread printed. The outputs are
//! compared byte for byte.
//!
//! Run with `cargo bench --bench workflow`; `DATAFLARE_BENCH_MB` sets the size.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

mod common;

const WORKFLOW: &str = r#"name: headline
sources:
  orders:
    type: csv
    path: "${BENCH_INPUT}"
    schema: { id: int, amount: float, qty: int }
transforms:
  keep:
    inputs: [orders]
    type: filter
    expr: "amount > 100.0 && category in ['books', 'garden', 'toys', 'music', 'games']"
  totals:
    inputs: [keep]
    type: derive
    columns: { total: "amount * double(qty)" }
    select: [id, user, category, total]
sinks:
  out: { inputs: [totals], type: csv, path: "${BENCH_OUTPUT}" }
"#;

fn main() {
    if common::child_or_list(|rt, variant, input, outputs| match variant {
        "rust_dynamic" => rt.block_on(common::dynamic_job(input, &outputs[0], None, false)),
        other => panic!("unknown variant {other}"),
    }) {
        return;
    }
    let setup = common::setup();
    let file = setup.dir.join("workflow-headline.yaml");
    std::fs::write(&file, WORKFLOW).unwrap();
    let rust_out = setup.dir.join("workflow-rust.csv");
    let flow_out = setup.dir.join("workflow-binary.csv");
    let run = |variant: &str| -> f64 {
        let start = Instant::now();
        let status = match variant {
            "rust_dynamic" => Command::new(std::env::current_exe().unwrap())
                .args(["--child", variant])
                .arg(&setup.input)
                .arg(&rust_out)
                .output()
                .unwrap(),
            _ => Command::new(env!("CARGO_BIN_EXE_dataflare"))
                .args(["run", "--quiet"])
                .arg(&file)
                .env("BENCH_INPUT", &setup.input)
                .env("BENCH_OUTPUT", &flow_out)
                .output()
                .unwrap(),
        };
        assert!(
            status.status.success(),
            "{variant}: {}",
            String::from_utf8_lossy(&status.stderr)
        );
        start.elapsed().as_secs_f64()
    };
    let variants = ["rust_dynamic", "workflow_binary"];
    let runs = common::interleaved(&variants, 5, run, |_| {});
    same_bytes(&rust_out, &flow_out);
    let mut ratios: Vec<f64> = runs[0].iter().zip(&runs[1]).map(|(r, w)| r / w).collect();
    ratios.sort_by(f64::total_cmp);
    for (v, times) in variants.iter().zip(&runs) {
        let mut t = times.clone();
        t.sort_by(f64::total_cmp);
        println!(
            "{v:<16} median {:.3} s  (min {:.3}, max {:.3})",
            t[t.len() / 2],
            t[0],
            t[t.len() - 1]
        );
    }
    println!(
        "workflow_binary vs rust_dynamic: {:.2}x (per-round ratios {:.2}..{:.2}; target >= 0.8x)",
        ratios[ratios.len() / 2],
        ratios[0],
        ratios[ratios.len() - 1]
    );
}

/// The two outputs are the same bytes.
fn same_bytes(a: &Path, b: &Path) {
    let (x, y): (PathBuf, PathBuf) = (a.into(), b.into());
    let (x, y) = (std::fs::read(x).unwrap(), std::fs::read(y).unwrap());
    assert!(
        x == y,
        "the workflow's output differs from the Rust pipeline's"
    );
}
