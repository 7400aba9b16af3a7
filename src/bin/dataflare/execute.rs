//! Running a graph from the command line, the same way for `convert` and
//! `run`: SIGINT and SIGTERM cancel it (nothing is committed), a progress bar
//! follows it, the report is printed at the end (on stderr, and as JSON on
//! stdout with `--json`) and its status becomes the exit status.

use std::io::Write as _;
use std::pin::pin;

use dataflare::workflow::Diagnostics;
use dataflare::{Error, Graph, Report, Status};
use futures::future::{Either, select};

use crate::args::Reporting;
use crate::{FAILED, INVALID, PUT_ASIDE, progress, say, signals, stdio};

/// Why a job's graph could not be built: nothing was run.
pub(crate) enum NotRun {
    /// An input or output could not be opened (exit 1).
    Failed(Error),
    /// The workflow file is invalid: all its problems (exit 78).
    Invalid(Diagnostics),
}

/// Prints a workflow file's problems on stderr, as they render, and gives the
/// exit status for an invalid file.
pub(crate) fn invalid(diagnostics: &Diagnostics) -> i32 {
    progress::suspended(|| {
        let _ = writeln!(std::io::stderr().lock(), "{diagnostics}");
    });
    INVALID
}

/// Builds the graph with `prepare` and runs it until it ends or a signal
/// cancels it (signals are handled from before `prepare` starts: opening an
/// input may wait on a slow stdin); prints what `reporting` asks for and
/// returns the exit status. `to_stdout`: the graph writes its records on
/// stdout (a reader gone from it ends the job quietly).
pub(crate) async fn execute(
    reporting: Reporting,
    to_stdout: bool,
    prepare: impl Future<Output = Result<Graph, NotRun>>,
) -> i32 {
    // Installed before anything is opened or read: from here on SIGINT and
    // SIGTERM cancel the run instead of killing the process mid-write.
    let interrupt = match signals::Interrupt::install() {
        Ok(interrupt) => interrupt,
        Err(e) => {
            say(format_args!("cannot handle signals: {e}"));
            return FAILED;
        }
    };
    let stop = interrupt.stopped();
    let prepared = match select(pin!(prepare), pin!(interrupt.stopped())).await {
        Either::Left((prepared, _)) => prepared,
        Either::Right(((), _)) => {
            say(format_args!("interrupted"));
            return interrupt.received().unwrap_or(signals::SIGINT_STATUS);
        }
    };
    let graph = match prepared {
        Ok(graph) => graph,
        Err(NotRun::Failed(e)) => {
            say(format_args!("{e}"));
            return FAILED;
        }
        Err(NotRun::Invalid(diagnostics)) => return invalid(&diagnostics),
    };
    let bar = progress::Bar::new(reporting.progress);
    let mut run = graph.spawn();
    let snapshots = run.progress();
    let last = snapshots.clone();
    // The run until it ends, cancelled by the first signal (nothing is
    // committed then), raced with the bar drawing its progress (which never
    // ends by itself).
    let ended = async {
        match select(&mut run, pin!(stop)).await {
            Either::Left((report, _)) => report,
            Either::Right(((), run)) => {
                run.cancel();
                run.await
            }
        }
    };
    let report = match select(pin!(ended), pin!(bar.follow(snapshots))).await {
        Either::Left((report, _)) => report,
        Either::Right(((), _)) => unreachable!("the bar follows the run until it ends"),
    };
    let last = last.borrow().clone();
    bar.finish(&last);
    finish(reporting, to_stdout, &report, interrupt.received())
}

/// Prints the report (on stderr unless `--quiet`; as JSON on stdout with
/// `--json`) and a failed or interrupted run's error to stderr; returns the
/// exit status.
fn finish(reporting: Reporting, to_stdout: bool, report: &Report, signal: Option<i32>) -> i32 {
    if let Status::Failed(e) = report.status()
        && to_stdout
        && stdio::is_broken_pipe(e)
    {
        // The reader of our stdout is gone (`| head`): end quietly, as Unix
        // filters do.
        return 0;
    }
    if reporting.json {
        match serde_json::to_string_pretty(report) {
            Ok(json) => {
                let mut stdout = std::io::stdout().lock();
                let _ = writeln!(stdout, "{json}").and_then(|()| stdout.flush());
            }
            Err(e) => say(format_args!("cannot write the report as JSON: {e}")),
        }
    }
    if !reporting.quiet {
        let _ = write!(std::io::stderr().lock(), "{report}");
    }
    match report.status() {
        Status::Completed | Status::CompletedWithErrors => {
            let aside = report.skipped() + report.dead_lettered();
            let branches = report.failed_branches().len();
            if reporting.strict && (aside > 0 || branches > 0 || report.has_errors()) {
                let records = match aside {
                    1 => "1 record".to_string(),
                    n => format!("{n} records"),
                };
                let branches = match branches {
                    0 => String::new(),
                    1 => " and 1 failed branch".to_string(),
                    n => format!(" and {n} failed branches"),
                };
                say(format_args!(
                    "--strict: the run completed with {records} put aside{branches}"
                ));
                PUT_ASIDE
            } else {
                0
            }
        }
        Status::Cancelled => {
            say(format_args!("interrupted"));
            signal.unwrap_or(signals::SIGINT_STATUS)
        }
        Status::Failed(e) => {
            say(format_args!("{e}"));
            FAILED
        }
        _ => FAILED,
    }
}
