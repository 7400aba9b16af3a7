//! `examples/category_totals.rs` run as a user runs it, on the shipped data,
//! against totals computed here with the `csv` crate and plain maps.

mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::process::Command;

#[test]
fn totals_per_category_with_regions_from_the_users_table() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data");
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("totals.csv");
    let run = Command::new(support::example_binary("category_totals"))
        .arg(data.join("orders.csv"))
        .arg(&output)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );

    // The reference.
    let mut users = HashMap::new();
    for r in ::csv::Reader::from_path(data.join("users.csv"))
        .unwrap()
        .records()
    {
        let r = r.unwrap();
        users.insert(r[0].to_string(), r[1].to_string());
    }
    #[derive(Default)]
    struct Acc {
        orders: u64,
        revenue: f64,
        amount: f64,
        regions: HashSet<String>,
    }
    let (mut totals, mut misses, mut malformed) = (BTreeMap::<String, Acc>::new(), 0, 0);
    for r in ::csv::Reader::from_path(data.join("orders.csv"))
        .unwrap()
        .records()
    {
        let r = r.unwrap();
        let (Ok(amount), Ok(qty)) = (r[4].parse::<f64>(), r[5].parse::<u32>()) else {
            malformed += 1;
            continue;
        };
        let acc = totals.entry(r[3].to_string()).or_default();
        acc.orders += 1;
        acc.revenue += amount * f64::from(qty);
        acc.amount += amount;
        match users.get(&r[2]) {
            Some(region) => {
                acc.regions.insert(region.clone());
            }
            None => misses += 1,
        }
    }
    let mut want = String::from("category,orders,revenue,mean_amount,regions\n");
    for (category, a) in &totals {
        want.push_str(&format!(
            "{category},{},{:.2},{:.2},{}\n",
            a.orders,
            a.revenue,
            a.amount / a.orders as f64,
            a.regions.len()
        ));
    }
    assert_eq!(std::fs::read_to_string(&output).unwrap(), want);
    assert!(misses > 0 && malformed > 0, "the shipped data shows both");
    assert!(
        stdout.contains(&format!("{misses} passed without a match")),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("{malformed} skipped")), "{stdout}");
}
