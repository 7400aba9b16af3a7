//! File → transforms → file: read orders from CSV, keep the large ones in five
//! categories, derive a total, write CSV, print the run's report.
//!
//! ```text
//! cargo run --example csv_etl [INPUT.csv] [OUTPUT.csv]
//! ```
//!
//! By default it reads the shipped sample and writes `big_orders.csv` under
//! `dataflare-examples/` in the temporary directory (creating the output's
//! directory if needed), and prints where it wrote.
//!
//! The shipped sample (`examples/data/orders.csv`) holds one malformed row (an
//! amount of `n/a`): the source skips it under `ErrorPolicy::Skip`, and the
//! report counts it, so the run ends "completed with errors".

use std::path::{Path, PathBuf};

use dataflare::csv;
use dataflare::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize)]
#[allow(dead_code)] // read from the file, not all used by this job
struct Order {
    id: u64,
    ts: String,
    user: String,
    category: String,
    amount: f64,
    qty: u32,
    note: String,
}

#[derive(Debug, Serialize)]
struct Total {
    id: u64,
    user: String,
    category: String,
    total: f64,
}

const CATEGORIES: [&str; 5] = ["books", "garden", "toys", "music", "games"];

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1);
    // The shipped sample, wherever the example is run from.
    let input = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/orders.csv"));
    // The temporary directory unless told: it exists, whatever the build's
    // target directory is.
    let output = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("dataflare-examples/big_orders.csv"));
    if let Some(dir) = output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }

    let report = Pipeline::from(csv::read::<Order>(&input))
        .on_error(ErrorPolicy::Skip) // count malformed rows instead of failing
        .filter(|o| o.amount > 100.0 && CATEGORIES.contains(&o.category.as_str()))
        .name("big orders")
        .map(|o| Total {
            id: o.id,
            total: (o.amount * f64::from(o.qty) * 100.0).round() / 100.0,
            user: o.user,
            category: o.category,
        })
        .name("total")
        .to(csv::write::<Total>(&output))
        .run()
        .await?;

    print!("{report}");
    println!(
        "wrote {} records to {}",
        report.records_out(),
        output.display()
    );
    Ok(())
}
