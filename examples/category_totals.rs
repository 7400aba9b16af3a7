//! Enrich, then aggregate: each order gets its user's region from a small
//! table (a lookup join), then per category: the number of orders, the
//! revenue, the mean amount and the number of distinct regions.
//!
//! ```text
//! cargo run --release --example category_totals -- [INPUT.csv] [OUTPUT.csv]
//! ```
//!
//! Defaults: the shipped orders (`examples/data/orders.csv`) and
//! `dataflare-examples/category_totals.csv` in the temporary directory. The
//! users table is `examples/data/users.csv` (`user,region`): a few users are
//! missing on purpose; their orders keep an empty region (not a region) and
//! the report counts them as passed without a match. Malformed order rows are
//! skipped and counted. The output: `category,orders,revenue,mean_amount,regions`,
//! one row per category, sorted by category, money with 2 decimals.
//!
//! ```text
//! orders.csv ─▶ lookup(users.csv by user, left) ─▶ key_by(category) ─▶ aggregate ─▶ sort ─▶ CSV
//! ```

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use dataflare::csv;
use dataflare::prelude::*;
use dataflare::state::{StateSize, agg, by_ref};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize)]
struct Order {
    user: String,
    category: String,
    amount: f64,
    qty: u32,
}

#[derive(Debug, Clone, Deserialize)]
struct User {
    user: String,
    region: String,
}

/// What a user row holds in memory, for the lookup's state estimate.
impl StateSize for User {
    fn heap_bytes(&self) -> usize {
        self.user.capacity() + self.region.capacity()
    }
}

#[derive(Debug, Serialize)]
struct Total {
    category: String,
    orders: u64,
    revenue: String,
    mean_amount: String,
    regions: usize,
}

type Enriched = (Order, Option<User>);

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
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data");
    let mut args = std::env::args_os().skip(1);
    let input = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| data.join("orders.csv"));
    let output = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("dataflare-examples/category_totals.csv"));
    if let Some(dir) = output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }

    // The table, read to its end before the first order.
    let users = Pipeline::from(csv::read::<User>(data.join("users.csv")))
        .name("users")
        .key_by(|u: &User| u.user.clone());
    let report = Pipeline::from(csv::read::<Order>(&input))
        .name("orders")
        .on_error(ErrorPolicy::Skip) // count malformed rows instead of failing
        .lookup(users, |o: &Order| o.user.clone())
        .left()
        .name("region")
        .key_by(by_ref(|(o, _): &Enriched| o.category.as_str()))
        .aggregate((
            agg::count(),
            agg::sum(|(o, _): &Enriched| o.amount * f64::from(o.qty)),
            agg::mean(|(o, _): &Enriched| o.amount),
            agg::fold(
                HashSet::new(),
                |regions: &mut HashSet<String>, (_, u): &Enriched| {
                    if let Some(u) = u.as_ref().filter(|u| !u.region.is_empty()) {
                        regions.insert(u.region.clone());
                    }
                },
            ),
        ))
        .name("per category")
        .map(|(category, (orders, revenue, mean, regions))| Total {
            category,
            orders,
            revenue: format!("{revenue:.2}"),
            mean_amount: format!("{mean:.2}"),
            regions: regions.len(),
        })
        // Every category comes out at the end of the input, in one batch.
        .map_batch(|mut totals| {
            totals.sort_by(|a: &Total, b: &Total| a.category.cmp(&b.category));
            totals
        })
        .to(csv::write(&output))
        .run_to_report()
        .await;
    println!("wrote {}", output.display());
    Ok(report)
}
