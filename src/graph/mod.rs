//! Graphs: a run with several branches, sources and sinks.
//!
//! Fan-out operators ([`tee`](crate::Pipeline::tee),
//! [`partition`](crate::Pipeline::partition), [`route`](crate::Pipeline::route))
//! end a pipeline in several [`Branch`]es fed by one driver task through
//! bounded channels; [`tap`](crate::Pipeline::tap) adds a lossy side branch.
//! Fan-in operators ([`merge`](crate::Pipeline::merge),
//! [`chain`](crate::Pipeline::chain), [`zip`](crate::Pipeline::zip)) join two
//! pipelines into one. Each branch
//! ends in a sink with [`to`](crate::Pipeline::to), and the branches run
//! together as one [`Graph`](crate::Graph), joined with
//! [`and`](crate::Runnable::and): one run context, one completion point, one
//! [`Report`](crate::Report), all outputs committed together.
//! [`Graph::describe`](crate::Graph::describe) draws it.

mod builder;
mod describe;
mod fan_out;
mod merge;
mod route;
mod tap;
mod tee;
mod zip;

pub use builder::Tapped;
pub use describe::Format;
pub(crate) use describe::describe;
pub use fan_out::Branch;
pub use merge::Merge;
pub use tap::Tap;
pub use zip::Zip;
