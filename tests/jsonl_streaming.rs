//! A JSON Lines source on a stream (stdin, a pipe) passes on the records it
//! has before waiting for more input, as `tail -f | dataflare convert` needs.

use std::io::Read;
use std::sync::mpsc;
use std::time::Duration;

use dataflare::jsonl;
use futures::StreamExt;

/// A reader handing out the chunks sent to it, waiting for each: a pipe
/// whose writer is slow. Dropping the sender ends the input.
struct Pipe {
    chunks: mpsc::Receiver<Vec<u8>>,
    pending: Vec<u8>,
}

impl Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pending.is_empty() {
            match self.chunks.recv() {
                Ok(chunk) => self.pending = chunk,
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending[..n]);
        self.pending.drain(..n);
        Ok(n)
    }
}

/// Long enough for a blocking thread to hand over a batch many times over;
/// only reached when the records are held back.
const GUARD: Duration = Duration::from_secs(20);

#[tokio::test]
async fn records_read_so_far_are_passed_on_before_waiting_for_input() {
    let (tx, chunks) = mpsc::channel();
    let mut source = jsonl::read_from::<u32>(Pipe {
        chunks,
        pending: Vec::new(),
    })
    .batch_size(1000);

    tx.send(b"1\n2\n3".to_vec()).unwrap(); // "3" is not a whole line yet
    let batch = tokio::time::timeout(GUARD, source.next())
        .await
        .expect("records 1 and 2 were held back waiting for input")
        .unwrap()
        .unwrap();
    assert_eq!(batch.into_records(), [1, 2]);

    tx.send(b"4\n".to_vec()).unwrap();
    let batch = tokio::time::timeout(GUARD, source.next())
        .await
        .expect("record 34 was held back waiting for input")
        .unwrap()
        .unwrap();
    assert_eq!(batch.into_records(), [34]);

    drop(tx);
    assert!(source.next().await.is_none());
}
