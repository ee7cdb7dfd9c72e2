//! Log secrecy, unit level: the configuration types that hold a password, an auth hash or a
//! device secret never show it, whichever way they are printed: `{:?}`, `{:#?}`, JSON, the parsed command
//! line, a parsed provisioning file and its warnings, and every configuration error.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use p2p_config::config::resolve_server;
use p2p_config::{parse_args, parse_provisioning, InitiatorConfig, ProvisioningKind};

const PASSWORD: &str = "pw-Cfg-Secret-41x";
const AUTH_HASH: &str =
    "0123456789abcdef.5ec7e7aa5ec7e7aa5ec7e7aa5ec7e7aa5ec7e7aa5ec7e7aa5ec7e7aa5ec7e7aa";
const DEVICE_SECRET: &str = "dev-Cfg-Secret-42y";
const UID: &str = "80:00:00:00:01:00:0A:C2";
const SERVER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn assert_hidden(origin: &str, text: &str) {
    for s in [PASSWORD, AUTH_HASH, DEVICE_SECRET] {
        let secret_half = s.split_once('.').map_or(s, |(_, h)| h);
        for form in [s.to_string(), B64.encode(s), secret_half.to_string()] {
            assert!(
                !text.contains(&form),
                "{origin} shows a secret ({} chars):\n{text}",
                s.len()
            );
        }
    }
}

/// Every way a value may end up in a log.
fn all_forms<T: std::fmt::Debug + serde::Serialize>(v: &T) -> String {
    format!(
        "{v:?}\n{v:#?}\n{}",
        serde_json::to_string(v).unwrap_or_default()
    )
}

fn initiator_file(credential: &str) -> String {
    format!(
        "autoconnect 1\nuser_id me@example.com\n{credential}\nremote_address {UID}\nproxy_local_port 33000\n\
         server 127.0.0.1:5980\nserver_key {SERVER_KEY}\n"
    )
}

#[test]
fn configs_never_show_their_credentials() {
    for credential in [
        format!("auth_pass {PASSWORD}"),
        format!("auth_hash {AUTH_HASH}"),
    ] {
        let p = parse_provisioning(initiator_file(&credential).as_bytes(), "i.txt").unwrap();
        assert_hidden("a parsed initiator file", &format!("{p:?}\n{p:#?}"));
        let ProvisioningKind::Initiator(cfg) = &p.kind else {
            panic!("not an initiator file");
        };
        assert_hidden("InitiatorConfig", &all_forms(cfg));
        assert_hidden("its credential", &format!("{:?}", cfg.credential()));
    }
    let target = format!(
        "UID {UID}\npassword {DEVICE_SECRET}\nproxy_dest_ip 127.0.0.1\nproxy_dest_port 22\n\
         server 127.0.0.1:5980\nserver_key {SERVER_KEY}\n"
    );
    let p = parse_provisioning(target.as_bytes(), "t.conf").unwrap();
    let ProvisioningKind::Target(cfg) = &p.kind else {
        panic!("not a target file");
    };
    assert_hidden("TargetConfig", &all_forms(cfg));
    assert_hidden("a parsed target file", &format!("{p:?}"));
}

#[test]
fn a_json_config_with_two_credentials_or_bad_fields_never_shows_them() {
    let json = format!(
        r#"{{"device_id":"{UID}","user":"me","password":"{PASSWORD}","auth_hash":"{AUTH_HASH}","server":"127.0.0.1:5980","server_key":"{SERVER_KEY}"}}"#
    );
    let cfg: InitiatorConfig = serde_json::from_str(&json).unwrap();
    assert_hidden("two credentials", &format!("{:?}", cfg.credential()));
    assert_hidden("InitiatorConfig with both", &all_forms(&cfg));
    let bad = json.replace("\"user\":\"me\"", "\"user\":5");
    let e = serde_json::from_str::<InitiatorConfig>(&bad).unwrap_err();
    assert_hidden("a JSON type error", &e.to_string());
    let e = resolve_server(&None, &Some(PASSWORD.into()), |_| Some("h:1".into())).unwrap_err();
    assert_hidden("a bad server key", &format!("{e} {e:?}"));
}

#[test]
fn parsed_command_lines_never_show_their_credentials() {
    let user = B64.encode("me@example.com");
    let lines: [Vec<String>; 3] = [
        [
            "-s",
            "-c",
            &user,
            &B64.encode(PASSWORD),
            UID,
            "T33000",
            "3",
            "127.0.0.1",
            "12",
        ]
        .map(String::from)
        .to_vec(),
        [
            "-p",
            &user,
            AUTH_HASH,
            UID,
            "T33000",
            "2",
            "127.0.0.1",
            "0.0.0.0",
            "12",
            "0",
            "0",
        ]
        .map(String::from)
        .to_vec(),
        // Broken lines: the errors name the argument, never the credential next to it.
        [
            "-c",
            &user,
            &B64.encode(PASSWORD),
            UID,
            "Tnope",
            "3",
            "127.0.0.1",
            "12",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for args in lines {
        let shown = match parse_args(&args) {
            Ok(cmd) => format!("{cmd:?}\n{cmd:#?}"),
            Err(e) => format!("{e}\n{e:?}"),
        };
        assert_hidden("a parsed command line", &shown);
    }
}
