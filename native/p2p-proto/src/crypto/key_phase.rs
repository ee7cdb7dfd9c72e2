//! Mode 3's key updates (PROTOCOL.md, "Key updates"): each direction's AEAD key is replaced by the
//! next one of a one-way chain when its sender decides, and the packet's kind says which of two
//! consecutive keys sealed it (its key phase, 0 or 1).
//!
//! The receiver derives the next key only when a packet of the other phase arrives with a packet
//! number above those of the current phase, and keeps it only if that packet opens: a forged packet
//! advances nothing. The previous key stays for packets reordered across the update until the session
//! discards it (after three probe timeouts); the ratchet secret it came from is wiped at once, so a
//! key that is gone cannot be derived again from what the session holds.

use zeroize::Zeroizing;

use super::aead::PacketKey;
use super::keys::{next_phase, DirectionKeys, KEY_LEN};
use super::negotiation::Aead;
use super::CryptoError;

/// One direction's AEAD key in one phase, and the secret its successor comes from.
pub(crate) struct PhaseKey {
    packet: PacketKey,
    ratchet: Zeroizing<[u8; KEY_LEN]>,
}

impl PhaseKey {
    fn first(aead: Aead, keys: &DirectionKeys) -> PhaseKey {
        PhaseKey {
            packet: PacketKey::new(aead, &keys.enc),
            ratchet: Zeroizing::new(keys.ratchet),
        }
    }

    /// The next phase's key. The caller drops `self` (wiping its ratchet secret) once the next key
    /// is in use.
    fn next(&self) -> PhaseKey {
        let (key, ratchet) = next_phase(&self.ratchet);
        PhaseKey {
            packet: PacketKey::new(self.packet.aead(), &key),
            ratchet,
        }
    }
}

/// Which key opened a packet; the caller commits it with [`AeadKeys::commit`] once the replay check
/// passed too.
pub(crate) enum Opened {
    /// The current key, or the previous one (a packet reordered across an update).
    Kept,
    /// The next key: the peer updated its key with this packet.
    Next(Box<PhaseKey>),
}

/// Both directions' keys of a mode 3 session, with their phases.
pub(crate) struct AeadKeys {
    /// Both sides announced key updates; otherwise every packet is phase 0 and a phase 1 packet is
    /// refused.
    rekey: bool,
    seal: PhaseKey,
    seal_phase1: bool,
    seal_updates: u64,
    open: PhaseKey,
    open_phase1: bool,
    /// The lowest packet number opened under `open` since the peer's last update: a packet of the
    /// other phase below it was sealed under `previous_open`, one above it under the next key.
    open_phase_start: u64,
    previous_open: Option<PhaseKey>,
    open_updates: u64,
}

impl AeadKeys {
    pub(crate) fn new(aead: Aead, seal: &DirectionKeys, open: &DirectionKeys, rekey: bool) -> Self {
        AeadKeys {
            rekey,
            seal: PhaseKey::first(aead, seal),
            seal_phase1: false,
            seal_updates: 0,
            open: PhaseKey::first(aead, open),
            open_phase1: false,
            open_phase_start: 0,
            previous_open: None,
            open_updates: 0,
        }
    }

    pub(crate) fn aead(&self) -> Aead {
        self.seal.packet.aead()
    }

    pub(crate) fn rekey(&self) -> bool {
        self.rekey
    }

    /// The phase our packets are sealed in now: the kind of the next packet must say it.
    pub(crate) fn seal_phase1(&self) -> bool {
        self.seal_phase1
    }

    pub(crate) fn seal_updates(&self) -> u64 {
        self.seal_updates
    }

    pub(crate) fn open_updates(&self) -> u64 {
        self.open_updates
    }

    pub(crate) fn has_previous_open(&self) -> bool {
        self.previous_open.is_some()
    }

    pub(crate) fn seal(&self, header: &[u8], pn: u64, buf: &mut Vec<u8>, from: usize) {
        self.seal.packet.seal(header, pn, buf, from);
    }

    /// Our next key: the following packets are sealed under it in the other phase. False (and
    /// nothing changes) when the peer did not announce key updates.
    pub(crate) fn update_seal(&mut self) -> bool {
        if !self.rekey {
            return false;
        }
        self.seal = self.seal.next();
        self.seal_phase1 = !self.seal_phase1;
        self.seal_updates += 1;
        true
    }

    /// Opens a packet whose kind says `phase1`, without committing anything.
    pub(crate) fn open(
        &self,
        phase1: bool,
        header: &[u8],
        pn: u64,
        protected: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<Opened, CryptoError> {
        if phase1 == self.open_phase1 {
            return self
                .open
                .packet
                .open(header, pn, protected, out)
                .map(|()| Opened::Kept);
        }
        if !self.rekey {
            return Err(CryptoError::BadMac);
        }
        if pn < self.open_phase_start {
            let previous = self.previous_open.as_ref().ok_or(CryptoError::BadMac)?;
            return previous
                .packet
                .open(header, pn, protected, out)
                .map(|()| Opened::Kept);
        }
        let next = self.open.next();
        next.packet.open(header, pn, protected, out)?;
        Ok(Opened::Next(Box::new(next)))
    }

    /// Makes a packet's opening final: after the first packet of the peer's next phase, that key
    /// is current and the one before it is kept for reordered packets (replacing an older one).
    /// True when this was a key update.
    pub(crate) fn commit(&mut self, opened: Opened, pn: u64) -> bool {
        match opened {
            Opened::Kept => false,
            Opened::Next(next) => {
                let previous = std::mem::replace(&mut self.open, *next);
                self.previous_open = Some(previous);
                self.open_phase1 = !self.open_phase1;
                self.open_phase_start = pn;
                self.open_updates += 1;
                true
            }
        }
    }

    /// Forgets the peer's previous key: its packets no longer open.
    pub(crate) fn discard_previous_open(&mut self) {
        self.previous_open = None;
    }
}
