//! What most pipelines need: `use dataflare::prelude::*;`.

pub use crate::ops::{BatchPolicy, Overflow, Rate};
pub use crate::sink::Collected;
pub use crate::{
    Batch, Error, ErrorPolicy, Pipeline, Report, Result, RunStatus, Source, Status, sink, source,
};
