//! `dataflare`: run file, PostgreSQL and workflow jobs from the command line.
//!
//! ```text
//! dataflare convert INPUT OUTPUT [options]
//! dataflare run FILE [--set KEY.PATH=VALUE]... [--json] [--strict] [--progress WHEN] [--quiet]
//! dataflare validate FILE [--set KEY.PATH=VALUE]...
//! dataflare graph FILE [--format mermaid|dot] [--set KEY.PATH=VALUE]...
//! dataflare completions bash|zsh|fish|elvish|powershell
//! ```
//!
//! `convert` moves records between files and PostgreSQL: formats follow the
//! file extensions (`.csv`, `.tsv`, `.jsonl` / `.ndjson`); `-` reads stdin or
//! writes stdout, as CSV unless `--from` / `--to` name the format; a
//! `postgres://` URL reads a query or table (`--query`, `--table`) or writes a
//! table (`--table`, `--upsert`), with the `postgres` feature. Records are
//! dynamic: columns come from the input's header (CSV), first object (JSON
//! Lines) or result columns (PostgreSQL).
//!
//! `run` loads a workflow file ([`dataflare::workflow`]: named sources,
//! transforms and sinks in YAML) and runs its graph; `validate` only loads
//! and checks it; `graph` prints its DAG. An invalid file has all of its
//! problems printed on stderr and exits 78 (`EX_CONFIG`), before anything is
//! read or written. `completions` prints a shell completion script.
//!
//! `convert` and `run` run their graph the same way ([`execute`]): SIGINT and
//! SIGTERM cancel the run (nothing committed, exit 130 / 143), a progress bar
//! is drawn on a terminal, the report goes to stderr at the end (`--json`:
//! also as JSON on stdout), and the exit status is 0 when the run completed,
//! 3 with `--strict` when it completed with records put aside, 1 when it
//! failed. `dataflare --help` and each subcommand's `--help` list the options,
//! examples and the exit codes.

/// The binary's allocator: jemalloc (feature `jemalloc`, on by default). A
/// run makes records on one thread and frees them on another, which glibc's
/// malloc handles slowly (README, "Allocator").
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

mod args;
mod convert;
mod execute;
mod progress;
mod signals;
mod stdio;
mod workflow;

use std::io::Write as _;

use dataflare::record::Record;
use dataflare::{Batch, Result};

use args::Job;

#[cfg(feature = "postgres")]
mod pg;

/// Exit status of a failed run.
const FAILED: i32 = 1;
/// Exit status of a run that completed with records put aside, with `--strict`.
const PUT_ASIDE: i32 = 3;
/// Exit status for an invalid workflow file (`EX_CONFIG` of sysexits.h).
const INVALID: i32 = 78;

fn main() {
    let job = match args::parse() {
        Job::Completions(shell) => {
            // Written at once, a closed stdout ignored (clap_complete would
            // panic writing into it).
            let _ = std::io::stdout().write_all(&args::completions(shell));
            return;
        }
        job => job,
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            say(format_args!("cannot start the runtime: {e}"));
            std::process::exit(FAILED);
        }
    };
    let code = runtime.block_on(async move {
        match job {
            Job::Convert(job) => convert::convert(job).await,
            Job::Run(file, reporting) => workflow::run(file, reporting).await,
            Job::Validate(file) => workflow::validate(file).await,
            Job::Graph(file, format) => workflow::graph(file, format).await,
            Job::Completions(_) => unreachable!("printed before the runtime starts"),
        }
    });
    let _ = std::io::stdout().flush();
    // Exit with the runtime still alive: dropping it waits for its blocking
    // threads, and a reader blocked on stdin or a FIFO would hold the process
    // forever after a failed or interrupted run.
    std::process::exit(code);
}

/// Writes one line to stderr (above the progress bar, if one is drawn),
/// ignoring a closed stderr (`eprintln!` would panic).
fn say(message: std::fmt::Arguments<'_>) {
    progress::suspended(|| {
        let _ = writeln!(std::io::stderr().lock(), "dataflare: {message}");
    });
}

/// The records a `convert` source reads.
type Records = futures::stream::BoxStream<'static, Result<Batch<Record>>>;
