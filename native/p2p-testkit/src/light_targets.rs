//! Many devices online at little cost, for load tests and the benchmark: control connections that
//! register devices (several per connection) and accept every session offered, without a data path.
//! A real target (`p2p_net::Target`) has a UDP socket and forwards streams; these only keep the server's
//! registry and brokering busy, so a thousand devices take a few connections instead of a thousand
//! processes.

use std::time::Duration;

use p2p_proto::control::{ClientMsg, ServerMsg};
use p2p_proto::Uid;

use p2p_net::control_channel::{ControlClient, KEEPALIVE_EVERY};
use p2p_net::{Error, ErrorKind, Result};

/// Devices one connection registers: below the server's default per-connection limit (64).
pub const DEVICES_PER_CONNECTION: usize = 50;

/// Registers every `(uid, secret)` of `devices` with `server`, `DEVICES_PER_CONNECTION` per control
/// connection, the connections in parallel. Returns the connections, each holding its devices online
/// for as long as it stays open; hand each to [`accept_all`] to keep it open and answering.
pub async fn register(
    server: &str,
    server_key: &[u8; 32],
    devices: &[(Uid, String)],
    timeout: Duration,
) -> Result<Vec<ControlClient>> {
    register_in_groups(server, server_key, devices, DEVICES_PER_CONNECTION, timeout).await
}

/// Like [`register`], `per_connection` devices per control connection (1: as real targets do, each
/// with a connection of its own).
pub async fn register_in_groups(
    server: &str,
    server_key: &[u8; 32],
    devices: &[(Uid, String)],
    per_connection: usize,
    timeout: Duration,
) -> Result<Vec<ControlClient>> {
    let mut tasks = Vec::new();
    for group in devices.chunks(per_connection.max(1)) {
        let (server, key, group) = (server.to_string(), *server_key, group.to_vec());
        tasks.push(tokio::spawn(async move {
            let mut c = ControlClient::connect(&server, &key, timeout).await?;
            for (uid, secret) in group {
                let reply = c
                    .request(&ClientMsg::Register {
                        uid,
                        secret,
                        application_type: 1,
                        local_candidates: vec![],
                        device_key: None,
                    })
                    .await?;
                if !matches!(reply, ServerMsg::Registered { .. }) {
                    return Err(Error::new(
                        ErrorKind::Internal,
                        format!("registering {uid}: unexpected answer {reply:?}"),
                    ));
                }
            }
            Ok(c)
        }));
    }
    let mut clients = Vec::with_capacity(tasks.len());
    for t in tasks {
        let c = t
            .await
            .map_err(|e| Error::new(ErrorKind::Internal, format!("registering task: {e}")))??;
        clients.push(c);
    }
    Ok(clients)
}

/// A target's control loop reduced to what brokering needs: accepts every session offered and pings
/// so the server keeps the connection. Returns when the connection fails or closes.
pub async fn accept_all(mut c: ControlClient) {
    let mut ping = tokio::time::interval(KEEPALIVE_EVERY);
    loop {
        tokio::select! {
            msg = c.recv() => match msg {
                Ok(ServerMsg::Incoming(grant)) => {
                    let accept = ClientMsg::Accept { session_id: grant.session_id };
                    if c.send(&accept).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            },
            _ = ping.tick() => {
                if c.send(&ClientMsg::Ping).await.is_err() {
                    return;
                }
            }
        }
    }
}
