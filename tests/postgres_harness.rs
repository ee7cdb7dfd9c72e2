//! The throwaway PostgreSQL cluster the multi-node tests stand on: it starts, a database can be created
//! in it, a client reaches it over the private socket by connection string and by URL, and dropping it
//! stops the server.

use p2p_system_tests::postgres::Postgres;

async fn select_one(config: &str) -> i32 {
    let (client, connection) = tokio_postgres::connect(config, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to {config}: {e}"));
    let driver = tokio::spawn(connection);
    let n: i32 = client
        .query_one("SELECT 1", &[])
        .await
        .expect("SELECT 1")
        .get(0);
    drop(client);
    driver
        .await
        .expect("join")
        .expect("connection closes cleanly");
    n
}

#[test]
fn a_throwaway_cluster_answers_and_stops_on_drop() {
    let pg = Postgres::start();
    let config = pg.create_database("p2p");
    let url = pg.url("p2p");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert_eq!(rt.block_on(select_one(&config)), 1);
    assert_eq!(rt.block_on(select_one(&url)), 1);

    drop(pg);
    let refused = rt.block_on(tokio_postgres::connect(&config, tokio_postgres::NoTls));
    assert!(refused.is_err(), "the cluster still answers after drop");
}
