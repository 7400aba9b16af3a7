//! Drawing a graph as text.

use std::fmt::Write;

use crate::metrics::Stages;

/// A text format for [`Graph::describe`](crate::Graph::describe).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// A Mermaid flowchart (`flowchart LR`), which GitHub and many wikis
    /// render.
    Mermaid,
    /// A Graphviz DOT digraph, for `dot -Tsvg`.
    Dot,
}

/// The graph of `stages`, one node per stage (`s<id>`, labelled with its name
/// and, when the name is not automatic, its kind), one edge per input.
pub(crate) fn describe(stages: &Stages, format: Format) -> String {
    let list = stages.snapshot();
    let mut out = String::new();
    let label = |name: &str, kind: &str| {
        if name == kind || name.starts_with(&format!("{kind}#")) {
            name.to_string()
        } else {
            format!("{name} ({kind})")
        }
    };
    match format {
        Format::Mermaid => {
            out.push_str("flowchart LR\n");
            for s in &list {
                let text = label(&s.name, &s.kind).replace('"', "#quot;");
                let _ = match s.kind.as_str() {
                    "source" => writeln!(out, "    s{}[(\"{text}\")]", s.id),
                    "sink" => writeln!(out, "    s{}[/\"{text}\"/]", s.id),
                    _ => writeln!(out, "    s{}[\"{text}\"]", s.id),
                };
            }
            for s in &list {
                for input in &s.inputs {
                    let _ = writeln!(out, "    s{input} --> s{}", s.id);
                }
            }
        }
        Format::Dot => {
            out.push_str("digraph dataflare {\n    rankdir=LR;\n");
            for s in &list {
                let text = label(&s.name, &s.kind)
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"");
                let shape = match s.kind.as_str() {
                    "source" => "cylinder",
                    "sink" => "parallelogram",
                    _ => "box",
                };
                let _ = writeln!(out, "    s{} [label=\"{text}\", shape={shape}];", s.id);
            }
            for s in &list {
                for input in &s.inputs {
                    let _ = writeln!(out, "    s{input} -> s{};", s.id);
                }
            }
            out.push_str("}\n");
        }
    }
    out
}
