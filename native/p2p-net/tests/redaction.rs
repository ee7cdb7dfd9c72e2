//! Log secrecy, unit level: a brokered session's secret and relay token never show when the
//! grant that carries them is printed (`{:?}`, `{:#?}`, as the message it arrived in, or in the error
//! for a malformed one). The system tests cannot know these values; their log check looks for anything
//! shaped like them, and this checks the values themselves.

use p2p_net::grant::ParsedGrant;
use p2p_proto::control::{ServerMsg, SessionGrant};
use p2p_proto::EncryptionMode;

const SECRET: &str = "5ec7e7005ec7e7015ec7e7025ec7e7035ec7e7045ec7e7055ec7e7065ec7e707";
const TOKEN: &str = "70cc0e0070cc0e0170cc0e0270cc0e03";

fn grant(secret: &str, token: &str) -> SessionGrant {
    SessionGrant {
        session_id: 0x1234,
        uid: "80:00:00:00:01:00:0A:C2".parse().unwrap(),
        mode: EncryptionMode::ChaCha20Poly1305,
        session_secret: secret.into(),
        relay_token: token.into(),
        relay_addr: "0.0.0.0:5959".parse().unwrap(),
        user: "bob".into(),
        peer_key: None,
        relay_auth: false,
        key_phases: false,
    }
}

/// The secret and token in hex, and the first bytes as `{:?}` of a byte array would print them.
fn assert_hidden(origin: &str, text: &str) {
    for v in [SECRET, TOKEN] {
        assert!(!text.contains(v), "{origin} shows a secret value:\n{text}");
        assert!(
            !text.contains(&v[..16]),
            "{origin} shows part of one:\n{text}"
        );
    }
    for bytes in ["94, 199, 231, 0", "112, 204, 14, 0"] {
        assert!(
            !text.contains(bytes),
            "{origin} shows one as bytes:\n{text}"
        );
    }
}

#[test]
fn grants_never_show_the_session_secret_or_relay_token() {
    let g = grant(SECRET, TOKEN);
    let parsed = ParsedGrant::parse(&g, "192.0.2.1:5980".parse().unwrap()).unwrap();
    assert_hidden("ParsedGrant", &format!("{parsed:?}\n{parsed:#?}"));
    assert_hidden("SessionGrant", &format!("{g:?}\n{g:#?}"));
    let msg = ServerMsg::Session(g);
    assert_hidden("ServerMsg::Session", &format!("{msg:?}\n{msg:#?}"));
}

#[test]
fn malformed_grants_are_refused_without_echoing_their_values() {
    // One character off, too short, too long: the error names the field only.
    let cases = [
        (format!("{}g", &SECRET[..63]), TOKEN.to_string()),
        (SECRET[..62].to_string(), TOKEN.to_string()),
        (SECRET.to_string(), format!("{TOKEN}00")),
        (SECRET.to_string(), format!("{}x", &TOKEN[..31])),
    ];
    for (secret, token) in cases {
        let e = ParsedGrant::parse(&grant(&secret, &token), "192.0.2.1:5980".parse().unwrap())
            .unwrap_err();
        assert_hidden("a malformed grant's error", &format!("{e} {e:?}"));
    }
}
