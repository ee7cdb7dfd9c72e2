//! `connectd --auth-hash --user NAME [--label TEXT]`: logs in with the password and prints an auth hash,
//! the credential a provisioning file's `auth_hash` (or `-p`) holds instead of the password.
//!
//! What an auth hash is, and why a file should hold one rather than `auth_pass`:
//! - it is issued by the server after a password login and has the form `<id>.<secret>`; the secret is
//!   random, not derived from the password, so a leaked file reveals nothing about the password;
//! - the server keeps only a hash of the secret and accepts it only for this user on this server: it
//!   cannot be replayed against another server (remote.it's 40-hex `auth_hash` means nothing here);
//! - each one can be revoked on its own by its `<id>` (`p2p-server auth-hash revoke ID`), without changing
//!   the password or the other machines' hashes; `--label` records which machine it is for.
//!
//! The password is read without echo from the terminal, or as one line from standard input when that is
//! a pipe (`printf '%s\n' "$PW" | connectd --auth-hash --user bob`): never from the command line, where
//! every user of the machine could see it. Only the hash goes to stdout, so `$(connectd --auth-hash ...)`
//! captures exactly it.

use std::io::{BufRead, IsTerminal};
use std::time::Duration;

use p2p_config::cli_args::ServerChoice;
use p2p_config::config::resolve_server;
use p2p_config::ExitCode;
use p2p_net::control_channel::ControlClient;
use p2p_net::{Error, ErrorKind};
use p2p_proto::control::{ClientMsg, Credential, ServerMsg};
use zeroize::Zeroizing;

use crate::output::Output;

const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn run(user: &str, label: Option<String>, server: &ServerChoice, out: &Output) -> i32 {
    let (address, key) = match resolve_server(&server.server, &server.server_key, |k| {
        std::env::var(k).ok()
    }) {
        Ok(found) => found,
        Err(e) => return i32::from(out.fail(ExitCode::Unknown, &e.to_string()).code()),
    };
    let password = match read_password(user) {
        Ok(p) => p,
        Err(message) => return i32::from(out.fail(ExitCode::Unknown, &message).code()),
    };
    let label = label.unwrap_or_else(default_label);
    match issue(&address, &key, user, password, label).await {
        Ok(hash) => {
            out.line(&hash);
            0
        }
        Err(e) => i32::from(
            out.fail(crate::exit_codes::for_error(e.kind), &e.message)
                .code(),
        ),
    }
}

async fn issue(
    address: &str,
    key: &[u8; 32],
    user: &str,
    password: Zeroizing<String>,
    label: String,
) -> Result<String, Error> {
    let mut control = ControlClient::connect(address, key, CONTROL_TIMEOUT).await?;
    let login = ClientMsg::Login {
        user: user.to_string(),
        credential: Credential::Password(password.to_string()),
        initiator_key: None,
    };
    match within(control.request(&login)).await? {
        ServerMsg::LoginOk { .. } => {}
        other => return Err(refused(other, "logging in")),
    }
    match within(control.request(&ClientMsg::CreateAuthHash { label })).await? {
        ServerMsg::AuthHash { auth_hash } => Ok(auth_hash),
        other => Err(refused(other, "asking for an auth hash")),
    }
}

/// A server that accepted the connection but does not answer must not leave the command hanging.
async fn within<T>(
    request: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    tokio::time::timeout(CONTROL_TIMEOUT, request)
        .await
        .unwrap_or_else(|_| {
            Err(Error::new(
                ErrorKind::ServerUnreachable,
                "the server did not answer in time",
            ))
        })
}

fn refused(msg: ServerMsg, during: &str) -> Error {
    match msg {
        ServerMsg::Error { code, message } => Error::new(ErrorKind::from(code), message),
        other => Error::new(
            ErrorKind::Internal,
            format!(
                "unexpected answer from the server while {during}: {}",
                kind_of(&other)
            ),
        ),
    }
}

/// The message's type only: its contents could hold a secret.
fn kind_of(msg: &ServerMsg) -> &'static str {
    match msg {
        ServerMsg::LoginOk { .. } => "LoginOk",
        ServerMsg::AuthHash { .. } => "AuthHash",
        ServerMsg::Registered { .. } => "Registered",
        ServerMsg::Session(_) => "Session",
        ServerMsg::Incoming(_) => "Incoming",
        ServerMsg::Punch { .. } => "Punch",
        ServerMsg::Error { .. } => "Error",
        ServerMsg::Pong => "Pong",
        ServerMsg::ProbeAddresses { .. } => "ProbeAddresses",
    }
}

fn read_password(user: &str) -> Result<Zeroizing<String>, String> {
    let password = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!("password for '{user}': "))
            .map(Zeroizing::new)
            .map_err(|e| format!("cannot read the password from the terminal: {e}"))?
    } else {
        let mut line = Zeroizing::new(String::new());
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
        Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_string())
    };
    if password.is_empty() {
        return Err(
            "no password given (type it at the prompt, or pipe it on standard input)".into(),
        );
    }
    Ok(password)
}

/// Which machine the hash is for, so it can be recognised in `p2p-server auth-hash list` and revoked.
fn default_label() -> String {
    let host = ["HOSTNAME", "COMPUTERNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()));
    match host {
        Some(host) => format!("connectd on {host}"),
        None => "connectd".to_string(),
    }
}
