//! The command line, declared with `clap`'s derive API: one subcommand per job
//! (`convert` today; `run`, `validate` and `graph` will sit beside it).

use std::path::{Path, PathBuf};

use clap::error::ErrorKind;
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

/// What the exit status means, shown at the end of `--help`.
const EXIT_CODES: &str = "\
Exit status:
  0    completed (the report on stderr says when records were put aside)
  1    failed (nothing is committed to an output file)
  2    usage error
  130  interrupted by SIGINT (Ctrl-C), 143 by SIGTERM (nothing is committed)";

/// Move records between CSV, TSV and JSON Lines, with exact errors and no
/// partial output.
#[derive(Debug, Parser)]
#[command(name = "dataflare", version, after_help = EXIT_CODES)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Convert a file between CSV, TSV and JSON Lines.
    Convert(ConvertArgs),
}

/// A file format, as named by `--from` / `--to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum FormatName {
    /// Comma-separated values.
    Csv,
    /// Tab-separated values.
    Tsv,
    /// One JSON object per line (also `.ndjson`).
    Jsonl,
}

/// When to draw the progress bar, as named by `--progress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub(crate) enum ProgressMode {
    /// When stderr is a terminal.
    #[default]
    Auto,
    /// Always, also into a pipe or a file.
    Always,
    /// Never.
    Never,
}

#[derive(Debug, Args)]
#[command(after_help = CONVERT_AFTER_HELP)]
pub(crate) struct ConvertArgs {
    /// The input file, or `-` for standard input.
    #[arg(value_name = "INPUT")]
    input: PathBuf,
    /// The output file, or `-` for standard output.
    #[arg(value_name = "OUTPUT")]
    output: PathBuf,
    /// The input's format [default: from INPUT's extension; CSV for `-`]
    #[arg(long, value_enum, value_name = "FORMAT")]
    from: Option<FormatName>,
    /// The output's format [default: from OUTPUT's extension; CSV for `-`]
    #[arg(long, value_enum, value_name = "FORMAT")]
    to: Option<FormatName>,

    /// Input CSV field delimiter: one byte, or `tab` / `\t` [default: `,`, tab for TSV]
    #[arg(long, value_name = "C", value_parser = delimiter, help_heading = "CSV input")]
    delimiter: Option<u8>,
    /// The input CSV has no header row (columns are named col0, col1, ...)
    #[arg(long, help_heading = "CSV input")]
    no_header: bool,
    /// Type CSV columns (int, float, date, timestamp, bool, text) from the first N rows; a
    /// later value that does not fit its column's type is a bad row
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..), help_heading = "CSV input")]
    infer_schema: Option<u64>,
    /// Accept rows whose number of fields differs from the header's
    #[arg(long, help_heading = "CSV input")]
    flexible: bool,
    /// Accept malformed quoting (`ab"c"d`, `"abc"def`, a quote left open at the end)
    /// as the csv crate reads it, instead of calling it a bad row
    #[arg(long, help_heading = "CSV input")]
    lenient_quotes: bool,
    /// Replace invalid UTF-8 by U+FFFD instead of calling it a bad row (CSV and JSON Lines)
    #[arg(long, help_heading = "CSV input")]
    lossy_utf8: bool,
    /// Name repeated header columns `a`, `a_2`, `a_3`, ... instead of refusing the file
    #[arg(long, help_heading = "CSV input")]
    rename_duplicate_headers: bool,
    /// The longest CSV record or JSON line accepted, in bytes; a longer one (or a
    /// quote never closed) fails the run, naming the line it started on
    #[arg(long, value_name = "BYTES", default_value_t = 16 * 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(1..))]
    max_record_bytes: u64,

    /// Output CSV field delimiter: one byte, or `tab` / `\t` [default: `,`, tab for TSV]
    #[arg(long, value_name = "C", value_parser = delimiter, help_heading = "CSV output")]
    out_delimiter: Option<u8>,

    /// Skip bad rows (counted in the report as skipped) instead of failing
    #[arg(long, help_heading = "Bad rows")]
    skip_bad_rows: bool,
    /// Put bad rows aside into FILE (JSON Lines: the error, its position and the
    /// row's text) and go on; counted in the report as dead-lettered
    #[arg(long, value_name = "FILE", help_heading = "Bad rows")]
    rejects: Option<PathBuf>,

    /// Show a progress bar on stderr while the run goes (bytes read of the total, rate
    /// and ETA when the input's size is known; records read and rate otherwise)
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = ProgressMode::Auto,
          help_heading = "Output")]
    progress: ProgressMode,
    /// Print nothing on stderr when the run completes: no progress bar, no report
    /// (a failure or an interruption is still told)
    #[arg(short, long, conflicts_with = "progress", help_heading = "Output")]
    quiet: bool,
}

const CONVERT_AFTER_HELP: &str = "\
Formats follow the file extensions (.csv, .tsv, .jsonl, .ndjson); --from / --to
name them for `-` (stdin / stdout, CSV unless told) or override an extension.
Output files are written under a temporary name and renamed into place when the
run completes: a failed or interrupted run leaves no partial output and an
existing file untouched. Standard output cannot be taken back: what was written
before a failure stays written.

Bad rows (malformed CSV or JSON, a value that does not fit its column) fail the
run, unless:
  --skip-bad-rows            they are skipped and counted as skipped;
  --rejects FILE             they are written to FILE and counted as
                             dead-lettered (skipped with rejects);
  --skip-bad-rows --rejects  the same as --rejects alone: skipped, and kept in FILE.
The run report goes to stderr; the run exits 0 when it completed, also when rows
were put aside (the report says how many, and which). While the run goes, a
progress bar is drawn on stderr when it is a terminal (--progress=always draws it
into a pipe too, --progress=never not at all); it is cleared before the report.
--quiet prints neither the bar nor, on success, the report.

Exit status:
  0    completed (the report says when records were put aside)
  1    failed (nothing is committed to an output file)
  2    usage error
  130  interrupted by SIGINT (Ctrl-C), 143 by SIGTERM (nothing is committed);
       a second Ctrl-C during the clean-up exits at once";

fn delimiter(s: &str) -> Result<u8, String> {
    match s {
        "\\t" | "tab" | "\t" => Ok(b'\t'),
        s if s.len() == 1 => Ok(s.as_bytes()[0]),
        _ => Err(format!("a delimiter is one byte (or `tab`), not {s:?}")),
    }
}

/// A resolved file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// CSV with this delimiter (TSV is CSV with a tab).
    Csv(u8),
    JsonLines,
}

/// Where records come from or go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Place {
    /// Standard input or output (`-`).
    Std,
    File(PathBuf),
}

/// A `convert` job with every default resolved.
#[derive(Debug)]
pub(crate) struct Convert {
    pub(crate) input: Place,
    pub(crate) output: Place,
    pub(crate) input_format: Format,
    pub(crate) output_format: Format,
    pub(crate) has_headers: bool,
    pub(crate) infer_schema: Option<usize>,
    pub(crate) flexible: bool,
    pub(crate) lenient_quotes: bool,
    pub(crate) lossy_utf8: bool,
    pub(crate) rename_duplicate_headers: bool,
    pub(crate) max_record_bytes: usize,
    pub(crate) skip_bad_rows: bool,
    pub(crate) rejects: Option<PathBuf>,
    pub(crate) progress: ProgressMode,
    pub(crate) quiet: bool,
}

fn place(path: PathBuf) -> Place {
    if path.as_os_str() == "-" {
        Place::Std
    } else {
        Place::File(path)
    }
}

fn named(format: FormatName) -> Format {
    match format {
        FormatName::Csv => Format::Csv(b','),
        FormatName::Tsv => Format::Csv(b'\t'),
        FormatName::Jsonl => Format::JsonLines,
    }
}

/// The format of `place`: `given` (`--from` / `--to`), else the extension, else
/// CSV for stdin/stdout.
fn format_of(place: &Place, given: Option<FormatName>, flag: &str) -> Result<Format, String> {
    if let Some(given) = given {
        return Ok(named(given));
    }
    let path: &Path = match place {
        Place::Std => return Ok(Format::Csv(b',')),
        Place::File(path) => path,
    };
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("csv") => Ok(Format::Csv(b',')),
        Some("tsv") => Ok(Format::Csv(b'\t')),
        Some("jsonl" | "ndjson") => Ok(Format::JsonLines),
        _ => Err(format!(
            "{}: unknown format: name it with {flag} csv|tsv|jsonl, or use a .csv, .tsv, \
             .jsonl or .ndjson file",
            path.display()
        )),
    }
}

impl ConvertArgs {
    /// Resolves formats and defaults, and refuses options that do not apply.
    fn resolve(self) -> Result<Convert, String> {
        let input = place(self.input);
        let output = place(self.output);
        let mut input_format = format_of(&input, self.from, "--from")?;
        let mut output_format = format_of(&output, self.to, "--to")?;
        if input_format == Format::JsonLines {
            let csv_only = [
                ("--delimiter", self.delimiter.is_some()),
                ("--no-header", self.no_header),
                ("--infer-schema", self.infer_schema.is_some()),
                ("--flexible", self.flexible),
                ("--lenient-quotes", self.lenient_quotes),
                ("--rename-duplicate-headers", self.rename_duplicate_headers),
            ];
            if let Some((flag, _)) = csv_only.iter().find(|(_, given)| *given) {
                return Err(format!(
                    "{flag} applies to CSV input; the input is JSON Lines"
                ));
            }
        }
        if let (Format::Csv(_), Some(d)) = (input_format, self.delimiter) {
            input_format = Format::Csv(d);
        }
        match (output_format, self.out_delimiter) {
            (Format::Csv(_), Some(d)) => output_format = Format::Csv(d),
            (Format::JsonLines, Some(_)) => {
                return Err(
                    "--out-delimiter applies to CSV output; the output is JSON Lines".into(),
                );
            }
            _ => {}
        }
        if self
            .rejects
            .as_deref()
            .is_some_and(|r| r.as_os_str() == "-")
        {
            return Err("--rejects needs a file, not `-`".into());
        }
        Ok(Convert {
            input,
            output,
            input_format,
            output_format,
            has_headers: !self.no_header,
            infer_schema: self
                .infer_schema
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
            flexible: self.flexible,
            lenient_quotes: self.lenient_quotes,
            lossy_utf8: self.lossy_utf8,
            rename_duplicate_headers: self.rename_duplicate_headers,
            max_record_bytes: usize::try_from(self.max_record_bytes).unwrap_or(usize::MAX),
            skip_bad_rows: self.skip_bad_rows,
            rejects: self.rejects,
            progress: match self.quiet {
                true => ProgressMode::Never,
                false => self.progress,
            },
            quiet: self.quiet,
        })
    }
}

/// A job to run.
#[derive(Debug)]
pub(crate) enum Job {
    Convert(Convert),
}

/// Parses the command line; usage errors (and `--help`, `--version`) exit here,
/// with status 2 for errors as clap does.
pub(crate) fn parse() -> Job {
    let cli = Cli::parse();
    match cli.command {
        Command::Convert(args) => match args.resolve() {
            Ok(job) => Job::Convert(job),
            Err(message) => {
                let mut cmd = Cli::command();
                cmd.build(); // names the subcommand `dataflare convert` in its usage line
                cmd.find_subcommand_mut("convert")
                    .expect("convert is a subcommand")
                    .error(ErrorKind::ValueValidation, message)
                    .exit()
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert(line: &str) -> Result<Convert, String> {
        let cli = Cli::try_parse_from(line.split_whitespace()).map_err(|e| e.to_string())?;
        let Command::Convert(args) = cli.command;
        args.resolve()
    }

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn formats_follow_extensions_and_flags() {
        let c = convert("dataflare convert in.tsv out.jsonl --skip-bad-rows").unwrap();
        assert_eq!(c.input_format, Format::Csv(b'\t'));
        assert_eq!(c.output_format, Format::JsonLines);
        assert!(c.skip_bad_rows);
        let c = convert(
            "dataflare convert a.csv b.csv --delimiter ; --no-header --infer-schema=50 \
             --out-delimiter=|",
        )
        .unwrap();
        assert_eq!(c.input_format, Format::Csv(b';'));
        assert_eq!(c.output_format, Format::Csv(b'|'));
        assert!(!c.has_headers);
        assert_eq!(c.infer_schema, Some(50));
    }

    #[test]
    fn a_dash_is_stdin_or_stdout_as_csv_unless_told() {
        let c = convert("dataflare convert - -").unwrap();
        assert_eq!((c.input, c.output), (Place::Std, Place::Std));
        assert_eq!(c.input_format, Format::Csv(b','));
        assert_eq!(c.output_format, Format::Csv(b','));
        let c = convert("dataflare convert - - --from jsonl --to=tsv").unwrap();
        assert_eq!(c.input_format, Format::JsonLines);
        assert_eq!(c.output_format, Format::Csv(b'\t'));
        // An explicit format overrides the extension.
        let c = convert("dataflare convert data.txt out.csv --from tsv --to jsonl").unwrap();
        assert_eq!(c.input_format, Format::Csv(b'\t'));
        assert_eq!(c.output_format, Format::JsonLines);
    }

    #[test]
    fn mistakes_are_explained() {
        assert!(convert("dataflare convert a.csv").is_err());
        assert!(
            convert("dataflare convert a.xls b.csv")
                .unwrap_err()
                .contains("unknown format")
        );
        assert!(convert("dataflare convert a.csv b.csv --frobnicate").is_err());
        assert!(
            convert("dataflare convert a.jsonl b.csv --flexible")
                .unwrap_err()
                .contains("--flexible applies to CSV input")
        );
        assert!(
            convert("dataflare convert a.csv b.jsonl --out-delimiter ;")
                .unwrap_err()
                .contains("--out-delimiter applies to CSV output")
        );
        assert!(convert("dataflare convert a.csv b.csv --delimiter ab").is_err());
        assert!(convert("dataflare convert a.csv b.csv --infer-schema 0").is_err());
        assert!(convert("dataflare convert a.csv b.csv --progress sometimes").is_err());
        assert!(convert("dataflare convert a.csv b.csv --quiet --progress always").is_err());
    }

    #[test]
    fn progress_is_auto_unless_told_and_quiet_draws_none() {
        let c = convert("dataflare convert a.csv b.csv").unwrap();
        assert_eq!((c.progress, c.quiet), (ProgressMode::Auto, false));
        let c = convert("dataflare convert a.csv b.csv --progress=always").unwrap();
        assert_eq!(c.progress, ProgressMode::Always);
        let c = convert("dataflare convert a.csv b.csv --progress never").unwrap();
        assert_eq!(c.progress, ProgressMode::Never);
        let c = convert("dataflare convert a.csv b.csv -q").unwrap();
        assert_eq!((c.progress, c.quiet), (ProgressMode::Never, true));
    }
}
