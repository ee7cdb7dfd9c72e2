//! Secrets stay out of the output (unit level): everything the admin commands print and every error
//! they return, given known passwords, device secrets, an auth hash and the server's private key, shows
//! none of them in any form (plain, base64, hex), nor a stored Argon2 hash. The system tests check the
//! processes' logs; this covers the code paths those runs do not reach (errors of every admin command).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use p2p_proto::Uid;
use p2p_server::admin::{self, Format};
use p2p_server::{accounts, db, keys};

const PASSWORD: &str = "pw-Unit-Secret-7a1";
const DEVICE_SECRET: &str = "dev-Unit-Secret-7b2";
const USER: &str = "alice@example.com";

/// Fails naming the text's origin (never the secret) when `text` holds any form of a secret.
fn assert_hidden(origin: &str, text: &str, secrets: &[String]) {
    for s in secrets {
        let forms = [s.clone(), B64.encode(s), hex::encode(s)];
        assert!(
            !forms.iter().any(|f| text.contains(f.as_str())),
            "{origin} shows a secret ({} chars)",
            s.len()
        );
    }
    assert!(
        !text.contains("$argon2"),
        "{origin} shows a stored password hash"
    );
}

fn uid(s: &str) -> Uid {
    s.parse().expect("uid")
}

#[test]
fn admin_output_and_errors_never_show_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut shown: Vec<(String, String)> = Vec::new();
    let mut note = |origin: &str, r: Result<String, p2p_server::Error>| {
        let text = match r {
            Ok(t) => t,
            Err(e) => format!("{e} / {e:?}"),
        };
        shown.push((origin.to_string(), text));
    };
    note("init", admin::init(&data));
    note("init again", admin::init(&data));
    note("key", admin::key(&data));
    let private = keys::load_private(&data).unwrap();
    let private_text = std::fs::read_to_string(keys::key_path(&data)).unwrap();
    let conn = db::open(&data).unwrap();

    let long = "L0ngSecret".repeat(200);
    let (dev1, dev2) = (
        uid("80:00:00:00:01:00:00:01"),
        uid("80:00:00:00:01:00:00:02"),
    );
    note("user add", admin::user_add(&conn, USER, PASSWORD));
    note("user add again", admin::user_add(&conn, USER, PASSWORD));
    note(
        "user add bad name",
        admin::user_add(&conn, "bad name!", PASSWORD),
    );
    note(
        "user add long",
        admin::user_add(&conn, "bob@example.com", &long),
    );
    note(
        "user passwd unknown",
        admin::user_passwd(&conn, "nobody", PASSWORD),
    );
    note("user passwd", admin::user_passwd(&conn, USER, PASSWORD));
    note(
        "device add",
        admin::device_add(&conn, dev1, USER, "pi", 28, DEVICE_SECRET),
    );
    note(
        "device add again",
        admin::device_add(&conn, dev1, USER, "pi", 28, DEVICE_SECRET),
    );
    note(
        "device add unknown owner",
        admin::device_add(&conn, dev2, "nobody", "", 1, DEVICE_SECRET),
    );
    note(
        "device add long",
        admin::device_add(&conn, dev2, USER, "", 1, &long),
    );
    note("share add own", admin::share_add(&conn, dev1, USER));

    let user = accounts::find_user(&conn, USER).unwrap().unwrap();
    let public = keys::load_public(&data).unwrap();
    let hash = accounts::create_auth_hash(&conn, user.id, "laptop", &public).unwrap();
    let (id, secret_half) = hash.split_once('.').unwrap();
    let wrong = format!("{id}.{}", "0".repeat(secret_half.len()));
    let checks = [
        accounts::check_auth_hash(&conn, user.id, &hash, &public),
        accounts::check_auth_hash(&conn, user.id, &wrong, &public),
        accounts::check_auth_hash(&conn, user.id, "garbage", &public),
    ];
    shown.push(("auth hash checks".into(), format!("{checks:?}")));
    for format in [Format::Text, Format::Json] {
        for (origin, r) in [
            ("user list", admin::user_list(&conn, format)),
            ("device list", admin::device_list(&conn, format)),
            ("share list", admin::share_list(&conn, None, format)),
            ("auth-hash list", admin::auth_hash_list(&conn, None, format)),
        ] {
            shown.push((format!("{origin} ({format:?})"), r.unwrap()));
        }
    }
    shown.push((
        "auth-hash revoke".into(),
        admin::auth_hash_revoke(&conn, id).unwrap(),
    ));
    shown.push((
        "users (Debug)".into(),
        format!("{:?}", accounts::list_users(&conn)),
    ));
    shown.push((
        "devices (Debug)".into(),
        format!("{:?}", accounts::list_devices(&conn)),
    ));
    shown.push((
        "auth hashes (Debug)".into(),
        format!("{:?}", accounts::list_auth_hashes(&conn, None)),
    ));

    let secrets = vec![
        PASSWORD.to_string(),
        DEVICE_SECRET.to_string(),
        long,
        hash.to_string(),
        secret_half.to_string(),
        private_text.trim().to_string(),
    ];
    let private_hex = hex::encode(*private);
    for (origin, text) in &shown {
        assert_hidden(origin, text, &secrets);
        assert!(
            !text.contains(&private_hex),
            "{origin} shows the private key"
        );
    }
    // The checks above must have seen the auth hash's id: a list that printed nothing proves nothing.
    assert!(shown
        .iter()
        .any(|(o, t)| o.starts_with("auth-hash list") && t.contains(id)));
}
