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
