//! `dataflare convert`: one source (a file, stdin or a PostgreSQL query or
//! table) into one sink, bad rows failing the run, skipped or put aside; run
//! by [`execute`](crate::execute::execute) as `run` runs a workflow.

use std::sync::Arc;

use dataflare::prelude::*;
use dataflare::record::{Record, Schema};
use dataflare::{DeadLetters, Graph, Rejected, csv, jsonl};
use futures::StreamExt;

use crate::Records;
use crate::args::{Convert, Format, Place};
use crate::execute::{NotRun, execute};
#[cfg(feature = "postgres")]
use crate::pg;
use crate::stdio;

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
pub(crate) async fn convert(job: Convert) -> i32 {
    let to_stdout = job.output == Place::Std;
    execute(job.reporting, to_stdout, prepare(&job)).await
}

/// Opens the job's source (reading a CSV header, which may wait on a slow
/// stdin) and builds its graph.
async fn prepare(job: &Convert) -> std::result::Result<Graph, NotRun> {
    let (records, schema) = source(job).await.map_err(NotRun::Failed)?;
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
    Ok(match (&job.output, job.output_format) {
        #[cfg(feature = "postgres")]
        (Place::Postgres(endpoint), _) => match pg::sink(endpoint) {
            Ok(sink) => Graph::from(pipeline.to(sink)),
            Err(e) => return Err(NotRun::Failed(e.with_stage("sink"))),
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
    })
}
