//! From the file's structure to a checked plan: inputs resolved, cycles
//! refused, every node's columns known (CSV headers and samples read),
//! expressions compiled against them, outputs checked against inputs and
//! their directories. Every problem is collected, none stops the others.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::expr::Expr;
use super::read::{Problems, closest, suggestion};
use super::spec::{At, Kind, MaxErrorsSpec, NodeSpec, Policy, Role, Spec, Unmatched};
use super::yaml::{Pos, Yaml, pos_within};
use crate::csv::CsvOptions;
use crate::record::{DataType, Field, Schema, Value};
use crate::state::Agg;

/// Where a node reads from: a node (its index in [`Plan::nodes`]) and which
/// of its outputs (a route has one per route and `_unmatched`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Port {
    pub(crate) node: usize,
    pub(crate) output: usize,
}

/// The checked workflow.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) nodes: Vec<Planned>,
    pub(crate) on_error: Option<Policy>,
    pub(crate) max_errors: Option<MaxErrorsSpec>,
    pub(crate) max_in_flight_bytes: Option<u64>,
}

impl Plan {
    /// The directories the outputs (sinks, dead letters) go into.
    pub(crate) fn output_dirs(&self) -> Vec<PathBuf> {
        let mut files: Vec<&Path> = Vec::new();
        for p in std::iter::once(&self.on_error).chain(self.nodes.iter().map(|n| &n.on_error)) {
            if let Some(Policy::DeadLetter(path)) = p {
                files.push(&path.value);
            }
        }
        for node in &self.nodes {
            if let Op::CsvSink { path, .. } | Op::JsonlSink { path } = &node.op {
                files.push(path);
            }
        }
        let mut dirs: Vec<PathBuf> = files
            .into_iter()
            .filter_map(|f| {
                f.parent()
                    .filter(|d| !d.as_os_str().is_empty())
                    .map(Path::to_path_buf)
            })
            .collect();
        dirs.sort();
        dirs.dedup();
        dirs
    }
}

/// One node, checked.
#[derive(Debug, Clone)]
pub(crate) struct Planned {
    pub(crate) id: String,
    pub(crate) inputs: Vec<Port>,
    pub(crate) op: Op,
    /// The columns of its output(s).
    pub(crate) schema: Arc<Schema>,
    pub(crate) on_error: Option<Policy>,
}

/// What a node does, ready to build.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    CsvSource {
        path: PathBuf,
        csv: CsvOptions,
        /// Types inferred from this many rows.
        infer: Option<u64>,
    },
    JsonlSource {
        path: PathBuf,
        lossy_utf8: bool,
        max_line_bytes: Option<u64>,
        batch_size: Option<u64>,
    },
    Filter(Expr),
    /// Each expression, evaluated in order on the record so far (whose
    /// columns are the step's schema), replaces the column at `Some(index)`
    /// or is added (`None`); then `select` picks the output's columns by
    /// index.
    Derive {
        steps: Vec<(Option<usize>, Expr, Arc<Schema>)>,
        select: Option<Vec<usize>>,
    },
    /// The output's columns, by input index (select, drop).
    Project(Vec<usize>),
    /// Same values, other names.
    Rename,
    Cast(Vec<(usize, DataType)>),
    FillNull(Vec<(usize, Value)>),
    /// The routes' names and tests, in order.
    Route(Vec<(String, Expr)>),
    Aggregate {
        key: Vec<String>,
        aggs: Vec<(String, Agg)>,
        max_keys: Option<u64>,
    },
    Window {
        key: Vec<String>,
        time: String,
        size: std::time::Duration,
        slide: Option<std::time::Duration>,
        lateness: std::time::Duration,
        aggs: Vec<(String, Agg)>,
        max_keys: Option<u64>,
    },
    Dedup {
        key: Vec<String>,
        max_keys: Option<u64>,
    },
    Lookup {
        table: Port,
        on: Vec<String>,
        table_key: Vec<String>,
        prefix: String,
        unmatched: Unmatched,
    },
    CsvSink {
        path: PathBuf,
        csv: CsvOptions,
    },
    JsonlSink {
        path: PathBuf,
    },
}

/// Checks `spec` and plans it; `None` when any problem was found.
pub(crate) async fn plan(
    spec: Spec,
    text: &str,
    sound: bool,
    problems: &mut Problems,
) -> Option<Plan> {
    let Spec {
        nodes,
        on_error,
        max_errors,
        max_in_flight_bytes,
        broken,
        ..
    } = spec;
    let index: HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.value.as_str(), i))
        .collect();
    // Resolve every input (and lookup table) to a port.
    let mut inputs: Vec<Vec<Port>> = Vec::with_capacity(nodes.len());
    let mut tables: Vec<Option<Port>> = Vec::with_capacity(nodes.len());
    let outputs_of = |n: &NodeSpec| -> Vec<String> {
        match &n.kind {
            Kind::Route { routes } => routes
                .iter()
                .map(|(name, _)| name.value.clone())
                .chain(["_unmatched".to_string()])
                .collect(),
            _ => vec![String::new()],
        }
    };
    let resolve = |at: &At<String>, problems: &mut Problems| -> Option<Port> {
        let (name, port) = match at.value.split_once('.') {
            Some((name, port)) => (name, Some(port)),
            None => (at.value.as_str(), None),
        };
        if broken.iter().any(|b| b == name) {
            return None; // its own problem is reported
        }
        let Some(&node) = index.get(name) else {
            let names: Vec<String> = nodes
                .iter()
                .filter(|n| n.role != Role::Sink)
                .flat_map(|n| match &n.kind {
                    Kind::Route { .. } => outputs_of(n)
                        .into_iter()
                        .map(|o| format!("{}.{o}", n.id.value))
                        .collect(),
                    _ => vec![n.id.value.clone()],
                })
                .collect();
            let q = problems.at(at.pos, format!("unknown input `{}`", at.value));
            q.width = at.value.chars().count();
            q.help = Some(match closest(&at.value, names.iter().map(String::as_str)) {
                Some(best) => format!("did you mean `{best}`?"),
                None => format!(
                    "inputs are sources and transforms: {}",
                    names
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
            return None;
        };
        let target = &nodes[node];
        if target.role == Role::Sink {
            problems.with_help(
                at.pos,
                format!("`{name}` is a sink: nothing reads from a sink"),
                "read from the node the sink reads from",
            );
            return None;
        }
        let outputs = outputs_of(target);
        match (port, &target.kind) {
            (None, Kind::Route { .. }) => {
                problems.with_help(
                    at.pos,
                    format!("`{name}` is a route: read one of its outputs"),
                    format!(
                        "one of {}",
                        outputs
                            .iter()
                            .map(|o| format!("`{name}.{o}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
                None
            }
            (None, _) => Some(Port { node, output: 0 }),
            (Some(port), Kind::Route { .. }) => match outputs.iter().position(|o| o == port) {
                Some(output) => Some(Port { node, output }),
                None => {
                    let allowed: Vec<&str> = outputs.iter().map(String::as_str).collect();
                    problems.with_help(
                        at.pos,
                        format!("route `{name}` has no output `{port}`"),
                        suggestion(port, &allowed),
                    );
                    None
                }
            },
            (Some(_), _) => {
                problems.with_help(
                    at.pos,
                    format!("`{name}` has one output: `{name}`"),
                    "only a route's outputs are named `route.name`",
                );
                None
            }
        }
    };
    let mut resolved_all = true;
    // Nodes whose every input (and table) is known: their columns can be.
    let mut complete = vec![true; nodes.len()];
    for (i, n) in nodes.iter().enumerate() {
        let mut ports = Vec::new();
        for at in &n.inputs {
            match resolve(at, problems) {
                Some(port) if ports.contains(&port) => {
                    problems.at(
                        at.pos,
                        format!("`{}` is listed twice in `inputs`", at.value),
                    );
                }
                Some(port) => ports.push(port),
                None => complete[i] = false,
            }
        }
        inputs.push(ports);
        tables.push(match &n.kind {
            Kind::Lookup { table, .. } => {
                let port = resolve(table, problems);
                complete[i] &= port.is_some();
                port
            }
            _ => None,
        });
        resolved_all &= complete[i];
    }
    // Every output is read by something (known only when every node was
    // read and every input resolved).
    let mut read: HashMap<Port, usize> = HashMap::new();
    for port in inputs.iter().flatten().chain(tables.iter().flatten()) {
        *read.entry(*port).or_default() += 1;
    }
    if resolved_all && sound {
        for (i, n) in nodes.iter().enumerate() {
            if n.role == Role::Sink {
                continue;
            }
            let outputs = outputs_of(n);
            for (o, name) in outputs.iter().enumerate() {
                let port = Port { node: i, output: o };
                if read.contains_key(&port) || name == "_unmatched" {
                    continue;
                }
                let shown = match name.is_empty() {
                    true => n.id.value.clone(),
                    false => format!("{}.{name}", n.id.value),
                };
                problems.with_help(
                    n.id.pos,
                    format!("the output of `{shown}` is never used"),
                    format!("add `{shown}` to the `inputs` of a transform or sink, or remove it"),
                );
            }
        }
    }
    // Order: every node after its inputs; what is left is in a cycle.
    let order = match topological(&inputs, &tables) {
        Ok(order) => order,
        Err(cycle) => {
            let names: Vec<&str> = cycle.iter().map(|&i| nodes[i].id.value.as_str()).collect();
            let first = &nodes[cycle[0]];
            problems.with_help(
                first.id.pos,
                format!("a cycle: {} → {}", names.join(" → "), names[0]),
                "a workflow is a DAG: a node cannot read, directly or not, its own output",
            );
            return None;
        }
    };
    // A lookup reads its table to the end before its input: if both come
    // from one node, the fan-out there waits for room on the input while
    // the lookup waits for the table's end.
    for (i, n) in nodes.iter().enumerate() {
        let (Some(table), Kind::Lookup { table: at, .. }) = (tables[i], &n.kind) else {
            continue;
        };
        let of_table = ancestors(&[table.node], &inputs, &tables);
        let of_input = ancestors(
            &inputs[i].iter().map(|p| p.node).collect::<Vec<_>>(),
            &inputs,
            &tables,
        );
        if let Some(&shared) = order.iter().find(|&&a| of_table[a] && of_input[a]) {
            problems.with_help(
                at.pos,
                format!(
                    "the table `{}` and the input of `{}` both come from `{}`: the lookup reads the table to its end before its input, which would wait on `{}` for ever",
                    at.value, n.id.value, nodes[shared].id.value, nodes[shared].id.value
                ),
                "read the table from a source of its own (a second source on the same file is fine)",
            );
        }
    }
    // Columns, node by node, in order.
    let mut schemas: Vec<Option<Arc<Schema>>> = vec![None; nodes.len()];
    let mut ops: Vec<Option<Op>> = (0..nodes.len()).map(|_| None).collect();
    for &i in &order {
        let n = &nodes[i];
        if !complete[i] {
            continue; // an input is unknown: its problem is reported
        }
        let input_schemas: Vec<Arc<Schema>> = inputs[i]
            .iter()
            .filter_map(|p| schemas[p.node].clone())
            .collect();
        if input_schemas.len() != inputs[i].len() {
            continue; // an input's columns are unknown: its problem is reported
        }
        let input = match merged_schema(n, &input_schemas, problems) {
            Some(schema) => schema,
            None if n.role == Role::Source => {
                Arc::new(Schema::new(Vec::<(String, DataType)>::new()))
            }
            None => continue,
        };
        let table = tables[i].and_then(|p| schemas[p.node].clone().map(|s| (p, s)));
        // A source that cannot be read in a file with other problems is not
        // reported again (its path may hold an unsubstituted variable).
        let mut own = Problems::default();
        let planned = node_plan(n, &input, table, text, &mut own).await;
        if sound || n.role != Role::Source || planned.is_some() {
            problems.0.extend(own.0);
        }
        if let Some((op, schema)) = planned {
            ops[i] = Some(op);
            schemas[i] = Some(schema);
        }
    }
    check_paths(&nodes, &on_error, problems);
    if !problems.0.is_empty() {
        return None;
    }
    let mut planned: Vec<Option<Planned>> = nodes
        .into_iter()
        .zip(inputs)
        .zip(ops.into_iter().zip(schemas))
        .map(|((n, inputs), (op, schema))| {
            Some(Planned {
                id: n.id.value,
                inputs,
                op: op?,
                schema: schema?,
                on_error: n.on_error,
            })
        })
        .collect();
    // Renumber ports into topological order.
    let mut position = vec![0; planned.len()];
    for (at, &i) in order.iter().enumerate() {
        position[i] = at;
    }
    let mut nodes = Vec::with_capacity(order.len());
    for &i in &order {
        let mut node = planned[i].take()?;
        for port in &mut node.inputs {
            port.node = position[port.node];
        }
        if let Op::Lookup { table, .. } = &mut node.op {
            table.node = position[table.node];
        }
        nodes.push(node);
    }
    Some(Plan {
        nodes,
        on_error,
        max_errors,
        max_in_flight_bytes,
    })
}

/// The nodes `from` read from, directly or not, `from` included.
fn ancestors(from: &[usize], inputs: &[Vec<Port>], tables: &[Option<Port>]) -> Vec<bool> {
    let mut seen = vec![false; inputs.len()];
    let mut stack: Vec<usize> = from.to_vec();
    while let Some(i) = stack.pop() {
        if !std::mem::replace(&mut seen[i], true) {
            stack.extend(inputs[i].iter().chain(tables[i].iter()).map(|p| p.node));
        }
    }
    seen
}

/// Kahn's order of the nodes, or a cycle.
fn topological(inputs: &[Vec<Port>], tables: &[Option<Port>]) -> Result<Vec<usize>, Vec<usize>> {
    let n = inputs.len();
    let deps: Vec<Vec<usize>> = (0..n)
        .map(|i| {
            inputs[i]
                .iter()
                .chain(tables[i].iter())
                .map(|p| p.node)
                .collect()
        })
        .collect();
    let mut done = vec![false; n];
    let mut order = Vec::with_capacity(n);
    loop {
        let before = order.len();
        for i in 0..n {
            if !done[i] && deps[i].iter().all(|&d| done[d]) {
                done[i] = true;
                order.push(i);
            }
        }
        if order.len() == n {
            return Ok(order);
        }
        if order.len() == before {
            // Walk back from any node left until a node repeats: a cycle.
            let mut path = vec![(0..n).find(|&i| !done[i]).expect("a node is left")];
            loop {
                let last = *path.last().expect("not empty");
                let next = deps[last]
                    .iter()
                    .copied()
                    .find(|&d| !done[d])
                    .expect("left in a cycle");
                if let Some(at) = path.iter().position(|&p| p == next) {
                    let mut cycle: Vec<usize> = path[at..].to_vec();
                    cycle.reverse();
                    // Start at the node first in the file.
                    let first = (0..cycle.len()).min_by_key(|&i| cycle[i]).unwrap_or(0);
                    cycle.rotate_left(first);
                    return Err(cycle);
                }
                path.push(next);
            }
        }
    }
}

/// The columns a node reads: its one input's, or those its inputs share.
fn merged_schema(
    n: &NodeSpec,
    inputs: &[Arc<Schema>],
    problems: &mut Problems,
) -> Option<Arc<Schema>> {
    let first = inputs.first()?;
    for (other, at) in inputs.iter().zip(&n.inputs).skip(1) {
        let names = |s: &Schema| s.names().map(str::to_string).collect::<Vec<_>>();
        if names(other) != names(first) {
            problems.with_help(
                at.pos,
                format!(
                    "`{}` has other columns than `{}`: [{}] and [{}]",
                    at.value,
                    n.inputs[0].value,
                    names(other).join(", "),
                    names(first).join(", ")
                ),
                "inputs merged into one node need the same columns in the same order: add a `select` before",
            );
            return None;
        }
    }
    Some(first.clone())
}

/// A column of `schema` named at `at`, or a problem with "did you mean".
fn column(schema: &Schema, at: &At<String>, what: &str, problems: &mut Problems) -> Option<usize> {
    let found = schema.index_of(&at.value);
    if found.is_none() {
        let q = problems.at(at.pos, format!("unknown column `{}` in {what}", at.value));
        q.width = at.value.chars().count().max(1);
        q.help = Some(match closest(&at.value, schema.names()) {
            Some(best) => format!("did you mean `{best}`?"),
            None => format!(
                "the columns are: {}",
                schema.names().collect::<Vec<_>>().join(", ")
            ),
        });
    }
    found
}

/// Compiles `expr` (at its position in the file) against `schema`,
/// reporting a problem at the exact character.
fn compile(
    expr: &At<String>,
    schema: &Schema,
    predicate: bool,
    text: &str,
    problems: &mut Problems,
) -> Option<Expr> {
    let compiled = match predicate {
        true => Expr::compile_predicate(&expr.value, schema),
        false => Expr::compile(&expr.value, schema),
    };
    match compiled {
        Ok(e) => Some(e),
        Err(e) => {
            let pos = pos_within(text, expr.pos, &expr.value, e.span().start);
            let q = problems.at(pos, e.message().to_string());
            q.width = e.span().len().max(1);
            q.help = e.help().map(str::to_string);
            None
        }
    }
}

#[allow(clippy::too_many_lines)]
async fn node_plan(
    n: &NodeSpec,
    input: &Arc<Schema>,
    table: Option<(Port, Arc<Schema>)>,
    text: &str,
    problems: &mut Problems,
) -> Option<(Op, Arc<Schema>)> {
    let what = format!("`{}`", n.id.value);
    let same = || input.clone();
    Some(match &n.kind {
        Kind::CsvSource {
            path,
            csv,
            infer_schema,
            schema,
        } => {
            let op = Op::CsvSource {
                path: path.value.clone(),
                csv: csv.clone(),
                infer: *infer_schema,
            };
            if let Some(problem) = not_a_file(&path.value) {
                problems.with_help(path.pos, problem, "a workflow reads a source's header before the run: give a regular file (`dataflare convert` reads pipes)");
                return None;
            }
            let header = match super::build::csv_source(&op, None).read_schema().await {
                Ok(header) => header,
                Err(e) => {
                    problems.with_help(
                        path.pos,
                        format!("cannot read the CSV header: {}", e),
                        "check the path (relative paths are relative to the workflow file)",
                    );
                    return None;
                }
            };
            let mut fields: Vec<Field> = header.fields().to_vec();
            for (name, ty) in schema {
                match fields.iter().position(|f| f.name() == name.value) {
                    Some(i) => fields[i] = Field::new(name.value.as_str(), ty.value),
                    None => {
                        column(
                            &header,
                            name,
                            &format!("{}'s header ({})", what, path.value.display()),
                            problems,
                        );
                    }
                }
            }
            (op, Arc::new(Schema::from_fields(fields)))
        }
        Kind::JsonlSource {
            path,
            lossy_utf8,
            max_line_bytes,
            schema,
            batch_size,
        } => {
            let op = Op::JsonlSource {
                path: path.value.clone(),
                lossy_utf8: *lossy_utf8,
                max_line_bytes: *max_line_bytes,
                batch_size: *batch_size,
            };
            if let Some(problem) = not_a_file(&path.value) {
                problems.with_help(path.pos, problem, "a workflow reads a source's first line before the run: give a regular file (`dataflare convert` reads pipes)");
                return None;
            }
            let mut fields = match first_object(&path.value) {
                Ok(fields) => fields,
                Err(message) => {
                    problems.with_help(
                        path.pos,
                        message,
                        "check the path (relative paths are relative to the workflow file)",
                    );
                    return None;
                }
            };
            for (name, ty) in schema {
                match fields.iter().position(|f| f.name() == name.value) {
                    Some(i) => fields[i] = Field::new(name.value.as_str(), ty.value),
                    None => fields.push(Field::new(name.value.as_str(), ty.value)),
                }
            }
            (op, Arc::new(Schema::from_fields(fields)))
        }
        Kind::Filter { expr } => (
            Op::Filter(compile(expr, input, true, text, problems)?),
            same(),
        ),
        Kind::Derive { columns, select } => {
            let mut fields: Vec<Field> = input.fields().to_vec();
            let mut steps = Vec::new();
            let mut ok = true;
            for (name, expr) in columns {
                let now = Arc::new(Schema::from_fields(fields.clone()));
                let Some(e) = compile(expr, &now, false, text, problems) else {
                    ok = false;
                    continue;
                };
                let ty = e.data_type().unwrap_or(DataType::Str);
                let field = Field::new(name.value.as_str(), ty);
                match fields.iter().position(|f| f.name() == name.value) {
                    Some(i) => {
                        fields[i] = field;
                        steps.push((Some(i), e, now));
                    }
                    None => {
                        fields.push(field);
                        steps.push((None, e, now));
                    }
                }
            }
            let all = Schema::from_fields(fields.clone());
            let select = match select {
                None => None,
                Some(names) => {
                    twice(names, problems)?;
                    let picked: Vec<Option<usize>> = names
                        .iter()
                        .map(|c| column(&all, c, &what, problems))
                        .collect();
                    Some(picked.into_iter().collect::<Option<Vec<usize>>>()?)
                }
            };
            if !ok {
                return None;
            }
            let out = match &select {
                Some(picked) => Schema::from_fields(picked.iter().map(|&i| fields[i].clone())),
                None => all,
            };
            (Op::Derive { steps, select }, Arc::new(out))
        }
        Kind::Select { columns } => {
            twice(columns, problems)?;
            let picked: Vec<Option<usize>> = columns
                .iter()
                .map(|c| column(input, c, &what, problems))
                .collect();
            let picked: Vec<usize> = picked.into_iter().collect::<Option<_>>()?;
            let out = Schema::from_fields(picked.iter().map(|&i| input.fields()[i].clone()));
            (Op::Project(picked), Arc::new(out))
        }
        Kind::Drop { columns } => {
            let dropped: Vec<Option<usize>> = columns
                .iter()
                .map(|c| column(input, c, &what, problems))
                .collect();
            let dropped: Vec<usize> = dropped.into_iter().collect::<Option<_>>()?;
            let kept: Vec<usize> = (0..input.len()).filter(|i| !dropped.contains(i)).collect();
            let out = Schema::from_fields(kept.iter().map(|&i| input.fields()[i].clone()));
            (Op::Project(kept), Arc::new(out))
        }
        Kind::Rename { columns } => {
            let mut fields = input.fields().to_vec();
            for (old, new) in columns {
                if let Some(i) = column(input, old, &what, problems) {
                    fields[i] = Field::new(new.value.as_str(), fields[i].data_type());
                }
            }
            let out = Schema::from_fields(fields);
            let mut seen = std::collections::HashSet::new();
            for (name, (_, new)) in out.names().zip(columns.iter().cycle()) {
                if !seen.insert(name.to_string()) {
                    problems.at(
                        new.pos,
                        format!("renaming gives two columns named `{name}`"),
                    );
                    return None;
                }
            }
            (Op::Rename, Arc::new(out))
        }
        Kind::Cast { columns } => {
            let mut fields = input.fields().to_vec();
            let mut casts = Vec::new();
            for (name, ty) in columns {
                if let Some(i) = column(input, name, &what, problems) {
                    fields[i] = Field::new(name.value.as_str(), ty.value);
                    casts.push((i, ty.value));
                }
            }
            (Op::Cast(casts), Arc::new(Schema::from_fields(fields)))
        }
        Kind::FillNull { columns } => {
            let mut fills = Vec::new();
            for (name, value) in columns {
                let Some(i) = column(input, name, &what, problems) else {
                    continue;
                };
                let ty = input.fields()[i].data_type();
                let text = match &value.value {
                    Yaml::Str(s) => s.clone(),
                    Yaml::Int(x) => x.to_string(),
                    Yaml::Float(x) => x.to_string(),
                    Yaml::Bool(x) => x.to_string(),
                    other => {
                        problems.at(
                            value.pos,
                            format!(
                                "the value for `{}` should be a scalar, found {}",
                                name.value,
                                other.kind()
                            ),
                        );
                        continue;
                    }
                };
                match ty.parse(&text) {
                    Ok(v) => fills.push((i, v)),
                    Err(e) => {
                        problems.at(
                            value.pos,
                            format!(
                                "the value for `{}` does not fit its type {ty}: {e}",
                                name.value
                            ),
                        );
                    }
                }
            }
            (Op::FillNull(fills), same())
        }
        Kind::Route { routes } => {
            let compiled: Vec<Option<(String, Expr)>> = routes
                .iter()
                .map(|(name, e)| {
                    compile(e, input, true, text, problems).map(|e| (name.value.clone(), e))
                })
                .collect();
            (
                Op::Route(compiled.into_iter().collect::<Option<_>>()?),
                same(),
            )
        }
        Kind::Aggregate {
            key,
            aggregates,
            max_keys,
        } => {
            let keys = key_columns(input, key, &what, problems)?;
            let (aggs, fields) = aggregates_of(input, aggregates, &what, problems)?;
            let mut out: Vec<Field> = keys.iter().map(|&i| input.fields()[i].clone()).collect();
            out.extend(fields);
            let op = Op::Aggregate {
                key: key.iter().map(|k| k.value.clone()).collect(),
                aggs,
                max_keys: *max_keys,
            };
            (op, Arc::new(Schema::from_fields(out)))
        }
        Kind::Window {
            key,
            time,
            size,
            slide,
            lateness,
            aggregates,
            max_keys,
        } => {
            let keys = key_columns(input, key, &what, problems);
            let t = column(input, time, &what, problems);
            if let Some(t) = t
                && input.fields()[t].data_type() != DataType::Timestamp
            {
                problems.with_help(
                    time.pos,
                    format!(
                        "`{}` is {}, not a timestamp",
                        time.value,
                        input.fields()[t].data_type()
                    ),
                    format!(
                        "declare it in the source's `schema: {{ {}: timestamp }}`",
                        time.value
                    ),
                );
            }
            let (aggs, fields) = aggregates_of(input, aggregates, &what, problems)?;
            let keys = keys?;
            t?;
            let mut out: Vec<Field> = keys.iter().map(|&i| input.fields()[i].clone()).collect();
            out.push(Field::new("window_start", DataType::Timestamp));
            out.push(Field::new("window_end", DataType::Timestamp));
            out.extend(fields);
            let op = Op::Window {
                key: key.iter().map(|k| k.value.clone()).collect(),
                time: time.value.clone(),
                size: size.value,
                slide: slide.as_ref().map(|s| s.value),
                lateness: *lateness,
                aggs,
                max_keys: *max_keys,
            };
            (op, Arc::new(Schema::from_fields(out)))
        }
        Kind::Dedup { key, max_keys } => {
            key_columns(input, key, &what, problems)?;
            let op = Op::Dedup {
                key: key.iter().map(|k| k.value.clone()).collect(),
                max_keys: *max_keys,
            };
            (op, same())
        }
        Kind::Lookup {
            table: table_at,
            on,
            table_key,
            prefix,
            unmatched,
        } => {
            let (port, table) = table?;
            if n.inputs.iter().any(|i| i.value == table_at.value) {
                problems.at(
                    table_at.pos,
                    format!("`{}` is both an input and the table", table_at.value),
                );
                return None;
            }
            let left = key_columns(input, on, &what, problems);
            let right = key_columns(
                &table,
                table_key,
                &format!("the table `{}`", table_at.value),
                problems,
            );
            let (_, right) = (left?, right?);
            if on.len() != table_key.len() {
                problems.at(
                    n.id.pos,
                    format!(
                        "`on` names {} columns and `table_key` {}",
                        on.len(),
                        table_key.len()
                    ),
                );
                return None;
            }
            let prefix = prefix.clone().unwrap_or_default();
            let mut out: Vec<Field> = input.fields().to_vec();
            for (i, f) in table.fields().iter().enumerate() {
                // The table's key columns named as this input's are left out.
                if right.contains(&i) && on.iter().any(|o| o.value == f.name()) {
                    continue;
                }
                let name = format!("{prefix}{}", f.name());
                if out.iter().any(|o| o.name() == name) {
                    problems.with_help(
                        table_at.pos,
                        format!("the table's column `{name}` is also a column of the input"),
                        "set `prefix:` (e.g. `prefix: user_`) to name the table's columns apart",
                    );
                    return None;
                }
                out.push(Field::new(name.as_str(), f.data_type()));
            }
            let op = Op::Lookup {
                table: port,
                on: on.iter().map(|k| k.value.clone()).collect(),
                table_key: table_key.iter().map(|k| k.value.clone()).collect(),
                prefix,
                unmatched: *unmatched,
            };
            (op, Arc::new(Schema::from_fields(out)))
        }
        Kind::CsvSink { path, csv } => (
            Op::CsvSink {
                path: path.value.clone(),
                csv: csv.clone(),
            },
            same(),
        ),
        Kind::JsonlSink { path } => (
            Op::JsonlSink {
                path: path.value.clone(),
            },
            same(),
        ),
    })
}

/// A problem for a name listed twice; `None` then.
fn twice(names: &[At<String>], problems: &mut Problems) -> Option<()> {
    for (i, name) in names.iter().enumerate() {
        if names[..i].iter().any(|n| n.value == name.value) {
            problems.at(name.pos, format!("`{}` is listed twice", name.value));
            return None;
        }
    }
    Some(())
}

fn key_columns(
    schema: &Schema,
    key: &[At<String>],
    what: &str,
    problems: &mut Problems,
) -> Option<Vec<usize>> {
    let found: Vec<Option<usize>> = key
        .iter()
        .map(|k| column(schema, k, what, problems))
        .collect();
    found.into_iter().collect()
}

/// The aggregates of a node and the output columns they make.
type Aggregates = (Vec<(String, Agg)>, Vec<Field>);

/// `count`, `sum(amount)`, `mean(x)`, `min(x)`, `max(x)`, `first(x)`,
/// `last(x)`, `count_distinct(x)`: the aggregates and their output columns.
fn aggregates_of(
    input: &Schema,
    aggregates: &[(At<String>, At<String>)],
    what: &str,
    problems: &mut Problems,
) -> Option<Aggregates> {
    const FUNCTIONS: &[&str] = &[
        "count",
        "sum",
        "mean",
        "min",
        "max",
        "first",
        "last",
        "count_distinct",
    ];
    let mut aggs = Vec::new();
    let mut fields = Vec::new();
    let mut ok = true;
    for (name, spec) in aggregates {
        let text = spec.value.trim();
        let (function, arg) = match text.split_once('(') {
            Some((f, rest)) => match rest.strip_suffix(')') {
                Some(arg) => (f.trim(), Some(arg.trim())),
                None => {
                    problems.with_help(
                        spec.pos,
                        format!("`{text}` is not an aggregate"),
                        "write `function(column)`, e.g. `sum(amount)`, or `count`",
                    );
                    ok = false;
                    continue;
                }
            },
            None => (text, None),
        };
        let arg = arg.filter(|a| !a.is_empty());
        if !FUNCTIONS.contains(&function) {
            problems.with_help(
                spec.pos,
                format!("unknown aggregate `{function}`"),
                suggestion(function, FUNCTIONS),
            );
            ok = false;
            continue;
        }
        let (agg, ty) = match (function, arg) {
            ("count", None) => (Agg::Count, DataType::Int),
            ("count", Some(_)) | (_, None) => {
                let help = match function {
                    "count" => "`count` counts records: write `count`".to_string(),
                    f => format!("`{f}` needs a column: `{f}(amount)`"),
                };
                problems.with_help(spec.pos, format!("`{text}`: wrong arguments"), help);
                ok = false;
                continue;
            }
            (f, Some(col)) => {
                let at = At {
                    pos: spec.pos,
                    value: col.to_string(),
                };
                let Some(i) = column(input, &at, what, problems) else {
                    ok = false;
                    continue;
                };
                let ty = input.fields()[i].data_type();
                let numeric = matches!(ty, DataType::Int | DataType::Float | DataType::Decimal);
                if matches!(f, "sum" | "mean") && !numeric {
                    problems.with_help(
                        spec.pos,
                        format!("`{f}({col})`: `{col}` is {ty}, not a number"),
                        format!("declare its type in the source's `schema: {{ {col}: float }}`"),
                    );
                    ok = false;
                    continue;
                }
                match f {
                    "sum" => (Agg::sum(col), ty),
                    "mean" => (Agg::mean(col), DataType::Float),
                    "min" => (Agg::min(col), ty),
                    "max" => (Agg::max(col), ty),
                    "first" => (Agg::first(col), ty),
                    "last" => (Agg::last(col), ty),
                    _ => (Agg::count_distinct(col), DataType::Int),
                }
            }
        };
        aggs.push((name.value.clone(), agg));
        fields.push(Field::new(name.value.as_str(), ty));
    }
    ok.then_some((aggs, fields))
}

/// Why `path` cannot be read twice (once for its columns, once by the
/// run), if it cannot: a FIFO or a device would lose what was read first.
fn not_a_file(path: &Path) -> Option<String> {
    match std::fs::metadata(path) {
        Ok(meta) if !meta.is_file() => Some(format!("`{}` is not a regular file", path.display())),
        _ => None,
    }
}

/// The columns of a JSON Lines file's first object, typed from its values.
fn first_object(path: &Path) -> Result<Vec<Field>, String> {
    use std::io::BufRead;
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut lines = std::io::BufReader::new(file).lines();
    let line = loop {
        match lines.next() {
            None => return Ok(Vec::new()),
            Some(Err(e)) => return Err(format!("cannot read {}: {e}", path.display())),
            Some(Ok(line)) if line.trim().is_empty() => continue,
            Some(Ok(line)) => break line,
        }
    };
    let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&line)
        .map_err(|e| format!("{}: line 1 is not a JSON object: {e}", path.display()))?;
    Ok(object
        .iter()
        .map(|(name, value)| {
            let ty = match value {
                serde_json::Value::Bool(_) => DataType::Bool,
                serde_json::Value::Number(n) if n.is_i64() => DataType::Int,
                serde_json::Value::Number(_) => DataType::Float,
                serde_json::Value::String(_) | serde_json::Value::Null => DataType::Str,
                _ => DataType::Json,
            };
            Field::new(name.as_str(), ty)
        })
        .collect())
}

/// Outputs that are also inputs, two outputs to one file, and output
/// directories that cannot be written.
fn check_paths(nodes: &[NodeSpec], on_error: &Option<Policy>, problems: &mut Problems) {
    let canonical = |p: &Path| -> PathBuf {
        match (p.parent(), p.file_name()) {
            (Some(dir), Some(name)) => match std::fs::canonicalize(if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            }) {
                Ok(dir) => dir.join(name),
                Err(_) => p.to_path_buf(),
            },
            _ => p.to_path_buf(),
        }
    };
    let mut reads: Vec<(PathBuf, &str)> = Vec::new();
    let mut writes: Vec<(PathBuf, Pos, String)> = Vec::new();
    let dead_letters =
        |policy: &Option<Policy>, id: &str, writes: &mut Vec<(PathBuf, Pos, String)>| {
            if let Some(Policy::DeadLetter(path)) = policy {
                writes.push((
                    path.value.clone(),
                    path.pos,
                    format!("dead letters of {id}"),
                ));
            }
        };
    dead_letters(on_error, "the workflow", &mut writes);
    for n in nodes {
        match &n.kind {
            Kind::CsvSource { path, .. } | Kind::JsonlSource { path, .. } => {
                reads.push((canonical(&path.value), &n.id.value))
            }
            Kind::CsvSink { path, .. } | Kind::JsonlSink { path } => writes.push((
                path.value.clone(),
                path.pos,
                format!("sink `{}`", n.id.value),
            )),
            _ => {}
        }
        dead_letters(&n.on_error, &format!("`{}`", n.id.value), &mut writes);
    }
    let mut seen: Vec<(PathBuf, String)> = Vec::new();
    for (path, pos, who) in &writes {
        let c = canonical(path);
        if let Some((_, source)) = reads.iter().find(|(r, _)| *r == c) {
            problems.with_help(
                *pos,
                format!(
                    "{who} would overwrite `{}`, the input of source `{source}`",
                    path.display()
                ),
                "write the output to another file",
            );
        }
        if let Some((_, other)) = seen.iter().find(|(s, _)| *s == c) {
            problems.with_help(
                *pos,
                format!("{who} writes `{}`, as {other} does", path.display()),
                "give each output a file of its own",
            );
        }
        seen.push((c, who.clone()));
        if let Some(problem) = unwritable(path) {
            problems.at(*pos, problem);
        }
    }
}

/// Why an output at `path` could not be written, if it could not: its
/// nearest existing ancestor must be a writable directory (missing ones are
/// created by the run).
fn unwritable(path: &Path) -> Option<String> {
    if path.is_dir() {
        return Some(format!("`{}` is a directory, not a file", path.display()));
    }
    let mut dir = path.parent();
    while let Some(d) = dir {
        let d = if d.as_os_str().is_empty() {
            Path::new(".")
        } else {
            d
        };
        match std::fs::metadata(d) {
            Ok(meta) if !meta.is_dir() => {
                return Some(format!(
                    "`{}` is a file, so `{}` cannot be written",
                    d.display(),
                    path.display()
                ));
            }
            Ok(meta) if meta.permissions().readonly() => {
                return Some(format!("the directory `{}` is read-only", d.display()));
            }
            Ok(_) => return None,
            Err(_) => dir = d.parent(),
        }
    }
    None
}
