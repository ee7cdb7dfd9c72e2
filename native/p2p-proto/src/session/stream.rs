//! One stream's state on both halves: the send buffer with the peer's flow-control limit, the receive
//! buffer with ours, and how far each direction has finished.

use super::recv_buffer::RecvBuffer;
use super::send_buffer::SendBuffer;

/// Bytes the peer may send beyond what the application read; MAX_STREAM_DATA renews it at half.
pub const RECEIVE_WINDOW: u64 = 1024 * 1024;
/// Bytes the application may write before acknowledgements free space.
pub const SEND_CAPACITY: usize = 1024 * 1024;

#[derive(Debug)]
pub struct Stream {
    pub send: SendBuffer,
    /// The peer's limit on our send offset.
    pub send_limit: u64,
    /// A write was refused for lack of space: tell the application when space frees.
    pub write_blocked: bool,
    pub recv: RecvBuffer,
    /// The limit we granted the peer.
    pub recv_limit: u64,
    /// A MAX_STREAM_DATA is due (sent with the next packet).
    pub max_data_pending: bool,
}

impl Stream {
    pub fn new() -> Stream {
        Stream {
            send: SendBuffer::new(SEND_CAPACITY),
            send_limit: RECEIVE_WINDOW,
            write_blocked: false,
            recv: RecvBuffer::default(),
            recv_limit: RECEIVE_WINDOW,
            max_data_pending: false,
        }
    }

    /// After the application read: renew the peer's window once half of it is consumed.
    pub fn after_read(&mut self) {
        let consumed = self.recv.read_offset();
        if self.recv_limit - consumed < RECEIVE_WINDOW / 2 && !self.recv.is_fin_read() {
            self.recv_limit = consumed + RECEIVE_WINDOW;
            self.max_data_pending = true;
        }
    }

    /// Both directions are over: our data (and FIN) acknowledged, the peer's FIN read.
    pub fn is_finished(&self) -> bool {
        self.send.is_done() && self.recv.is_fin_read()
    }
}
