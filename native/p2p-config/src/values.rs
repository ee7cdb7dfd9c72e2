//! Parsers for the values both connectd front ends take (a provisioning file's `proxy_local_port` and
//! `-c`'s `T33000` are the same port): one rule per kind of value, so the file and the command line can
//! never disagree on what is valid.
//!
//! Each returns a message without the key or argument name; the caller adds where the value came from.
//! None of these is ever given a secret, so the messages may quote the bad value.

use std::net::IpAddr;
use std::ops::RangeInclusive;

use p2p_proto::crypto::Fingerprint;
use p2p_proto::{EncryptionMode, Uid};

use crate::config::decode_server_key;

/// connectd's MAXOUTSTANDING / `max_depth`: packets a tunnel may always keep unacknowledged (a floor
/// under its congestion window). Beyond 1024 a forced window would exceed what the replay window (1024
/// packet numbers) can tell apart.
pub const WINDOW_RANGE: RangeInclusive<u32> = 1..=1024;

/// A value as it may appear inside an error message: at most 64 characters, control characters escaped,
/// so a garbage file cannot flood or rewrite the terminal that shows the error.
pub fn shown(text: &str) -> String {
    const MAX: usize = 64;
    let head: String = text.chars().take(MAX).collect();
    let mut out = escape_controls(&head);
    if text.chars().nth(MAX).is_some() {
        out.push_str("...");
    }
    out
}

/// Escapes control characters (and nothing else, so non-ASCII names stay readable).
pub fn escape_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A TCP port to listen on or connect to: 1-65535 (0 would mean "any port", which neither connectd's
/// file nor its command line allows).
pub fn parse_port(text: &str) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(port) if port != 0 => Ok(port),
        _ => Err(format!(
            "invalid port '{}': expected a number from 1 to 65535",
            shown(text)
        )),
    }
}

/// A local port to listen on: like [`parse_port`], and 0 asks the OS for a free one (reported once bound).
pub fn parse_listen_port(text: &str) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(port) => Ok(port),
        _ => Err(format!(
            "invalid port '{}': expected a number from 0 (any free port) to 65535",
            shown(text)
        )),
    }
}

pub fn parse_ip(text: &str) -> Result<IpAddr, String> {
    text.parse().map_err(|_| {
        format!(
            "invalid IP address '{}': expected an address like 127.0.0.1, 0.0.0.0 or ::1",
            shown(text)
        )
    })
}

pub fn parse_uid(text: &str) -> Result<Uid, String> {
    text.parse::<Uid>()
        .map_err(|e| escape_controls(&e.to_string()))
}

/// A device key as its owner copied it from the device: the `SHA256:` fingerprint or the base64
/// public key. Gives the fingerprint (what a pin compares).
pub fn parse_device_key(text: &str) -> Result<String, String> {
    Fingerprint::of_key_or_fingerprint(text)
        .map(|f| f.to_string())
        .ok_or_else(|| {
            format!(
                "invalid device key '{}': expected its fingerprint (SHA256: and 43 base64 characters, as 'connectd --fingerprint' prints it on the device) or the base64 public key",
                shown(text.trim())
            )
        })
}

pub fn parse_encryption(text: &str) -> Result<EncryptionMode, String> {
    text.parse::<EncryptionMode>()
        .map_err(|e| escape_controls(&e.to_string()))
}

/// A switch written as connectd writes its flags: `1` on, `0` off.
pub fn parse_flag(text: &str) -> Result<bool, String> {
    match text {
        "1" => Ok(true),
        "0" => Ok(false),
        other => Err(format!("'{}' is not 0 or 1", shown(other))),
    }
}

/// A fixed per-stream window (see [`WINDOW_RANGE`]).
pub fn parse_window(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(n) if WINDOW_RANGE.contains(&n) => Ok(n),
        _ => Err(format!(
            "invalid packet window '{}': expected {} to {} (connectd's usual range is 10-25)",
            shown(text),
            WINDOW_RANGE.start(),
            WINDOW_RANGE.end()
        )),
    }
}

/// A whole number of minutes or seconds, 0 meaning "no limit".
pub fn parse_limit(text: &str) -> Result<u32, String> {
    text.parse::<u32>().map_err(|_| {
        format!(
            "invalid limit '{}': expected a whole number (0 = no limit)",
            shown(text)
        )
    })
}

/// `host:port` of the server's control listener, or several separated by commas (the nodes of one
/// service, tried in turn); an IPv6 literal goes in brackets (`[::1]:5980`). Hosts are only checked for
/// shape: whether they resolve is the network layer's business.
pub fn check_server_address(text: &str) -> Result<(), String> {
    server_nodes(text).try_for_each(check_server_node)
}

/// The nodes of a server list (`a:5980, b:5980`), trimmed, in the order given.
pub fn server_nodes(text: &str) -> impl Iterator<Item = &str> {
    text.split(',').map(str::trim)
}

/// One node's `host:port` (or `[v6]:port`).
pub fn check_server_node(text: &str) -> Result<(), String> {
    let bad = |why: &str| {
        format!(
            "invalid server address '{}': {why} (expected host:port, like relay.example.com:5980 or [::1]:5980)",
            shown(text)
        )
    };
    let (host, port) = text.rsplit_once(':').ok_or_else(|| bad("no port"))?;
    parse_port(port).map_err(|_| bad("bad port"))?;
    let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => {
            !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_')
        }
    };
    if host_ok {
        Ok(())
    } else {
        Err(bad("bad host"))
    }
}

/// The server's public key; a public value, so it may be quoted back.
pub fn check_server_key(text: &str) -> Result<(), String> {
    decode_server_key(text)
        .map(|_| ())
        .map_err(|e| format!("{e} (got '{}')", shown(text)))
}

/// Standard-alphabet base64 as connectd's `-c` arguments and `-e` blob use it. Padding is optional:
/// PowerShell's `[Convert]::ToBase64String` pads, other tools do not, and both mean the same bytes.
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    use base64::Engine;
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    LENIENT.decode(text).ok()
}

/// connectd's application types by name. The number is what the target registers; names are a convenience.
pub const APPLICATION_TYPES: [(&str, u16); 7] = [
    ("tcp", 1),
    ("vnc", 4),
    ("rdp", 5),
    ("web", 7),
    ("ssh", 28),
    ("https", 33),
    ("smb", 34),
];

pub fn parse_application_type(text: &str) -> Result<u16, String> {
    if let Ok(n) = text.parse::<u16>() {
        if n != 0 {
            return Ok(n);
        }
    }
    APPLICATION_TYPES
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(text))
        .map(|&(_, n)| n)
        .ok_or_else(|| {
            let names: Vec<&str> = APPLICATION_TYPES.iter().map(|(name, _)| *name).collect();
            format!(
                "invalid application type '{}': expected a number from 1 to 65535 or one of {}",
                shown(text),
                names.join(", ")
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_1_to_65535() {
        assert_eq!(parse_port("1"), Ok(1));
        assert_eq!(parse_port("65535"), Ok(65535));
        for bad in ["0", "65536", "70000", "abc", "", "-1", "33 000"] {
            let err = parse_port(bad).unwrap_err();
            assert!(err.contains("1 to 65535"), "{err}");
        }
    }

    #[test]
    fn windows_are_1_to_1024() {
        assert_eq!(parse_window("12"), Ok(12));
        assert_eq!(parse_window("1024"), Ok(1024));
        assert!(parse_window("0").is_err());
        assert!(parse_window("1025").is_err());
    }

    #[test]
    fn server_addresses() {
        for good in [
            "relay.example.com:5980",
            "127.0.0.1:5980",
            "[::1]:5980",
            "a_b-c:1",
            "a:5980,b:5980",
            "a:5980, [::1]:5980",
        ] {
            assert_eq!(check_server_address(good), Ok(()), "{good}");
        }
        for bad in [
            "relay.example.com",
            ":5980",
            "host:0",
            "host:x",
            "::1:5980",
            "a b:1",
            "[zz]:1",
            "a:5980,",
            "a:5980,b",
        ] {
            assert!(check_server_address(bad).is_err(), "{bad}");
        }
        // The message names the entry that is wrong.
        assert!(check_server_address("a:1,b").unwrap_err().contains("'b'"));
    }

    #[test]
    fn application_types_by_number_or_name() {
        assert_eq!(parse_application_type("28"), Ok(28));
        assert_eq!(parse_application_type("SSH"), Ok(28));
        assert_eq!(parse_application_type("smb"), Ok(34));
        let err = parse_application_type("telnet").unwrap_err();
        assert!(err.contains("'telnet'") && err.contains("ssh"), "{err}");
        assert!(parse_application_type("0").is_err());
    }

    #[test]
    fn base64_with_or_without_padding() {
        assert_eq!(
            decode_base64("c3VwM3JzZWtyZXQh").as_deref(),
            Some(&b"sup3rsekret!"[..])
        );
        assert_eq!(decode_base64("YWI=").as_deref(), Some(&b"ab"[..]));
        assert_eq!(decode_base64("YWI").as_deref(), Some(&b"ab"[..]));
        assert_eq!(
            decode_base64("YW-_"),
            None,
            "URL-safe alphabet is not connectd's"
        );
        assert_eq!(decode_base64("not base64!"), None);
    }

    #[test]
    fn shown_escapes_and_truncates() {
        assert_eq!(shown("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        let long = "x".repeat(100);
        assert_eq!(shown(&long), format!("{}...", "x".repeat(64)));
    }
}
