//! The `dataflare` binary under SIGINT and SIGTERM, run as a user would.
//!
//! The input is a FIFO: opening its write end returns once the binary has
//! opened it for reading, so the test knows the run is going (its signal
//! handlers installed, its output's temporary file created) and blocked on
//! input, without waiting for anything by time.

mod support;
use support::entries;

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Kills `pid` if `done` has not been signalled within a minute: a guard
/// against a hang, never a wait the test relies on.
fn hang_guard(pid: u32, also: impl FnOnce() + Send + 'static) -> mpsc::Sender<()> {
    let (done, guard) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = guard.recv_timeout(Duration::from_secs(60)) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            also();
        }
    });
    done
}

fn send(signal: &str, child: &Child) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success(), "mkfifo {}", path.display());
}

/// Runs `dataflare convert FIFO OUT` (OUT holding `existing` beforehand, if
/// given), feeds it a few rows, sends `signal`, and checks the way it ends.
fn interrupted_by(signal: &str, expected_status: i32, existing: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("in.csv");
    mkfifo(&fifo);
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let output: PathBuf = out_dir.join("out.jsonl");
    if let Some(text) = existing {
        std::fs::write(&output, text).unwrap();
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_dataflare"))
        .args(["convert", fifo.to_str().unwrap(), output.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Should the binary never open the FIFO, the guard opens its read end so
    // that the test's open below returns (and the test fails, not hangs).
    let guard_fifo = fifo.clone();
    let done = hang_guard(child.id(), move || {
        let _ = std::fs::File::open(guard_fifo);
    });
    // Returns once the binary has opened the FIFO for reading.
    let mut input = OpenOptions::new().write(true).open(&fifo).unwrap();
    input.write_all(b"id,name\n1,ada\n2,bo\n").unwrap();
    input.flush().unwrap();
    assert!(
        entries(&out_dir)
            .iter()
            .any(|name| name.ends_with(".dataflare-tmp")),
        "the run is writing to a temporary file: {:?}",
        entries(&out_dir)
    );
    send(signal, &child);
    // Ends when the binary exits (the FIFO's write end is still open: the
    // reader is blocked on it).
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    let _ = done.send(());
    drop(input);
    assert_eq!(status.code(), Some(expected_status), "{stderr}");
    assert!(stderr.contains("dataflare: interrupted"), "{stderr}");
    match existing {
        Some(text) => {
            assert_eq!(entries(&out_dir), ["out.jsonl"], "no temporary file left");
            assert_eq!(std::fs::read_to_string(&output).unwrap(), text);
        }
        None => assert_eq!(entries(&out_dir), Vec::<String>::new(), "no file at all"),
    }
}

#[test]
fn sigint_cancels_removes_the_temporary_and_exits_130() {
    interrupted_by("INT", 130, Some("{\"kept\":true}\n"));
    interrupted_by("INT", 130, None);
}

#[test]
fn sigterm_cancels_removes_the_temporary_and_exits_143() {
    interrupted_by("TERM", 143, None);
    interrupted_by("TERM", 143, Some("{\"kept\":true}\n"));
}

/// The clean-up after the first Ctrl-C cannot end: the output is a pipe the
/// test stopped reading, and the binary's writer has far more to write than
/// the pipe takes (a cancelled run waits for its writer to stop). A second
/// Ctrl-C exits at once.
#[test]
fn a_second_sigint_during_the_clean_up_exits_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("big.csv");
    let mut text = String::from("id,name\n");
    for i in 0..200_000 {
        text.push_str(&format!("{i},name {i}\n"));
    }
    std::fs::write(&input, text).unwrap(); // 3 MB
    let mut child = Command::new(env!("CARGO_BIN_EXE_dataflare"))
        .args(["convert", input.to_str().unwrap(), "-", "--to", "jsonl"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let done = hang_guard(child.id(), || {});
    // The first line out: the run is writing. The pipe is then left unread
    // (but open), so the writer blocks once it is full.
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(first.starts_with("{\"id\""), "{first}");
    send("INT", &child);
    // The first signal was handled: the binary says it is cleaning up.
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(line.contains("dataflare: interrupted"), "{line}");
    send("INT", &child);
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    let _ = done.send(());
    // Without the second signal's handling the binary never exits (the hang
    // guard kills it: no status code). Should the writer have been between two
    // batches when the first signal came (a window of microseconds before the
    // pipe fills), the clean-up ends by itself, also with 130.
    assert_eq!(status.code(), Some(130), "{line}{rest}");
}

#[test]
fn a_temporary_left_by_a_killed_run_is_removed_by_the_next_run_to_that_destination() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("in.csv");
    mkfifo(&fifo);
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let output = out_dir.join("out.jsonl");
    // Another file's temporary, and a file that only looks like one: not ours.
    let others = [
        out_dir.join(".other.jsonl.1-0.dataflare-tmp"),
        out_dir.join(".out.jsonl.backup"),
    ];
    for other in &others {
        std::fs::write(other, "keep").unwrap();
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_dataflare"))
        .args(["convert", fifo.to_str().unwrap(), output.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let guard_fifo = fifo.clone();
    let done = hang_guard(child.id(), move || {
        let _ = std::fs::File::open(guard_fifo);
    });
    // Returns once the binary reads: its output's temporary exists by then.
    let mut input = OpenOptions::new().write(true).open(&fifo).unwrap();
    input.write_all(b"id,name\n1,ada\n").unwrap();
    input.flush().unwrap();
    send("KILL", &child);
    assert!(!child.wait().unwrap().success());
    let _ = done.send(());
    drop(input);
    let left = entries(&out_dir);
    assert_eq!(left.len(), 3, "the killed run left its temporary: {left:?}");

    let good = dir.path().join("good.csv");
    std::fs::write(&good, "id,name\n1,ada\n").unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_dataflare"))
        .args(["convert", good.to_str().unwrap(), output.to_str().unwrap()])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        entries(&out_dir),
        [
            ".other.jsonl.1-0.dataflare-tmp",
            ".out.jsonl.backup",
            "out.jsonl"
        ],
        "the stale temporary is gone, the others are kept"
    );
}
