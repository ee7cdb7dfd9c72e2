//! The TCP side of a stream: a reader task and a writer task per connection, with byte credits so that a
//! fast TCP peer cannot make the endpoint buffer without bound, and a slow one backs up the session's
//! flow control instead of memory.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, Semaphore};

/// Bytes read from TCP that may wait for the session to accept them.
pub const READER_CREDIT: usize = 256 * 1024;
/// Bytes handed to the TCP writer that may wait for the socket.
pub const WRITER_CREDIT: usize = 256 * 1024;
const READ_CHUNK: usize = 32 * 1024;

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
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let Ok(permit) = credit.acquire_many(READ_CHUNK as u32).await else {
            return;
        };
        // The endpoint gives back exactly what the session accepted; keep only what we read.
        permit.forget();
        let msg = match tcp.read(&mut buf).await {
            Ok(0) => ReaderMsg::Eof,
            Ok(n) => {
                credit.add_permits(READ_CHUNK - n);
                ReaderMsg::Data(buf[..n].to_vec())
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
    while let Some(msg) = rx.recv().await {
        match msg {
            WriterMsg::Data(data) => {
                if tcp.write_all(&data).await.is_err() {
                    report(None);
                    return;
                }
                if !report(Some(data.len())) {
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
