//! The two-step punch's sending side: opening probes, which the driver sends with a low IP TTL
//! ([`OPENING_TTL`](super::OPENING_TTL)), and the PATH_OPENED that follows them through the relay (see `paths`).

use std::net::SocketAddr;
use std::time::Instant;

use super::hard_nat::PortOpening;
use super::transmit::PathFrame;
use super::{PathKind, Session, State};
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
        self.queue_hard_nat(now);
        self.update_path_timer();
    }

    /// Hard-NAT traversal's sends (see `hard_nat`): our PATH_NAT to the relay, the easy side's
    /// spray probes. A direct path ends all of it.
    fn queue_hard_nat(&mut self, now: Instant) {
        if matches!(self.paths.kind(), PathKind::Direct(_)) {
            self.hard_nat.on_direct();
        }
        let token = self.hard_nat.token();
        for dest in self.hard_nat.due_spray(now) {
            self.path_sends
                .push_back((dest, PathFrame::Challenge(token)));
        }
        if let (Some((dependent, ports)), Some(relay)) =
            (self.hard_nat.due_announcement(now), self.paths.relay())
        {
            self.path_sends
                .push_back((relay, PathFrame::Nat { dependent, ports }));
        }
    }

    /// Our NAT's mapping behaviour, as the driver measured it (the server's probe answers from two
    /// of its addresses: the same public port for both, or not). Until it is known, this side
    /// neither sprays nor opens extra ports.
    pub fn set_nat_mapping(&mut self, now: Instant, mapping: super::NatMapping) {
        self.hard_nat.set_local(now, mapping);
        self.update_path_timer();
    }

    /// Hard side: the extra ports to open now, once per session (see `hard_nat`). The driver opens
    /// `count` new UDP sockets and sends `buf` (an opening probe, written here) from each to `dest`
    /// with the IP TTL [`OPENING_TTL`](super::OPENING_TTL); it passes what arrives on them to
    /// [`Session::handle_datagram`] and sends whatever goes to an address heard on one of them from
    /// that socket. It keeps them while [`Session::wants_extra_ports`] says so, and after that only
    /// the one the direct path uses.
    pub fn poll_port_opening(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<PortOpening> {
        if self.state != State::Established {
            return None;
        }
        let opening = self.hard_nat.take_opening(now)?;
        buf.clear();
        let start = self.begin_packet(buf);
        Frame::PathChallenge(self.hard_nat.token()).encode(buf);
        self.finish_packet(buf, start);
        Some(opening)
    }

    /// Whether the extra ports of [`Session::poll_port_opening`] are still wanted, all of them.
    pub fn wants_extra_ports(&self, now: Instant) -> bool {
        self.hard_nat.ports_wanted(now) && !matches!(self.paths.kind(), PathKind::Direct(_))
    }
}
