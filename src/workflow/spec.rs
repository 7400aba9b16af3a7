//! The workflow file's structure, read from the positioned tree: every node
//! with its id, type, inputs and options, each value with its position.

use std::path::{Path, PathBuf};

use super::read::{self, Fields, Problems, suggestion};
use super::yaml::{Node, Pos, Yaml};
use crate::csv::{CsvOptions, DuplicateHeaders};
use crate::record::DataType;

/// A name, or a text value, and where it is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct At<T> {
    pub(crate) pos: Pos,
    pub(crate) value: T,
}

/// The whole file.
#[derive(Debug, Default)]
pub(crate) struct Spec {
    pub(crate) name: Option<String>,
    pub(crate) nodes: Vec<NodeSpec>,
    pub(crate) on_error: Option<Policy>,
    pub(crate) max_errors: Option<MaxErrorsSpec>,
    pub(crate) max_in_flight_bytes: Option<u64>,
    /// Nodes left out for problems already reported: a reference to one is
    /// not reported again.
    pub(crate) broken: Vec<String>,
}

/// `max_errors`: a count, or a fraction with `%`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum MaxErrorsSpec {
    Count(u64),
    Rate(f64),
}

/// What happens to a record that fails.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Policy {
    Fail,
    Skip,
    /// Put aside into a JSON Lines file (relative to the workflow file).
    DeadLetter(At<PathBuf>),
}

/// Which section a node is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Source,
    Transform,
    Sink,
}

/// One named node.
#[derive(Debug)]
pub(crate) struct NodeSpec {
    pub(crate) id: At<String>,
    pub(crate) role: Role,
    pub(crate) inputs: Vec<At<String>>,
    pub(crate) kind: Kind,
    pub(crate) on_error: Option<Policy>,
}

/// What a node does.
#[derive(Debug)]
pub(crate) enum Kind {
    CsvSource {
        path: At<PathBuf>,
        /// Every reading option but the columns.
        csv: CsvOptions,
        infer_schema: Option<u64>,
        schema: Vec<(At<String>, At<DataType>)>,
    },
    JsonlSource {
        path: At<PathBuf>,
        lossy_utf8: bool,
        max_line_bytes: Option<u64>,
        schema: Vec<(At<String>, At<DataType>)>,
        batch_size: Option<u64>,
    },
    Filter {
        expr: At<String>,
    },
    Derive {
        columns: Vec<(At<String>, At<String>)>,
        select: Option<Vec<At<String>>>,
    },
    Select {
        columns: Vec<At<String>>,
    },
    Drop {
        columns: Vec<At<String>>,
    },
    Rename {
        columns: Vec<(At<String>, At<String>)>,
    },
    Cast {
        columns: Vec<(At<String>, At<DataType>)>,
    },
    FillNull {
        columns: Vec<(At<String>, Node)>,
    },
    Route {
        routes: Vec<(At<String>, At<String>)>,
    },
    Aggregate {
        key: Vec<At<String>>,
        aggregates: Vec<(At<String>, At<String>)>,
        max_keys: Option<u64>,
    },
    Window {
        key: Vec<At<String>>,
        time: At<String>,
        size: At<std::time::Duration>,
        slide: Option<At<std::time::Duration>>,
        lateness: std::time::Duration,
        aggregates: Vec<(At<String>, At<String>)>,
        max_keys: Option<u64>,
    },
    Dedup {
        key: Vec<At<String>>,
        max_keys: Option<u64>,
    },
    Lookup {
        table: At<String>,
        on: Vec<At<String>>,
        table_key: Vec<At<String>>,
        prefix: Option<String>,
        unmatched: Unmatched,
    },
    CsvSink {
        path: At<PathBuf>,
        csv: CsvOptions,
    },
    JsonlSink {
        path: At<PathBuf>,
    },
}

/// What a lookup does with a record whose key is not in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unmatched {
    /// Keep it, the table's columns null.
    Keep,
    /// Drop it (counted).
    Drop,
    /// A record error under the node's policy.
    Error,
}

const TOP: &[&str] = &[
    "name",
    "description",
    "sources",
    "transforms",
    "sinks",
    "on_error",
    "max_errors",
    "max_in_flight_bytes",
];
const SOURCE_TYPES: &[&str] = &["csv", "jsonl"];
const TRANSFORM_TYPES: &[&str] = &[
    "filter",
    "derive",
    "select",
    "drop",
    "rename",
    "cast",
    "fill_null",
    "route",
    "aggregate",
    "window",
    "dedup",
    "lookup",
];
const SINK_TYPES: &[&str] = &["csv", "jsonl"];
const CSV_KEYS: &[&str] = &[
    "delimiter",
    "quote",
    "escape",
    "comment",
    "header",
    "flexible",
];

/// Reads the whole file; `dir` is the file's directory, against which
/// relative paths are resolved.
pub(crate) fn read(root: &Node, dir: &Path, problems: &mut Problems) -> Spec {
    let mut spec = Spec::default();
    let Some(mut top) = Fields::of(root, "the workflow", problems) else {
        return spec;
    };
    if let Some(name) = top.get("name") {
        spec.name = read::string(name, "`name`", problems);
    }
    if let Some(d) = top.get("description") {
        read::string(d, "`description`", problems);
    }
    if let Some(p) = top.get("on_error") {
        spec.on_error = policy(p, dir, problems);
    }
    if let Some(m) = top.get("max_errors") {
        spec.max_errors = max_errors(m, problems);
    }
    if let Some(b) = top.get("max_in_flight_bytes") {
        spec.max_in_flight_bytes = read::count(b, "`max_in_flight_bytes`", problems);
        if spec.max_in_flight_bytes == Some(0) {
            problems.at(b.pos, "`max_in_flight_bytes` should be 1 at least");
            spec.max_in_flight_bytes = None;
        }
    }
    for (section, role) in [
        ("sources", Role::Source),
        ("transforms", Role::Transform),
        ("sinks", Role::Sink),
    ] {
        let Some(nodes) = top.get(section) else {
            if role != Role::Transform {
                problems.with_help(
                    top.pos,
                    format!("the workflow has no `{section}`"),
                    format!(
                        "add `{section}:` with at least one named {}",
                        &section[..section.len() - 1]
                    ),
                );
            }
            continue;
        };
        if nodes.value == Yaml::Null && role == Role::Transform {
            continue;
        }
        let Some(mut entries) = Fields::of(nodes, &format!("`{section}`"), problems) else {
            continue;
        };
        let all = entries.all();
        if all.is_empty() {
            problems.at(nodes.pos, format!("`{section}` is empty"));
        }
        for (key, value) in all {
            if let Some(node) = node_spec(key.pos, &key.name, role, value, dir, problems) {
                if let Some(first) = spec.nodes.iter().find(|n| n.id.value == node.id.value) {
                    problems.with_help(
                        key.pos,
                        format!(
                            "the name `{}` is taken (line {})",
                            key.name, first.id.pos.line
                        ),
                        "every source, transform and sink needs a name of its own",
                    );
                    continue;
                }
                spec.nodes.push(node);
            } else {
                spec.broken.push(key.name.clone());
            }
        }
    }
    top.finish(TOP, problems);
    spec
}

fn node_spec(
    pos: Pos,
    id: &str,
    role: Role,
    node: &Node,
    dir: &Path,
    problems: &mut Problems,
) -> Option<NodeSpec> {
    let what = match role {
        Role::Source => format!("source `{id}`"),
        Role::Transform => format!("transform `{id}`"),
        Role::Sink => format!("sink `{id}`"),
    };
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
    {
        problems.with_help(
            pos,
            format!("`{id}` cannot name a node"),
            "use letters, digits, `_` and `-` (a `.` names a route's output: `split.big`)",
        );
    }
    let mut fields = Fields::of(node, &what, problems)?;
    let type_node = fields.require("type", problems)?;
    let type_name = read::string(type_node, "`type`", problems)?;
    let types = match role {
        Role::Source => SOURCE_TYPES,
        Role::Transform => TRANSFORM_TYPES,
        Role::Sink => SINK_TYPES,
    };
    if !types.contains(&type_name.as_str()) {
        let p = problems.at(
            type_node.pos,
            format!(
                "unknown {} type `{type_name}`",
                &what[..what.find(' ').unwrap_or(0)]
            ),
        );
        p.help = Some(suggestion(&type_name, types));
        p.width = type_name.chars().count().max(1);
        return None;
    }
    let inputs = match (role, fields.get("inputs")) {
        (Role::Source, Some(i)) => {
            problems.with_help(
                i.pos,
                format!("{what} cannot have `inputs`"),
                "a source reads a file; remove `inputs`",
            );
            Vec::new()
        }
        (Role::Source, None) => Vec::new(),
        (_, None) => {
            problems.with_help(
                fields.pos,
                format!("{what} needs `inputs`"),
                "list the nodes it reads from: `inputs: [orders]`",
            );
            Vec::new()
        }
        (_, Some(i)) => {
            let list = read::strings(i, "`inputs`", problems).unwrap_or_default();
            if list.is_empty() && matches!(i.value, Yaml::Seq(_)) {
                problems.at(i.pos, format!("{what} has no inputs"));
            }
            list.into_iter()
                .map(|(pos, value)| At { pos, value })
                .collect()
        }
    };
    let on_error = fields
        .get("on_error")
        .and_then(|p| policy(p, dir, problems));
    let mut allowed: Vec<&str> = vec!["type", "on_error"];
    if role != Role::Source {
        allowed.push("inputs");
    }
    let kind = kind(
        &type_name,
        role,
        &what,
        &mut fields,
        &mut allowed,
        dir,
        problems,
    );
    let cannot_fail = match &kind {
        Some(
            Kind::Select { .. } | Kind::Drop { .. } | Kind::Rename { .. } | Kind::FillNull { .. },
        ) => Some("it cannot fail"),
        Some(Kind::Lookup { unmatched, .. }) if *unmatched != Unmatched::Error => {
            Some("it fails a record only with `unmatched: error`")
        }
        Some(Kind::CsvSink { .. } | Kind::JsonlSink { .. }) => {
            Some("a sink that cannot write fails the run; records are put aside before it")
        }
        _ => None,
    };
    if let (Some(why), Some(at)) = (cannot_fail, fields.key_pos("on_error")) {
        problems.with_help(
            at,
            format!("`on_error` has no effect on {what}: {why}"),
            "set it on the node whose records can fail (a source, filter, derive, cast, route, aggregate, window, dedup), or for the whole run",
        );
    }
    fields.finish(&allowed, problems);
    Some(NodeSpec {
        id: At {
            pos,
            value: id.to_string(),
        },
        role,
        inputs,
        kind: kind?,
        on_error,
    })
}

#[allow(clippy::too_many_lines)]
fn kind(
    type_name: &str,
    role: Role,
    what: &str,
    f: &mut Fields<'_>,
    allowed: &mut Vec<&'static str>,
    dir: &Path,
    p: &mut Problems,
) -> Option<Kind> {
    let opt_count = |f: &mut Fields<'_>,
                     key: &'static str,
                     allowed: &mut Vec<&'static str>,
                     p: &mut Problems| {
        allowed.push(key);
        // Every count option (rows, bytes, keys, threads) needs one at least.
        let node = f.get(key)?;
        match read::count(node, &format!("`{key}`"), p)? {
            0 => {
                p.at(node.pos, format!("`{key}` should be 1 at least"));
                None
            }
            n => Some(n),
        }
    };
    let flag = |f: &mut Fields<'_>,
                key: &'static str,
                allowed: &mut Vec<&'static str>,
                p: &mut Problems| {
        allowed.push(key);
        f.get(key)
            .and_then(|n| read::boolean(n, &format!("`{key}`"), p))
            .unwrap_or(false)
    };
    let path = |f: &mut Fields<'_>, allowed: &mut Vec<&'static str>, p: &mut Problems| {
        allowed.push("path");
        let node = f.require("path", p)?;
        let text = read::string(node, "`path`", p)?;
        if text.is_empty() {
            p.at(node.pos, "`path` is empty");
            return None;
        }
        Some(At {
            pos: node.pos,
            value: dir.join(text),
        })
    };
    Some(match (role, type_name) {
        (Role::Source, "csv") => {
            let path = path(f, allowed, p);
            let mut csv = csv_options(f, allowed, p);
            csv.lenient_quotes = flag(f, "lenient_quotes", allowed, p);
            csv.lossy_utf8 = flag(f, "lossy_utf8", allowed, p);
            allowed.push("duplicate_headers");
            if let Some(n) = f.get("duplicate_headers") {
                match read::string(n, "`duplicate_headers`", p).as_deref() {
                    Some("rename") => csv.duplicate_headers = DuplicateHeaders::Rename,
                    Some("refuse") | None => {}
                    Some(other) => p.with_help(
                        n.pos,
                        format!("`duplicate_headers` cannot be `{other}`"),
                        "`refuse` (the default) or `rename`",
                    ),
                }
            }
            let size = |n: Option<u64>| n.map(|n| usize::try_from(n).unwrap_or(usize::MAX).max(1));
            if let Some(n) = size(opt_count(f, "max_record_bytes", allowed, p)) {
                csv.max_record_bytes = n;
            }
            let infer_schema = opt_count(f, "infer_schema", allowed, p);
            allowed.push("schema");
            let schema = f
                .get("schema")
                .map(|n| types(n, "`schema`", p))
                .unwrap_or_default();
            if let (Some(_), false) = (infer_schema, schema.is_empty())
                && let Some(at) = f.key_pos("infer_schema")
            {
                p.with_help(at, "give `schema` or `infer_schema`, not both", "`schema` names the types of some columns; `infer_schema: N` guesses all from N rows");
            }
            if let Some(n) = size(opt_count(f, "parallel", allowed, p)) {
                csv.parallel = Some(n);
            }
            if let Some(n) = size(opt_count(f, "batch_size", allowed, p)) {
                csv.batch_size = n;
            }
            Kind::CsvSource {
                path: path?,
                csv,
                infer_schema,
                schema,
            }
        }
        (Role::Source, "jsonl") => {
            let path = path(f, allowed, p);
            let lossy_utf8 = flag(f, "lossy_utf8", allowed, p);
            let max_line_bytes = opt_count(f, "max_line_bytes", allowed, p);
            allowed.push("schema");
            let schema = f
                .get("schema")
                .map(|n| types(n, "`schema`", p))
                .unwrap_or_default();
            let batch_size = opt_count(f, "batch_size", allowed, p);
            Kind::JsonlSource {
                path: path?,
                lossy_utf8,
                max_line_bytes,
                schema,
                batch_size,
            }
        }
        (Role::Sink, "csv") => {
            let path = path(f, allowed, p);
            let csv = csv_options(f, allowed, p);
            Kind::CsvSink { path: path?, csv }
        }
        (Role::Sink, "jsonl") => Kind::JsonlSink {
            path: path(f, allowed, p)?,
        },
        (_, "filter") => {
            allowed.push("expr");
            Kind::Filter {
                expr: text(f.require("expr", p)?, "`expr`", p)?,
            }
        }
        (_, "derive") => {
            allowed.extend(["columns", "select"]);
            let columns = pairs(f.require("columns", p)?, "`columns`", p);
            let select = f.get("select").map(|n| names(n, "`select`", p));
            Kind::Derive { columns, select }
        }
        (_, "select") | (_, "drop") => {
            allowed.push("columns");
            let columns = names(f.require("columns", p)?, "`columns`", p);
            if type_name == "select" {
                Kind::Select { columns }
            } else {
                Kind::Drop { columns }
            }
        }
        (_, "rename") => {
            allowed.push("columns");
            Kind::Rename {
                columns: pairs(f.require("columns", p)?, "`columns`", p),
            }
        }
        (_, "cast") => {
            allowed.push("columns");
            Kind::Cast {
                columns: types(f.require("columns", p)?, "`columns`", p),
            }
        }
        (_, "fill_null") => {
            allowed.push("columns");
            let node = f.require("columns", p)?;
            let mut map = Fields::of(node, "`columns`", p)?;
            let columns = map
                .all()
                .into_iter()
                .map(|(k, v)| {
                    (
                        At {
                            pos: k.pos,
                            value: k.name.clone(),
                        },
                        v.clone(),
                    )
                })
                .collect();
            Kind::FillNull { columns }
        }
        (_, "route") => {
            allowed.push("routes");
            let routes = pairs(f.require("routes", p)?, "`routes`", p);
            for (name, _) in &routes {
                if !name
                    .value
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
                {
                    p.with_help(
                        name.pos,
                        format!("`{}` cannot name a route", name.value),
                        "use letters, digits, `_` and `-`",
                    );
                }
                if name.value == "_unmatched" {
                    p.with_help(name.pos, "`_unmatched` is the route's own output", "name the route otherwise; read the records no route takes from `<route>._unmatched`");
                }
            }
            Kind::Route { routes }
        }
        (_, "aggregate") => {
            allowed.extend(["key", "aggregates"]);
            let key = key_list(f, "key", p);
            let aggregates = pairs(f.require("aggregates", p)?, "`aggregates`", p);
            let max_keys = opt_count(f, "max_keys", allowed, p);
            let key = key?;
            Kind::Aggregate {
                key,
                aggregates,
                max_keys,
            }
        }
        (_, "window") => {
            allowed.extend(["key", "aggregates", "time", "size", "slide", "lateness"]);
            let key = key_list(f, "key", p);
            let aggregates = pairs(f.require("aggregates", p)?, "`aggregates`", p);
            let time = text(f.require("time", p)?, "`time`", p);
            let size = duration(f.require("size", p)?, "`size`", p);
            let slide = f.get("slide").and_then(|n| duration(n, "`slide`", p));
            if let (Some(size), Some(slide)) = (&size, &slide)
                && slide.value > size.value
            {
                p.with_help(
                    slide.pos,
                    "`slide` is longer than `size`: records between windows would be in none",
                    "a slide of at most the size (equal: tumbling windows)",
                );
            }
            let key = key?;
            let lateness = f
                .get("lateness")
                .and_then(|n| duration(n, "`lateness`", p))
                .map(|d| d.value)
                .unwrap_or_default();
            let max_keys = opt_count(f, "max_keys", allowed, p);
            Kind::Window {
                key,
                time: time?,
                size: size?,
                slide,
                lateness,
                aggregates,
                max_keys,
            }
        }
        (_, "dedup") => {
            allowed.push("key");
            let key = key_list(f, "key", p);
            let max_keys = opt_count(f, "max_keys", allowed, p);
            Kind::Dedup {
                key: key?,
                max_keys,
            }
        }
        (_, "lookup") => {
            allowed.extend(["table", "on", "table_key", "prefix", "unmatched"]);
            let table = text(f.require("table", p)?, "`table`", p);
            let on = key_list(f, "on", p)?;
            let table_key = f
                .get("table_key")
                .map(|n| names(n, "`table_key`", p))
                .unwrap_or_else(|| on.clone());
            let prefix = f.get("prefix").and_then(|n| read::string(n, "`prefix`", p));
            let unmatched = match f.get("unmatched") {
                None => Unmatched::Keep,
                Some(n) => match read::string(n, "`unmatched`", p).as_deref() {
                    Some("keep") => Unmatched::Keep,
                    Some("drop") => Unmatched::Drop,
                    Some("error") => Unmatched::Error,
                    Some(other) => {
                        p.with_help(
                            n.pos,
                            format!("`unmatched` cannot be `{other}`"),
                            suggestion(other, &["keep", "drop", "error"]),
                        );
                        Unmatched::Keep
                    }
                    None => Unmatched::Keep,
                },
            };
            Kind::Lookup {
                table: table?,
                on,
                table_key,
                prefix,
                unmatched,
            }
        }
        _ => {
            p.at(f.pos, format!("{what}: no such node type here"));
            return None;
        }
    })
}

fn csv_options(
    f: &mut Fields<'_>,
    allowed: &mut Vec<&'static str>,
    p: &mut Problems,
) -> CsvOptions {
    allowed.extend(CSV_KEYS);
    let byte = |f: &mut Fields<'_>, key: &str, p: &mut Problems| {
        let node = f.get(key)?;
        let text = read::string(node, &format!("`{key}`"), p)?;
        match text.as_str() {
            "tab" | "\\t" | "\t" => Some(b'\t'),
            t if t.len() == 1 => Some(t.as_bytes()[0]),
            _ => {
                p.with_help(
                    node.pos,
                    format!("`{key}` should be one character, found \"{text}\""),
                    "one ASCII character, or `tab`",
                );
                None
            }
        }
    };
    let mut options = CsvOptions::default();
    if let Some(d) = byte(f, "delimiter", p) {
        options.delimiter = d;
    }
    if let Some(q) = byte(f, "quote", p) {
        options.quote = q;
    }
    options.escape = byte(f, "escape", p);
    options.comment = byte(f, "comment", p);
    if let Some(h) = f
        .get("header")
        .and_then(|n| read::boolean(n, "`header`", p))
    {
        options.has_headers = h;
    }
    if let Some(x) = f
        .get("flexible")
        .and_then(|n| read::boolean(n, "`flexible`", p))
    {
        options.flexible = x;
    }
    options
}

/// A key's columns: required, one at least.
fn key_list(f: &mut Fields<'_>, key: &str, p: &mut Problems) -> Option<Vec<At<String>>> {
    let node = f.require(key, p)?;
    let list = names(node, &format!("`{key}`"), p);
    if list.is_empty() {
        p.with_help(
            node.pos,
            format!("`{key}` names no column"),
            "name the key column(s): `[category]`; for one group over everything, derive a constant column and key by it",
        );
        return None;
    }
    Some(list)
}

fn text(node: &Node, what: &str, p: &mut Problems) -> Option<At<String>> {
    read::string(node, what, p).map(|value| At {
        pos: node.pos,
        value,
    })
}

fn names(node: &Node, what: &str, p: &mut Problems) -> Vec<At<String>> {
    read::strings(node, what, p)
        .unwrap_or_default()
        .into_iter()
        .map(|(pos, value)| At { pos, value })
        .collect()
}

/// A mapping of names to text values, in file order.
fn pairs(node: &Node, what: &str, p: &mut Problems) -> Vec<(At<String>, At<String>)> {
    let Some(mut map) = Fields::of(node, what, p) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (k, v) in map.all() {
        if let Some(value) = text(v, &format!("`{}`", k.name), p) {
            out.push((
                At {
                    pos: k.pos,
                    value: k.name.clone(),
                },
                value,
            ));
        }
    }
    if out.is_empty() && p.0.is_empty() {
        p.at(node.pos, format!("{what} is empty"));
    }
    out
}

/// A mapping of column names to types.
fn types(node: &Node, what: &str, p: &mut Problems) -> Vec<(At<String>, At<DataType>)> {
    let mut out = Vec::new();
    for (name, ty) in pairs(node, what, p) {
        match ty.value.parse::<DataType>() {
            Ok(t) => out.push((
                name,
                At {
                    pos: ty.pos,
                    value: t,
                },
            )),
            Err(_) => {
                let all = [
                    "bool",
                    "int",
                    "float",
                    "string",
                    "date",
                    "timestamp",
                    "decimal",
                    "bytes",
                    "json",
                ];
                let q = p.at(
                    ty.pos,
                    format!("unknown type `{}` for column `{}`", ty.value, name.value),
                );
                q.help = Some(suggestion(&ty.value, &all));
                q.width = ty.value.chars().count().max(1);
            }
        }
    }
    out
}

fn policy(node: &Node, dir: &Path, p: &mut Problems) -> Option<Policy> {
    const POLICIES: &[&str] = &["fail", "skip", "dead_letter"];
    let (name_node, path) = match &node.value {
        Yaml::Str(_) => (node, None),
        Yaml::Map(_) => {
            let mut f = Fields::of(node, "`on_error`", p)?;
            let name = f.require("policy", p)?;
            let path = f.get("path");
            f.finish(&["policy", "path"], p);
            (name, path)
        }
        other => {
            p.with_help(
                node.pos,
                format!("`on_error` should be a policy, found {}", other.kind()),
                "`fail`, `skip`, or `{ policy: dead_letter, path: rejects.jsonl }`",
            );
            return None;
        }
    };
    let name = read::string(name_node, "`policy`", p)?;
    match (name.as_str(), path) {
        ("fail", None) => Some(Policy::Fail),
        ("skip", None) => Some(Policy::Skip),
        ("dead_letter", Some(path)) => {
            let text = read::string(path, "`path`", p)?;
            Some(Policy::DeadLetter(At {
                pos: path.pos,
                value: dir.join(text),
            }))
        }
        ("dead_letter", None) => {
            p.with_help(
                name_node.pos,
                "`dead_letter` needs a `path`",
                "`on_error: { policy: dead_letter, path: rejects.jsonl }`",
            );
            None
        }
        ("fail" | "skip", Some(path)) => {
            p.with_help(
                path.pos,
                format!("`{name}` takes no `path`"),
                "only `dead_letter` writes the failed records to a file",
            );
            None
        }
        (other, _) => {
            let q = p.at(name_node.pos, format!("unknown error policy `{other}`"));
            q.help = Some(suggestion(other, POLICIES));
            None
        }
    }
}

fn max_errors(node: &Node, p: &mut Problems) -> Option<MaxErrorsSpec> {
    if let Yaml::Str(s) = &node.value
        && let Some(percent) = s.trim().strip_suffix('%')
    {
        return match percent.trim().parse::<f64>() {
            Ok(x) if (0.0..=100.0).contains(&x) => Some(MaxErrorsSpec::Rate(x / 100.0)),
            _ => {
                p.at(
                    node.pos,
                    format!("`max_errors` should be a count or a percentage (`5%`), found \"{s}\""),
                );
                None
            }
        };
    }
    read::count(node, "`max_errors`", p).map(MaxErrorsSpec::Count)
}

/// `500ms`, `30s`, `5m`, `1h`, `1d`.
fn duration(node: &Node, what: &str, p: &mut Problems) -> Option<At<std::time::Duration>> {
    let text = read::string(node, what, p)?;
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let secs = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        _ => f64::NAN,
    };
    match n.parse::<u64>() {
        Ok(n) if n > 0 && secs.is_finite() => Some(At {
            pos: node.pos,
            value: std::time::Duration::from_secs_f64(n as f64 * secs),
        }),
        _ => {
            p.with_help(
                node.pos,
                format!("{what} should be a duration, found \"{text}\""),
                "a whole number and a unit: `500ms`, `30s`, `5m`, `1h`, `1d`",
            );
            None
        }
    }
}
