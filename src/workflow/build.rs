//! From the checked plan to the [`Graph`] it runs as: each node one stage
//! named by its id, fan-out where several nodes read one output, merge where
//! one node reads several, expressions as compiled closures.

use std::collections::HashMap;
use std::sync::Arc;

use futures::stream::BoxStream;

use super::expr::{EvalError, Expr};
use super::plan::{Op, Plan, Port};
use super::spec::{MaxErrorsSpec, Policy, Unmatched};
use crate::record::{DataType, Record, Schema, Value};
use crate::state::{Columns, Miss, Window, Within, time_column};
use crate::{
    Batch, DeadLetters, ErrorPolicy, Graph, MaxErrors, Pipeline, Rejected, Result, csv, jsonl, sink,
};

type Boxed = Pipeline<BoxStream<'static, Result<Batch<Record>>>>;

/// The CSV source a plan's `CsvSource` reads with (`schema`: the columns
/// with their types, once known).
pub(crate) fn csv_source(op: &Op, schema: Option<Arc<Schema>>) -> csv::CsvSource<Record> {
    let Op::CsvSource { path, csv, infer } = op else {
        unreachable!("csv_source of a CSV source")
    };
    let source = csv::read_records(path).options(csv.clone());
    match (schema, infer) {
        (Some(schema), None) => source.schema(schema),
        (_, Some(rows)) => source.infer_schema(usize::try_from(*rows).unwrap_or(usize::MAX).max(1)),
        (None, None) => source,
    }
}

/// A record error from an expression, naming the node.
#[derive(Debug)]
struct NodeError {
    node: Arc<str>,
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl std::fmt::Display for NodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}`: {}", self.node, self.source)
    }
}

impl std::error::Error for NodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.source.as_ref())
    }
}

/// An expression, recompiled if records come with other columns than it was
/// compiled for (checked by pointer per record, by value once per change).
struct Guarded {
    expr: Expr,
    schema: Arc<Schema>,
    node: Arc<str>,
}

impl Guarded {
    fn new(expr: Expr, schema: Arc<Schema>, node: &Arc<str>) -> Self {
        Guarded {
            expr,
            schema,
            node: node.clone(),
        }
    }

    fn error(&self, e: EvalError) -> NodeError {
        NodeError {
            node: self.node.clone(),
            source: Box::new(e),
        }
    }

    fn fit(&mut self, record: &Record) -> std::result::Result<(), NodeError> {
        if Arc::ptr_eq(record.schema(), &self.schema) {
            return Ok(());
        }
        if **record.schema() != *self.schema {
            self.expr =
                Expr::compile(self.expr.source(), record.schema()).map_err(|e| NodeError {
                    node: self.node.clone(),
                    source: Box::new(e),
                })?;
        }
        self.schema = record.schema().clone();
        Ok(())
    }

    fn test(&mut self, record: &Record) -> std::result::Result<bool, NodeError> {
        self.fit(record)?;
        self.expr.test(record).map_err(|e| self.error(e))
    }

    fn eval(&mut self, record: &Record) -> std::result::Result<Value, NodeError> {
        self.fit(record)?;
        self.expr.eval(record).map_err(|e| self.error(e))
    }
}

/// What becomes of a plan's `on_error`, the dead-letter sinks shared by file.
struct Policies {
    dead_letters: HashMap<std::path::PathBuf, DeadLetters>,
}

impl Policies {
    fn of(&mut self, policy: &Policy) -> ErrorPolicy {
        match policy {
            Policy::Fail => ErrorPolicy::Abort,
            Policy::Skip => ErrorPolicy::Skip,
            Policy::DeadLetter(path) => self
                .dead_letters
                .entry(path.value.clone())
                .or_insert_with(|| DeadLetters::to(jsonl::write::<Rejected>(&path.value)))
                .clone()
                .into(),
        }
    }
}

/// Builds the graph of `plan`.
pub(crate) fn build(plan: &Plan) -> Graph {
    let mut policies = Policies {
        dead_letters: HashMap::new(),
    };
    let default = plan.on_error.as_ref().map(|p| policies.of(p));
    let max_errors = plan.max_errors.map(|m| match m {
        MaxErrorsSpec::Count(n) => MaxErrors::Count(n),
        MaxErrorsSpec::Rate(r) => MaxErrors::Rate(r),
    });
    // How many readers each output has.
    let mut readers: HashMap<Port, usize> = HashMap::new();
    for node in &plan.nodes {
        for port in &node.inputs {
            *readers.entry(*port).or_default() += 1;
        }
        if let Op::Lookup { table, .. } = &node.op {
            *readers.entry(*table).or_default() += 1;
        }
    }
    let mut ready: HashMap<Port, Vec<Boxed>> = HashMap::new();
    let mut graph: Option<Graph> = None;
    let mut add = |runnable: Graph| {
        graph = Some(match graph.take() {
            Some(g) => g.and(runnable),
            None => runnable,
        });
    };
    for (index, node) in plan.nodes.iter().enumerate() {
        let id: Arc<str> = Arc::from(node.id.as_str());
        let mut inputs: Vec<Boxed> = node
            .inputs
            .iter()
            .map(|port| {
                ready
                    .get_mut(port)
                    .and_then(Vec::pop)
                    .expect("an input is built before its reader")
            })
            .collect();
        let input = match inputs.len() {
            0 => None,
            1 => inputs.pop(),
            _ => {
                let mut merged = inputs.remove(0);
                for other in inputs {
                    merged = merged.merge(other).boxed();
                }
                Some(merged.name(format!("{id}:merge")).boxed())
            }
        };
        let policy = node.on_error.as_ref().map(|p| policies.of(p));
        let with_policy = |p: Boxed| match &policy {
            Some(policy) => p.on_error(policy.clone()),
            None => p,
        };
        let outputs: Vec<Boxed> = match &node.op {
            Op::CsvSource { .. } => {
                let schema = match &node.op {
                    Op::CsvSource { infer: None, .. } => Some(node.schema.clone()),
                    _ => None,
                };
                vec![source_pipeline(
                    csv_source(&node.op, schema),
                    &id,
                    &policy,
                    &default,
                    max_errors,
                )]
            }
            Op::JsonlSource {
                path,
                lossy_utf8,
                max_line_bytes,
                batch_size,
            } => {
                let mut source = jsonl::read_records(path)
                    .lossy_utf8(*lossy_utf8)
                    .schema(node.schema.clone());
                if let Some(n) = max_line_bytes {
                    source =
                        source.max_line_bytes(usize::try_from(*n).unwrap_or(usize::MAX).max(1));
                }
                if let Some(n) = batch_size {
                    source = source.batch_size((*n as usize).max(1));
                }
                vec![source_pipeline(source, &id, &policy, &default, max_errors)]
            }
            Op::Filter(expr) => {
                let input_schema = plan.nodes[node.inputs[0].node].schema.clone();
                let mut g = Guarded::new(expr.clone(), input_schema, &id);
                let p = input
                    .expect("a transform has an input")
                    .try_filter(move |r: &Record| g.test(r))
                    .name(id.as_ref());
                vec![with_policy(p.boxed())]
            }
            Op::Derive { steps, select } => {
                let input_schema = plan.nodes[node.inputs[0].node].schema.clone();
                let mut derive =
                    Derive::new(steps, select.as_deref(), &input_schema, &node.schema, &id);
                let p = input
                    .expect("a transform has an input")
                    .try_map(move |r: &Record| derive.apply(r))
                    .name(id.as_ref());
                vec![with_policy(p.boxed())]
            }
            Op::Project(columns) => {
                let out = node.schema.clone();
                let columns = columns.clone();
                let p = input
                    .expect("a transform has an input")
                    .map(move |r: Record| {
                        // The record is ours and each column is picked once
                        // (a column selected twice is refused): move, not clone.
                        let mut values = r.into_values();
                        Record::new(
                            out.clone(),
                            columns
                                .iter()
                                .map(|&i| std::mem::take(&mut values[i]))
                                .collect(),
                        )
                    });
                vec![p.name(id.as_ref()).boxed()]
            }
            Op::Rename => {
                let out = node.schema.clone();
                let p = input
                    .expect("a transform has an input")
                    .map(move |r: Record| Record::new(out.clone(), r.into_values()));
                vec![p.name(id.as_ref()).boxed()]
            }
            Op::Cast(casts) => {
                let out = node.schema.clone();
                let casts = casts.clone();
                let p = input
                    .expect("a transform has an input")
                    .try_map(move |r: &Record| {
                        let mut values = r.values().to_vec();
                        for &(i, ty) in &casts {
                            values[i] = cast(&values[i], ty).map_err(|e| {
                                format!("cast of `{}`: {e}", out.fields()[i].name())
                            })?;
                        }
                        Ok::<_, String>(Record::new(out.clone(), values))
                    });
                vec![with_policy(p.name(id.as_ref()).boxed())]
            }
            Op::FillNull(fills) => {
                let fills = fills.clone();
                let p = input
                    .expect("a transform has an input")
                    .map(move |r: Record| {
                        let schema = r.schema().clone();
                        let mut values = r.into_values();
                        for (i, value) in &fills {
                            if values[*i].is_null() {
                                values[*i] = value.clone();
                            }
                        }
                        Record::new(schema, values)
                    });
                vec![p.name(id.as_ref()).boxed()]
            }
            Op::Route(routes) => {
                let input_schema = plan.nodes[node.inputs[0].node].schema.clone();
                let mut guards: Vec<Guarded> = routes
                    .iter()
                    .map(|(_, e)| Guarded::new(e.clone(), input_schema.clone(), &id))
                    .collect();
                let n = routes.len();
                let keyed = input
                    .expect("a transform has an input")
                    .try_map(move |r: &Record| {
                        for (i, g) in guards.iter_mut().enumerate() {
                            if g.test(r)? {
                                return Ok::<_, NodeError>((i, r.clone()));
                            }
                        }
                        Ok((n, r.clone()))
                    })
                    .name(id.as_ref());
                let keyed = match &policy {
                    Some(policy) => keyed.on_error(policy.clone()),
                    None => keyed,
                };
                let names = routes
                    .iter()
                    .map(|(name, _)| name.as_str())
                    .chain(["_unmatched"]);
                keyed
                    .route_n(n + 1, |(i, _): &(usize, Record)| *i)
                    .into_iter()
                    .zip(names)
                    .enumerate()
                    .map(|(i, (branch, name))| {
                        let branch = match i {
                            0 => branch.name(format!("{id}:route")),
                            _ => branch,
                        };
                        branch
                            .map(|(_, r): (usize, Record)| r)
                            .name(format!("{id}.{name}"))
                            .boxed()
                    })
                    .collect()
            }
            Op::Aggregate {
                key,
                aggs,
                max_keys,
            } => {
                let mut k = input
                    .expect("a transform has an input")
                    .key_by(Columns::new(key.iter().map(String::as_str)));
                if let Some(n) = max_keys {
                    k = k.max_keys(*n);
                }
                vec![with_policy(
                    k.aggregate_columns(aggs.clone()).name(id.as_ref()).boxed(),
                )]
            }
            Op::Window {
                key,
                time,
                size,
                slide,
                lateness,
                aggs,
                max_keys,
            } => {
                let window = match slide {
                    Some(slide) => Window::sliding(*size, *slide),
                    None => Window::tumbling(*size),
                };
                let mut k = input
                    .expect("a transform has an input")
                    .event_time(time_column(time), *lateness)
                    .key_by(Columns::new(key.iter().map(String::as_str)))
                    .window(window);
                if let Some(n) = max_keys {
                    k = k.max_keys(*n);
                }
                vec![with_policy(
                    k.aggregate_columns(aggs.clone()).name(id.as_ref()).boxed(),
                )]
            }
            Op::Dedup { key, max_keys } => {
                let within = match max_keys {
                    Some(n) => Within::keys(*n as usize),
                    None => Within::all(),
                };
                let p = input
                    .expect("a transform has an input")
                    .key_by(Columns::new(key.iter().map(String::as_str)))
                    .dedup(within)
                    .name(id.as_ref());
                vec![with_policy(p.boxed())]
            }
            Op::Lookup {
                table,
                on,
                table_key,
                prefix,
                unmatched,
            } => {
                let table = ready
                    .get_mut(table)
                    .and_then(Vec::pop)
                    .expect("the table is built before its reader");
                let join = input
                    .expect("a transform has an input")
                    .lookup(
                        table.key_by(Columns::new(table_key.iter().map(String::as_str))),
                        Columns::new(on.iter().map(String::as_str)),
                    )
                    .prefix(prefix);
                let p = match unmatched {
                    Unmatched::Keep => join.left_merged().name(id.as_ref()).boxed(),
                    Unmatched::Drop => join.inner_merged(Miss::Drop).name(id.as_ref()).boxed(),
                    Unmatched::Error => {
                        with_policy(join.inner_merged(Miss::Error).name(id.as_ref()).boxed())
                    }
                };
                vec![p]
            }
            Op::CsvSink { path, csv: options } => {
                let sink = csv::write_records(path)
                    .options(options.clone())
                    .schema(node.schema.clone());
                add(Graph::from(
                    input
                        .expect("a sink has an input")
                        .to(sink)
                        .name(id.as_ref()),
                ));
                Vec::new()
            }
            Op::JsonlSink { path } => {
                add(Graph::from(
                    input
                        .expect("a sink has an input")
                        .to(jsonl::write(path))
                        .name(id.as_ref()),
                ));
                Vec::new()
            }
        };
        // Hand each output to its readers: one as it is, several through a tee.
        for (output, pipeline) in outputs.into_iter().enumerate() {
            let port = Port {
                node: index,
                output,
            };
            // Stages made here are named after the output with a `:`, which
            // no node or route name has.
            let shown = match &node.op {
                Op::Route(routes) => {
                    let route = routes
                        .get(output)
                        .map_or("_unmatched", |(name, _)| name.as_str());
                    format!("{id}.{route}")
                }
                _ => id.to_string(),
            };
            match readers.get(&port).copied().unwrap_or(0) {
                0 => add(Graph::from(
                    pipeline
                        .filter(|_| false)
                        .name(format!("{shown}:unread"))
                        .to(sink::discard())
                        .name(format!("{shown}:discard")),
                )),
                1 => {
                    ready.insert(port, vec![pipeline]);
                }
                n => {
                    let name = format!("{shown}:tee");
                    let branches = pipeline
                        .tee_n(n)
                        .into_iter()
                        .enumerate()
                        .map(|(i, b)| match i {
                            0 => b.name(name.as_str()).boxed(),
                            _ => b.boxed(),
                        })
                        .collect();
                    ready.insert(port, branches);
                }
            }
        }
    }
    let mut graph = graph.expect("a checked workflow has a sink");
    if let Some(bytes) = plan.max_in_flight_bytes {
        graph = graph.max_in_flight_bytes(usize::try_from(bytes).unwrap_or(usize::MAX));
    }
    graph
}

/// A source node's pipeline: named by its id, with its own policy, and the
/// run-wide policy and error limit.
fn source_pipeline<S>(
    source: S,
    id: &str,
    policy: &Option<ErrorPolicy>,
    default: &Option<ErrorPolicy>,
    max_errors: Option<MaxErrors>,
) -> Boxed
where
    S: crate::Source<Record = Record>,
{
    let mut p = Pipeline::from(source).name(id);
    if let Some(policy) = policy {
        p = p.on_error(policy.clone());
    }
    if let Some(d) = default {
        p = p.default_policy(d.clone());
    }
    if let Some(m) = max_errors {
        p = p.max_errors(m);
    }
    p.boxed()
}

/// Where an output column of a derive node comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
enum From {
    /// The input record's column.
    Input(usize),
    /// The value of the node's expression.
    Derived(usize),
}

/// A derive node's records: each expression evaluated, then the output's
/// columns picked from the input and the results. When no expression reads
/// a column another one makes (the usual case), each is evaluated on the
/// input record as it is and only the output's columns are copied;
/// otherwise the record is rebuilt step by step.
struct Derive {
    steps: Vec<(Option<usize>, Guarded)>,
    /// The output's columns, when every step reads input columns only.
    direct: Option<Vec<From>>,
    select: Option<Vec<usize>>,
    out: Arc<Schema>,
    /// The results of the record at hand.
    derived: Vec<Value>,
}

impl Derive {
    fn new(
        steps: &[(Option<usize>, Expr, Arc<Schema>)],
        select: Option<&[usize]>,
        input: &Arc<Schema>,
        out: &Arc<Schema>,
        id: &Arc<str>,
    ) -> Derive {
        let mut columns: Vec<From> = (0..input.len()).map(From::Input).collect();
        let mut direct = true;
        let mut on_input = Vec::new();
        for (k, (at, expr, schema)) in steps.iter().enumerate() {
            let reads = Expr::columns_of(expr.source()).unwrap_or_default();
            let from_input = reads.iter().all(|name| {
                matches!(
                    schema.index_of(name).map(|i| columns[i]),
                    Some(From::Input(_))
                )
            });
            match (from_input, Expr::compile(expr.source(), input)) {
                (true, Ok(e)) => on_input.push((*at, Guarded::new(e, input.clone(), id))),
                _ => direct = false,
            }
            match at {
                Some(i) => columns[*i] = From::Derived(k),
                None => columns.push(From::Derived(k)),
            }
        }
        let picked = |columns: &[From]| match select {
            Some(picked) => picked.iter().map(|&i| columns[i]).collect(),
            None => columns.to_vec(),
        };
        match direct {
            true => Derive {
                steps: on_input,
                direct: Some(picked(&columns)),
                select: None,
                out: out.clone(),
                derived: Vec::with_capacity(steps.len()),
            },
            false => Derive {
                steps: steps
                    .iter()
                    .map(|(at, expr, schema)| (*at, Guarded::new(expr.clone(), schema.clone(), id)))
                    .collect(),
                direct: None,
                select: select.map(<[usize]>::to_vec),
                out: out.clone(),
                derived: Vec::new(),
            },
        }
    }

    fn apply(&mut self, record: &Record) -> std::result::Result<Record, NodeError> {
        if let Some(columns) = &self.direct {
            // Kept from record to record: no allocation for the results.
            let derived = &mut self.derived;
            derived.clear();
            for (_, guard) in &mut self.steps {
                derived.push(guard.eval(record)?);
            }
            let input = record.values();
            let values = columns
                .iter()
                .map(|from| match *from {
                    From::Input(i) => input[i].clone(),
                    From::Derived(k) => std::mem::take(&mut derived[k]),
                })
                .collect();
            return Ok(Record::new(self.out.clone(), values));
        }
        let mut values = record.values().to_vec();
        for (at, guard) in &mut self.steps {
            // The record so far, with the columns derived before this one.
            let scratch = Record::new(guard.schema.clone(), values);
            let value = guard.eval(&scratch)?;
            values = scratch.into_values();
            match at {
                Some(i) => values[*i] = value,
                None => values.push(value),
            }
        }
        let values = match &self.select {
            Some(picked) => picked
                .iter()
                .map(|&i| std::mem::take(&mut values[i]))
                .collect(),
            None => values,
        };
        Ok(Record::new(self.out.clone(), values))
    }
}

/// `value` as a `ty`: text parsed as the CSV reader parses it, numbers
/// converted, null kept.
fn cast(value: &Value, ty: DataType) -> std::result::Result<Value, String> {
    match (value, ty) {
        (Value::Null, _) => Ok(Value::Null),
        (Value::Int(i), DataType::Float) => Ok(Value::Float(*i as f64)),
        (Value::Float(f), DataType::Int) if f.fract() == 0.0 && f.abs() < 9.2e18 => {
            Ok(Value::Int(*f as i64))
        }
        (Value::Str(_), DataType::Str) => Ok(value.clone()),
        (Value::Str(s), _) => ty.parse(s),
        (v, DataType::Str) => Ok(Value::from(v.to_string().as_str())),
        (v, _) => ty.parse(&v.to_string()),
    }
}
