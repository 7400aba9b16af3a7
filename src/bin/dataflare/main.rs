//! `dataflare`: run file and PostgreSQL jobs from the command line.
//!
//! ```text
//! dataflare convert INPUT OUTPUT [options]
//! ```
//!
//! Formats follow the file extensions: `.csv`, `.tsv`, `.jsonl` / `.ndjson`;
//! `-` reads stdin or writes stdout, as CSV unless `--from` / `--to` name the
//! format; a `postgres://` URL reads a query or table (`--query`, `--table`)
//! or writes a table (`--table`, `--upsert`), with the `postgres` feature.
//! Records are dynamic: columns come from the input's header (CSV), first
//! object (JSON Lines) or result columns (PostgreSQL). `dataflare --help` and `dataflare convert --help`
//! list the options and the exit codes.

mod args;
mod progress;
mod signals;
mod stdio;

use std::io::Write as _;
use std::pin::pin;
use std::sync::Arc;

use dataflare::prelude::*;
use dataflare::record::{Record, Schema};
use dataflare::{DeadLetters, Graph, Rejected, Status, csv, jsonl};
use futures::StreamExt;
use futures::future::{Either, select};

use args::{Convert, Format, Job, Place};

#[cfg(feature = "postgres")]
mod pg;

/// Exit status of a failed run.
const FAILED: i32 = 1;

fn main() {
    let Job::Convert(job) = args::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            say(format_args!("cannot start the runtime: {e}"));
            std::process::exit(FAILED);
        }
    };
    let code = runtime.block_on(convert(job));
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

type Records = futures::stream::BoxStream<'static, Result<Batch<Record>>>;

/// The job's source, and for CSV output from CSV input the input's columns,
/// read before the run so that a header-only input still gives a header.
async fn source(job: &Convert) -> Result<(Records, Option<Arc<Schema>>)> {
    let csv_options = |source: csv::CsvSource<Record>, delimiter: u8| {
        let source = source
            .delimiter(delimiter)
            .has_headers(job.has_headers)
            .flexible(job.flexible)
            .lenient_quotes(job.lenient_quotes)
            .lossy_utf8(job.lossy_utf8)
            .max_record_bytes(job.max_record_bytes)
            .duplicate_headers(match job.rename_duplicate_headers {
                true => csv::DuplicateHeaders::Rename,
                false => csv::DuplicateHeaders::Refuse,
            });
        match job.infer_schema {
            Some(rows) => source.infer_schema(rows),
            None => source,
        }
    };
    let wants_schema = matches!(job.output_format, Format::Csv(_));
    let csv_source = |mut source: csv::CsvSource<Record>| async move {
        let schema = match wants_schema {
            true => Some(source.read_schema().await?),
            false => None,
        };
        Ok::<_, Error>((source, schema))
    };
    Ok(match (&job.input, job.input_format) {
        #[cfg(feature = "postgres")]
        (Place::Postgres(endpoint), _) => {
            let opened = pg::source(endpoint, wants_schema).await;
            let (source, schema) = opened.map_err(|e| e.with_stage("source"))?;
            (source, schema)
        }
        #[cfg(not(feature = "postgres"))]
        (Place::Postgres(_), _) => unreachable!("refused by args::parse without the feature"),
        (_, Format::Postgres) => unreachable!("a PostgreSQL format is a PostgreSQL place"),
        (Place::File(path), Format::Csv(delimiter)) => {
            let (source, schema) = csv_source(csv_options(csv::read_records(path), delimiter))
                .await
                .map_err(|e| e.with_stage("source"))?;
            (source.boxed(), schema)
        }
        (Place::Std, Format::Csv(delimiter)) => {
            let source = csv_options(csv::read_records_from(std::io::stdin()), delimiter);
            let (source, schema) = csv_source(source)
                .await
                .map_err(|e| stdio::named(e, stdio::STDIN).with_stage("source"))?;
            (stdio::on_stdin(source), schema)
        }
        (Place::File(path), Format::JsonLines) => (
            jsonl::read_records(path)
                .lossy_utf8(job.lossy_utf8)
                .max_line_bytes(job.max_record_bytes)
                .boxed(),
            None,
        ),
        (Place::Std, Format::JsonLines) => (
            stdio::on_stdin(
                jsonl::read_records_from(std::io::stdin())
                    .lossy_utf8(job.lossy_utf8)
                    .max_line_bytes(job.max_record_bytes),
            ),
            None,
        ),
    })
}

/// Runs the job until it ends or a signal cancels it; returns the exit status.
async fn convert(job: Convert) -> i32 {
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
    // Reading the header may wait on a slow stdin: a signal stops that too.
    let opened = match select(pin!(source(&job)), pin!(interrupt.stopped())).await {
        Either::Left((opened, _)) => opened,
        Either::Right(((), _)) => {
            say(format_args!("interrupted"));
            return interrupt.received().unwrap_or(signals::SIGINT_STATUS);
        }
    };
    let (records, schema) = match opened {
        Ok(opened) => opened,
        Err(e) => {
            say(format_args!("{e}"));
            return FAILED;
        }
    };
    let csv_sink = |sink: csv::CsvSink<Record>, delimiter: u8| {
        let sink = sink.delimiter(delimiter);
        match &schema {
            Some(schema) => sink.schema(schema.clone()),
            None => sink,
        }
    };
    let mut pipeline = Pipeline::from(records);
    if let Some(rejects) = &job.rejects {
        // With or without --skip-bad-rows: skipped, and kept in the file.
        pipeline = pipeline.on_error(DeadLetters::to(jsonl::write::<Rejected>(rejects)));
    } else if job.skip_bad_rows {
        pipeline = pipeline.on_error(ErrorPolicy::Skip);
    }
    let graph = match (&job.output, job.output_format) {
        #[cfg(feature = "postgres")]
        (Place::Postgres(endpoint), _) => match pg::sink(endpoint) {
            Ok(sink) => Graph::from(pipeline.to(sink)),
            Err(e) => {
                say(format_args!("{}", e.with_stage("sink")));
                return FAILED;
            }
        },
        #[cfg(not(feature = "postgres"))]
        (Place::Postgres(_), _) => unreachable!("refused by args::parse without the feature"),
        (_, Format::Postgres) => unreachable!("a PostgreSQL format is a PostgreSQL place"),
        (Place::File(path), Format::Csv(delimiter)) => {
            Graph::from(pipeline.to(csv_sink(csv::write_records(path), delimiter)))
        }
        (Place::Std, Format::Csv(delimiter)) => Graph::from(pipeline.to(stdio::OnStdout(
            csv_sink(csv::write_records_to(std::io::stdout()), delimiter),
        ))),
        (Place::File(path), Format::JsonLines) => Graph::from(pipeline.to(jsonl::write(path))),
        (Place::Std, Format::JsonLines) => {
            Graph::from(pipeline.to(stdio::OnStdout(jsonl::write_to(std::io::stdout()))))
        }
    };
    let bar = progress::Bar::new(job.progress);
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
    finish(&job, &report, interrupt.received())
}

/// Prints the report (unless `--quiet`) and a failed or interrupted run's error
/// to stderr; returns the exit status.
fn finish(job: &Convert, report: &Report, signal: Option<i32>) -> i32 {
    if let (Status::Failed(e), Place::Std) = (report.status(), &job.output)
        && stdio::is_broken_pipe(e)
    {
        // The reader of our stdout is gone (`| head`): end quietly, as Unix
        // filters do.
        return 0;
    }
    if !job.quiet {
        let _ = write!(std::io::stderr().lock(), "{report}");
    }
    match report.status() {
        Status::Completed | Status::CompletedWithErrors => 0,
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
