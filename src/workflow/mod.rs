//! Workflow files: a DAG of named sources, transforms and sinks in YAML, with
//! CEL expressions compiled to closures, checked before anything is read or
//! written, and run through the same library as a pipeline written in Rust.
//!
//! ```yaml
//! name: orders-daily
//! sources:
//!   orders: { type: csv, path: "${DATA_DIR:-data}/orders.csv", schema: { amount: float, qty: int } }
//! transforms:
//!   big:    { inputs: [orders], type: filter, expr: "amount > 100.0 && category in ['books', 'garden']" }
//!   totals: { inputs: [big], type: derive, columns: { total: "amount * double(qty)" }, select: [id, user, category, total] }
//! sinks:
//!   out:    { inputs: [totals], type: csv, path: out/totals.csv }
//! ```
//!
//! [`Workflow::load`] reads, checks and prepares a file: every problem found
//! is reported at once, each as `FILE:LINE:COL: error: message` with the
//! line and a caret ([`Diagnostics`]); [`Workflow::into_graph`] gives the
//! [`Graph`](crate::Graph) to run.
//!
//! # The format
//!
//! - Top level: `name`, `description`, `sources`, `transforms`, `sinks`,
//!   `on_error`, `max_errors` (a count or `"5%"`), `max_in_flight_bytes`.
//! - Every node: `type`, `inputs` (not for sources: several merge, a node read
//!   by several is a tee, a route's outputs are `route.name` and
//!   `route._unmatched`), `on_error` (`fail`, `skip`, or `{ policy:
//!   dead_letter, path: .. }`) where its records can fail.
//! - Sources: `csv` (`path`, `delimiter`, `quote`, `escape`, `comment`,
//!   `header`, `flexible`, `lenient_quotes`, `lossy_utf8`, `duplicate_headers`,
//!   `max_record_bytes`, `schema` or `infer_schema`, `parallel`, `batch_size`),
//!   `jsonl` (`path`, `schema`, `lossy_utf8`, `max_line_bytes`, `batch_size`).
//!   CSV columns are text unless typed; a JSON Lines file's columns are its
//!   first object's.
//! - Transforms: `filter` (`expr`), `derive` (`columns: {name: expr}`,
//!   `select`), `select` / `drop` (`columns`), `rename` (`columns: {old: new}`),
//!   `cast` (`columns: {name: type}`), `fill_null` (`columns: {name: value}`),
//!   `route` (`routes: {name: expr}`, first match), `aggregate` (`key`,
//!   `aggregates: {name: "sum(col)"}`, `max_keys`), `window` (`key`, `time`,
//!   `size`, `slide`, `lateness`, `aggregates`, `max_keys`), `dedup` (`key`,
//!   `max_keys`), `lookup` (`table`, `on`, `table_key`, `prefix`, `unmatched:
//!   keep | drop | error`).
//! - Sinks: `csv` (`path` and the CSV options), `jsonl` (`path`).
//! - Expressions are CEL, compiled by [`expr::Expr`]; strings may hold
//!   `${VAR}`, `${VAR:-default}`, `${VAR:?message}` (substituted after
//!   parsing; `$${` is a literal `${`). Relative paths are relative to the
//!   file.

mod build;
mod diag;
mod env;
pub mod expr;
mod plan;
mod read;
mod spec;
mod yaml;

pub use diag::{Diagnostic, Diagnostics};
pub use yaml::Pos;

use std::path::{Path, PathBuf};

/// How to load a workflow file: overrides and where variables come from.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `--set key.path=value` overrides, applied after parsing and before
    /// variables are substituted, in order: `sources.orders.path=b.csv`.
    pub sets: Vec<(String, String)>,
    /// Variables for `${VAR}`; `None` reads the process environment.
    pub env: Option<std::collections::HashMap<String, String>>,
}

/// A checked workflow, ready to run.
#[derive(Debug, Clone)]
pub struct Workflow {
    name: String,
    plan: plan::Plan,
}

impl Workflow {
    /// Reads, parses and checks the workflow at `path`: syntax, keys, types,
    /// node types, inputs, cycles, expressions, columns (reading CSV
    /// headers and, where the file asks for inferred types, a sample of
    /// rows), output directories and outputs that are also inputs. Nothing
    /// is written. Every problem is in the error, in file order.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use dataflare::workflow::{LoadOptions, Workflow};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// std::fs::write(dir.path().join("in.csv"), "id,amount\n1,5.5\n").unwrap();
    /// let file = dir.path().join("flow.yaml");
    /// std::fs::write(&file, "sources:\n  in: { type: csv, path: in.csv }\nsinks:\n  out: { inputs: [inn], type: jsonl, path: out.jsonl }\n").unwrap();
    /// let errors = Workflow::load(&file, &LoadOptions::default()).await.unwrap_err();
    /// let first = errors.iter().next().unwrap();
    /// assert_eq!(first.message(), "unknown input `inn`");
    /// assert_eq!(first.help_text(), Some("did you mean `in`?"));
    /// assert_eq!(first.pos().unwrap().to_string(), "4:19");
    /// # }
    /// ```
    pub async fn load(path: &Path, options: &LoadOptions) -> Result<Workflow, Diagnostics> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Diagnostics::single(Diagnostic::error(
                path,
                None,
                format!("cannot read the workflow file: {e}"),
            ))
        })?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        let fail = |problems: Vec<read::Problem>| {
            let mut diagnostics = Diagnostics::default();
            for p in problems {
                let mut d = Diagnostic::error(path, Some(p.pos), p.message)
                    .width(p.width)
                    .with_source(&text);
                if let Some(help) = p.help {
                    d = d.help(help);
                }
                diagnostics.push(d);
            }
            diagnostics.sort();
            diagnostics
        };
        let mut root = yaml::parse(&text).map_err(|e| {
            fail(vec![read::Problem {
                pos: e.pos,
                message: e.message,
                help: None,
                width: 1,
            }])
        })?;
        let mut problems = read::Problems::default();
        for (key, value) in &options.sets {
            set(&mut root, key, value, &mut problems);
        }
        let lookup = |name: &str| match &options.env {
            Some(env) => env.get(name).cloned(),
            None => std::env::var(name).ok(),
        };
        let mut env_errors = Vec::new();
        env::interpolate(&mut root, &lookup, &mut env_errors);
        for e in env_errors {
            let pos = yaml::pos_within(&text, e.pos, &e.value, e.offset);
            problems.0.push(read::Problem {
                pos,
                message: e.message,
                help: e.help,
                width: 1,
            });
        }
        let spec = spec::read(&root, &dir, &mut problems);
        // Inputs, columns and expressions are checked also when the file has
        // other problems (all are reported at once), but a source that cannot
        // be read then is not reported again: its path may hold a variable
        // that could not be substituted.
        let sound = problems.0.is_empty();
        let name = spec.name.clone().unwrap_or_else(|| {
            path.file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("workflow")
                .to_string()
        });
        match plan::plan(spec, &text, sound, &mut problems).await {
            Some(plan) if problems.0.is_empty() => Ok(Workflow { name, plan }),
            _ => Err(fail(problems.0)),
        }
    }

    /// The workflow's `name`, or the file's stem.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The workflow's DAG, as [`Graph::describe`](crate::Graph::describe)
    /// gives it for a pipeline written in Rust: one stage per node, named by
    /// its id.
    pub fn describe(&self, format: crate::graph::Format) -> String {
        build::build(&self.plan).describe(format)
    }

    /// The graph to run. Creates the missing directories of its outputs
    /// first (the files themselves are written only when the run
    /// completes).
    pub fn into_graph(self) -> crate::Result<crate::Graph> {
        for dir in self.plan.output_dirs() {
            std::fs::create_dir_all(&dir).map_err(|e| crate::Error::io(&dir, e))?;
        }
        Ok(build::build(&self.plan))
    }
}

/// Applies `--set key.path=value`: the value replaces (or adds) the entry,
/// as text.
fn set(root: &mut yaml::Node, key: &str, value: &str, problems: &mut read::Problems) {
    let mut node = root;
    let parts: Vec<&str> = key.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let yaml::Yaml::Map(entries) = &mut node.value else {
            problems.at(
                Pos::default(),
                format!("--set {key}: `{}` is not a mapping", parts[..i].join(".")),
            );
            return;
        };
        let at = match entries.iter().position(|(k, _)| k.name == *part) {
            Some(at) => at,
            None => {
                let pos = Pos::default();
                let fresh = match i + 1 == parts.len() {
                    true => yaml::Yaml::Null,
                    false => yaml::Yaml::Map(Vec::new()),
                };
                entries.push((
                    yaml::Key {
                        pos,
                        name: part.to_string(),
                    },
                    yaml::Node { pos, value: fresh },
                ));
                entries.len() - 1
            }
        };
        node = &mut entries[at].1;
    }
    node.value = yaml::Yaml::Str(value.to_string());
}
