//! The TCP side of a stream: a reader task and a writer task per connection, with byte credits so that a
//! fast TCP peer cannot make the endpoint buffer without bound, and a slow one backs up the session's
//! flow control instead of memory.

use std::io::IoSlice;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, Semaphore};

/// Bytes read from TCP that may wait for the session to accept them.
pub const READER_CREDIT: usize = 256 * 1024;
/// Bytes handed to the TCP writer that may wait for the socket.
pub const WRITER_CREDIT: usize = 256 * 1024;
/// One TCP read; below glibc's mmap threshold (128 KiB) so chunks come from the heap's free lists.
const READ_CHUNK: usize = 64 * 1024;
/// Queued chunks go out in one TCP write up to this size or this many chunks.
const WRITE_COALESCE: usize = 256 * 1024;
const MAX_WRITE_CHUNKS: usize = 64;

/// Stream reset reasons we send.
pub const RESET_TCP_ERROR: u64 = 1;
pub const RESET_SERVICE_UNREACHABLE: u64 = 2;

pub enum ReaderMsg {
    Data(Vec<u8>),
    Eof,
    Failed,
}

pub enum WriterMsg {
    Data(Vec<u8>),
    /// The peer finished its direction: half-close ours.
    Fin,
    /// The peer reset the stream: drop the connection.
    Reset,
}

/// Reads `tcp` until end of file, taking credit before each read; `report` returns false once the
/// endpoint is gone.
pub async fn read_tcp(
    mut tcp: OwnedReadHalf,
    credit: Arc<Semaphore>,
    report: impl Fn(ReaderMsg) -> bool,
) {
    loop {
        let Ok(permit) = credit.acquire_many(READ_CHUNK as u32).await else {
            return;
        };
        // The endpoint gives back exactly what the session accepted; keep only what we read.
        permit.forget();
        // Read straight into the chunk that is handed over: no zeroing, no copy.
        let mut buf = Vec::with_capacity(READ_CHUNK);
        let msg = match tcp.read_buf(&mut buf).await {
            Ok(0) => ReaderMsg::Eof,
            Ok(n) => {
                credit.add_permits(READ_CHUNK - n);
                ReaderMsg::Data(buf)
            }
            Err(_) => ReaderMsg::Failed,
        };
        let last = !matches!(msg, ReaderMsg::Data(_));
        if !report(msg) || last {
            return;
        }
    }
}

/// Writes what the session delivers to `tcp`; reports drained bytes (Some) or a failure (None).
pub async fn write_tcp(
    mut tcp: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<WriterMsg>,
    report: impl Fn(Option<usize>) -> bool,
) {
    // A Fin or Reset met while gathering data, handled after that data is written.
    let mut next: Option<WriterMsg> = None;
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    loop {
        let msg = match next.take() {
            Some(msg) => msg,
            None => match rx.recv().await {
                Some(msg) => msg,
                None => return,
            },
        };
        match msg {
            WriterMsg::Data(data) => {
                // Whatever else is already queued goes out in the same (vectored) write: one system
                // call per burst rather than per chunk, and no copy into a bigger buffer.
                let mut bytes = data.len();
                chunks.push(data);
                while bytes < WRITE_COALESCE && chunks.len() < MAX_WRITE_CHUNKS {
                    match rx.try_recv() {
                        Ok(WriterMsg::Data(more)) => {
                            bytes += more.len();
                            chunks.push(more);
                        }
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                if write_all_vectored(&mut tcp, &chunks).await.is_err() {
                    report(None);
                    return;
                }
                chunks.clear();
                if !report(Some(bytes)) {
                    return;
                }
            }
            WriterMsg::Fin => {
                let _ = tcp.shutdown().await;
                // Keep the half open for reading: the reader task owns it and ends on EOF.
                return;
            }
            // Dropping the half (and the endpoint aborting the reader) closes the connection.
            WriterMsg::Reset => return,
        }
    }
}

/// Writes every byte of `chunks`, in order, with as few `writev` calls as the socket allows.
async fn write_all_vectored(tcp: &mut OwnedWriteHalf, chunks: &[Vec<u8>]) -> std::io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = chunks.iter().map(|c| IoSlice::new(c)).collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        let written = tcp.write_vectored(rest).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut rest, written);
    }
    Ok(())
}
