//! The fastest path for one large CSV file: the job of `csv_etl` (orders over
//! 100 in five categories, with their totals) done on chunks of whole records,
//! parsed on two worker threads, rows borrowed from their chunk, and written in
//! input order.
//!
//! ```text
//! cargo run --release --example csv_chunks [INPUT.csv] [OUTPUT.csv]
//! ```
//!
//! By default it reads the shipped sample and writes `big_orders_chunked.csv`
//! under `dataflare-examples/` in the temporary directory. A row whose amount
//! or quantity does not parse (the sample has one: an amount of `n/a`) is set
//! aside and its error printed, naming the file, line, byte and field; the
//! other rows go on. The run's report counts chunks, not rows: each chunk is
//! one record of the pipeline. On a 2-core machine this path runs the 100 MB benchmark
//! job 1.66× faster than a hand-written single-threaded `ByteRecord` loop
//! (`cargo bench --bench csv`).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use dataflare::csv::{self, CsvChunk, CsvOut, Row};
use dataflare::prelude::*;

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
    let input = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/orders.csv"));
    let output = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("dataflare-examples/big_orders_chunked.csv"));
    if let Some(dir) = output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }

    // Rows set aside, from every worker: (line, error).
    let rejects = Arc::new(Mutex::new(Vec::new()));
    let set_aside = rejects.clone();
    let report = Pipeline::from(csv::read_chunks(&input))
        .par_map(2, move |chunk: CsvChunk| {
            let mut out = CsvOut::with_capacity(chunk.len() / 3);
            let mut rows = chunk.rows();
            while let Some(row) = rows.next_row() {
                let kept = row.and_then(|row| big_order(&row, &mut out));
                if let Err(e) = kept {
                    let line = e.position().line.unwrap_or(0);
                    set_aside.lock().unwrap().push((line, e.to_string()));
                }
            }
            out.into_bytes()
        })
        .name("big orders")
        .to(csv::write_chunks(&output).header(["id", "user", "category", "total"]))
        .run()
        .await?;

    print!("{report}");
    let mut rejects = std::mem::take(&mut *rejects.lock().unwrap());
    rejects.sort();
    for (_, error) in &rejects {
        println!("set aside: {error}");
    }
    println!(
        "wrote the big orders to {} ({} rows set aside)",
        output.display(),
        rejects.len()
    );
    Ok(())
}

/// Writes the row's id, user, category and total (two decimals) to `out` if
/// it is an order over 100 in one of the five categories. Only the fields
/// needed are decoded; the amount of every row is, so a malformed one is set
/// aside whatever its category (as `csv_etl`'s typed source does).
fn big_order(row: &Row<'_>, out: &mut CsvOut) -> dataflare::Result<()> {
    let category = row.str(3)?;
    let amount: f64 = row.parse(4)?;
    if amount <= 100.0 || !CATEGORIES.contains(&category) {
        return Ok(());
    }
    let qty: u32 = row.parse(5)?;
    let mut total = Vec::with_capacity(16);
    write!(total, "{:.2}", amount * f64::from(qty)).expect("writing to a Vec");
    out.write_record([
        row.str(0)?.as_bytes(),
        row.str(2)?.as_bytes(),
        category.as_bytes(),
        &total,
    ])
}
