//! `dataflare`: run file-to-file jobs from the command line.
//!
//! ```text
//! dataflare convert INPUT OUTPUT [options]
//! ```
//!
//! Formats follow the file extensions: `.csv`, `.tsv`, `.jsonl` / `.ndjson`
//! (`-` reads stdin or writes stdout as CSV). Records are dynamic: columns come
//! from the input's header (CSV) or first object (JSON Lines).

mod args;

use std::process::ExitCode;

use dataflare::prelude::*;
use dataflare::record::Record;
use dataflare::{DeadLetters, Rejected, csv, jsonl};

use args::{Command, Convert, Format};

#[tokio::main]
async fn main() -> ExitCode {
    match args::parse(std::env::args().skip(1)) {
        Ok(Command::Help) => {
            println!("{}", args::USAGE);
            ExitCode::SUCCESS
        }
        Ok(Command::Convert(job)) => match convert(job).await {
            Ok(report) => {
                eprint!("{report}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("dataflare: {e}");
                ExitCode::FAILURE
            }
        },
        Err(message) => {
            eprintln!("dataflare: {message}\n\n{}", args::USAGE);
            ExitCode::from(2)
        }
    }
}

type Records = futures::stream::BoxStream<'static, Result<Batch<Record>>>;

fn source(job: &Convert) -> Records {
    use futures::StreamExt;
    let path = job.input.clone();
    let csv_options = |source: csv::CsvSource<Record>, delimiter: u8| {
        let source = source.delimiter(delimiter).has_headers(job.has_headers);
        match job.infer_schema {
            Some(rows) => source.infer_schema(rows),
            None => source,
        }
    };
    match (job.input_format, path.to_str() == Some("-")) {
        (Format::Csv(delimiter), false) => csv_options(csv::read_records(path), delimiter).boxed(),
        (Format::Csv(delimiter), true) => {
            csv_options(csv::read_records_from(std::io::stdin()), delimiter).boxed()
        }
        (Format::JsonLines, false) => jsonl::read_records(path).boxed(),
        (Format::JsonLines, true) => jsonl::read_records_from(std::io::stdin()).boxed(),
    }
}

async fn convert(job: Convert) -> Result<Report> {
    let mut pipeline = Pipeline::from(source(&job)).boxed();
    if let Some(rejects) = &job.rejects {
        let rejects = DeadLetters::to(jsonl::write::<Rejected>(rejects));
        pipeline = pipeline.on_error(rejects);
    } else if job.skip_bad_rows {
        pipeline = pipeline.on_error(ErrorPolicy::Skip);
    }
    let to_stdout = job.output.to_str() == Some("-");
    match (job.output_format, to_stdout) {
        (Format::Csv(_), true) => {
            pipeline
                .to(csv::write_records_to(std::io::stdout()))
                .run()
                .await
        }
        (Format::Csv(delimiter), false) => {
            pipeline
                .to(csv::write_records(&job.output).delimiter(delimiter))
                .run()
                .await
        }
        (Format::JsonLines, true) => pipeline.to(jsonl::write_to(std::io::stdout())).run().await,
        (Format::JsonLines, false) => pipeline.to(jsonl::write(&job.output)).run().await,
    }
}
