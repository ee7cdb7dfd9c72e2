//! `p2p-server migrate`: a server's SQLite database, with every table filled through the admin commands
//! and a real `connectd --auth-hash`, is copied into PostgreSQL; the same server then runs over
//! PostgreSQL and its users, devices, shares and auth hashes work as before, the admin listings are the
//! same, a second copy into the now filled database is refused, and a bad URL is refused without
//! printing its password.

use std::process::Command;
use std::time::Duration;

use p2p_net::control_channel::ControlClient;
use p2p_proto::control::{ClientMsg, Credential, ServerMsg};
use p2p_system_tests::control::{runtime, server_key};
use p2p_system_tests::postgres::Postgres;
use p2p_system_tests::proc::run;
use p2p_system_tests::services::HttpServer;
use p2p_system_tests::{bins, Lab};

const LISTINGS: [&[&str]; 4] = [
    &["user", "list", "--json"],
    &["device", "list", "--json"],
    &["share", "list", "--json"],
    &["auth-hash", "list", "--json"],
];

fn listings(lab: &Lab) -> Vec<String> {
    LISTINGS
        .iter()
        .map(|args| lab.server.admin_ok(args, None))
        .collect()
}

fn migrate(lab: &Lab, database: &str) -> (i32, String) {
    let mut cmd = Command::new(bins::server());
    cmd.arg("migrate")
        .arg("--from")
        .arg(&lab.server.data_dir)
        .arg("--database")
        .arg(database);
    run(
        "p2p-server-migrate",
        cmd,
        &lab.logs,
        None,
        Duration::from_secs(60),
    )
}

async fn login(lab: &Lab, user: &str, credential: Credential) -> Result<ServerMsg, String> {
    let mut c = ControlClient::connect(
        &lab.server.address(),
        &server_key(lab),
        Duration::from_secs(10),
    )
    .await
    .map_err(|e| e.to_string())?;
    c.request(&ClientMsg::Login {
        user: user.into(),
        credential,
        initiator_key: None,
    })
    .await
    .map_err(|e| e.to_string())
}

#[test]
fn a_sqlite_server_moves_to_postgres_with_its_accounts_intact() {
    let mut lab = Lab::new("migrate");
    let owner = lab.account();
    let friend = lab.account();
    let device = lab.device(&owner);
    lab.share(&device, &friend);
    let kept = lab.auth_hash(&owner).expect("auth hash for the owner");
    let revoked = lab.auth_hash(&friend).expect("auth hash for the friend");
    let revoked_id = revoked.split('.').next().unwrap();
    lab.server
        .admin_ok(&["auth-hash", "revoke", revoked_id], None);
    let before = listings(&lab);

    let pg = Postgres::start();
    let url = pg.create_database("p2p");
    let (code, out) = migrate(&lab, &url);
    assert_eq!(code, 0, "migrate failed:\n{out}");
    assert!(
        out.contains("users 2, devices 1, shares 1, auth_hashes 2"),
        "{out}"
    );

    lab.server.restart_over(&url);
    assert_eq!(
        listings(&lab),
        before,
        "the admin listings differ after the move"
    );
    let rt = runtime();
    for (user, credential) in [
        (&owner.user, Credential::Password(owner.password.clone())),
        (&owner.user, Credential::AuthHash(kept.clone())),
        (&friend.user, Credential::Password(friend.password.clone())),
    ] {
        let answer = rt.block_on(login(&lab, user, credential));
        assert!(
            matches!(answer, Ok(ServerMsg::LoginOk { .. })),
            "{user}: {answer:?}"
        );
    }
    let refused = rt.block_on(login(&lab, &friend.user, Credential::AuthHash(revoked)));
    assert!(
        refused.is_err(),
        "a revoked auth hash logged in: {refused:?}"
    );

    // The device logs in with its secret, and the user it is shared with reaches it through the node.
    let page = HttpServer::start(b"served after the move".to_vec());
    let _target = lab.target(&device, page.port(), &[]);
    let initiator = lab.initiator(&lab.spec(&friend, &device, 2), &[]);
    lab.curl_expect(initiator.port(), &page.body);

    let (code, out) = migrate(&lab, &url);
    assert_eq!(code, 1, "a second migrate was not refused:\n{out}");
    assert!(out.contains("is not empty"), "{out}");
    assert_eq!(listings(&lab), before, "the refused copy changed the data");

    let password = "not-for-logs-3141";
    lab.secret(password);
    let (code, out) = migrate(
        &lab,
        &format!("postgres://admin:{password}@127.0.0.1:1/p2p"),
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("cannot connect to PostgreSQL"), "{out}");
    assert!(!out.contains(password), "the password was printed: {out}");
    lab.check_logs();
}
