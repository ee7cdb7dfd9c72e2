//! Several `p2p-server` nodes of one service on one throwaway PostgreSQL database: node 0 is the lab's
//! server, the others share its key (a copy of its data directory) and its `--database`. For the
//! multi-node and failover tests, and for whatever else needs N nodes (a benchmark row).

use std::time::{Duration, Instant};

use crate::postgres::Postgres;
use crate::proc::Proc;
use crate::server::Server;
use crate::Lab;

pub struct Nodes {
    /// Nodes 1.. (stopped first, so node 0's data directory outlives their copies of it).
    pub others: Vec<Server>,
    /// Its server is node 0.
    pub lab: Lab,
    /// The database every node uses (its URL in `url`).
    pub pg: Postgres,
    pub url: String,
}

impl Nodes {
    /// Starts PostgreSQL and `count` nodes on one database, each with `run_args` besides `--database`.
    pub fn start(name: &str, count: usize, run_args: &[&str]) -> Nodes {
        assert!(count >= 1, "a service has at least one node");
        let pg = Postgres::start();
        let url = pg.create_database("p2p");
        let mut args = vec!["--database", url.as_str()];
        args.extend_from_slice(run_args);
        let lab = Lab::with_server_args(name, &args);
        let others = (1..count)
            .map(|i| lab.server.copy_as_node(&format!("node-{i}")))
            .collect();
        Nodes {
            others,
            lab,
            pg,
            url,
        }
    }

    pub fn node(&self, i: usize) -> &Server {
        match i {
            0 => &self.lab.server,
            _ => &self.others[i - 1],
        }
    }

    pub fn node_mut(&mut self, i: usize) -> &mut Server {
        match i {
            0 => &mut self.lab.server,
            _ => &mut self.others[i - 1],
        }
    }

    /// Every node's address, in order, as a client's server list (`a:5980,b:5980`).
    pub fn server_list(&self) -> String {
        (0..=self.others.len())
            .map(|i| self.node(i).address())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The environment that points a client at node `i` only.
    pub fn on_node(&self, i: usize) -> Vec<(String, String)> {
        vec![("P2P_SERVER".to_string(), self.node(i).address())]
    }
}

impl Nodes {
    /// What the admin commands list (users, devices, shares) as JSON: compared before and after a
    /// node's death, it shows the database lost and damaged nothing.
    pub fn accounts_listing(&self) -> String {
        use p2p_server::admin::{self, Format};
        let store =
            p2p_server::store::PgStore::connect(&self.url).expect("connect to the database");
        [
            admin::user_list(&store, Format::Json),
            admin::device_list(&store, Format::Json),
            admin::share_list(&store, None, Format::Json),
        ]
        .into_iter()
        .map(|r| r.expect("list through the store"))
        .collect::<Vec<_>>()
        .join("\n")
    }

    /// The control address of the node the cluster tables say `uid` is online on (a live node's).
    pub fn presence_of(&self, uid: &str) -> Option<String> {
        let uid = uid.to_uppercase();
        crate::control::runtime().block_on(async {
            let (client, connection) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
                .await
                .expect("connect to the database");
            tokio::spawn(connection);
            client
                .query_opt(
                    "SELECT n.control_addr FROM device_presence p JOIN nodes n ON n.id = p.node_id
                     WHERE p.uid = $1",
                    &[&uid],
                )
                .await
                .expect("query device_presence")
                .map(|r| r.get(0))
        })
    }
}

/// Waits until the `autoconnect` initiator `initiator` (local port `port`) says it logged in to `node`
/// and its tunnel serves `body` again (a new session after the old one ended).
pub fn wait_reconnected(lab: &Lab, initiator: &Proc, port: u16, body: &[u8], node: &str) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        match lab.curl(port) {
            Ok(got)
                if got == body && initiator.output().contains(&format!("logged in to {node}")) =>
            {
                return
            }
            other if Instant::now() > deadline => panic!(
                "no new session through node {node} on port {port}: {:?}\n{}",
                other.map(|b| b.len()),
                initiator.tail(30)
            ),
            _ => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}
