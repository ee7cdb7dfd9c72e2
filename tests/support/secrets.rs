//! The generic half of the log check: secrets the harness never sees (session secrets and relay tokens
//! that the server hands out, keys derived inside the processes) can only be recognised by their shape.
//! A token is flagged when it looks like a 32-byte key (64 hex digits, or 43 characters of base64, 44
//! with the padding, that decode to 32 bytes) or a 16-byte token (32 hex digits, or 22/24 characters of
//! base64), and the lab does not know it as a value printed by design ([`crate::Lab::public`]).

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;

/// The key-shaped tokens of `text`, with their 1-based line numbers.
pub fn key_shaped(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        // '=' separates (`key=value`); base64 padding is lost with it, and the unpadded form is checked.
        let mut at = 0;
        while at < line.len() {
            let start = line[at..]
                .find(is_token_char)
                .map_or(line.len(), |s| at + s);
            let end = line[start..]
                .find(|c: char| !is_token_char(c))
                .map_or(line.len(), |e| start + e);
            let token = &line[start..end];
            // A key fingerprint (`SHA256:` + base64 of a hash of a public key) is printed by design.
            let fingerprint = line[..start].ends_with(FINGERPRINT_PREFIX);
            if looks_like_key(token) && !fingerprint {
                out.push((n + 1, token.to_string()));
            }
            at = end;
        }
    }
    out
}

const FINGERPRINT_PREFIX: &str = "SHA256:";

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '_' | '-')
}

fn looks_like_key(t: &str) -> bool {
    let hex = t.bytes().all(|b| b.is_ascii_hexdigit());
    if hex {
        return t.len() == 64 || t.len() == 32;
    }
    // Random base64 of 16 or 32 bytes has upper and lower case letters (all but about 1 in 100,000);
    // words and snake_case identifiers of that length do not.
    let mixed =
        t.bytes().any(|b| b.is_ascii_uppercase()) && t.bytes().any(|b| b.is_ascii_lowercase());
    mixed
        && matches!(t.len(), 22 | 43)
        && [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
            .iter()
            .any(|e| e.decode(t).is_ok_and(|b| b.len() == 16 || b.len() == 32))
}

/// The forms a value may be printed in: as given and, when it is base64 or hex of some bytes, those
/// bytes in hex (both cases) and in each base64 alphabet.
pub fn forms(value: &str) -> Vec<String> {
    let mut out = vec![value.to_string()];
    let bytes = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|e| e.decode(value).ok())
        .or_else(|| decode_hex(value));
    if let Some(b) = bytes {
        let hex = crate::data::hex(&b);
        out.push(hex.to_uppercase());
        out.push(hex);
        for e in [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD] {
            out.push(e.encode(&b));
        }
    }
    out
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_hex_and_base64_keys_but_not_words() {
        let b64 = STANDARD.encode((0u8..32).collect::<Vec<_>>());
        let text = format!(
            "session secret {} token {}\nkey={b64} the_initiator_session_state_machine_closed ok",
            "ab".repeat(32),
            "cd".repeat(16)
        );
        let found: Vec<String> = key_shaped(&text).into_iter().map(|(_, t)| t).collect();
        assert!(found.contains(&"ab".repeat(32)), "{found:?}");
        assert!(found.contains(&"cd".repeat(16)), "{found:?}");
        assert!(
            found.contains(&b64.trim_end_matches('=').to_string()),
            "{found:?}"
        );
        assert!(!found.iter().any(|t| t.contains("initiator")), "{found:?}");
        let fingerprint = format!("peer key SHA256:{}", b64.trim_end_matches('='));
        assert!(key_shaped(&fingerprint).is_empty(), "{fingerprint}");
    }

    #[test]
    fn forms_cover_hex_and_every_base64_alphabet() {
        let b64 = STANDARD.encode([0xfbu8; 32]);
        let f = forms(&b64);
        assert!(f.contains(&"fb".repeat(32)));
        assert!(f.contains(&URL_SAFE_NO_PAD.encode([0xfbu8; 32])));
    }
}
