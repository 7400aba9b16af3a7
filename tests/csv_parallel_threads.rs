//! The CSV source's parsing threads: as many as `parallel` says while a file
//! is read, and none left once the source is dropped part way. Alone in its
//! test binary, so no other test's threads are counted.

#![cfg(target_os = "linux")]

use std::time::{Duration, Instant};

use dataflare::csv;
use futures::StreamExt;

/// The threads of this process named as the CSV source names its parsing
/// threads.
fn parsing_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim() == "dataflare-csv")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parsing_threads_run_while_reading_and_end_when_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.csv");
    let mut data = String::from("id,note\n");
    for i in 0..200_000 {
        data.push_str(&format!("{i},\"a note\nover two lines\"\n"));
    }
    std::fs::write(&path, data).unwrap();
    assert_eq!(parsing_threads(), 0);

    let mut source = csv::read_records(&path).parallel(3).chunk_size(4096);
    let first = source.next().await.unwrap().unwrap();
    assert_eq!(first.len(), 1024);
    // The rest of the file is far from read: its threads are all there.
    assert_eq!(parsing_threads(), 3);

    drop(source);
    // They end at their next chunk; wait for that, within a generous bound.
    let deadline = Instant::now() + Duration::from_secs(30);
    while parsing_threads() > 0 {
        assert!(Instant::now() < deadline, "parsing threads left behind");
        tokio::task::yield_now().await;
        std::thread::yield_now();
    }

    // One thread asked for: no parsing thread at all.
    let mut source = csv::read_records(&path).parallel(1);
    source.next().await.unwrap().unwrap();
    assert_eq!(parsing_threads(), 0);
}
