//! The cap on active auth hashes per user holds when several processes create them at once (several
//! server nodes on one PostgreSQL, or admin commands beside a server on one SQLite file): many threads,
//! each with a connection of its own, try together, and exactly the cap's worth succeed. A revoked hash
//! frees a place.

use std::sync::{Arc, Barrier};

use p2p_server::accounts;
use p2p_server::store::{PgStore, Store};
use p2p_system_tests::postgres::Postgres;

const KEY: [u8; 32] = [7; 32];
const CAP: usize = 5;
const THREADS: usize = 8;
const TRIES: usize = 4;

fn race(open: impl Fn() -> Box<dyn Store> + Sync) {
    let first = open();
    accounts::add_user(first.as_ref(), "bob", "pw").unwrap();
    let bob = accounts::find_user(first.as_ref(), "bob")
        .unwrap()
        .unwrap()
        .id;
    let start = Barrier::new(THREADS);
    let created: usize = std::thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|_| {
                s.spawn(|| {
                    let store = open();
                    start.wait();
                    (0..TRIES)
                        .filter(|_| {
                            accounts::create_auth_hash_below(store.as_ref(), bob, "x", &KEY, CAP)
                                .expect("create")
                                .is_some()
                        })
                        .count()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    });
    let active = |store: &dyn Store| {
        accounts::list_auth_hashes(store, Some("bob"))
            .unwrap()
            .iter()
            .filter(|h| h.revoked_at.is_none())
            .count()
    };
    assert_eq!(created, CAP, "{} tries at once", THREADS * TRIES);
    assert_eq!(active(first.as_ref()), CAP);

    let some = accounts::list_auth_hashes(first.as_ref(), Some("bob")).unwrap()[0]
        .id
        .clone();
    accounts::revoke_auth_hash(first.as_ref(), &some).unwrap();
    let again = accounts::create_auth_hash_below(first.as_ref(), bob, "y", &KEY, CAP).unwrap();
    assert!(again.is_some(), "a revoked hash did not free its place");
    assert!(
        accounts::create_auth_hash_below(first.as_ref(), bob, "z", &KEY, CAP)
            .unwrap()
            .is_none()
    );
}

#[test]
fn concurrent_creations_stay_within_the_cap_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    p2p_server::admin::init(dir.path()).unwrap();
    let data_dir = Arc::new(dir.path().to_path_buf());
    race(|| Box::new(p2p_server::db::open(&data_dir).unwrap()));
}

#[test]
fn concurrent_creations_stay_within_the_cap_on_postgres() {
    let pg = Postgres::start();
    let url = pg.create_database("p2p");
    race(|| Box::new(PgStore::connect(&url).unwrap()));
}
