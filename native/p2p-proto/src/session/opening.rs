//! The two-step punch's sending side: opening probes, which the driver sends with a low IP TTL
//! ([`OPENING_TTL`](super::OPENING_TTL)), and the PATH_OPENED that follows them through the relay (see `paths`).

use std::net::SocketAddr;
use std::time::Instant;

use super::transmit::PathFrame;
use super::{Session, State};
use crate::frame::Frame;

impl Session {
    /// Writes the next opening probe into `buf` and returns where it goes; the driver must send it
    /// with the IP TTL (hop limit) [`OPENING_TTL`](super::OPENING_TTL), and call this before [`Session::poll_transmit`] so
    /// that the probes leave before the PATH_OPENED that announces them. A driver that cannot set the
    /// TTL drops them: sent with a full TTL they would do the harm they exist to avoid.
    pub fn poll_opening(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<SocketAddr> {
        if self.state != State::Established {
            return None;
        }
        self.queue_probes(now);
        let (dest, token) = self.openings.pop_front()?;
        buf.clear();
        let start = self.begin_packet(buf);
        Frame::PathChallenge(token).encode(buf);
        self.finish_packet(buf, start);
        Some(dest)
    }

    /// Queues the path probes due now: opening ones for [`Session::poll_opening`], full ones and the
    /// PATH_OPENED to the relay for `poll_transmit`.
    pub(super) fn queue_probes(&mut self, now: Instant) {
        let probes = self.paths.due_probes(now);
        if !probes.is_empty() {
            // Openings a driver never polled are stale by the next round.
            self.openings.clear();
        }
        for p in probes {
            if p.opening {
                self.openings.push_back((p.addr, p.token));
            } else {
                self.path_sends
                    .push_back((p.addr, PathFrame::Challenge(p.token)));
            }
        }
        if let (Some(count), Some(relay)) = (self.paths.take_announcement(), self.paths.relay()) {
            self.path_sends.push_back((relay, PathFrame::Opened(count)));
        }
        self.update_path_timer();
    }
}
