//! Which AEAD mode 3 seals with: AES-256-GCM or ChaCha20-Poly1305, agreed during the handshake.
//!
//! Each side's offer rides in the first ten bytes of its handshake nonce: an 8-byte marker, the set of
//! AEADs it accepts and the one it prefers. A peer from before negotiation sends sixteen random bytes
//! there and reads ours as random bytes too, so it neither sends nor understands an offer and still
//! gets what it always had, ChaCha20-Poly1305 with the same key derivation. The nonce is under the
//! handshake mac and goes into the key derivation, so an offer cannot be changed on the way without
//! the session secret (PROTOCOL.md, "AEAD negotiation").

use std::fmt;

/// The marker that starts a nonce carrying an offer. A peer from before negotiation sends it by
/// chance once in 2^64 sessions.
const OFFER_MARKER: [u8; 8] = *b"p2pAEAD\x01";

/// The AEAD of mode 3.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Aead {
    ChaCha20Poly1305,
    Aes256Gcm,
}

impl Aead {
    pub const ALL: [Aead; 2] = [Aead::ChaCha20Poly1305, Aead::Aes256Gcm];

    /// The name in status output and JSON (`aead`).
    pub fn name(self) -> &'static str {
        match self {
            Aead::ChaCha20Poly1305 => "ChaCha20-Poly1305",
            Aead::Aes256Gcm => "AES-256-GCM",
        }
    }

    /// Its bit in an offer's accepted set.
    const fn bit(self) -> u8 {
        match self {
            Aead::ChaCha20Poly1305 => 0x01,
            Aead::Aes256Gcm => 0x02,
        }
    }

    /// Appended to the key derivation's info. Empty for ChaCha20-Poly1305, whose keys must stay the
    /// ones a peer from before negotiation derives.
    pub(crate) fn kdf_label(self) -> &'static [u8] {
        match self {
            Aead::ChaCha20Poly1305 => b"",
            Aead::Aes256Gcm => b"AES-256-GCM",
        }
    }

    /// The AEAD this CPU runs fastest: AES-256-GCM with AES instructions, ChaCha20-Poly1305 without
    /// (ring's ChaCha20 is vectorised everywhere, its constant-time software AES is several times
    /// slower than with the instructions).
    pub fn fastest_here() -> Aead {
        if has_aes_instructions() {
            Aead::Aes256Gcm
        } else {
            Aead::ChaCha20Poly1305
        }
    }
}

impl fmt::Display for Aead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// AES rounds and carry-less multiplication (GHASH) in hardware: what makes AES-GCM faster than
/// ChaCha20-Poly1305 and constant-time.
fn has_aes_instructions() -> bool {
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    {
        std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("aes")
    }
    #[cfg(not(any(target_arch = "x86", target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

/// Set in the accepted-AEADs byte by a side that can update its keys within a session (key phases,
/// PROTOCOL.md "Key updates"). A peer from before key updates sends only its AEADs' bits there and
/// ignores bits it does not know, so it neither announces nor sees the announcement.
const REKEY_FLAG: u8 = 0x80;

/// What one side of a handshake accepts and prefers, and whether it can update its keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AeadOffer {
    /// Bits of [`Aead::bit`]; never empty.
    accepted: u8,
    preferred: Aead,
    /// This side understands key phases (a packet sealed under the next key).
    rekey: bool,
}

impl AeadOffer {
    /// What a peer from before negotiation accepts: ChaCha20-Poly1305 alone.
    pub const LEGACY: AeadOffer = AeadOffer::only(Aead::ChaCha20Poly1305);

    /// Both AEADs, preferring `preferred`.
    pub const fn both(preferred: Aead) -> AeadOffer {
        AeadOffer {
            accepted: Aead::ChaCha20Poly1305.bit() | Aead::Aes256Gcm.bit(),
            preferred,
            rekey: false,
        }
    }

    /// `aead` and nothing else (to force one in tests and benchmarks).
    pub const fn only(aead: Aead) -> AeadOffer {
        AeadOffer {
            accepted: aead.bit(),
            preferred: aead,
            rekey: false,
        }
    }

    /// The default: both AEADs, preferring the one this CPU runs fastest, and key updates.
    pub fn this_machine() -> AeadOffer {
        AeadOffer::both(Aead::fastest_here()).with_rekey(true)
    }

    /// The same offer announcing (or not) that this side can update its keys within the session.
    pub const fn with_rekey(self, rekey: bool) -> AeadOffer {
        AeadOffer { rekey, ..self }
    }

    /// Whether the session may update its keys: only when both sides announced it, since a peer
    /// that does not know key phases drops every packet of the next one.
    pub fn rekeys_with(self, peer: AeadOffer) -> bool {
        self.rekey && peer.rekey
    }

    fn accepts(self, aead: Aead) -> bool {
        self.accepted & aead.bit() != 0
    }

    /// The AEAD both sides use, the same whichever side computes it: AES-256-GCM when both accept it
    /// and both prefer it (both have AES instructions), else ChaCha20-Poly1305 when both accept it,
    /// else whatever single AEAD both accept; `None` when they share none.
    pub fn agree(self, peer: AeadOffer) -> Option<Aead> {
        let common: Vec<Aead> = Aead::ALL
            .into_iter()
            .filter(|a| self.accepts(*a) && peer.accepts(*a))
            .collect();
        let both_prefer_aes =
            self.preferred == Aead::Aes256Gcm && peer.preferred == Aead::Aes256Gcm;
        if both_prefer_aes && common.contains(&Aead::Aes256Gcm) {
            return Some(Aead::Aes256Gcm);
        }
        common.first().copied()
    }

    /// Writes the offer over the start of a handshake nonce (whose other bytes stay random).
    pub(crate) fn write_into(self, nonce: &mut [u8; 16]) {
        nonce[..OFFER_MARKER.len()].copy_from_slice(&OFFER_MARKER);
        nonce[OFFER_MARKER.len()] = self.accepted | if self.rekey { REKEY_FLAG } else { 0 };
        nonce[OFFER_MARKER.len() + 1] = self.preferred.bit();
    }

    /// The offer in a peer's handshake nonce: [`LEGACY`](Self::LEGACY) without the marker (a peer
    /// from before negotiation), `None` when it names no AEAD we know or prefers one it does not
    /// accept. Bits of AEADs we do not know are ignored, so a later version can add some.
    pub(crate) fn read_from(nonce: &[u8; 16]) -> Option<AeadOffer> {
        if nonce[..OFFER_MARKER.len()] != OFFER_MARKER {
            return Some(AeadOffer::LEGACY);
        }
        let known = Aead::ALL.iter().fold(0, |bits, a| bits | a.bit());
        let accepted = nonce[OFFER_MARKER.len()] & known;
        let rekey = nonce[OFFER_MARKER.len()] & REKEY_FLAG != 0;
        let preferred = Aead::ALL
            .into_iter()
            .find(|a| a.bit() == nonce[OFFER_MARKER.len() + 1])?;
        (accepted & preferred.bit() != 0).then_some(AeadOffer {
            accepted,
            preferred,
            rekey,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nonce bytes the offer takes: the marker, the accepted set, the preferred AEAD.
    const OFFER_LEN: usize = OFFER_MARKER.len() + 2;

    const OFFERS: [AeadOffer; 4] = [
        AeadOffer::both(Aead::Aes256Gcm),
        AeadOffer::both(Aead::ChaCha20Poly1305),
        AeadOffer::only(Aead::Aes256Gcm),
        AeadOffer::only(Aead::ChaCha20Poly1305),
    ];

    #[test]
    fn aes_only_when_both_prefer_it_and_agreement_is_symmetric() {
        use Aead::*;
        let [aes_hw, no_aes_hw, aes_only, chacha_only] = OFFERS;
        assert_eq!(aes_hw.agree(aes_hw), Some(Aes256Gcm));
        assert_eq!(aes_hw.agree(no_aes_hw), Some(ChaCha20Poly1305));
        assert_eq!(aes_hw.agree(AeadOffer::LEGACY), Some(ChaCha20Poly1305));
        assert_eq!(no_aes_hw.agree(aes_only), Some(Aes256Gcm));
        assert_eq!(aes_only.agree(chacha_only), None);
        for a in OFFERS {
            for b in OFFERS {
                assert_eq!(a.agree(b), b.agree(a), "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn offers_survive_the_nonce_and_random_nonces_read_as_legacy() {
        for offer in OFFERS {
            let mut nonce = [0xa5; 16];
            offer.write_into(&mut nonce);
            assert_eq!(nonce[OFFER_LEN..], [0xa5; 16 - OFFER_LEN]);
            assert_eq!(AeadOffer::read_from(&nonce), Some(offer));
        }
        assert_eq!(AeadOffer::read_from(&[0x11; 16]), Some(AeadOffer::LEGACY));
    }

    #[test]
    fn offers_naming_nothing_known_are_refused() {
        let mut nonce = [0u8; 16];
        AeadOffer::both(Aead::Aes256Gcm).write_into(&mut nonce);
        let mut unknown_only = nonce;
        unknown_only[8] = 0x80;
        unknown_only[9] = 0x80;
        assert_eq!(AeadOffer::read_from(&unknown_only), None);
        let mut prefers_unaccepted = nonce;
        prefers_unaccepted[8] = Aead::ChaCha20Poly1305.bit();
        assert_eq!(AeadOffer::read_from(&prefers_unaccepted), None);
        let mut future_extra = nonce;
        future_extra[8] |= 0x40;
        assert_eq!(
            AeadOffer::read_from(&future_extra),
            Some(AeadOffer::both(Aead::Aes256Gcm))
        );
    }

    #[test]
    fn the_rekey_announcement_survives_the_nonce_and_needs_both_sides() {
        let new = AeadOffer::both(Aead::Aes256Gcm).with_rekey(true);
        let old = AeadOffer::both(Aead::Aes256Gcm);
        let mut nonce = [0u8; 16];
        new.write_into(&mut nonce);
        assert_eq!(AeadOffer::read_from(&nonce), Some(new));
        assert!(new.rekeys_with(new));
        assert!(!new.rekeys_with(old) && !old.rekeys_with(new));
        assert!(!new.rekeys_with(AeadOffer::LEGACY));
        assert_eq!(new.agree(old), old.agree(new));
    }

    #[test]
    fn this_machine_accepts_both() {
        let here = AeadOffer::this_machine();
        assert!(here.accepts(Aead::Aes256Gcm) && here.accepts(Aead::ChaCha20Poly1305));
        assert_eq!(here.preferred, Aead::fastest_here());
    }
}
