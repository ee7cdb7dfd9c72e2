//! Per-session packet protection: seals our packets, opens the peer's, keeps the replay window.

use std::fmt;

use super::aead;
use super::key_phase::{AeadKeys, Opened};
use super::keys::DirectionKeys;
use super::legacy::{self, Cipher};
use super::negotiation::Aead;
use super::replay::ReplayWindow;
use super::CryptoError;
use crate::wire::{Kind, SESSION_HEADER_LEN};
use crate::EncryptionMode;

/// Seals our packets and opens the peer's, for one session and one mode. Made by
/// [`Handshake::receive`](super::Handshake::receive). Keys are wiped when it is dropped.
pub struct Protection {
    mode: EncryptionMode,
    /// Keys of our direction.
    seal: DirectionKeys,
    /// Keys of the peer's direction.
    open: DirectionKeys,
    /// Mode 3: `seal` and `open` expanded for the negotiated AEAD, with their key phases.
    aead_keys: Option<AeadKeys>,
    replay: ReplayWindow,
}

impl Protection {
    /// `aead` is the one negotiated in mode 3 and ignored in the other modes; `rekey` (both sides
    /// announced key updates) too.
    pub(crate) fn new(
        mode: EncryptionMode,
        aead: Aead,
        seal: DirectionKeys,
        open: DirectionKeys,
        rekey: bool,
    ) -> Protection {
        let aead_keys = (mode == EncryptionMode::ChaCha20Poly1305)
            .then(|| AeadKeys::new(aead, &seal, &open, rekey));
        Protection {
            mode,
            seal,
            open,
            aead_keys,
            replay: ReplayWindow::new(),
        }
    }

    pub fn mode(&self) -> EncryptionMode {
        self.mode
    }

    /// The AEAD sealing this session's packets: `None` in modes 0-2.
    pub fn aead(&self) -> Option<Aead> {
        self.aead_keys.as_ref().map(AeadKeys::aead)
    }

    fn aead_keys(&self) -> &AeadKeys {
        self.aead_keys
            .as_ref()
            .expect("mode 3 protections are built with their AEAD keys")
    }

    /// Both sides announced key updates (mode 3 only): [`update_seal_key`](Self::update_seal_key)
    /// may be used.
    pub fn rekeys(&self) -> bool {
        self.aead_keys.as_ref().is_some_and(AeadKeys::rekey)
    }

    /// The kind our next data packet must carry: `Data` in key phase 0, `DataPhase1` after an odd
    /// number of key updates.
    pub fn data_kind(&self, role: crate::wire::Role) -> Kind {
        Kind::data(
            role,
            self.aead_keys.as_ref().is_some_and(AeadKeys::seal_phase1),
        )
    }

    /// Moves our direction to its next key (and the other key phase); the key before it and the
    /// secret it came from are wiped. False, changing nothing, when the session does not rekey.
    pub fn update_seal_key(&mut self) -> bool {
        let updated = self.aead_keys.as_mut().is_some_and(AeadKeys::update_seal);
        if updated {
            self.seal.wipe();
        }
        updated
    }

    /// How often we moved our direction to a new key, and how often the peer moved its.
    pub fn key_updates(&self) -> (u64, u64) {
        self.aead_keys
            .as_ref()
            .map_or((0, 0), |k| (k.seal_updates(), k.open_updates()))
    }

    /// The peer's previous key is still kept for packets reordered across its last update.
    pub fn has_previous_open_key(&self) -> bool {
        self.aead_keys
            .as_ref()
            .is_some_and(AeadKeys::has_previous_open)
    }

    /// Forgets the peer's previous key (the grace for reordered packets is over).
    pub fn discard_previous_open_key(&mut self) {
        if let Some(k) = self.aead_keys.as_mut() {
            k.discard_previous_open();
        }
    }

    /// Most bytes [`seal`](Self::seal) can add to a payload of any length: 0, 20, 28 (tag + up to 8
    /// padding bytes) or 16.
    pub fn max_overhead(&self) -> usize {
        match self.mode {
            EncryptionMode::None => 0,
            EncryptionMode::Rc4 => legacy::TAG_LEN,
            EncryptionMode::Xxtea => legacy::TAG_LEN + legacy::XXTEA_MAX_PAD,
            EncryptionMode::ChaCha20Poly1305 => aead::TAG_LEN,
        }
    }

    /// The receive replay window (for tests and statistics).
    pub fn replay_window(&self) -> &ReplayWindow {
        &self.replay
    }

    /// Protects `payload` in place for packet number `pn` (which must be the one in `header`, the 18
    /// clear header bytes, and must never repeat: it is the nonce).
    pub fn seal(&self, header: &[u8], pn: u64, payload: &mut Vec<u8>) {
        self.seal_from(header, pn, payload, 0);
    }

    /// Protects the packet at the end of `buf` in place: its clear header at `buf[start..]`
    /// (carrying `pn`), its payload after the header up to the end. The packet is sealed where
    /// it was built (a send batch, say), with no copy.
    pub fn seal_packet(&self, buf: &mut Vec<u8>, start: usize, pn: u64) {
        let body = start + SESSION_HEADER_LEN;
        let header: [u8; SESSION_HEADER_LEN] = buf[start..body]
            .try_into()
            .expect("a packet starts with its whole header");
        self.seal_from(&header, pn, buf, body);
    }

    /// Seals the payload `buf[from..]` and appends what the mode adds.
    fn seal_from(&self, header: &[u8], pn: u64, buf: &mut Vec<u8>, from: usize) {
        match self.mode {
            EncryptionMode::None => {}
            EncryptionMode::Rc4 => legacy::seal(Cipher::Rc4, &self.seal, header, pn, buf, from),
            EncryptionMode::Xxtea => legacy::seal(Cipher::Xxtea, &self.seal, header, pn, buf, from),
            EncryptionMode::ChaCha20Poly1305 => {
                let keys = self.aead_keys();
                debug_assert_eq!(
                    Kind::from_byte(header[1]).and_then(Kind::key_phase1),
                    Some(keys.seal_phase1()),
                    "a data packet's kind names the phase it is sealed in"
                );
                keys.seal(header, pn, buf, from)
            }
        }
    }

    /// Authenticates, decrypts and replay-checks the peer's packet `pn` (taken from `header`). On
    /// success `out` holds the plaintext frames; on any error `out` is empty and the replay window
    /// is unchanged, so a forged packet cannot move it.
    pub fn open(
        &mut self,
        header: &[u8],
        pn: u64,
        protected: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), CryptoError> {
        out.clear();
        // The number must be the one the header carries: legacy modes key on it but authenticate the
        // header, so a mismatch would decrypt to garbage instead of failing.
        let legacy = matches!(self.mode, EncryptionMode::Rc4 | EncryptionMode::Xxtea);
        if legacy && header.get(10..18) != Some(&pn.to_be_bytes()[..]) {
            return Err(CryptoError::BadMac);
        }
        let result = self
            .open_unchecked(header, pn, protected, out)
            .and_then(|opened| {
                if self.replay.check(pn) {
                    Ok(opened)
                } else {
                    Err(CryptoError::Replay)
                }
            });
        match result {
            Ok(opened) => {
                self.replay.commit(pn);
                if let (Some(keys), Some(opened)) = (self.aead_keys.as_mut(), opened) {
                    if keys.commit(opened, pn) {
                        self.open.wipe();
                    }
                }
                Ok(())
            }
            Err(e) => {
                out.clear();
                Err(e)
            }
        }
    }

    /// Authentication and decryption alone, and in mode 3 which key opened the packet. The replay
    /// check comes after it so that an unauthentic packet is reported as such whatever its number.
    fn open_unchecked(
        &self,
        header: &[u8],
        pn: u64,
        protected: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<Option<Opened>, CryptoError> {
        match self.mode {
            EncryptionMode::None => {
                out.extend_from_slice(protected);
                Ok(None)
            }
            EncryptionMode::Rc4 => {
                legacy::open(Cipher::Rc4, &self.open, header, pn, protected, out).map(|()| None)
            }
            EncryptionMode::Xxtea => {
                legacy::open(Cipher::Xxtea, &self.open, header, pn, protected, out).map(|()| None)
            }
            EncryptionMode::ChaCha20Poly1305 => {
                let phase1 = header
                    .get(1)
                    .and_then(|&b| Kind::from_byte(b))
                    .and_then(Kind::key_phase1)
                    .ok_or(CryptoError::Malformed)?;
                self.aead_keys()
                    .open(phase1, header, pn, protected, out)
                    .map(Some)
            }
        }
    }
}

/// Equal when mode, AEAD, keys (compared in constant time) and replay state are: a retransmitted handshake
/// yields a `Protection` equal to the first one.
impl PartialEq for Protection {
    fn eq(&self, other: &Protection) -> bool {
        let keys = self.seal.ct_eq(&other.seal) & self.open.ct_eq(&other.open);
        self.mode == other.mode
            && self.aead() == other.aead()
            && bool::from(keys)
            && self.replay == other.replay
    }
}
impl Eq for Protection {}

/// Keys never appear in logs.
impl fmt::Debug for Protection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Protection")
            .field("mode", &self.mode)
            .field("aead", &self.aead())
            .field("highest_received", &self.replay.highest())
            .field("keys", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod key_update_tests {
    use super::super::tests::{session, RANDOM_I, RANDOM_T, SECRET};
    use super::*;
    use crate::crypto::{AeadOffer, Handshake};
    use crate::wire::{Role, SessionHeader};

    const MODE: EncryptionMode = EncryptionMode::ChaCha20Poly1305;

    /// A datagram from `p`'s side in its current key phase.
    fn datagram(p: &Protection, pn: u64, payload: &[u8]) -> Vec<u8> {
        let mut d = Vec::new();
        SessionHeader {
            kind: p.data_kind(Role::Initiator),
            session_id: 1,
            packet_number: pn,
        }
        .encode(&mut d);
        d.extend_from_slice(payload);
        p.seal_packet(&mut d, 0, pn);
        d
    }

    fn open(p: &mut Protection, d: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let pn = u64::from_be_bytes(d[10..18].try_into().unwrap());
        let mut out = Vec::new();
        p.open(
            &d[..SESSION_HEADER_LEN],
            pn,
            &d[SESSION_HEADER_LEN..],
            &mut out,
        )
        .map(|()| out)
    }

    #[test]
    fn an_update_takes_the_next_key_of_the_chain_and_the_peer_follows() {
        let (mut i, mut t) = session(MODE, &SECRET, &RANDOM_I, &RANDOM_T);
        assert!(i.rekeys() && t.rekeys());
        let phase0 = datagram(&i, 7, b"same bytes");
        assert!(i.update_seal_key());
        let phase1 = datagram(&i, 7, b"same bytes");
        assert_eq!(phase1[1], 0x18);
        assert_ne!(phase0[SESSION_HEADER_LEN..], phase1[SESSION_HEADER_LEN..]);
        assert_eq!(open(&mut t, &phase1).unwrap(), b"same bytes");
        assert_eq!((i.key_updates(), t.key_updates()), ((1, 0), (0, 1)));
        // Back to phase 0 under a third key.
        assert!(i.update_seal_key());
        let again = datagram(&i, 8, b"third key");
        assert_eq!(again[1], 0x10);
        assert_eq!(open(&mut t, &again).unwrap(), b"third key");
        assert_eq!(t.key_updates(), (0, 2));
    }

    #[test]
    fn a_forged_packet_of_the_next_phase_changes_no_key() {
        let (i, mut t) = session(MODE, &SECRET, &RANDOM_I, &RANDOM_T);
        let mut forged = datagram(&i, 3, b"hello");
        forged[1] = 0x18;
        assert_eq!(open(&mut t, &forged), Err(CryptoError::BadMac));
        assert_eq!(t.key_updates(), (0, 0));
        assert!(t.replay_window().check(3));
        assert_eq!(open(&mut t, &datagram(&i, 3, b"hello")).unwrap(), b"hello");
    }

    #[test]
    fn the_previous_key_opens_reordered_packets_until_discarded_then_its_material_is_gone() {
        let (mut i, mut t) = session(MODE, &SECRET, &RANDOM_I, &RANDOM_T);
        let (held0, held1) = (datagram(&i, 0, b"zero"), datagram(&i, 1, b"one"));
        i.update_seal_key();
        // The sender's raw first key and its ratchet secret are wiped at once.
        assert_eq!((i.seal.enc, i.seal.ratchet), ([0; 32], [0; 32]));
        assert_eq!(open(&mut t, &datagram(&i, 2, b"two")).unwrap(), b"two");
        assert!(t.has_previous_open_key());
        assert_eq!((t.open.enc, t.open.ratchet), ([0; 32], [0; 32]));
        assert_eq!(open(&mut t, &held1).unwrap(), b"one");
        t.discard_previous_open_key();
        assert!(!t.has_previous_open_key());
        assert!(t.replay_window().check(0));
        assert_eq!(open(&mut t, &held0), Err(CryptoError::BadMac));
    }

    #[test]
    fn without_both_announcements_nothing_updates_and_phase_1_is_refused() {
        let old = Handshake::with_offer(
            Role::Initiator,
            MODE,
            &SECRET,
            &RANDOM_I,
            Some(AeadOffer::this_machine().with_rekey(false)),
        );
        let new = Handshake::new(Role::Target, MODE, &SECRET, &RANDOM_T);
        let hs = |r: Role| {
            let mut h = Vec::new();
            SessionHeader {
                kind: crate::wire::Kind::Handshake(r),
                session_id: 1,
                packet_number: 0,
            }
            .encode(&mut h);
            h
        };
        let (h1, h2) = (hs(Role::Initiator), hs(Role::Target));
        let mut t = new.receive(&h1, &old.message(&h1)).unwrap();
        let mut i = old.receive(&h2, &new.message(&h2)).unwrap();
        assert!(!i.rekeys() && !t.rekeys());
        assert!(!i.update_seal_key() && !t.update_seal_key());
        assert_eq!(i.key_updates(), (0, 0));
        let mut phase1 = datagram(&i, 4, b"x");
        phase1[1] = 0x18;
        assert_eq!(open(&mut t, &phase1), Err(CryptoError::BadMac));
        assert_eq!(open(&mut t, &datagram(&i, 4, b"x")).unwrap(), b"x");
    }
}
