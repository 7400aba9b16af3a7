//! One source, several outputs, one run: read orders once, write one CSV file
//! per category and a JSON Lines audit copy of every valid order, keep the
//! rows that fail to parse, and commit all of it together, or nothing.
//!
//! ```text
//! cargo run --release --example split_orders -- [INPUT.csv] [OUTDIR]
//! ```
//!
//! Defaults: the shipped sample (`examples/data/orders.csv`) and
//! `dataflare-split_orders/` in the temporary directory. OUTDIR is created if
//! missing; it then holds
//! - `<category>.csv` for each category present in the data: header and the
//!   same columns as the input, input order kept within each file (numbers as
//!   the typed round trip writes them);
//! - `audit.jsonl`: every valid order (the `tee`'s second branch);
//! - `rejects.jsonl`: the rows that failed to parse, each with its line and raw
//!   text (always written; empty when nothing was rejected).
//!
//! Files of earlier runs that this run does not write are left alone. Any
//! failure leaves none of this run's files in OUTDIR (and the files already
//! there untouched): every output, the rejects included, is committed with
//! the run. The report goes to stdout.
//!
//! The graph:
//!
//! ```text
//! orders.csv ─▶ tee ─┬─▶ partition_by(category) ─▶ OUTDIR/<category>.csv
//!    │               └─▶ OUTDIR/audit.jsonl
//!    └─ rows that fail to parse ─▶ OUTDIR/rejects.jsonl
//! ```

use std::path::{Path, PathBuf};

use dataflare::prelude::*;
use dataflare::{DeadLetters, Rejected, csv, jsonl};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
struct Order {
    id: u64,
    ts: String,
    user: String,
    category: String,
    amount: f64,
    qty: u32,
    note: String,
}

#[tokio::main]
async fn main() {
    match run().await {
        Ok(report) => {
            print!("{report}");
            if report.is_failed() {
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}

async fn run() -> Result<Report, Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1);
    // The shipped sample, wherever the example is run from.
    let input = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/orders.csv"));
    let outdir = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("dataflare-split_orders"));
    std::fs::create_dir_all(&outdir)
        .map_err(|e| format!("cannot create {}: {e}", outdir.display()))?;

    // Rows that fail to parse, with their line and raw text; committed with
    // the run's other outputs (not kept alone by a failed run).
    let rejects = DeadLetters::to(jsonl::write::<Rejected>(outdir.join("rejects.jsonl")))
        .keep_on_failure(false);
    let [by_category, audit] = Pipeline::from(csv::read::<Order>(&input))
        .on_error(rejects)
        .tee();
    let graph = by_category
        // A category that is no safe file name ("", "..", "a/b") fails the run.
        .partition_by(|o: &Order| o.category.clone())
        .to(csv::write_partitioned(&outdir))
        .name("by category")
        .and(
            audit
                .to(jsonl::write(outdir.join("audit.jsonl")))
                .name("audit"),
        );
    let report = graph.run_to_report().await;
    println!("wrote {}", outdir.display());
    Ok(report)
}
