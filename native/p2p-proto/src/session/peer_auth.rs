//! The end-to-end handshake inside a session (docs/E2E-TRUST.md, section 3): with device keys on
//! both sides, mode 3's keys come from a Noise handshake between the peers' static keys instead of
//! from the server's session secret, which is only its psk.
//!
//! The initiator chooses: with [`PeerKeys`] in mode 3 it sends msg1 (kind `PeerHandshake`) instead
//! of HS1. A target with keys answers whichever kind arrives first and then ignores the other; a
//! target without keys drops msg1, so the initiator's session ends by the handshake timeout (the
//! caller only asks for the end-to-end handshake when the target is known to have a key).
//!
//! msg3 is the target's only way to its keys, and the initiator is established as soon as msg2
//! arrives: until the first authentic packet from the target, the initiator repeats msg3 on the
//! handshake resend schedule (a lost msg3 costs the data sent meanwhile one retransmission).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::timers::Timer;
use super::{CloseReason, Session, State};
use crate::crypto::{
    session_context, AeadOffer, ExpectedPeer, PeerHandshake, PeerHandshakeParams, PeerStep,
    PublicStaticKey, StaticKey, PEER_HANDSHAKE_RANDOM_LEN,
};
use crate::wire::Role;
use crate::EncryptionMode;

/// This side's static key and the key the peer must prove it holds.
#[derive(Debug, Clone)]
pub struct PeerKeys {
    pub local: StaticKey,
    pub expected_peer: ExpectedPeer,
}

impl PeerKeys {
    /// A target with a list of authorized initiators takes the end-to-end handshake only: the legacy
    /// one is keyed by the server's session secret alone, so the server could answer it itself.
    pub fn allows_legacy_handshake(&self) -> bool {
        !matches!(self.expected_peer, ExpectedPeer::OneOf(_))
    }
}

/// The end-to-end handshake's state beside the legacy one.
pub(super) struct PeerAuth {
    handshake: PeerHandshake,
    /// Initiator: the message it repeats (msg1 until msg2 arrives, then msg3 until confirmed).
    repeat: Option<Vec<u8>>,
    /// Target: msg2 owed to these addresses.
    replies: VecDeque<(SocketAddr, Vec<u8>)>,
    /// The session's keys came from this handshake.
    pub(super) established: bool,
    /// Initiator: an authentic packet from the target came, so it has msg3.
    confirmed: bool,
    pub(super) peer_key: Option<PublicStaticKey>,
}

impl PeerAuth {
    /// The end-to-end state of a new session, if it runs one: mode 3 with keys. The initiator's
    /// msg1 is ready to go.
    pub(super) fn new(
        role: Role,
        session_id: u64,
        mode: EncryptionMode,
        session_secret: &[u8; crate::crypto::SECRET_LEN],
        keys: Option<&PeerKeys>,
        random: &[u8; PEER_HANDSHAKE_RANDOM_LEN],
        rekey: bool,
    ) -> Option<PeerAuth> {
        let keys = keys.filter(|_| mode == EncryptionMode::ChaCha20Poly1305)?;
        let context = session_context(session_id, mode);
        let params = PeerHandshakeParams {
            role,
            local: &keys.local,
            expected_peer: keys.expected_peer.clone(),
            session_secret,
            session_context: &context,
            offer: AeadOffer::this_machine().with_rekey(rekey),
            random,
        };
        let (handshake, repeat) = match role {
            Role::Initiator => {
                let (handshake, msg1) = PeerHandshake::initiator(params);
                (handshake, Some(msg1))
            }
            Role::Target => (PeerHandshake::target(params), None),
        };
        Some(PeerAuth {
            handshake,
            repeat,
            replies: VecDeque::new(),
            established: false,
            confirmed: false,
            peer_key: None,
        })
    }

    /// Initiator: still sending its messages (msg1, or msg3 until the target is confirmed).
    pub(super) fn initiator_sends(&self) -> bool {
        self.repeat.is_some() && !self.confirmed
    }
}

impl Session {
    /// Initiator in the end-to-end handshake: it sends msg1, then msg3, instead of HS1.
    pub(super) fn runs_peer_handshake(&self) -> bool {
        self.cfg.role == Role::Initiator && self.peer_auth.is_some()
    }

    /// The next end-to-end handshake message and where it goes: the initiator's on its resend
    /// schedule (the caller checked the timer), the target's answers to whoever sent msg1.
    pub(super) fn next_peer_message(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        let auth = self.peer_auth.as_mut()?;
        match self.cfg.role {
            Role::Target => auth.replies.pop_front(),
            Role::Initiator => {
                let message = auth.repeat.clone().filter(|_| !auth.confirmed)?;
                Some((self.paths.relay()?, message))
            }
        }
    }

    /// A `PeerHandshake` datagram from the peer. A refused message is dropped (the genuine one can
    /// still come); a refused key or no AEAD in common ends the session with the reason.
    pub(super) fn on_peer_handshake(&mut self, now: Instant, from: SocketAddr, payload: &[u8]) {
        let legacy_established =
            self.protection.is_some() && !self.peer_auth.as_ref().is_some_and(|a| a.established);
        let Some(auth) = self.peer_auth.as_mut().filter(|_| !legacy_established) else {
            self.stats.packets_dropped += 1;
            return;
        };
        let step = match auth.handshake.receive(payload) {
            Ok(step) => step,
            Err(e) if auth.handshake.has_failed() => {
                self.enter_closed(CloseReason::PeerRefused(e));
                return;
            }
            Err(_) => {
                // A repeated msg3 after the target finished is expected, not an attack.
                if !auth.established {
                    self.stats.packets_dropped += 1;
                }
                return;
            }
        };
        self.stats.datagrams_received += 1;
        self.last_received = now;
        self.timers.set(Timer::Idle, now + self.cfg.idle_timeout);
        match step {
            PeerStep::Send(message) => match self.cfg.role {
                Role::Target => auth.replies.push_back((from, message)),
                // The target repeated msg2: our msg3 was lost; send it again now.
                Role::Initiator => self.timers.set(Timer::HandshakeResend, now),
            },
            PeerStep::Established { send, session } => {
                auth.established = true;
                auth.peer_key = Some(session.peer_key);
                if let Some(msg3) = send {
                    auth.repeat = Some(msg3);
                    self.hs_backoff = Duration::from_millis(200);
                    self.timers.set(Timer::HandshakeResend, now);
                }
                self.establish(session.protection);
            }
        }
    }

    /// Initiator: an authentic packet from the target shows it has msg3; stop repeating it.
    pub(super) fn on_peer_confirmed(&mut self) {
        if self.cfg.role != Role::Initiator {
            return;
        }
        if let Some(auth) = self.peer_auth.as_mut().filter(|a| !a.confirmed) {
            auth.confirmed = true;
            self.timers.stop(Timer::HandshakeResend);
        }
    }

    /// The initiator keeps sending handshake messages: before it is established, and in the
    /// end-to-end handshake until the target confirms msg3.
    pub(super) fn initiator_handshake_pending(&self) -> bool {
        match self
            .peer_auth
            .as_ref()
            .filter(|_| self.runs_peer_handshake())
        {
            Some(auth) => auth.initiator_sends(),
            None => self.state == State::Handshaking,
        }
    }
}
