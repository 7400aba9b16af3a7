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

/// Move records between CSV, TSV, JSON Lines and PostgreSQL, with exact errors
/// and no partial output.
#[derive(Debug, Parser)]
#[command(name = "dataflare", version, after_help = EXIT_CODES)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Convert between CSV, TSV and JSON Lines files and PostgreSQL tables.
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
    /// The input file, `-` for standard input, or a `postgres://` URL (with
    /// --query or --table)
    #[arg(value_name = "INPUT")]
    input: PathBuf,
    /// The output file, `-` for standard output, or a `postgres://` URL (with
    /// --table)
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

    /// The query whose rows a `postgres://` INPUT reads (run in a read-only transaction)
    #[arg(long, value_name = "SQL", help_heading = "PostgreSQL")]
    query: Option<String>,
    /// The table a `postgres://` OUTPUT is written into (COPY, one transaction committed
    /// only when the run completes); for a `postgres://` INPUT without --query, the
    /// table whose rows are read. `schema.table`; quote a name with `"` to keep its case
    #[arg(long, value_name = "NAME", help_heading = "PostgreSQL")]
    table: Option<String>,
    /// Insert or update the output table's rows by these key columns (a unique key)
    /// instead of COPYing them in: the last record of a key wins
    #[arg(long, value_name = "KEY[,KEY]", value_delimiter = ',', num_args = 1..,
          help_heading = "PostgreSQL")]
    upsert: Option<Vec<String>>,

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

PostgreSQL: INPUT or OUTPUT may be a postgres:// (or postgresql://) URL:
  dataflare convert postgres://etl@db/shop orders.csv \\
      --query \"SELECT id, amount, placed_at FROM orders WHERE placed_at >= '2024-01-01'\"
  dataflare convert postgres://etl@db/shop orders.jsonl --table sales.orders
  dataflare convert orders.csv postgres://etl@db/shop --table staging.orders
  dataflare convert customers.jsonl postgres://etl@db/shop --table customers --upsert id
A query or table is read through one read-only transaction, its columns typed by
theirs. A table is written in one transaction, committed only when the run
completes: a failed or interrupted run leaves it as it was. CSV fields are
parsed as the types of the table's columns (an empty field is NULL). The password goes in the URL or, kept out of the process list,
in PGPASSWORD; it is never printed. Both INPUT and OUTPUT may be PostgreSQL:
--query reads, --table writes.

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
  1    failed (nothing is committed to an output file or table)
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
    /// A PostgreSQL query or table: records typed by its columns.
    Postgres,
}

/// Where records come from or go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Place {
    /// Standard input or output (`-`).
    Std,
    File(PathBuf),
    /// A PostgreSQL server (its URL, password included: never shown).
    Postgres(Pg),
}

/// A PostgreSQL endpoint: its URL (never printed) and what to read or write.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Pg {
    pub(crate) url: String,
    pub(crate) what: PgWhat,
}

/// What a PostgreSQL endpoint reads or writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PgWhat {
    /// Read the rows of this query.
    Query(String),
    /// Read all rows of this table (input), or COPY into it (output).
    Table(String),
    /// Insert or update this table's rows by these key columns (output).
    Upsert(String, Vec<String>),
}

impl std::fmt::Debug for Pg {
    // Without the URL: it may hold a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pg")
            .field("what", &self.what)
            .finish_non_exhaustive()
    }
}

/// True for a `postgres://` or `postgresql://` URL.
fn is_postgres(path: &Path) -> bool {
    path.to_str().is_some_and(|s| {
        let s = s.get(..13).unwrap_or(s).to_ascii_lowercase();
        s.starts_with("postgres://") || s.starts_with("postgresql://")
    })
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
    if is_postgres(&path) {
        let url = path.into_os_string().into_string().unwrap_or_default();
        Place::Postgres(Pg {
            url,
            what: PgWhat::Table(String::new()),
        })
    } else if path.as_os_str() == "-" {
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
        Place::Postgres(_) => return Ok(Format::Postgres),
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
        let mut input = place(self.input.clone());
        let mut output = place(self.output.clone());
        if let (Place::Postgres(_), Some(_)) = (&input, self.from) {
            return Err("--from names a file format; the input is PostgreSQL".into());
        }
        if let (Place::Postgres(_), Some(_)) = (&output, self.to) {
            return Err("--to names a file format; the output is PostgreSQL".into());
        }
        self.postgres(&mut input, &mut output)?;
        let mut input_format = format_of(&input, self.from, "--from")?;
        let mut output_format = format_of(&output, self.to, "--to")?;
        if input_format == Format::Postgres {
            let file_only = [
                ("--delimiter", self.delimiter.is_some()),
                ("--no-header", self.no_header),
                ("--infer-schema", self.infer_schema.is_some()),
                ("--flexible", self.flexible),
                ("--lenient-quotes", self.lenient_quotes),
                ("--rename-duplicate-headers", self.rename_duplicate_headers),
                ("--lossy-utf8", self.lossy_utf8),
            ];
            if let Some((flag, _)) = file_only.iter().find(|(_, given)| *given) {
                return Err(format!(
                    "{flag} applies to file input; the input is PostgreSQL"
                ));
            }
        }
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
            (Format::Postgres, Some(_)) => {
                return Err(
                    "--out-delimiter applies to CSV output; the output is PostgreSQL".into(),
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

impl ConvertArgs {
    /// Gives each PostgreSQL endpoint what it reads or writes (--query,
    /// --table, --upsert), and refuses those flags where they do not apply.
    fn postgres(&self, input: &mut Place, output: &mut Place) -> Result<(), String> {
        let (pg_in, pg_out) = (
            matches!(input, Place::Postgres(_)),
            matches!(output, Place::Postgres(_)),
        );
        if cfg!(not(feature = "postgres")) && (pg_in || pg_out) {
            return Err(
                "this dataflare was built without PostgreSQL: build it with the \
                 `postgres` feature (`cargo install dataflare --features postgres`)"
                    .into(),
            );
        }
        if !pg_in && !pg_out {
            for (flag, given) in [
                ("--query", self.query.is_some()),
                ("--table", self.table.is_some()),
                ("--upsert", self.upsert.is_some()),
            ] {
                if given {
                    return Err(format!(
                        "{flag} applies to a postgres:// INPUT or OUTPUT; neither is one"
                    ));
                }
            }
            return Ok(());
        }
        if self.query.is_some() && !pg_in {
            return Err("--query applies to a postgres:// INPUT; the input is a file".into());
        }
        if self.upsert.is_some() && !pg_out {
            return Err("--upsert applies to a postgres:// OUTPUT; the output is a file".into());
        }
        if let Place::Postgres(pg) = output {
            let Some(table) = self.table.clone() else {
                return Err("a postgres:// OUTPUT needs --table NAME: the table to write".into());
            };
            if let Some(keys) = &self.upsert {
                if keys.iter().any(|k| k.trim().is_empty()) {
                    return Err("--upsert takes key column names: KEY[,KEY]".into());
                }
                let keys = keys.iter().map(|k| k.trim().to_string()).collect();
                pg.what = PgWhat::Upsert(table, keys);
            } else {
                pg.what = PgWhat::Table(table);
            }
        }
        if let Place::Postgres(pg) = input {
            pg.what = match (&self.query, &self.table) {
                (Some(query), None) => PgWhat::Query(query.clone()),
                (Some(query), Some(_)) if pg_out => PgWhat::Query(query.clone()),
                (Some(_), Some(_)) => {
                    return Err(
                        "--query and --table both name what to read; give one of them".into(),
                    );
                }
                (None, Some(_)) if pg_out => {
                    return Err(
                        "a postgres:// INPUT with a postgres:// OUTPUT reads --query \
                         SQL (--table names the output)"
                            .into(),
                    );
                }
                (None, Some(table)) => PgWhat::Table(table.clone()),
                (None, None) => {
                    return Err(
                        "a postgres:// INPUT needs --query SQL or --table NAME: what to read"
                            .into(),
                    );
                }
            };
        }
        Ok(())
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
    fn postgres_urls_read_a_query_or_table_and_write_a_table() {
        let url = "postgres://u:pw@h/db";
        let pg = |place: Place| match place {
            Place::Postgres(pg) => pg.what,
            other => panic!("{other:?}"),
        };
        let c = convert(&format!("dataflare convert {url} out.jsonl --table s.t")).unwrap();
        assert_eq!(c.input_format, Format::Postgres);
        assert_eq!(pg(c.input), PgWhat::Table("s.t".into()));
        assert_eq!(c.output_format, Format::JsonLines);
        let c = convert(&format!("dataflare convert - {url} --table t --upsert a,b")).unwrap();
        assert_eq!(
            pg(c.output),
            PgWhat::Upsert("t".into(), vec!["a".into(), "b".into()])
        );
        let c = convert(&format!(
            "dataflare convert postgresql://x/y {url} --table t --query SELECT"
        ))
        .unwrap();
        assert_eq!(pg(c.input), PgWhat::Query("SELECT".into()));
        assert_eq!(pg(c.output), PgWhat::Table("t".into()));
        // The URL (and its password) stays out of Debug.
        let c = convert(&format!("dataflare convert {url} - --table t")).unwrap();
        assert!(!format!("{c:?}").contains("pw"));
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
