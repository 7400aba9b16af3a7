//! Checks on the header row: names that repeat.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use ::csv::StringRecord;

use super::decode::with_path;
use super::options::DuplicateHeaders;
use crate::{Error, ErrorKind, Position, Result};

/// Refuses a header naming a column twice, or renames the repeats (`a`,
/// `a_2`, `a_3`, each a name no other column has), as `mode` says. `line` is
/// the header's line.
pub(super) fn check_duplicates(
    header: &mut StringRecord,
    mode: DuplicateHeaders,
    path: Option<&Path>,
    line: u64,
) -> Result<()> {
    let mut first: HashMap<&str, usize> = HashMap::with_capacity(header.len());
    let mut repeats = Vec::new();
    for (i, name) in header.iter().enumerate() {
        if let Some(&at) = first.get(name) {
            repeats.push((at, i));
        } else {
            first.insert(name, i);
        }
    }
    let Some(&(at, again)) = repeats.first() else {
        return Ok(());
    };
    match mode {
        DuplicateHeaders::Refuse => {
            let name = &header[again];
            let message = format!(
                "header row: column name {name:?} appears twice, as columns {} and {}; \
                 rename one in the file, or read with \
                 duplicate_headers(DuplicateHeaders::Rename) (--rename-duplicate-headers) to name \
                 the repeats {name}_2, ...",
                at + 1,
                again + 1
            );
            let position = Position::new().line(line).field(name);
            Err(with_path(
                Error::new(ErrorKind::Parse(message)).with_position(position),
                path,
            ))
        }
        DuplicateHeaders::Rename => {
            *header = renamed(header);
            Ok(())
        }
    }
}

/// The header with each repeated name made unique: the second `a` becomes
/// `a_2` (or `a_3`, ... when a column is called that already).
fn renamed(header: &StringRecord) -> StringRecord {
    let mut taken: HashSet<String> = header.iter().map(str::to_string).collect();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut out = StringRecord::with_capacity(header.as_slice().len(), header.len());
    for name in header.iter() {
        let count = seen.entry(name).or_insert(0);
        *count += 1;
        if *count == 1 {
            out.push_field(name);
            continue;
        }
        let mut n = *count;
        let new = loop {
            let candidate = format!("{name}_{n}");
            if !taken.contains(&candidate) {
                break candidate;
            }
            n += 1;
        };
        taken.insert(new.clone());
        out.push_field(&new);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_get_names_no_column_has() {
        let header = StringRecord::from(vec!["a", "a", "a_2", "b", "a", "b"]);
        let names: Vec<String> = renamed(&header).iter().map(str::to_string).collect();
        assert_eq!(names, ["a", "a_3", "a_2", "b", "a_4", "b_2"]);
    }
}
