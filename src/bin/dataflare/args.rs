//! Command-line parsing: a few flags, no dependency needed.

use std::path::{Path, PathBuf};

pub(crate) const USAGE: &str = "\
usage: dataflare convert INPUT OUTPUT [options]

Converts between CSV, TSV and JSON Lines (by file extension; `-` is stdin/stdout, as CSV).
Output files are written atomically: a failed run leaves no partial output.

options:
  --delimiter C      input CSV delimiter (default: `,`, or tab for .tsv)
  --no-header        the input CSV has no header row (columns are col0, col1, ...)
  --infer-schema N   type CSV columns (int, float, bool, date, text) from the first N rows;
                     a later value that does not parse is a bad row
  --skip-bad-rows    skip malformed rows (counted in the report) instead of failing
  --rejects FILE     write malformed rows' errors and positions to FILE (JSON Lines)
  -h, --help         this help";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Csv(u8),
    JsonLines,
}

#[derive(Debug)]
pub(crate) struct Convert {
    pub(crate) input: PathBuf,
    pub(crate) output: PathBuf,
    pub(crate) input_format: Format,
    pub(crate) output_format: Format,
    pub(crate) has_headers: bool,
    pub(crate) infer_schema: Option<usize>,
    pub(crate) skip_bad_rows: bool,
    pub(crate) rejects: Option<PathBuf>,
}

#[derive(Debug)]
pub(crate) enum Command {
    Help,
    Convert(Convert),
}

fn format_of(path: &Path) -> Result<Format, String> {
    if path.to_str() == Some("-") {
        return Ok(Format::Csv(b','));
    }
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
            "{}: unknown format (use a .csv, .tsv, .jsonl or .ndjson file)",
            path.display()
        )),
    }
}

pub(crate) fn parse(args: impl Iterator<Item = String>) -> Result<Command, String> {
    let mut args = args.peekable();
    match args.next().as_deref() {
        None | Some("-h" | "--help" | "help") => return Ok(Command::Help),
        Some("convert") => {}
        Some(other) => return Err(format!("unknown command {other:?}")),
    }
    let mut paths = Vec::new();
    let mut delimiter = None;
    let mut has_headers = true;
    let mut infer_schema = None;
    let mut skip_bad_rows = false;
    let mut rejects = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--delimiter" => {
                let d = args.next().ok_or("--delimiter needs a value")?;
                let d = match d.as_str() {
                    "\\t" | "tab" => b'\t',
                    s if s.len() == 1 => s.as_bytes()[0],
                    _ => return Err(format!("--delimiter must be one byte, not {d:?}")),
                };
                delimiter = Some(d);
            }
            "--no-header" => has_headers = false,
            "--infer-schema" => {
                let n = args.next().ok_or("--infer-schema needs a number of rows")?;
                match n.parse::<usize>() {
                    Ok(n) if n > 0 => infer_schema = Some(n),
                    _ => return Err(format!("--infer-schema takes a number of rows, not {n:?}")),
                }
            }
            "--skip-bad-rows" => skip_bad_rows = true,
            "--rejects" => {
                rejects = Some(PathBuf::from(args.next().ok_or("--rejects needs a file")?))
            }
            s if s.starts_with("--") => return Err(format!("unknown option {s}")),
            _ => paths.push(PathBuf::from(arg)),
        }
    }
    let [input, output]: [PathBuf; 2] = paths.try_into().map_err(|p: Vec<PathBuf>| {
        format!("convert takes INPUT and OUTPUT, got {} paths", p.len())
    })?;
    let mut input_format = format_of(&input)?;
    if let (Format::Csv(_), Some(d)) = (input_format, delimiter) {
        input_format = Format::Csv(d);
    }
    let output_format = format_of(&output)?;
    Ok(Command::Convert(Convert {
        input,
        output,
        input_format,
        output_format,
        has_headers,
        infer_schema,
        skip_bad_rows,
        rejects,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(s: &str) -> Result<Command, String> {
        parse(s.split_whitespace().map(String::from))
    }

    #[test]
    fn formats_follow_extensions_and_flags() {
        let Command::Convert(c) = parse_str("convert in.tsv out.jsonl --skip-bad-rows").unwrap()
        else {
            panic!("expected convert")
        };
        assert_eq!(c.input_format, Format::Csv(b'\t'));
        assert_eq!(c.output_format, Format::JsonLines);
        assert!(c.skip_bad_rows);
        let Command::Convert(c) =
            parse_str("convert a.csv b.csv --delimiter ; --no-header --infer-schema 50").unwrap()
        else {
            panic!("expected convert")
        };
        assert_eq!(c.input_format, Format::Csv(b';'));
        assert!(!c.has_headers);
        assert_eq!(c.infer_schema, Some(50));
    }

    #[test]
    fn mistakes_are_explained() {
        assert!(
            parse_str("convert a.csv")
                .unwrap_err()
                .contains("INPUT and OUTPUT")
        );
        assert!(
            parse_str("convert a.xls b.csv")
                .unwrap_err()
                .contains("unknown format")
        );
        assert!(
            parse_str("convert a.csv b.csv --frobnicate")
                .unwrap_err()
                .contains("unknown option")
        );
        assert!(matches!(parse_str(""), Ok(Command::Help)));
    }
}
