//! Packet building: the handshake datagrams, path probes, the CLOSE, and ordinary packets assembled
//! from an ACK, control frames and stream data, each sealed under the next packet number.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::recovery::SentFrame;
use super::stream::Stream;
use super::timers::Timer;
use super::{Session, State, StreamId};
use crate::frame::{self, Frame, STREAM_OVERHEAD_MAX};
use crate::wire::{Kind, Role, SessionHeader, MAX_DATAGRAM, SESSION_HEADER_LEN};

/// A packet that must go to a given address (path validation), outside the normal flow.
#[derive(Debug, Clone, Copy)]
pub(super) enum PathFrame {
    Challenge([u8; 8]),
    Response([u8; 8]),
    Opened(u64),
    Nat { dependent: bool, ports: u64 },
}

impl Session {
    /// Writes the next datagram into `buf` (cleared first) and returns where it goes; `None` when
    /// there is nothing to send now.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<SocketAddr> {
        buf.clear();
        self.poll_transmit_append(now, buf)
    }

    /// Like [`Session::poll_transmit`], but appends the datagram to `buf` after what it holds, so a
    /// driver can build its send batch in place: the packet is sealed where it is written. `buf` is
    /// unchanged when there is nothing to send.
    pub fn poll_transmit_append(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<SocketAddr> {
        if let Some(dest) = self.transmit_handshake(now, buf) {
            return Some(dest);
        }
        if self.state == State::Closed {
            let (code, text) = self.close_pending.take()?;
            let dest = self.paths.active()?;
            let start = self.begin_packet(buf);
            Frame::Close { code, text: &text }.encode(buf);
            self.finish_packet(buf, start);
            return Some(dest);
        }
        if self.state != State::Established {
            return None;
        }
        self.update_keys_if_due(now);
        self.queue_probes(now);
        if let Some((dest, pf)) = self.path_sends.pop_front() {
            let start = self.begin_packet(buf);
            match pf {
                PathFrame::Challenge(t) => Frame::PathChallenge(t).encode(buf),
                PathFrame::Response(t) => Frame::PathResponse(t).encode(buf),
                PathFrame::Opened(count) => Frame::PathOpened { count }.encode(buf),
                PathFrame::Nat { dependent, ports } => {
                    Frame::PathNat { dependent, ports }.encode(buf)
                }
            }
            self.finish_packet(buf, start);
            return Some(dest);
        }
        let dest = self.paths.active()?;
        self.transmit_normal(now, buf).then_some(dest)
    }

    /// Initiator: HS1 (or the end-to-end msg1, then msg3) on its schedule; target: HS2 (or msg2)
    /// to whoever sent a valid HS1 (or msg1).
    fn transmit_handshake(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<SocketAddr> {
        if self.cfg.role == Role::Initiator {
            if self.state == State::Closed
                || !self.initiator_handshake_pending()
                || !self.timers.is_expired(Timer::HandshakeResend, now)
            {
                return None;
            }
            self.timers
                .set(Timer::HandshakeResend, now + self.hs_backoff);
            self.hs_backoff = (self.hs_backoff * 2).min(Duration::from_secs(1));
        }
        if let Some((dest, message)) = self.next_peer_message() {
            self.handshake_header(Kind::PeerHandshake(self.cfg.role), buf);
            buf.extend_from_slice(&message);
            return Some(dest);
        }
        let dest = match self.cfg.role {
            Role::Target => self.hs_replies.pop_front()?,
            Role::Initiator => self.paths.relay()?,
        };
        let start = self.handshake_header(Kind::Handshake(self.cfg.role), buf);
        let message = self
            .handshake
            .message(&buf[start..start + SESSION_HEADER_LEN]);
        buf.extend_from_slice(&message);
        Some(dest)
    }

    /// Appends the clear header of a handshake datagram (packet number 0), counted as sent;
    /// returns where the datagram starts.
    fn handshake_header(&mut self, kind: Kind, buf: &mut Vec<u8>) -> usize {
        let start = buf.len();
        SessionHeader {
            kind,
            session_id: self.cfg.session_id,
            packet_number: 0,
        }
        .encode(buf);
        self.stats.datagrams_sent += 1;
        start
    }

    /// Appends the header of the next data packet to `buf` and returns where the packet starts;
    /// its frames follow, then [`finish_packet`](Self::finish_packet) seals it. The packet number
    /// is only taken when the packet is finished, so a packet abandoned by truncating `buf` back
    /// to its start leaves no gap.
    pub(super) fn begin_packet(&mut self, buf: &mut Vec<u8>) -> usize {
        let start = buf.len();
        let role = self.cfg.role;
        SessionHeader {
            kind: self
                .protection
                .as_ref()
                .map_or(Kind::Data(role), |p| p.data_kind(role)),
            session_id: self.cfg.session_id,
            packet_number: self.recovery.next_packet_number(),
        }
        .encode(buf);
        start
    }

    /// Protects the packet begun at `start` (header, then the frames written since) in place,
    /// under its packet number, which it returns.
    pub(super) fn finish_packet(&mut self, buf: &mut Vec<u8>, start: usize) -> u64 {
        let pn = self.recovery.take_packet_number();
        if let Some(p) = &self.protection {
            p.seal_packet(buf, start, pn);
        }
        self.key_updates.on_sealed(buf.len() - start);
        self.stats.datagrams_sent += 1;
        pn
    }

    fn max_payload(&self) -> usize {
        let overhead = self.protection.as_ref().map_or(0, |p| p.max_overhead());
        MAX_DATAGRAM - SESSION_HEADER_LEN - overhead
    }

    /// Builds one packet to the active path: ACK, control frames, then stream data as the
    /// congestion window and the pacing rate allow. False when there is nothing to send.
    fn transmit_normal(&mut self, now: Instant, buf: &mut Vec<u8>) -> bool {
        let mut frames = Vec::new();
        let ack_deadline = self.timers.get(Timer::Ack);
        let ack_due = ack_deadline.is_some_and(|t| now >= t);
        let has_stream_data = self.stream_data_may_go(now);
        let eliciting_pending = self.ping_pending
            || !self.resets.is_empty()
            || self.streams.values().any(|s| s.max_data_pending)
            || has_stream_data;
        if !ack_due && !eliciting_pending {
            return false;
        }
        let start = self.begin_packet(buf);
        let body = buf.len();
        // The frame writers compare `buf.len()` against this end of the packet's payload.
        let end = body + self.max_payload();
        if ack_deadline.is_some() {
            self.write_ack(now, buf, end - body);
        }
        let before_eliciting = buf.len();
        self.write_control_frames(buf, &mut frames, end);
        if has_stream_data {
            self.write_stream_frames(buf, &mut frames, end);
        }
        if self.ping_pending && buf.len() == before_eliciting {
            Frame::Ping.encode(buf);
        }
        self.ping_pending = false;
        let eliciting = buf.len() > before_eliciting;
        if buf.len() == body {
            buf.truncate(start);
            return false;
        }
        let pn = self.finish_packet(buf, start);
        if eliciting {
            let size = buf.len() - start;
            self.recovery.on_sent(pn, now, size, frames);
            self.update_loss_detection_timer();
            self.timers.set(Timer::Keepalive, now + self.cfg.keepalive);
        }
        true
    }

    /// Stream data may be sent with this packet when the window has room for a full packet and
    /// the pacing rate allows it now. Arms the pacing timer when only pacing holds data back, and
    /// tells the controller when the application, not the window, limits the rate.
    fn stream_data_may_go(&mut self, now: Instant) -> bool {
        let window_open = self.recovery.congestion().can_send(MAX_DATAGRAM);
        let pending = self.any_stream_sendable();
        let congestion = self.recovery.congestion_mut();
        if window_open && !pending {
            congestion.on_app_limited();
        }
        let paced_until = if window_open && pending {
            congestion.pacing_delay(now, MAX_DATAGRAM)
        } else {
            None
        };
        self.timers.set_or_stop(Timer::Pacing, paced_until);
        window_open && pending && paced_until.is_none()
    }

    /// The ACK frame, at most a quarter of a packet's `payload_room`.
    fn write_ack(&mut self, now: Instant, payload: &mut Vec<u8>, payload_room: usize) {
        let delay = self
            .largest_received_at
            .map_or(0, |t| now.saturating_duration_since(t).as_micros() as u64);
        if frame::encode_ack(
            payload,
            self.received.iter_desc(),
            delay,
            32,
            payload_room / 4,
        ) {
            self.timers.stop(Timer::Ack);
            self.unacked_eliciting = 0;
        }
    }

    /// Frames go onto `payload` up to its length `max`.
    fn write_control_frames(
        &mut self,
        payload: &mut Vec<u8>,
        frames: &mut Vec<SentFrame>,
        max: usize,
    ) {
        while let Some(&(id, reason)) = self.resets.front() {
            if payload.len() + 20 > max {
                return;
            }
            self.resets.pop_front();
            Frame::ResetStream { id, reason }.encode(payload);
            frames.push(SentFrame::Reset { id, reason });
        }
        for (&id, s) in self.streams.iter_mut() {
            if !s.max_data_pending {
                continue;
            }
            if payload.len() + 20 > max {
                return;
            }
            s.max_data_pending = false;
            Frame::MaxStreamData {
                id,
                max_offset: s.recv_limit,
            }
            .encode(payload);
            frames.push(SentFrame::MaxStreamData { id });
        }
    }

    fn stream_may_send(s: &Stream) -> bool {
        s.send.has_sendable(s.send_limit)
    }

    /// The first stream at or after `from` (wrapping around) that may send now.
    fn next_sendable_from(&self, from: StreamId) -> Option<StreamId> {
        self.streams
            .range(from..)
            .chain(self.streams.range(..from))
            .find(|(_, s)| Self::stream_may_send(s))
            .map(|(&id, _)| id)
    }

    fn any_stream_sendable(&self) -> bool {
        self.next_sendable_from(self.next_stream_turn).is_some()
    }

    /// Fills the packet with stream data, up to `payload`'s length `max`, taking streams in turn
    /// so that one busy stream cannot starve the others.
    fn write_stream_frames(
        &mut self,
        payload: &mut Vec<u8>,
        frames: &mut Vec<SentFrame>,
        max: usize,
    ) {
        // One stream at a time from the turn on, found lazily: a packet is usually filled by the
        // first stream, and listing every sendable stream per packet cost 13% of the CPU with 64
        // busy streams.
        for _ in 0..self.streams.len() {
            let Some(id) = self.next_sendable_from(self.next_stream_turn) else {
                break;
            };
            let Some(s) = self.streams.get_mut(&id) else {
                break;
            };
            while payload.len() + STREAM_OVERHEAD_MAX < max {
                let room = max - payload.len() - STREAM_OVERHEAD_MAX;
                let Some(chunk) = s.send.next_chunk(room, s.send_limit) else {
                    break;
                };
                frame::put_stream_header(payload, id, chunk.offset, chunk.fin, chunk.len);
                s.send.copy_to(chunk.offset, chunk.len, payload);
                if !chunk.retransmit {
                    self.stats.bytes_sent += chunk.len as u64;
                }
                frames.push(SentFrame::Stream {
                    id,
                    offset: chunk.offset,
                    len: chunk.len,
                    fin: chunk.fin,
                });
            }
            self.next_stream_turn = id + 1;
            if payload.len() + STREAM_OVERHEAD_MAX >= max {
                break;
            }
        }
    }
}
