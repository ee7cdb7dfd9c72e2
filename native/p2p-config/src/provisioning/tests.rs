//! Whole-file parsing. The corpus of malformed files under `tests/provisioning/` is checked by
//! `native/p2p-config/tests/provisioning_corpus.rs`; these cover the rules one by one.

use std::net::{IpAddr, Ipv4Addr};

use p2p_proto::EncryptionMode;

use super::*;
use crate::config::AutoConnect;

/// The seed document's sample file, byte for byte (also in `tests/provisioning/seed-sample.txt`).
const SEED_SAMPLE: &str = "\
# setting autoconnect to 1 will autoconnect the p2p initiator to the target
# setting autoconnect to 2 will attempt to automatically reconnect in the event 
# of a network interruption
autoconnect 1

#user ID to use for the initiator connection (required)
user_id username@remote.it

#auth_pass users password to use to make the Initiator P2P connection (not recommended, use auth_hash)
auth_pass weaved1234

#local port to bind TCP proxy socket to, mandatory
proxy_local_port 33300

#proxy local IP to bind to, can be 127.0.0.1, 0.0.0.0 or any local adapter IP
proxy_bind_address 127.0.0.1

#remote_address is the (UID) address of the target to connect to.\\
remote_address 80:00:00:00:01:00:0A:C2

#Maximum buffer depth for each TCP connection (10-25) good range raise for high latency enviorments
max_depth 12
# keep this comment line here
";

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn initiator(text: &str) -> (InitiatorConfig, Vec<Warning>) {
    match parse_provisioning(text.as_bytes(), "f.txt") {
        Ok(Provisioning {
            kind: ProvisioningKind::Initiator(c),
            warnings,
        }) => (c, warnings),
        other => panic!("expected an initiator file: {other:?}"),
    }
}

fn error(text: &str) -> String {
    parse_provisioning(text.as_bytes(), "f.txt")
        .expect_err("expected an error")
        .to_string()
}

const MINIMAL: &str = "user_id bob\nauth_hash 1.abc\nproxy_local_port 33000\nremote_address 80:00:00:00:01:00:0A:C2\n";

#[test]
fn the_seed_sample_parses_byte_for_byte() {
    let on_disk = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/provisioning/seed-sample.txt"),
    )
    .expect("tests/provisioning/seed-sample.txt");
    assert_eq!(
        on_disk,
        SEED_SAMPLE.as_bytes(),
        "the sample on disk drifted from the seed"
    );
    let (config, warnings) = initiator(SEED_SAMPLE);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(config.autoconnect, AutoConnect::Once);
    assert_eq!(config.user, "username@remote.it");
    assert_eq!(config.password.as_deref(), Some("weaved1234"));
    assert_eq!(config.auth_hash, None);
    assert_eq!(config.local_port, 33300);
    assert_eq!(config.bind_address, IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert_eq!(config.device_id.to_string(), "80:00:00:00:01:00:0A:C2");
    assert_eq!(config.max_outstanding, Some(12));
    assert_eq!(config.encryption, EncryptionMode::ChaCha20Poly1305);
    assert_eq!((config.server, config.server_key), (None, None));
}

#[test]
fn crlf_and_our_extra_keys() {
    let text = format!(
        "{}autoconnect 2\r\nserver relay.example.com:5980\r\nserver_key {KEY}\r\nencryption 2\r\nname my pi\r\n",
        MINIMAL.replace('\n', "\r\n")
    );
    let (config, warnings) = initiator(&text);
    assert!(warnings.is_empty());
    assert_eq!(config.autoconnect, AutoConnect::Reconnect);
    assert_eq!(config.server.as_deref(), Some("relay.example.com:5980"));
    assert_eq!(config.server_key.as_deref(), Some(KEY));
    assert_eq!(config.encryption, EncryptionMode::Xxtea);
    assert_eq!(config.name.as_deref(), Some("my pi"));
    assert_eq!(
        config.max_outstanding, None,
        "no max_depth: the adaptive window"
    );
    assert!(!config.trust_first_use, "strict unless the file opts in");
}

#[test]
fn trust_first_use_is_0_or_1() {
    let (config, warnings) = initiator(&format!("{MINIMAL}trust_first_use 1\n"));
    assert!(warnings.is_empty());
    assert!(config.trust_first_use);
    assert_eq!(
        error(&format!("{MINIMAL}trust_first_use yes\n")),
        "f.txt:5: key 'trust_first_use': 'yes' is not 0 or 1"
    );
}

#[test]
fn a_target_file() {
    let text = "UID 80:00:00:00:01:00:0A:C2\npassword dev secret\nproxy_dest_ip 192.168.1.9\nproxy_dest_port 22\napplication_type 28\n";
    match parse_provisioning(text.as_bytes(), "t.conf").unwrap().kind {
        ProvisioningKind::Target(t) => {
            assert_eq!(t.secret, "dev secret");
            assert_eq!(t.proxy_dest_ip.to_string(), "192.168.1.9");
            assert_eq!(t.proxy_dest_port, 22);
            assert_eq!(t.application_type, 28);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn unknown_keys_warn_with_their_line() {
    let (_, warnings) = initiator(&format!("{MINIMAL}remote_adress x\nfoo=bar\n"));
    let shown: Vec<String> = warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "line 5: key 'remote_adress': unknown key, ignored (did you mean 'remote_address'?)",
            "line 6: key 'foo=...': unknown key, ignored (separate key and value with a space, not '=')",
        ]
    );
}

#[test]
fn errors_name_file_line_and_key() {
    assert_eq!(
        error(&format!("{MINIMAL}max_depth 0\n")),
        "f.txt:5: key 'max_depth': invalid packet window '0': expected 1 to 1024 (connectd's usual range is 10-25)"
    );
    assert_eq!(
        error(&format!("{MINIMAL}user_id alice\n")),
        "f.txt:5: key 'user_id': duplicate key: set on line 1 and again on line 5; keep one"
    );
    assert_eq!(
        error("auth_pass x\nproxy_local_port 1\nremote_address 80:00:00:00:01:00:0A:C2\n"),
        "f.txt: key 'user_id': missing mandatory key (the account to log in as)"
    );
}

#[test]
fn secrets_never_appear_in_errors_warnings_or_json() {
    let message = error(&format!("{MINIMAL}auth_hash 1.topsecret\n"));
    assert!(!message.contains("topsecret"), "{message}");
    let p = parse_provisioning(SEED_SAMPLE.as_bytes(), "f").unwrap();
    let json = p.to_json();
    assert!(!json.contains("weaved1234"), "{json}");
    assert!(json.contains("\"has_auth_pass\":true"), "{json}");
    assert!(!format!("{p:?}").contains("weaved1234"));
}

#[test]
fn base64_blob() {
    use base64::Engine;
    let blob = base64::engine::general_purpose::STANDARD.encode(SEED_SAMPLE);
    // Wrapped as a mail client would wrap it.
    let wrapped: String = blob
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join("\r\n");
    let p = parse_provisioning_base64(&wrapped).unwrap();
    assert_eq!(p, parse_provisioning(SEED_SAMPLE.as_bytes(), "x").unwrap());
    assert_eq!(
        parse_provisioning_base64("not base64!")
            .unwrap_err()
            .to_string(),
        "-e blob: invalid base64 in -e blob"
    );
}

#[test]
fn a_secret_line_with_a_mangled_separator_never_shows_the_secret() {
    for line in [
        "password!s3cretvalue",
        "auth_passs3cretvalue",
        "AUTH_HASH:s3cretvalue",
    ] {
        let text = format!(
            "UID 80:00:00:00:01:00:0A:C2\npassword realsecret\n{line}\nproxy_dest_ip 127.0.0.1\nproxy_dest_port 22\n"
        );
        let shown = match parse_provisioning(text.as_bytes(), "t.conf") {
            Err(e) => e.to_string(),
            Ok(p) => format!("{:?} {}", p.warnings, p.to_json()),
        };
        assert!(!shown.contains("s3cretvalue"), "{shown}");
    }
}
