//! The control channel (see `docs/PROTOCOL.md`, "Control channel"), from `p2p-link`, with every failure
//! mapped to this crate's [`Error`] (see `From<LinkError>` in `error.rs`): the client's connection
//! reports "server unreachable", "server key mismatch" and the server's refusals with the kinds
//! connectd's exit codes come from.

use p2p_link::control_channel as link;
use p2p_proto::control::{ClientMsg, ServerMsg};

use crate::error::Error;

pub use link::{
    generate_server_keypair, public_key_of, spawn_reader, HANDSHAKE_TIMEOUT, KEEPALIVE_EVERY,
    MAX_MESSAGE,
};

/// One end of a control connection (see [`link::ControlConn`]).
pub type ControlConn<In, Out> = link::ControlConn<In, Out, Error>;

/// A client's control connection to the server.
pub type ControlClient = ControlConn<ServerMsg, ClientMsg>;

/// The server's end of one control connection (for tests that stand in for the server).
pub type ControlServerConn = ControlConn<ClientMsg, ServerMsg>;

/// The receiving half of a control connection.
pub type ControlReadHalf<M> = link::ControlReadHalf<M, Error>;

/// The sending half of a control connection.
pub type ControlWriteHalf<M> = link::ControlWriteHalf<M, Error>;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use p2p_proto::control::{Credential, ErrorCode};
    use tokio::net::TcpListener;

    use super::*;
    use crate::ErrorKind;

    #[tokio::test]
    async fn link_failures_keep_the_client_kinds_and_wording() {
        let (private, public) = generate_server_keypair().unwrap();
        let (_, other_public) = generate_server_keypair().unwrap();
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move {
            // The first client pinned another key; the second gets a refusal, then the connection closes.
            for _ in 0..2 {
                let (s, _) = l.accept().await.unwrap();
                if let Ok(mut conn) = ControlServerConn::accept(s, &private).await {
                    assert_eq!(conn.recv().await.unwrap(), ClientMsg::Ping);
                    let refusal = ServerMsg::Error {
                        code: ErrorCode::NotShared,
                        message: "not shared".into(),
                    };
                    conn.send(&refusal).await.unwrap();
                }
            }
        });
        let timeout = Duration::from_secs(2);
        let e = ControlClient::connect(&addr, &other_public, timeout)
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::ServerKeyMismatch, "{e}");
        assert_eq!(
            e.message,
            format!("server key does not match the pinned key (control handshake with server {addr} failed)")
        );
        let mut c = ControlClient::connect(&addr, &public, timeout)
            .await
            .unwrap();
        let e = c.request(&ClientMsg::Ping).await.unwrap_err();
        assert_eq!(
            (e.kind, e.message.as_str()),
            (ErrorKind::NotShared, "not shared")
        );
        let big = ClientMsg::Login {
            user: "u".repeat(MAX_MESSAGE),
            credential: Credential::Password("p".into()),
            initiator_key: None,
        };
        assert_eq!(
            c.send(&big).await.unwrap_err().kind,
            ErrorKind::LimitReached
        );
        server.await.unwrap();
        let e = c.recv().await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::ServerUnreachable, "{e}");
        assert_eq!(
            e.message,
            format!("server {addr} closed the control connection")
        );
    }
}
