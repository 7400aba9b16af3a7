//! The progress bar on stderr: bytes read of the total, rate, ETA and
//! fraction when the sources know their size; otherwise a spinner with the
//! records read and their rate. Either names the bottleneck when the run's
//! progress does. Redrawn at most 10 times a second; cleared before the
//! report is printed.

use std::io::{IsTerminal as _, Write as _};
use std::sync::OnceLock;
use std::time::Duration;

use dataflare::{Phase, Progress};
use indicatif::{
    HumanBytes, HumanCount, HumanDuration, ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike,
};
use tokio::sync::watch;

use crate::args::ProgressMode;

/// Redraws per second, at most.
const HZ: u8 = 10;

/// The bar being drawn, if one is: [`crate::say`] prints above it.
static SHOWN: OnceLock<ProgressBar> = OnceLock::new();

/// Runs `f` with the bar (if any) taken off stderr, then draws it again.
pub(crate) fn suspended<R>(f: impl FnOnce() -> R) -> R {
    match SHOWN.get() {
        Some(bar) => bar.suspend(f),
        None => f(),
    }
}

/// The bar for a run, or none (`never`, or `auto` with stderr not a terminal).
pub(crate) struct Bar {
    bar: Option<ProgressBar>,
}

impl Bar {
    pub(crate) fn new(mode: ProgressMode) -> Bar {
        let terminal = std::io::stderr().is_terminal();
        let target = match (mode, terminal) {
            (ProgressMode::Never, _) | (ProgressMode::Auto, false) => return Bar { bar: None },
            // A terminal: indicatif's own target, which knows its width (and
            // hides itself when TERM is `dumb`).
            (_, true) => ProgressDrawTarget::stderr_with_hz(HZ),
            // `always` into a pipe or a file: drawn all the same.
            (ProgressMode::Always, false) => {
                ProgressDrawTarget::term_like_with_hz(Box::new(Stderr), HZ)
            }
        };
        let bar = ProgressBar::with_draw_target(None, target);
        bar.set_style(spinner());
        bar.set_message("starting");
        if terminal {
            // Keeps the spinner turning between snapshots.
            bar.enable_steady_tick(Duration::from_millis(1000 / u64::from(HZ)));
        }
        bar.tick();
        let _ = SHOWN.set(bar.clone());
        Bar { bar: Some(bar) }
    }

    /// Draws every snapshot the run publishes; never ends (race it with the
    /// run).
    pub(crate) async fn follow(&self, mut progress: watch::Receiver<Progress>) {
        if let Some(bar) = &self.bar {
            loop {
                // Cloned: a stderr slow to take the drawing must not hold the
                // run's publisher.
                let snapshot = progress.borrow_and_update().clone();
                draw(bar, &snapshot);
                if progress.changed().await.is_err() {
                    break;
                }
            }
        }
        std::future::pending::<()>().await
    }

    /// Draws the last snapshot, then clears the bar off stderr.
    pub(crate) fn finish(self, last: &Progress) {
        if let Some(bar) = self.bar {
            draw(&bar, last);
            bar.finish_and_clear();
        }
    }
}

fn spinner() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {wide_msg}").expect("a valid template")
}

fn sized() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} [{bar:30}] {wide_msg}")
        .expect("a valid template")
        .progress_chars("=> ")
}

/// Sets the bar from one snapshot.
fn draw(bar: &ProgressBar, p: &Progress) {
    let mut text = match p.phase {
        Phase::Starting => String::from("starting: "),
        Phase::Paused => String::from("paused: "),
        Phase::Draining => String::from("stopping: "),
        Phase::Committing => String::from("committing: "),
        _ => String::new(),
    };
    match p.bytes_total {
        Some(total) => {
            if bar.length() != Some(total) {
                bar.set_style(sized());
                bar.set_length(total);
            }
            bar.set_position(p.bytes_read.min(total));
            text.push_str(&format!(
                "{}/{} ({:.0}%), {}/s",
                HumanBytes(p.bytes_read),
                HumanBytes(total),
                p.fraction.unwrap_or(0.0) * 100.0,
                HumanBytes(p.bytes_per_sec as u64),
            ));
            if let Some(eta) = p.eta {
                text.push_str(&format!(", ETA {}", HumanDuration(eta)));
            }
        }
        None => {
            bar.set_position(p.records_read);
            text.push_str(&format!(
                "{} records read, {}/s",
                HumanCount(p.records_read),
                HumanCount(p.records_per_sec as u64),
            ));
        }
    }
    if let Some(bottleneck) = &p.bottleneck {
        text.push_str(&format!(" ({bottleneck})"));
    }
    bar.set_message(text);
}

/// Standard error as a terminal that may not be one (`--progress=always`):
/// ANSI cursor moves, and the width from `COLUMNS` or 80.
#[derive(Debug)]
struct Stderr;

impl Stderr {
    fn put(&self, s: &str) -> std::io::Result<()> {
        std::io::stderr().lock().write_all(s.as_bytes())
    }

    fn escape(&self, n: usize, code: char) -> std::io::Result<()> {
        match n {
            0 => Ok(()),
            n => self.put(&format!("\x1b[{n}{code}")),
        }
    }
}

impl TermLike for Stderr {
    fn width(&self) -> u16 {
        std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.parse().ok())
            .filter(|w| *w > 0)
            .unwrap_or(80)
    }

    fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
        self.escape(n, 'A')
    }

    fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
        self.escape(n, 'B')
    }

    fn move_cursor_right(&self, n: usize) -> std::io::Result<()> {
        self.escape(n, 'C')
    }

    fn move_cursor_left(&self, n: usize) -> std::io::Result<()> {
        self.escape(n, 'D')
    }

    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.put(&format!("{s}\n"))
    }

    fn write_str(&self, s: &str) -> std::io::Result<()> {
        self.put(s)
    }

    fn clear_line(&self) -> std::io::Result<()> {
        self.put("\r\x1b[2K")
    }

    fn flush(&self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
