//! Property ("fuzz") targets of the control messages (`p2p_proto::control`): the JSON objects the
//! server and the peers exchange inside the Noise channel. `serde_json::from_slice::<ClientMsg>` (what
//! the server runs on every client frame) and `::<ServerMsg>` (what initiators and targets run) get
//! random bytes, random JSON-looking text and mutated valid messages.
//!
//! Never a panic; anything accepted serializes back to JSON that parses to the same message; and the
//! `Debug` form of any message (which ends up in logs and error texts) never shows a password, device
//! secret, auth hash, session secret or relay token.

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proptest::prelude::*;

use common::{apply, bytes, check, invariants, mutations};
use p2p_proto::control::{ClientMsg, Credential, ErrorCode, ServerMsg, SessionGrant};
use p2p_proto::{EncryptionMode, Uid};

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9@._-]{0,20}",
        ".{0,30}",
        Just(String::new()),
        Just("\u{0}\u{7f}\"\\\n".to_string())
    ]
}

/// Secrets are long and random enough that finding one in a `Debug` text is never a coincidence.
fn secret() -> impl Strategy<Value = String> {
    "[A-Za-z0-9]{24,40}"
}

fn uid() -> impl Strategy<Value = Uid> {
    any::<[u8; 8]>().prop_map(Uid)
}

fn mode() -> impl Strategy<Value = EncryptionMode> {
    prop::sample::select(EncryptionMode::ALL.to_vec())
}

fn socket_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>())
            .prop_map(|(ip, port)| SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port)),
        (any::<[u8; 16]>(), any::<u16>())
            .prop_map(|(ip, port)| SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port)),
    ]
}

fn addrs() -> impl Strategy<Value = Vec<SocketAddr>> {
    proptest::collection::vec(socket_addr(), 0..4)
}

fn grant() -> impl Strategy<Value = SessionGrant> {
    (
        any::<u64>(),
        uid(),
        mode(),
        secret(),
        secret(),
        socket_addr(),
        text(),
    )
        .prop_map(
            |(session_id, uid, mode, session_secret, relay_token, relay_addr, user)| SessionGrant {
                session_id,
                uid,
                mode,
                session_secret,
                relay_token,
                relay_addr,
                user,
                peer_key: None,
                relay_auth: false,
                key_phases: false,
            },
        )
}

/// A client message and the secrets it carries.
fn client_msg() -> impl Strategy<Value = (ClientMsg, Vec<String>)> {
    prop_oneof![
        (text(), secret(), any::<bool>()).prop_map(|(user, s, hash)| {
            let credential = if hash {
                Credential::AuthHash(s.clone())
            } else {
                Credential::Password(s.clone())
            };
            (
                ClientMsg::Login {
                    user,
                    credential,
                    initiator_key: None,
                },
                vec![s],
            )
        }),
        text().prop_map(|label| (ClientMsg::CreateAuthHash { label }, vec![])),
        (uid(), mode(), addrs()).prop_map(|(uid, mode, local_candidates)| {
            (
                ClientMsg::Connect {
                    uid,
                    mode,
                    local_candidates,
                },
                vec![],
            )
        }),
        (uid(), secret(), any::<u16>(), addrs()).prop_map(
            |(uid, secret, application_type, local_candidates)| {
                (
                    ClientMsg::Register {
                        uid,
                        secret: secret.clone(),
                        application_type,
                        local_candidates,
                        device_key: None,
                    },
                    vec![secret],
                )
            }
        ),
        any::<u64>().prop_map(|session_id| (ClientMsg::Accept { session_id }, vec![])),
        (any::<u64>(), text())
            .prop_map(|(session_id, reason)| (ClientMsg::Reject { session_id, reason }, vec![])),
        Just((ClientMsg::Ping, vec![])),
    ]
}

fn error_code() -> impl Strategy<Value = ErrorCode> {
    prop::sample::select(vec![
        ErrorCode::BadUser,
        ErrorCode::AuthFailed,
        ErrorCode::Throttled,
        ErrorCode::UnknownUid,
        ErrorCode::NotShared,
        ErrorCode::DeviceOffline,
        ErrorCode::BadSecret,
        ErrorCode::SessionFailed,
        ErrorCode::BadRequest,
        ErrorCode::LimitReached,
        ErrorCode::KeyChanged,
        ErrorCode::Internal,
    ])
}

/// A server message and the secrets it carries.
fn server_msg() -> impl Strategy<Value = (ServerMsg, Vec<String>)> {
    let with_secrets = |g: SessionGrant| {
        let s = vec![g.session_secret.clone(), g.relay_token.clone()];
        (g, s)
    };
    prop_oneof![
        text().prop_map(|user| (ServerMsg::LoginOk { user }, vec![])),
        secret().prop_map(|auth_hash| (
            ServerMsg::AuthHash {
                auth_hash: auth_hash.clone()
            },
            vec![auth_hash]
        )),
        uid().prop_map(|uid| (ServerMsg::Registered { uid }, vec![])),
        grant()
            .prop_map(with_secrets)
            .prop_map(|(g, s)| (ServerMsg::Session(g), s)),
        grant()
            .prop_map(with_secrets)
            .prop_map(|(g, s)| (ServerMsg::Incoming(g), s)),
        (any::<u64>(), addrs()).prop_map(|(session_id, candidates)| (
            ServerMsg::Punch {
                session_id,
                candidates
            },
            vec![]
        )),
        (error_code(), text())
            .prop_map(|(code, message)| (ServerMsg::Error { code, message }, vec![])),
        Just((ServerMsg::Pong, vec![])),
    ]
}

/// Random bytes, or text built from JSON's own pieces (so the parser gets deep into objects).
fn json_like() -> impl Strategy<Value = Vec<u8>> {
    let token = prop::sample::select(vec![
        "{",
        "}",
        "[",
        "]",
        ":",
        ",",
        "\"type\"",
        "\"login\"",
        "\"connect\"",
        "\"register\"",
        "\"session\"",
        "\"incoming\"",
        "\"punch\"",
        "\"error\"",
        "\"ping\"",
        "\"pong\"",
        "\"user\"",
        "\"credential\"",
        "\"password\"",
        "\"uid\"",
        "\"mode\"",
        "\"session_id\"",
        "\"candidates\"",
        "\"local_candidates\"",
        "\"80:00:00:00:01:00:0A:C2\"",
        "\"127.0.0.1:5\"",
        "\"[::1]:0\"",
        "3",
        "-1",
        "18446744073709551616",
        "1e400",
        "0.5",
        "null",
        "true",
        "\"\\ud800\"",
        "\"",
        "\\",
        " ",
    ]);
    prop_oneof![
        bytes(400),
        proptest::collection::vec(token, 0..40).prop_map(|t| t.concat().into_bytes()),
    ]
}

fn no_secret_in_debug(debug: &str, secrets: &[String]) -> Result<(), TestCaseError> {
    for s in secrets {
        prop_assert!(
            !debug.contains(s.as_str()),
            "Debug shows a secret: {}",
            debug
        );
    }
    Ok(())
}

#[test]
fn control_json_never_panics_on_random_input() {
    check("control_random", 2000, json_like(), |b| {
        invariants::control_json(&b);
        Ok(())
    });
}

#[test]
fn valid_control_messages_round_trip_and_hide_secrets() {
    check(
        "control_valid",
        1000,
        (client_msg(), server_msg()),
        |((c, cs), (s, ss))| {
            let cj = serde_json::to_vec(&c).expect("serializes");
            prop_assert_eq!(
                serde_json::from_slice::<ClientMsg>(&cj).ok(),
                Some(c.clone())
            );
            let sj = serde_json::to_vec(&s).expect("serializes");
            prop_assert_eq!(
                serde_json::from_slice::<ServerMsg>(&sj).ok(),
                Some(s.clone())
            );
            no_secret_in_debug(&format!("{c:?} {c:#?}"), &cs)?;
            no_secret_in_debug(&format!("{s:?} {s:#?}"), &ss)?;
            Ok(())
        },
    );
}

#[test]
fn control_json_never_panics_on_mutated_messages() {
    check(
        "control_mutated",
        2000,
        (client_msg(), server_msg(), mutations()),
        |((c, _), (s, _), m)| {
            for mut j in [
                serde_json::to_vec(&c).expect("serializes"),
                serde_json::to_vec(&s).expect("serializes"),
            ] {
                apply(&mut j, &m);
                invariants::control_json(&j);
            }
            Ok(())
        },
    );
}
