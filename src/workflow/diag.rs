//! Problems found in a workflow file, each where it is: rendered as
//! `FILE:LINE:COL: error: message`, the line, a caret, and advice.

use std::fmt;
use std::path::{Path, PathBuf};

use super::yaml::Pos;

/// One problem in a workflow file.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    file: PathBuf,
    pos: Option<Pos>,
    message: String,
    help: Option<String>,
    /// The offending line, when the position is in the file.
    line: Option<String>,
    /// How many characters the caret underlines (at least 1).
    width: usize,
}

impl Diagnostic {
    /// A problem at `pos` in `file` (none: the file as a whole).
    pub fn error(file: &Path, pos: Option<Pos>, message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.to_path_buf(),
            pos,
            message: message.into(),
            help: None,
            line: None,
            width: 1,
        }
    }

    /// Adds advice: what to do about it.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Underlines `width` characters from the position.
    pub(crate) fn width(mut self, width: usize) -> Self {
        self.width = width.max(1);
        self
    }

    /// Keeps the offending line of `text` to show under the message.
    pub(crate) fn with_source(mut self, text: &str) -> Self {
        if let Some(pos) = self.pos
            && pos.line > 0
        {
            self.line = text.lines().nth(pos.line as usize - 1).map(str::to_string);
        }
        self
    }

    /// The message, without position.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Where the problem is: line and column from 1.
    pub fn pos(&self) -> Option<Pos> {
        self.pos
    }

    /// The advice, if any.
    pub fn help_text(&self) -> Option<&str> {
        self.help.as_deref()
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.pos {
            Some(pos) if pos.line > 0 => {
                write!(f, "{}:{pos}: error: {}", self.file.display(), self.message)?
            }
            _ => write!(f, "{}: error: {}", self.file.display(), self.message)?,
        }
        if let (Some(line), Some(pos)) = (&self.line, self.pos) {
            let gutter = pos.line.to_string().len();
            writeln!(f)?;
            writeln!(f, "{:gutter$} |", "")?;
            writeln!(f, "{} | {line}", pos.line)?;
            let pad: String = line
                .chars()
                .take(pos.col.saturating_sub(1) as usize)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            write!(f, "{:gutter$} | {pad}{}", "", "^".repeat(self.width))?;
        }
        if let Some(help) = &self.help {
            write!(f, "\n  = help: {help}")?;
        }
        Ok(())
    }
}

/// Every problem found in a workflow file, in file order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Diagnostics(Vec<Diagnostic>);

impl Diagnostics {
    /// One problem.
    pub fn single(diagnostic: Diagnostic) -> Self {
        Diagnostics(vec![diagnostic])
    }

    /// The problems, in file order.
    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter()
    }

    /// How many problems.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn push(&mut self, diagnostic: Diagnostic) {
        self.0.push(diagnostic);
    }

    /// Sorts by position (problems of the file as a whole first).
    pub(crate) fn sort(&mut self) {
        self.0
            .sort_by_key(|d| d.pos.map(|p| (p.line, p.col)).unwrap_or((0, 0)));
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            writeln!(f, "{d}")?;
        }
        let n = self.0.len();
        write!(f, "{n} error{}", if n == 1 { "" } else { "s" })
    }
}

impl std::error::Error for Diagnostics {}
