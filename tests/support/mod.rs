//! Helpers shared by the integration tests: gauges, counting sinks, drop guards.
//!
//! Each test file uses a different subset, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use dataflare::prelude::*;
use futures::Sink;

#[cfg(feature = "postgres")]
pub mod postgres;

/// Names of the entries in `dir`, sorted: what a run left there (its output,
/// and no temporary file).
pub fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// An example's binary, built by `cargo test` (or built here if it is not
/// there: `cargo test --test ..` alone builds no example).
pub fn example_binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().join("examples");
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let built = std::process::Command::new(cargo)
            .args(["build", "--example", name])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap();
        assert!(built.success());
    }
    path
}

/// One runtime for every case of a property test, with real worker threads
/// so branches and buffers run in parallel.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
}

/// Counts how many things are running at once and remembers the most seen.
#[derive(Debug, Clone, Default)]
pub struct Gauge {
    inner: Arc<(AtomicUsize, AtomicUsize)>,
}

impl Gauge {
    pub fn new() -> Self {
        Self::default()
    }

    /// One more running; the returned guard counts it out when dropped (so an
    /// aborted future is counted out too).
    pub fn enter(&self) -> GaugeGuard {
        let now = self.inner.0.fetch_add(1, SeqCst) + 1;
        self.inner.1.fetch_max(now, SeqCst);
        GaugeGuard(self.clone())
    }

    pub fn current(&self) -> usize {
        self.inner.0.load(SeqCst)
    }

    pub fn max(&self) -> usize {
        self.inner.1.load(SeqCst)
    }
}

#[derive(Debug)]
pub struct GaugeGuard(Gauge);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.inner.0.fetch_sub(1, SeqCst);
    }
}

/// A sink that takes a while per batch without timers: it yields to the runtime
/// `yields` times per batch (so it works on a multi-thread runtime, where time
/// cannot be paused). Returns the count of records it has been handed.
pub fn yielding_sink<T: Send + 'static>(
    yields: usize,
) -> (impl Sink<Batch<T>, Error = Error> + Send, Arc<AtomicUsize>) {
    let received = Arc::new(AtomicUsize::new(0));
    let counter = received.clone();
    let sink = sink::for_each_async(move |batch: Batch<T>| {
        counter.fetch_add(batch.len(), SeqCst);
        async move {
            for _ in 0..yields {
                tokio::task::yield_now().await;
            }
            Ok(())
        }
    });
    (sink, received)
}

/// The sizes of the batches a probe received.
pub fn sizes<T: Clone>(probe: &dataflare::testkit::Probe<T>) -> Vec<usize> {
    probe.batches().iter().map(|b| b.len()).collect()
}

/// Runs `binary` (`env!("CARGO_BIN_EXE_dataflare")` in a test: named there,
/// so that tests not running it build without the `cli` feature) with
/// `args` in `cwd` (the test's own directory if `None`), and waits for it.
pub fn run_binary(binary: &str, cwd: Option<&Path>, args: &[&str]) -> std::process::Output {
    let mut command = std::process::Command::new(binary);
    command.args(args);
    if let Some(dir) = cwd {
        command.current_dir(dir);
    }
    command.output().expect("the binary runs")
}

/// A finished process's standard output, as text.
pub fn stdout_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A finished process's standard error, as text.
pub fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
