//! Workflow files run through the library: the outputs, the report, error
//! policies, variables and overrides.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use dataflare::workflow::{LoadOptions, Workflow};
use dataflare::{Report, Status};

const ORDERS: &str = "\
id,user,category,amount,qty,note
1,ana,books,120.5,2,gift
2,bo,toys,80,1,
3,chen,garden,300.25,1,\"a, b\"
4,ana,books,99.5,3,
5,dara,garden,150,0,rush
6,eli,,500,1,
";
const USERS: &str = "user,region\nana,eu\nbo,us\nchen,apac\n";

struct Dir {
    dir: tempfile::TempDir,
}

impl Dir {
    fn new(yaml: &str) -> Dir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("orders.csv"), ORDERS).unwrap();
        std::fs::write(dir.path().join("users.csv"), USERS).unwrap();
        std::fs::write(dir.path().join("flow.yaml"), yaml).unwrap();
        Dir { dir }
    }

    fn file(&self) -> PathBuf {
        self.dir.path().join("flow.yaml")
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn exists(&self, name: &str) -> bool {
        self.dir.path().join(name).exists()
    }

    /// Every file under the directory, relative, sorted.
    fn files(&self) -> Vec<String> {
        fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(&p, base, out);
                } else {
                    out.push(p.strip_prefix(base).unwrap().display().to_string());
                }
            }
        }
        let mut out = Vec::new();
        walk(self.dir.path(), self.dir.path(), &mut out);
        out.sort();
        out
    }

    async fn run_with(&self, options: LoadOptions) -> Report {
        let workflow = Workflow::load(&self.file(), &options)
            .await
            .unwrap_or_else(|d| panic!("{d}"));
        workflow.into_graph().unwrap().run_to_report().await
    }

    async fn run(&self) -> Report {
        self.run_with(LoadOptions {
            env: Some(HashMap::new()),
            ..LoadOptions::default()
        })
        .await
    }
}

const SKETCH: &str = r#"
name: orders-daily
sources:
  orders: { type: csv, path: orders.csv, schema: { amount: float, qty: int } }
transforms:
  big:    { inputs: [orders], type: filter, expr: "amount > 100.0 && category in ['books', 'garden']" }
  totals: { inputs: [big], type: derive, columns: { total: "amount * double(qty)" }, select: [id, user, category, total] }
  by_cat: { inputs: [big], type: aggregate, key: [category], aggregates: { n: count, revenue: "sum(amount)" } }
sinks:
  out:    { inputs: [totals], type: csv, path: out/totals.csv }
  cats:   { inputs: [by_cat], type: jsonl, path: out/categories.jsonl }
"#;

#[tokio::test]
async fn the_issue_sketch_runs_and_writes_both_outputs() {
    let dir = Dir::new(SKETCH);
    let report = dir.run().await;
    assert!(matches!(report.status(), Status::Completed), "{report}");
    assert_eq!(
        dir.read("out/totals.csv"),
        "id,user,category,total\n1,ana,books,241\n3,chen,garden,300.25\n5,dara,garden,0\n"
    );
    assert_eq!(
        dir.read("out/categories.jsonl"),
        "{\"category\":\"books\",\"n\":1,\"revenue\":120.5}\n{\"category\":\"garden\",\"n\":2,\"revenue\":450.25}\n"
    );
    // One stage per node, named by its id.
    assert_eq!(report.stage("big").unwrap().records_out, 3);
    assert_eq!(report.stage("big").unwrap().filtered, 3);
    report.check_accounting().unwrap();
}

#[tokio::test]
async fn graph_operators_route_merge_lookup_and_column_ops() {
    let yaml = r#"
sources:
  orders: { type: csv, path: orders.csv, schema: { amount: float, qty: int } }
  users: { type: csv, path: users.csv }
transforms:
  split: { inputs: [orders], type: route, routes: { big: "amount >= 120.0", small: "amount < 100.0" } }
  tag_big: { inputs: [split.big], type: derive, columns: { size: "'big'" } }
  tag_small: { inputs: [split.small], type: derive, columns: { size: "'small'" } }
  both: { inputs: [tag_big, tag_small], type: fill_null, columns: { category: none } }
  once: { inputs: [both], type: dedup, key: [user, size] }
  region: { inputs: [once], type: lookup, table: users, on: user, prefix: u_ }
  tidy: { inputs: [region], type: drop, columns: [note, qty] }
  named: { inputs: [tidy], type: rename, columns: { u_region: region } }
  texty: { inputs: [named], type: cast, columns: { amount: string } }
sinks:
  out: { inputs: [texty], type: csv, path: out.csv }
  rest: { inputs: [split._unmatched], type: jsonl, path: rest.jsonl }
"#;
    let dir = Dir::new(yaml);
    // chen's second big order: a duplicate of the first by user and size
    // (the merge interleaves its inputs, so only a key within one branch
    // makes the duplicate certain).
    let orders = format!("{ORDERS}7,chen,garden,130,1,\n8,bo,toys,110,2,\n");
    std::fs::write(dir.dir.path().join("orders.csv"), orders).unwrap();
    let report = dir.run().await;
    assert!(matches!(report.status(), Status::Completed), "{report}");
    let out = dir.read("out.csv");
    let mut lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.remove(0), "id,user,category,amount,size,region");
    lines.sort();
    // eli has no category and no user row; dara no user row.
    assert_eq!(
        lines,
        [
            "1,ana,books,120.5,big,eu",
            "2,bo,toys,80,small,us",
            "3,chen,garden,300.25,big,apac",
            "4,ana,books,99.5,small,eu",
            "5,dara,garden,150,big,",
            "6,eli,none,500,big,",
        ]
    );
    // 110 is neither ≥ 120 nor < 100: unmatched.
    assert_eq!(
        dir.read("rest.jsonl"),
        "{\"id\":\"8\",\"user\":\"bo\",\"category\":\"toys\",\"amount\":110.0,\"qty\":2,\"note\":null}\n"
    );
    assert_eq!(report.stage("once").unwrap().duplicates, 1);
    report.check_accounting().unwrap();
}

#[tokio::test]
async fn record_errors_follow_the_node_policy_and_the_dead_letters_keep_them() {
    let yaml = r#"
sources:
  orders: { type: csv, path: orders.csv, schema: { amount: float, qty: int } }
transforms:
  per_unit: { inputs: [orders], type: derive, columns: { unit: "amount / double(qty) > 100.0 ? 'high' : 'low'", each: "int(amount) / qty" }, on_error: { policy: dead_letter, path: bad/rejects.jsonl } }
sinks:
  out: { inputs: [per_unit], type: csv, path: out.csv }
"#;
    let dir = Dir::new(yaml);
    let report = dir.run().await;
    assert!(
        matches!(report.status(), Status::CompletedWithErrors),
        "{report}"
    );
    assert_eq!(report.stage("per_unit").unwrap().dead_lettered, 1);
    // dara's qty is 0: an integer division by zero.
    let rejects = dir.read("bad/rejects.jsonl");
    assert_eq!(rejects.lines().count(), 1, "{rejects}");
    assert!(rejects.contains("per_unit"), "{rejects}");
    assert!(rejects.contains("division by zero"), "{rejects}");
    assert_eq!(dir.read("out.csv").lines().count(), 1 + 5);
}

#[tokio::test]
async fn a_failing_run_writes_nothing() {
    let yaml = r#"
sources:
  orders: { type: csv, path: orders.csv, schema: { amount: float, qty: int } }
transforms:
  each: { inputs: [orders], type: derive, columns: { each: "int(amount) / qty" } }
sinks:
  out: { inputs: [each], type: csv, path: out/each.csv }
"#;
    let dir = Dir::new(yaml);
    let report = dir.run().await;
    let Status::Failed(e) = report.status() else {
        panic!("{report}")
    };
    assert!(e.to_string().contains("division by zero"), "{e}");
    assert!(!dir.exists("out/each.csv"));
    // No temporary file either: only the inputs and the (empty) directory.
    assert_eq!(dir.files(), ["flow.yaml", "orders.csv", "users.csv"]);
}

#[tokio::test]
async fn variables_are_substituted_after_parsing_in_strings_only() {
    // A `$` in a regex or a price, a `$${` literal, a default, a variable in
    // a path; a commented-out line with an unset variable is never read.
    let yaml = r#"
# path: ${NEVER_SET}/orders.csv
sources:
  orders: { type: csv, path: "${IN:-.}/orders.csv", schema: { amount: float, qty: int } }
transforms:
  a_users: { inputs: [orders], type: filter, expr: "user.matches('^[a-c].*a$')" }
  label: { inputs: [a_users], type: derive, columns: { price: "'$5 and $$1'", literal: "'$${HOME}'", by: "'${WHO}'" }, select: [id, price, literal, by] }
sinks:
  out: { inputs: [label], type: csv, path: "${OUT:?where to write}/out.csv" }
"#;
    let dir = Dir::new(yaml);
    let env: HashMap<String, String> = [("WHO", "ops"), ("OUT", dir.dir.path().to_str().unwrap())]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let report = dir
        .run_with(LoadOptions {
            env: Some(env),
            ..LoadOptions::default()
        })
        .await;
    assert!(matches!(report.status(), Status::Completed), "{report}");
    assert_eq!(
        dir.read("out.csv"),
        "id,price,literal,by\n1,$5 and $$1,${HOME},ops\n4,$5 and $$1,${HOME},ops\n"
    );
}

#[tokio::test]
async fn set_overrides_apply_after_parsing() {
    let dir = Dir::new(SKETCH);
    std::fs::write(
        dir.dir.path().join("other.csv"),
        "id,user,category,amount,qty,note\n9,zed,books,1000,1,\n",
    )
    .unwrap();
    let report = dir
        .run_with(LoadOptions {
            sets: vec![
                ("sources.orders.path".into(), "other.csv".into()),
                ("sinks.out.path".into(), "elsewhere.csv".into()),
            ],
            env: Some(HashMap::new()),
        })
        .await;
    assert!(report.is_completed(), "{report}");
    assert_eq!(
        dir.read("elsewhere.csv"),
        "id,user,category,total\n9,zed,books,1000\n"
    );
}

#[tokio::test]
async fn describe_names_every_node() {
    let dir = Dir::new(SKETCH);
    let workflow = Workflow::load(&dir.file(), &LoadOptions::default())
        .await
        .unwrap();
    let mermaid = workflow.describe(dataflare::graph::Format::Mermaid);
    for node in ["orders", "big", "totals", "by_cat", "out", "cats"] {
        assert!(
            mermaid.contains(&format!("\"{node} (")),
            "{node}: {mermaid}"
        );
    }
    assert!(
        workflow
            .describe(dataflare::graph::Format::Dot)
            .starts_with("digraph")
    );
    // Describing writes nothing.
    assert!(!dir.exists("out"));
}

#[tokio::test]
async fn max_errors_fails_a_run_that_puts_aside_too_many() {
    // Two of the six amounts are not numbers.
    let yaml = r#"
sources:
  orders: { type: csv, path: bad.csv, schema: { amount: float } }
sinks:
  out: { inputs: [orders], type: csv, path: out.csv }
on_error: skip
max_errors: 1
"#;
    let dir = Dir::new(yaml);
    std::fs::write(
        dir.dir.path().join("bad.csv"),
        "id,amount\n1,2\n2,x\n3,4\n4,y\n",
    )
    .unwrap();
    let report = dir.run().await;
    assert!(report.is_failed(), "{report}");
    assert_eq!(report.skipped(), 2);
    assert!(!dir.exists("out.csv"));
    std::fs::write(dir.file(), yaml.replace("max_errors: 1", "max_errors: 2")).unwrap();
    let report = dir.run().await;
    assert!(
        matches!(report.status(), Status::CompletedWithErrors),
        "{report}"
    );
    assert_eq!(dir.read("out.csv"), "id,amount\n1,2\n3,4\n");
}

#[tokio::test]
async fn a_json_lines_source_into_time_windows() {
    let yaml = r#"
sources:
  hits: { type: jsonl, path: hits.jsonl, schema: { at: timestamp } }
transforms:
  per_hour: { inputs: [hits], type: window, key: [page], time: at, size: 1h, aggregates: { hits: count, slowest: "max(ms)" } }
sinks:
  out: { inputs: [per_hour], type: jsonl, path: out.jsonl }
"#;
    let dir = Dir::new(yaml);
    let hits = [
        r#"{"page":"/","at":"2026-11-30T10:05:00Z","ms":30}"#,
        r#"{"page":"/a","at":"2026-11-30T10:10:00Z","ms":50}"#,
        r#"{"page":"/","at":"2026-11-30T10:55:00Z","ms":70}"#,
        r#"{"page":"/","at":"2026-11-30T11:01:00Z","ms":10}"#,
    ];
    std::fs::write(dir.dir.path().join("hits.jsonl"), hits.join("\n") + "\n").unwrap();
    let report = dir.run().await;
    assert!(matches!(report.status(), Status::Completed), "{report}");
    let out = dir.read("out.jsonl");
    let rows: Vec<&str> = out.lines().collect();
    assert_eq!(
        rows,
        [
            r#"{"page":"/","window_start":"2026-11-30T10:00:00Z","window_end":"2026-11-30T11:00:00Z","hits":2,"slowest":70}"#,
            r#"{"page":"/a","window_start":"2026-11-30T10:00:00Z","window_end":"2026-11-30T11:00:00Z","hits":1,"slowest":50}"#,
            r#"{"page":"/","window_start":"2026-11-30T11:00:00Z","window_end":"2026-11-30T12:00:00Z","hits":1,"slowest":10}"#,
        ]
    );
}

#[tokio::test]
async fn derived_columns_can_read_earlier_ones_and_replace_input_columns() {
    let yaml = r#"
sources:
  orders: { type: csv, path: orders.csv, schema: { amount: float, qty: int } }
transforms:
  plain: { inputs: [orders], type: derive, columns: { amount: "amount * 2.0", twice: "amount" }, select: [id, amount, twice] }
  chained: { inputs: [orders], type: derive, columns: { double: "amount * 2.0", more: "double + 1.0", user: "user + '!'" }, select: [user, more] }
sinks:
  a: { inputs: [plain], type: csv, path: a.csv }
  b: { inputs: [chained], type: csv, path: b.csv }
"#;
    let dir = Dir::new(yaml);
    let report = dir.run().await;
    assert!(matches!(report.status(), Status::Completed), "{report}");
    // `twice` reads `amount` after it was replaced: the doubled value.
    assert_eq!(dir.read("a.csv").lines().nth(1), Some("1,241,241"));
    assert_eq!(
        dir.read("b.csv").lines().take(3).collect::<Vec<_>>(),
        ["user,more", "ana!,242", "bo!,161"]
    );
}

#[tokio::test]
async fn a_lookup_table_from_a_second_source_on_the_same_file() {
    let yaml = r#"
sources:
  orders: { type: csv, path: orders.csv, schema: { amount: float, qty: int } }
  again: { type: csv, path: orders.csv }
transforms:
  firsts: { inputs: [again], type: dedup, key: [user] }
  first_id: { inputs: [firsts], type: select, columns: [user, id] }
  joined: { inputs: [orders], type: lookup, table: first_id, on: user, prefix: first_ }
  slim: { inputs: [joined], type: select, columns: [id, user, first_id] }
sinks:
  out: { inputs: [slim], type: csv, path: out.csv }
"#;
    let dir = Dir::new(yaml);
    let report = dir.run().await;
    assert!(matches!(report.status(), Status::Completed), "{report}");
    assert_eq!(
        dir.read("out.csv"),
        "id,user,first_id\n1,ana,1\n2,bo,2\n3,chen,3\n4,ana,1\n5,dara,5\n6,eli,6\n"
    );
}

#[tokio::test]
async fn route_outputs_read_by_several_nodes_and_routes_named_like_operators() {
    let yaml = r#"
sources:
  orders: { type: csv, path: orders.csv, schema: { amount: float, qty: int } }
transforms:
  split: { inputs: [orders], type: route, routes: { tee: "amount > 100.0", route: "amount < 100.0" } }
  a: { inputs: [split.tee], type: select, columns: [id] }
  b: { inputs: [split.tee], type: select, columns: [id] }
  c: { inputs: [split.route], type: select, columns: [id] }
  d: { inputs: [split.route], type: select, columns: [id] }
sinks:
  big: { inputs: [a, b], type: csv, path: big.csv }
  small: { inputs: [c, d], type: csv, path: small.csv }
"#;
    let dir = Dir::new(yaml);
    let report = dir.run().await;
    assert!(matches!(report.status(), Status::Completed), "{report}");
    let sorted = |name: &str| {
        let text = dir.read(name);
        let mut lines: Vec<String> = text.lines().skip(1).map(str::to_string).collect();
        lines.sort();
        lines
    };
    // Each route output read twice: every id twice; 99.5 and 80 are small.
    assert_eq!(sorted("big.csv"), ["1", "1", "3", "3", "5", "5", "6", "6"]);
    assert_eq!(sorted("small.csv"), ["2", "2", "4", "4"]);
    assert!(report.stage("split.tee:tee").is_some() && report.stage("split.route:tee").is_some());
    report.check_accounting().unwrap();
}
