//! The MAC of the authenticated relay messages (`RelayBindAuth`, `RelayReleaseAuth`): the peer proves
//! it holds its relay token without sending it, so the token, given only over the encrypted control
//! channel, never crosses the network in clear. The counter inside the signed bytes is what makes a
//! replay detectable (the relay accepts only a greater one per session and role).

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Bytes of the MAC carried (the left half of HMAC-SHA256: 128 bits, beyond reach of guessing).
pub const RELAY_MAC_LEN: usize = 16;
const LABEL: &[u8] = b"remoteitp2p relay v1";

fn hmac(token: &[u8; 16], signed: &[u8]) -> Hmac<Sha256> {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(token).expect("HMAC takes keys of any length");
    mac.update(LABEL);
    mac.update(signed);
    mac
}

/// `HMAC-SHA256(token, label || signed)`, truncated.
pub fn relay_mac(token: &[u8; 16], signed: &[u8]) -> [u8; RELAY_MAC_LEN] {
    let full = hmac(token, signed).finalize().into_bytes();
    full[..RELAY_MAC_LEN]
        .try_into()
        .expect("SHA-256 is 32 bytes")
}

/// Whether `mac` is [`relay_mac`] of `signed` under `token`, compared in constant time.
pub fn relay_mac_matches(token: &[u8; 16], signed: &[u8], mac: &[u8]) -> bool {
    mac.len() == RELAY_MAC_LEN && hmac(token, signed).verify_truncated_left(mac).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mac_depends_on_the_token_and_every_signed_byte() {
        let token = [7u8; 16];
        let signed = [1u8, 2, 3, 4];
        let mac = relay_mac(&token, &signed);
        assert!(relay_mac_matches(&token, &signed, &mac));
        assert!(!relay_mac_matches(&[8u8; 16], &signed, &mac));
        for i in 0..signed.len() {
            let mut changed = signed;
            changed[i] ^= 1;
            assert!(!relay_mac_matches(&token, &changed, &mac), "byte {i}");
        }
        assert!(!relay_mac_matches(&token, &signed, &mac[..15]));
    }
}
