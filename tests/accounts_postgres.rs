//! The admin commands over PostgreSQL answer exactly as over SQLite: the same scenario (users, devices,
//! shares, auth hashes, and the refusals an operator sees) runs through `p2p_server::admin` on both
//! stores, and the transcripts must be equal. Creation times are left out of the transcript; everything
//! else an operator reads is in it. Then a `p2p-server run --database` logs in a user its admin
//! commands added there.

use p2p_server::accounts::{self, Access, AuthHashCheck};
use p2p_server::admin::{self, Format};
use p2p_server::store::{PgStore, Store};
use std::time::Duration;

use p2p_net::control_channel::ControlClient;
use p2p_proto::control::{ClientMsg, Credential, ServerMsg};
use p2p_system_tests::control::{runtime, server_key};
use p2p_system_tests::postgres::Postgres;
use p2p_system_tests::Lab;

const KEY: [u8; 32] = [9; 32];

fn outcome<T: std::fmt::Debug>(r: p2p_server::Result<T>) -> String {
    match r {
        Ok(v) => format!("ok {v:?}"),
        Err(e) => format!("error: {e}"),
    }
}

/// The list output without creation times, which differ between two runs.
fn listed(json: p2p_server::Result<String>) -> String {
    let mut rows: serde_json::Value = serde_json::from_str(&json.expect("list")).expect("JSON");
    for row in rows.as_array_mut().expect("array") {
        let row = row.as_object_mut().expect("object");
        row.retain(|k, _| !k.contains("created") && !k.contains("revoked") && k != "id");
    }
    rows.to_string()
}

fn scenario(store: &dyn Store) -> Vec<String> {
    let web = "80:00:00:00:01:00:0A:C2".parse().unwrap();
    let ssh = "80:00:00:00:01:00:0A:C3".parse().unwrap();
    let mut t = vec![outcome(admin::user_add(store, "zoe", "pw-zoe"))];
    t.push(outcome(admin::user_add(store, "bob", "pw-bob")));
    t.push(outcome(admin::user_add(store, "Bob", "pw-Bob")));
    t.push(outcome(admin::user_add(store, "bob", "again")));
    t.push(outcome(admin::user_add(store, "bad name", "x")));
    t.push(listed(admin::user_list(store, Format::Json)));
    t.push(outcome(admin::device_add(
        store, web, "bob", "web", 28, "s1",
    )));
    t.push(outcome(admin::device_add(
        store, ssh, "zoe", "ssh", 28, "s2",
    )));
    t.push(outcome(admin::device_add(
        store, web, "zoe", "dup", 28, "s3",
    )));
    t.push(outcome(admin::device_add(
        store, ssh, "nobody", "x", 28, "s4",
    )));
    t.push(listed(admin::device_list(store, Format::Json)));
    t.push(outcome(admin::share_add(store, web, "zoe")));
    t.push(outcome(admin::share_add(store, web, "zoe")));
    t.push(outcome(admin::share_add(store, web, "bob")));
    t.push(listed(admin::share_list(store, None, Format::Json)));
    let bob = accounts::find_user(store, "bob").unwrap().unwrap().id;
    let zoe = accounts::find_user(store, "zoe").unwrap().unwrap().id;
    let access = |uid, user| accounts::access(store, uid, user).unwrap();
    t.push(format!(
        "{:?}",
        [access(web, bob), access(web, zoe), access(ssh, bob)]
    ));
    let secret = accounts::user_secret(store, "bob").unwrap().unwrap();
    t.push(format!(
        "{}",
        accounts::verify_secret("pw-bob", &secret.password_hash)
    ));
    let hash = accounts::create_auth_hash(store, bob, "laptop", &KEY).unwrap();
    let check = |user| accounts::check_auth_hash(store, user, &hash, &KEY).unwrap();
    t.push(format!("{:?}", [check(bob), check(zoe)]));
    // The id is random: named by its place instead.
    let id = hash.split('.').next().unwrap().to_string();
    let revoke = || outcome(admin::auth_hash_revoke(store, &hash)).replace(&id, "<id>");
    t.push(revoke());
    t.push(revoke());
    t.push(format!("{:?}", check(bob)));
    t.push(listed(admin::auth_hash_list(
        store,
        Some("bob"),
        Format::Json,
    )));
    t.push(outcome(admin::user_remove(store, "bob")));
    t.push(outcome(admin::share_remove(store, web, "zoe")));
    t.push(outcome(admin::share_remove(store, web, "zoe")));
    t.push(outcome(admin::device_remove(store, web)));
    t.push(outcome(admin::user_remove(store, "bob")));
    t.push(listed(admin::user_list(store, Format::Json)));
    t
}

/// Schema version 2: device keys (recorded at `device add --key` or the first registration, refused
/// when changed unless `device rotate-key` ran) and the keys initiators logged in with.
fn key_scenario(store: &dyn Store) -> Vec<String> {
    use p2p_proto::crypto::StaticKey;
    let key = |b: u8| StaticKey::from_secret_bytes([b; 32]).public();
    let web = "80:00:00:00:01:00:0A:C2".parse().unwrap();
    let ssh = "80:00:00:00:01:00:0A:C3".parse().unwrap();
    // `device show` without its creation time.
    let show = |uid| {
        outcome(admin::device_show(store, uid).map(|s| {
            s.lines()
                .filter(|l| !l.starts_with("created"))
                .collect::<Vec<_>>()
                .join("\n")
        }))
    };
    let register = |uid, k: Option<u8>| {
        outcome(accounts::register_device_key(
            store,
            uid,
            k.map(key).as_ref(),
        ))
    };
    let mut t = vec![outcome(admin::user_add(store, "ann", "pw-ann"))];
    t.push(outcome(admin::device_add_with_key(
        store,
        web,
        "ann",
        "web",
        28,
        "s1",
        Some(&key(1)),
    )));
    t.push(outcome(admin::device_add(
        store, ssh, "ann", "ssh", 28, "s2",
    )));
    t.push(show(web));
    t.push(show(ssh));
    t.push(register(web, Some(1)));
    t.push(register(web, Some(2)));
    t.push(register(web, None));
    t.push(register(ssh, Some(3)));
    t.push(show(ssh));
    t.push(outcome(admin::device_rotate_key(store, web)));
    t.push(show(web));
    t.push(register(web, Some(2)));
    t.push(register(web, Some(1)));
    t.push(show(web));
    t.push(outcome(admin::device_rotate_key(
        store,
        "80:00:00:00:01:00:0A:C4".parse().unwrap(),
    )));
    let ann = accounts::find_user(store, "ann").unwrap().unwrap().id;
    for k in [5, 6, 5] {
        accounts::record_initiator_key(store, ann, &key(k)).unwrap();
    }
    let mut keys: serde_json::Value =
        serde_json::from_str(&admin::user_keys(store, "ann", Format::Json).unwrap()).unwrap();
    for row in keys.as_array_mut().unwrap() {
        row.as_object_mut()
            .unwrap()
            .retain(|k, _| !k.ends_with("seen"));
    }
    t.push(keys.to_string());
    t.push(outcome(admin::user_keys(store, "nobody", Format::Json)));
    t
}

#[test]
fn device_and_initiator_keys_are_kept_alike_over_postgres_and_sqlite() {
    let sqlite_dir = tempfile::tempdir().unwrap();
    admin::init(sqlite_dir.path()).expect("init SQLite");
    let sqlite = p2p_server::db::open(sqlite_dir.path()).unwrap();
    let expected = key_scenario(&sqlite);
    let pg = Postgres::start();
    let store = PgStore::connect(&pg.create_database("p2p")).expect("connect");
    let got = key_scenario(&store);
    assert_eq!(got, expected, "PostgreSQL (left) and SQLite (right) differ");
    // What the scenario shows, whatever the store.
    use p2p_proto::crypto::StaticKey;
    let fp = |b: u8| {
        StaticKey::from_secret_bytes([b; 32])
            .public()
            .fingerprint()
            .to_string()
    };
    assert!(
        got[1].contains(&format!("device_key {}", fp(1))),
        "{}",
        got[1]
    );
    assert!(got[4].contains("device_key none"), "{}", got[4]);
    assert_eq!(got[5], "ok Same");
    assert!(got[6].starts_with("ok Changed"), "{}", got[6]);
    assert_eq!(got[7], "ok None");
    assert_eq!(got[8], "ok Recorded");
    assert!(got[9].contains(&fp(3)), "{}", got[9]);
    assert!(got[11].contains("key_rotation allowed"), "{}", got[11]);
    assert!(got[12].starts_with("ok Rotated"), "{}", got[12]);
    assert!(got[13].starts_with("ok Changed"), "{}", got[13]);
    assert!(
        got[14].contains(&fp(2)) && !got[14].contains("rotation"),
        "{}",
        got[14]
    );
    assert!(got[15].contains("no device with UID"), "{}", got[15]);
    assert_eq!(got[16].matches("fingerprint").count(), 2, "{}", got[16]);
    assert!(got[17].contains("unknown user"), "{}", got[17]);
}

#[test]
fn a_version_1_postgres_database_is_upgraded_keeping_its_rows() {
    let pg = Postgres::start();
    let url = pg.create_database("p2p");
    // What a version 1 p2p-server created, with one device.
    runtime().block_on(async {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
            .batch_execute(
                "CREATE TABLE users (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
                     name TEXT NOT NULL UNIQUE, password_hash TEXT NOT NULL, created_at BIGINT NOT NULL);
                 CREATE TABLE devices (uid TEXT PRIMARY KEY, owner_id BIGINT NOT NULL REFERENCES users(id),
                     name TEXT NOT NULL DEFAULT '', application_type INTEGER NOT NULL DEFAULT 1,
                     secret_hash TEXT NOT NULL, created_at BIGINT NOT NULL);
                 CREATE TABLE schema_version (version INTEGER NOT NULL);
                 INSERT INTO schema_version VALUES (1);
                 INSERT INTO users (name, password_hash, created_at) VALUES ('ann', 'h', 1);
                 INSERT INTO devices (uid, owner_id, secret_hash, created_at)
                     VALUES ('80:00:00:00:01:00:0A:C2', 1, 'h', 1);",
            )
            .await
            .unwrap();
    });
    let store = PgStore::connect(&url).expect("upgrade to version 2");
    let uid = "80:00:00:00:01:00:0A:C2".parse().unwrap();
    let shown = admin::device_show(&store, uid).unwrap();
    assert!(shown.contains("device_key none"), "{shown}");
    drop(store);
    // A second start finds version 2 and changes nothing.
    let store = PgStore::connect(&url).expect("reopen");
    assert_eq!(admin::device_show(&store, uid).unwrap(), shown);
}

#[test]
fn admin_commands_answer_the_same_over_postgres_as_over_sqlite() {
    let sqlite_dir = tempfile::tempdir().unwrap();
    admin::init(sqlite_dir.path()).expect("init SQLite");
    let sqlite = p2p_server::db::open(sqlite_dir.path()).unwrap();
    let expected = scenario(&sqlite);

    let pg = Postgres::start();
    let url = pg.create_database("p2p");
    let store = PgStore::connect(&url).expect("connect and create the schema");
    let got = scenario(&store);
    for (i, (e, g)) in expected.iter().zip(&got).enumerate() {
        assert_eq!(
            g, e,
            "step {i} differs between SQLite (right) and PostgreSQL (left)"
        );
    }
    assert_eq!(got.len(), expected.len());

    // The scenario's assertions that do not depend on comparing: the refusals are there.
    assert!(got[3].contains("already exists"), "{}", got[3]);
    assert_eq!(
        got[15],
        format!("{:?}", [Access::Owner, Access::Shared, Access::NotShared])
    );
    assert_eq!(
        got[17],
        format!("{:?}", [AuthHashCheck::Valid, AuthHashCheck::WrongUser])
    );

    // A second node connecting to the same database finds the schema and the data.
    drop(store);
    let again = PgStore::connect(&pg.url("p2p")).expect("reconnect");
    assert_eq!(
        listed(admin::user_list(&again, Format::Json)),
        listed(admin::user_list(&sqlite, Format::Json))
    );
}

async fn login(lab: &Lab, user: &str, password: &str) -> Result<ServerMsg, String> {
    let key = server_key(lab);
    let mut c = ControlClient::connect(&lab.server.address(), &key, Duration::from_secs(10))
        .await
        .expect("connect");
    c.request(&ClientMsg::Login {
        user: user.into(),
        credential: Credential::Password(password.into()),
        initiator_key: None,
    })
    .await
    .map_err(|e| e.to_string())
}

#[test]
fn a_server_over_postgres_logs_in_the_users_added_there() {
    let pg = Postgres::start();
    let url = pg.create_database("p2p");
    let lab = Lab::with_server_args("postgres_login", &["--database", &url]);
    let bob = lab.account();
    let rt = runtime();
    let ok = rt.block_on(login(&lab, &bob.user, &bob.password));
    assert!(matches!(ok, Ok(ServerMsg::LoginOk { .. })), "{ok:?}");
    let refused = rt.block_on(login(&lab, &bob.user, "wrong"));
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.contains("wrong password")),
        "{refused:?}"
    );

    // The user lives in PostgreSQL: the data directory holds the key and no SQLite database.
    assert!(!p2p_server::db::db_path(&lab.server.data_dir).exists());
    let pg_store = PgStore::connect(&url).unwrap();
    let names: Vec<String> = accounts::list_users(&pg_store)
        .unwrap()
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(names, [bob.user.as_str()]);
}
