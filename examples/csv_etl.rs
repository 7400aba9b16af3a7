//! File → transforms → file: read orders from CSV, keep the large ones in five
//! categories, derive a total, write CSV, print the run's report.
//!
//! ```text
//! cargo run --example csv_etl [INPUT.csv] [OUTPUT.csv]
//! ```
//!
//! The shipped sample (`examples/data/orders.csv`) holds one malformed row (an
//! amount of `n/a`): the source skips it under `ErrorPolicy::Skip`, and the
//! report counts it, so the run ends "completed with errors".

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
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let input = args
        .next()
        .unwrap_or_else(|| "examples/data/orders.csv".into());
    let output = args
        .next()
        .unwrap_or_else(|| "target/big_orders.csv".into());

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
    println!("wrote {} records to {output}", report.records_out());
    Ok(())
}
