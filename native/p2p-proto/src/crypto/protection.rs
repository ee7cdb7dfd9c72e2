//! Per-session packet protection: seals our packets, opens the peer's, keeps the replay window.

use std::fmt;

use super::aead::{self, PacketKey};
use super::keys::DirectionKeys;
use super::legacy::{self, Cipher};
use super::negotiation::Aead;
use super::replay::ReplayWindow;
use super::CryptoError;
use crate::wire::SESSION_HEADER_LEN;
use crate::EncryptionMode;

/// Seals our packets and opens the peer's, for one session and one mode. Made by
/// [`Handshake::receive`](super::Handshake::receive). Keys are wiped when it is dropped.
pub struct Protection {
    mode: EncryptionMode,
    /// Keys of our direction.
    seal: DirectionKeys,
    /// Keys of the peer's direction.
    open: DirectionKeys,
    /// Mode 3: `seal.enc` and `open.enc` expanded for the negotiated AEAD.
    aead_keys: Option<AeadKeys>,
    replay: ReplayWindow,
}

struct AeadKeys {
    seal: PacketKey,
    open: PacketKey,
}

impl Protection {
    /// `aead` is the one negotiated in mode 3 and ignored in the other modes.
    pub(crate) fn new(
        mode: EncryptionMode,
        aead: Aead,
        seal: DirectionKeys,
        open: DirectionKeys,
    ) -> Protection {
        let aead_keys = (mode == EncryptionMode::ChaCha20Poly1305).then(|| AeadKeys {
            seal: PacketKey::new(aead, &seal.enc),
            open: PacketKey::new(aead, &open.enc),
        });
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
        self.aead_keys.as_ref().map(|k| k.seal.aead())
    }

    fn aead_keys(&self) -> &AeadKeys {
        self.aead_keys
            .as_ref()
            .expect("mode 3 protections are built with their AEAD keys")
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
            EncryptionMode::ChaCha20Poly1305 => self.aead_keys().seal.seal(header, pn, buf, from),
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
            .and_then(|()| {
                if self.replay.check(pn) {
                    Ok(())
                } else {
                    Err(CryptoError::Replay)
                }
            });
        match result {
            Ok(()) => self.replay.commit(pn),
            Err(_) => out.clear(),
        }
        result
    }

    /// Authentication and decryption alone. The replay check comes after it so that an unauthentic
    /// packet is reported as such whatever its number.
    fn open_unchecked(
        &self,
        header: &[u8],
        pn: u64,
        protected: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), CryptoError> {
        match self.mode {
            EncryptionMode::None => {
                out.extend_from_slice(protected);
                Ok(())
            }
            EncryptionMode::Rc4 => {
                legacy::open(Cipher::Rc4, &self.open, header, pn, protected, out)
            }
            EncryptionMode::Xxtea => {
                legacy::open(Cipher::Xxtea, &self.open, header, pn, protected, out)
            }
            EncryptionMode::ChaCha20Poly1305 => {
                self.aead_keys().open.open(header, pn, protected, out)
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
