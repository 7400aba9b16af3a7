//! Workflow files: a DAG of named sources, transforms and sinks in YAML, with
//! CEL expressions compiled to closures, checked before anything is read or
//! written, and run through the same library as a pipeline written in Rust.

pub mod expr;
