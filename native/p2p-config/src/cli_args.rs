//! connectd's command line, as connectd 4.6 documents it, plus what a self-hosted server needs:
//!
//! ```text
//! connectd [OPTIONS] -c BASE64_USER BASE64_PASSWORD DEVICE_UID T<port> ENCRYPTION_MODE BIND_ADDRESS MAXOUTSTANDING [LIFETIME_MIN IDLE_LIMIT]
//! connectd [OPTIONS] -p BASE64_USER AUTH_HASH DEVICE_UID T<port> ENCRYPTION_MODE BIND_ADDRESS RESTRICT_IP MAXOUTSTANDING LIFETIME_MIN IDLE_LIMIT
//! connectd [OPTIONS] -f FILE | -e BLOB | -n [--json] | --auth-hash --user NAME
//! ```
//!
//! `-c` and `-p` come last and take every argument after them, as in connectd. Parsing is pure (no
//! environment, no files except `-f`'s), so every rule is unit-tested; the server may still come from the
//! environment later (`config::resolve_server`). Values are checked by the same parsers the provisioning
//! files use (`values.rs`), so the two front ends agree on what is valid. Errors are one line naming the
//! argument and never quote a password or an auth hash.

mod help;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

pub use help::usage;

use crate::config::{AutoConnect, InitiatorConfig, TargetConfig};
use crate::provisioning::{
    parse_provisioning_base64, parse_provisioning_file, Provisioning, ProvisioningKind, Warning,
};
use crate::values::{
    check_server_address, check_server_key, decode_base64, parse_device_key, parse_encryption,
    parse_ip, parse_limit, parse_listen_port, parse_uid, parse_window, shown,
};

/// The process status for a command line that could not be parsed: EX_USAGE from sysexits.h, chosen
/// because it is none of connectd's exit codes, so a script never mistakes a typo for "lifetime ended".
pub const USAGE_EXIT_STATUS: u8 = 64;

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `-h` / `--help`: print [`usage`].
    Help,
    /// `--version`.
    Version,
    /// `-c`, `-p`, or an initiator file (`-f` / `-e`).
    Initiator {
        config: InitiatorConfig,
        options: RunOptions,
        /// From the provisioning file, if any: show them before starting.
        warnings: Vec<Warning>,
    },
    /// A target file (`-f` / `-e` with `UID`).
    Target {
        config: TargetConfig,
        options: RunOptions,
        warnings: Vec<Warning>,
    },
    /// `-n [--json]`: the network self-test against the server (from `-y`/`--server` or the environment).
    SelfTest {
        server: ServerChoice,
        json: bool,
        options: RunOptions,
    },
    /// `--auth-hash --user NAME [--label TEXT]`: log in with a password read without echo and print a
    /// derived credential for provisioning files' `auth_hash` and `-p`.
    AuthHash {
        user: String,
        label: Option<String>,
        server: ServerChoice,
        options: RunOptions,
    },
    /// `--fingerprint [-f FILE]`: print the fingerprint of this installation's key (an initiator file's
    /// `key_file`, else the default), or with a target file the device's key; creates it if needed.
    Fingerprint { key: KeyOwner },
}

/// Whose static key `--fingerprint` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOwner {
    /// This installation's initiator key; `None`: the default path.
    Initiator(Option<PathBuf>),
    /// A device's key, as its target configuration says.
    Device(Box<TargetConfig>),
}

/// Options that apply to every mode that runs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RunOptions {
    /// `-s`: print connectd's `!!` status lines.
    pub status_lines: bool,
    /// `-v`: log at info level (unless `RUST_LOG` says otherwise).
    pub verbose: bool,
    /// `-d [PIDFILE]`: run in the background (Unix).
    pub background: Option<Background>,
}

/// `-d [PIDFILE]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Background {
    pub pid_file: Option<PathBuf>,
}

/// The server named on the command line (`-y`/`--server`, `--server-key`); `None` falls back to a
/// provisioning file's keys, then to `P2P_SERVER` / `P2P_SERVER_KEY`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerChoice {
    pub server: Option<String>,
    pub server_key: Option<String>,
}

/// A command line that cannot run. Displayed as one line naming the argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(String);

impl UsageError {
    fn new(message: impl Into<String>) -> Self {
        UsageError(message.into())
    }

    pub fn message(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// The names of `-c`'s arguments, in order, as errors and `--help` show them.
const C_ARGS: [&str; 9] = [
    "BASE64_USER",
    "BASE64_PASSWORD",
    "DEVICE_UID",
    "T<port>",
    "ENCRYPTION_MODE",
    "BIND_ADDRESS",
    "MAXOUTSTANDING",
    "LIFETIME_MIN",
    "IDLE_LIMIT",
];

/// The names of `-p`'s arguments, in order.
const P_ARGS: [&str; 10] = [
    "BASE64_USER",
    "AUTH_HASH",
    "DEVICE_UID",
    "T<port>",
    "ENCRYPTION_MODE",
    "BIND_ADDRESS",
    "RESTRICT_IP",
    "MAXOUTSTANDING",
    "LIFETIME_MIN",
    "IDLE_LIMIT",
];

/// The one thing a command line does. At most one may be given.
#[derive(Debug)]
enum Mode<'a> {
    Password(&'a [String]),
    AuthHashLine(&'a [String]),
    File(&'a str),
    Blob(&'a str),
    SelfTest,
    IssueAuthHash,
}

impl Mode<'_> {
    fn flag(&self) -> &'static str {
        match self {
            Mode::Password(_) => "-c",
            Mode::AuthHashLine(_) => "-p",
            Mode::File(_) => "-f",
            Mode::Blob(_) => "-e",
            Mode::SelfTest => "-n",
            Mode::IssueAuthHash => "--auth-hash",
        }
    }
}

/// Everything read from the command line before it is turned into a [`Command`].
#[derive(Default)]
struct Parsed<'a> {
    mode: Option<Mode<'a>>,
    options: RunOptions,
    server: ServerChoice,
    json: bool,
    user: Option<&'a str>,
    label: Option<&'a str>,
    fingerprint: bool,
    accept_key: Option<String>,
    /// `--device-key`: the device's fingerprint, pinned before the first connection.
    device_key: Option<String>,
    /// `--trust-first-use`: take the server's word for an unknown device's key.
    trust_first_use: bool,
}

/// Parses connectd's arguments, without the program name (`std::env::args().skip(1)`).
pub fn parse_args(args: &[String]) -> Result<Command, UsageError> {
    // Help and version win over everything else, as users type them to find out how to fix a line.
    if args.is_empty()
        || args
            .iter()
            .any(|a| matches!(a.as_str(), "-h" | "--help" | "-?"))
    {
        return Ok(Command::Help);
    }
    if args.iter().any(|a| a == "--version") {
        return Ok(Command::Version);
    }
    let parsed = scan(args)?;
    build(parsed)
}

/// The same arguments without `-d [PIDFILE]`: what `connectd -d` runs again in the background. Follows
/// [`parse_args`]' rules: values of options are skipped over, and everything from `-c`/`-p` on is kept.
pub fn without_background(args: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut i = 0;
    while i < args.len() {
        let (name, inline) = split_long(&args[i]);
        match name {
            "-c" | "-p" => {
                out.extend_from_slice(&args[i..]);
                break;
            }
            "-d" => {
                if args.get(i + 1).is_some_and(|next| !next.starts_with('-')) {
                    i += 1;
                }
            }
            _ if inline.is_none() && TAKES_VALUE.contains(&name) => {
                out.extend(args[i..].iter().take(2).cloned());
                i += 1;
            }
            _ => out.push(args[i].clone()),
        }
        i += 1;
    }
    out
}

/// The options that take the next argument as their value.
const TAKES_VALUE: [&str; 9] = [
    "-f",
    "--accept-key",
    "--device-key",
    "-e",
    "-y",
    "--server",
    "--server-key",
    "--user",
    "--label",
];

/// Splits `--name=value` into its parts; other arguments are returned whole.
fn split_long(arg: &str) -> (&str, Option<&str>) {
    match arg.split_once('=') {
        Some((name, value)) if name.starts_with("--") => (name, Some(value)),
        _ => (arg, None),
    }
}

fn scan(args: &[String]) -> Result<Parsed<'_>, UsageError> {
    let mut p = Parsed::default();
    let mut i = 0;
    while i < args.len() {
        let (name, inline) = split_long(&args[i]);
        // The value of an option that takes one: inline (`--server=x`) or the next argument.
        let mut value = |what: &str| -> Result<&str, UsageError> {
            if let Some(v) = inline {
                return Ok(v);
            }
            i += 1;
            args.get(i)
                .map(String::as_str)
                .ok_or_else(|| UsageError::new(format!("{name} needs a value: {name} {what}")))
        };
        let takes_no_value = || -> Result<(), UsageError> {
            match inline {
                Some(_) => Err(UsageError::new(format!("{name} takes no value"))),
                None => Ok(()),
            }
        };
        match name {
            "-c" | "-p" => {
                // connectd's rule: -c / -p and their arguments come last.
                let rest = &args[i + 1..];
                let mode = if name == "-c" {
                    Mode::Password(rest)
                } else {
                    Mode::AuthHashLine(rest)
                };
                set_mode(&mut p, mode)?;
                break;
            }
            "-f" => {
                let file = value("FILE")?;
                set_mode(&mut p, Mode::File(file))?;
            }
            "-e" => {
                let blob = value("BLOB")?;
                set_mode(&mut p, Mode::Blob(blob))?;
            }
            "-n" => set_mode(&mut p, Mode::SelfTest)?,
            "--auth-hash" => {
                takes_no_value()?;
                set_mode(&mut p, Mode::IssueAuthHash)?;
            }
            "-s" => p.options.status_lines = true,
            "-v" | "--verbose" => {
                takes_no_value()?;
                p.options.verbose = true;
            }
            "--json" => {
                takes_no_value()?;
                p.json = true;
            }
            "-y" | "--server" => {
                let server = value("HOST:PORT")?;
                check_server_address(server)
                    .map_err(|e| UsageError::new(format!("{name}: {e}")))?;
                set_once(&mut p.server.server, server, "-y/--server")?;
            }
            "--server-key" => {
                let key = value("KEY")?;
                check_server_key(key).map_err(|e| UsageError::new(format!("{name}: {e}")))?;
                set_once(&mut p.server.server_key, key, "--server-key")?;
            }
            "--user" => {
                let user = value("NAME")?;
                if user.trim().is_empty() {
                    return Err(UsageError::new("--user: the user name is empty"));
                }
                p.user = Some(user);
            }
            "--label" => p.label = Some(value("TEXT")?),
            "--fingerprint" => {
                takes_no_value()?;
                p.fingerprint = true;
            }
            "--trust-first-use" => {
                takes_no_value()?;
                p.trust_first_use = true;
            }
            "--accept-key" => {
                let key = value("SHA256:FINGERPRINT")?;
                let fingerprint =
                    parse_device_key(key).map_err(|e| UsageError::new(format!("{name}: {e}")))?;
                p.accept_key = Some(fingerprint);
            }
            "--device-key" => {
                let key = value("SHA256:FINGERPRINT")?;
                let fingerprint =
                    parse_device_key(key).map_err(|e| UsageError::new(format!("{name}: {e}")))?;
                set_once(&mut p.device_key, &fingerprint, name)?;
            }
            "-d" => {
                if p.options.background.is_some() {
                    return Err(UsageError::new("-d is given twice"));
                }
                // The PID file is optional: the next argument is it unless it is another option.
                let pid_file = match args.get(i + 1) {
                    Some(next) if !next.starts_with('-') => {
                        i += 1;
                        Some(PathBuf::from(next))
                    }
                    _ => None,
                };
                p.options.background = Some(Background { pid_file });
            }
            other if other.starts_with('-') && other.len() > 1 => {
                return Err(UsageError::new(format!(
                    "unknown option '{}' (see connectd --help)",
                    shown(other)
                )));
            }
            _ => {
                // Not quoted: a misplaced argument may well be a password.
                return Err(UsageError::new(format!(
                    "unexpected argument #{} outside -c/-p: options come first, and -c or -p with its arguments last (see connectd --help)",
                    i + 1
                )));
            }
        }
        i += 1;
    }
    Ok(p)
}

fn set_mode<'a>(p: &mut Parsed<'a>, mode: Mode<'a>) -> Result<(), UsageError> {
    if let Some(first) = &p.mode {
        return Err(UsageError::new(format!(
            "{} and {} cannot be combined: give one of -c, -p, -f, -e, -n, --auth-hash",
            first.flag(),
            mode.flag()
        )));
    }
    p.mode = Some(mode);
    Ok(())
}

fn set_once(slot: &mut Option<String>, value: &str, what: &str) -> Result<(), UsageError> {
    if slot.is_some() {
        return Err(UsageError::new(format!("{what} is given twice")));
    }
    *slot = Some(value.to_string());
    Ok(())
}

fn build(p: Parsed<'_>) -> Result<Command, UsageError> {
    if p.fingerprint {
        return fingerprint_of(p);
    }
    let Some(mode) = p.mode else {
        return Err(UsageError::new(
            "nothing to do: give -c, -p, -f FILE, -e BLOB, -n or --auth-hash (see connectd --help)",
        ));
    };
    let flag = mode.flag();
    let runs_tunnel_or_target = matches!(
        mode,
        Mode::Password(_) | Mode::AuthHashLine(_) | Mode::File(_) | Mode::Blob(_)
    );
    if p.json && !matches!(mode, Mode::SelfTest) {
        return Err(UsageError::new(format!(
            "--json applies to -n only, not to {flag}"
        )));
    }
    if (p.user.is_some() || p.label.is_some()) && !matches!(mode, Mode::IssueAuthHash) {
        return Err(UsageError::new(format!(
            "--user and --label apply to --auth-hash only, not to {flag}"
        )));
    }
    if !runs_tunnel_or_target && p.options.background.is_some() {
        return Err(UsageError::new(format!(
            "-d applies to a tunnel or a target, not to {flag}"
        )));
    }
    for (given, option) in [
        (p.accept_key.is_some(), "--accept-key"),
        (p.device_key.is_some(), "--device-key"),
        (p.trust_first_use, "--trust-first-use"),
    ] {
        if given && !runs_tunnel_or_target {
            return Err(UsageError::new(format!(
                "{option} applies to a tunnel, not to {flag}"
            )));
        }
    }
    let options = p.options;
    let server = p.server;
    let keys = KeyOptions {
        accept_key: p.accept_key,
        device_key: p.device_key,
        trust_first_use: p.trust_first_use,
    };
    let command = match mode {
        Mode::Password(args) => {
            let config = with_server(password_line(args)?, &server);
            Command::Initiator {
                config,
                options,
                warnings: Vec::new(),
            }
        }
        Mode::AuthHashLine(args) => {
            let config = with_server(auth_hash_line(args)?, &server);
            Command::Initiator {
                config,
                options,
                warnings: Vec::new(),
            }
        }
        Mode::File(path) => {
            let provisioning =
                parse_provisioning_file(path).map_err(|e| UsageError::new(e.to_string()))?;
            from_provisioning(provisioning, options, &server)
        }
        Mode::Blob(blob) => {
            let provisioning =
                parse_provisioning_base64(blob).map_err(|e| UsageError::new(e.to_string()))?;
            from_provisioning(provisioning, options, &server)
        }
        other => return other_command(other, p.json, p.user, p.label, options, server),
    };
    with_key_options(command, keys)
}

/// `--accept-key` and `--device-key`: the fingerprints the user gives for the device's key;
/// `--trust-first-use`: or the server's word for it, when neither is given nor pinned.
struct KeyOptions {
    accept_key: Option<String>,
    device_key: Option<String>,
    trust_first_use: bool,
}

/// The key options belong to a tunnel (an initiator), never to a target. `--device-key` wins over a
/// file's `device_key`: the command line is the nearer word.
fn with_key_options(command: Command, keys: KeyOptions) -> Result<Command, UsageError> {
    match command {
        Command::Initiator {
            mut config,
            options,
            warnings,
        } => {
            config.accept_key = keys.accept_key;
            if keys.device_key.is_some() {
                config.device_key = keys.device_key;
            }
            config.trust_first_use |= keys.trust_first_use;
            Ok(Command::Initiator {
                config,
                options,
                warnings,
            })
        }
        Command::Target { .. } => {
            let given = [
                (keys.accept_key.is_some(), "--accept-key"),
                (keys.device_key.is_some(), "--device-key"),
                (keys.trust_first_use, "--trust-first-use"),
            ];
            match given.into_iter().find(|(given, _)| *given) {
                None => Ok(command),
                Some((_, option)) => Err(UsageError::new(format!(
                    "{option} applies to a tunnel, not to a target file"
                ))),
            }
        }
        command => Ok(command),
    }
}

/// `--fingerprint`, alone or with an initiator or target file.
fn fingerprint_of(p: Parsed<'_>) -> Result<Command, UsageError> {
    let provisioning = match p.mode {
        None => {
            return Ok(Command::Fingerprint {
                key: KeyOwner::Initiator(None),
            })
        }
        Some(Mode::File(path)) => {
            parse_provisioning_file(path).map_err(|e| UsageError::new(e.to_string()))?
        }
        Some(Mode::Blob(blob)) => {
            parse_provisioning_base64(blob).map_err(|e| UsageError::new(e.to_string()))?
        }
        Some(other) => {
            return Err(UsageError::new(format!(
                "--fingerprint takes a provisioning file (-f or -e) or nothing, not {}",
                other.flag()
            )))
        }
    };
    let key = match provisioning.kind {
        ProvisioningKind::Initiator(config) => KeyOwner::Initiator(config.key_file),
        ProvisioningKind::Target(config) => KeyOwner::Device(Box::new(config)),
    };
    Ok(Command::Fingerprint { key })
}

/// The commands that run neither a tunnel nor a target.
fn other_command(
    mode: Mode<'_>,
    json: bool,
    user: Option<&str>,
    label: Option<&str>,
    options: RunOptions,
    server: ServerChoice,
) -> Result<Command, UsageError> {
    match mode {
        Mode::SelfTest => Ok(Command::SelfTest {
            server,
            json,
            options,
        }),
        Mode::IssueAuthHash => {
            let user = user.ok_or_else(|| {
                UsageError::new("--auth-hash needs the account: --auth-hash --user NAME")
            })?;
            Ok(Command::AuthHash {
                user: user.to_string(),
                label: label.map(str::to_string),
                server,
                options,
            })
        }
        Mode::Password(_) | Mode::AuthHashLine(_) | Mode::File(_) | Mode::Blob(_) => {
            unreachable!("tunnels and targets are built by the caller")
        }
    }
}

/// The command line names the server over a provisioning file, which names it over the environment.
fn with_server(mut config: InitiatorConfig, server: &ServerChoice) -> InitiatorConfig {
    if server.server.is_some() {
        config.server.clone_from(&server.server);
    }
    if server.server_key.is_some() {
        config.server_key.clone_from(&server.server_key);
    }
    config
}

fn from_provisioning(p: Provisioning, options: RunOptions, server: &ServerChoice) -> Command {
    match p.kind {
        ProvisioningKind::Initiator(config) => Command::Initiator {
            config: with_server(config, server),
            options,
            warnings: p.warnings,
        },
        ProvisioningKind::Target(mut config) => {
            if server.server.is_some() {
                config.server.clone_from(&server.server);
            }
            if server.server_key.is_some() {
                config.server_key.clone_from(&server.server_key);
            }
            Command::Target {
                config,
                options,
                warnings: p.warnings,
            }
        }
    }
}

/// An error about one positional argument: `DEVICE_UID: invalid device UID ...`.
fn arg_error(name: &str, message: String) -> UsageError {
    UsageError::new(format!("{name}: {message}"))
}

/// `-c BASE64_USER BASE64_PASSWORD DEVICE_UID T<port> ENCRYPTION_MODE BIND_ADDRESS MAXOUTSTANDING
/// [LIFETIME_MIN IDLE_LIMIT]`.
fn password_line(args: &[String]) -> Result<InitiatorConfig, UsageError> {
    if args.len() != 7 && args.len() != 9 {
        return Err(UsageError::new(format!(
            "-c takes 7 arguments ({}) or 9 (adding {} {}), and must come last; got {}",
            C_ARGS[..7].join(" "),
            C_ARGS[7],
            C_ARGS[8],
            args.len()
        )));
    }
    let user = decode_text(&args[0], "BASE64_USER")?;
    let password = decode_text(&args[1], "BASE64_PASSWORD")?;
    let mut config = common_fields(user, &args[2..6])?;
    config.password = Some(password);
    config.max_outstanding = Some(window(&args[6])?);
    if args.len() == 9 {
        (config.lifetime_min, config.idle_limit_sec) = limits(&args[7], &args[8])?;
    }
    Ok(config)
}

/// `-p BASE64_USER AUTH_HASH DEVICE_UID T<port> ENCRYPTION_MODE BIND_ADDRESS RESTRICT_IP MAXOUTSTANDING
/// LIFETIME_MIN IDLE_LIMIT`.
fn auth_hash_line(args: &[String]) -> Result<InitiatorConfig, UsageError> {
    if args.len() != P_ARGS.len() {
        return Err(UsageError::new(format!(
            "-p takes {} arguments ({}) and must come last; got {}",
            P_ARGS.len(),
            P_ARGS.join(" "),
            args.len()
        )));
    }
    let user = decode_text(&args[0], "BASE64_USER")?;
    let auth_hash = args[1].trim();
    if auth_hash.is_empty() {
        return Err(UsageError::new("AUTH_HASH is empty"));
    }
    let mut config = common_fields(user, &args[2..6])?;
    config.auth_hash = Some(auth_hash.to_string());
    config.restrict_ip = restrict_ip(&args[6])?;
    config.max_outstanding = Some(window(&args[7])?);
    (config.lifetime_min, config.idle_limit_sec) = limits(&args[8], &args[9])?;
    Ok(config)
}

/// DEVICE_UID T<port> ENCRYPTION_MODE BIND_ADDRESS, shared by `-c` and `-p`.
fn common_fields(user: String, args: &[String]) -> Result<InitiatorConfig, UsageError> {
    let device_id = parse_uid(&args[0]).map_err(|e| arg_error("DEVICE_UID", e))?;
    let local_port = tcp_port(&args[1])?;
    let encryption = parse_encryption(&args[2]).map_err(|e| arg_error("ENCRYPTION_MODE", e))?;
    let bind_address = parse_ip(&args[3]).map_err(|e| arg_error("BIND_ADDRESS", e))?;
    Ok(InitiatorConfig {
        name: None,
        device_id,
        user,
        password: None,
        auth_hash: None,
        server: None,
        server_key: None,
        local_port,
        bind_address,
        encryption,
        max_outstanding: None,
        autoconnect: AutoConnect::Once,
        restrict_ip: None,
        lifetime_min: 0,
        idle_limit_sec: 0,
        key_file: None,
        device_key: None,
        accept_key: None,
        trust_first_use: false,
    })
}

/// A base64 argument holding UTF-8 text (PowerShell's `[Convert]::ToBase64String([Text.Encoding]::UTF8...)`).
/// The value is never quoted: BASE64_PASSWORD is a password.
fn decode_text(arg: &str, name: &str) -> Result<String, UsageError> {
    let bytes = decode_base64(arg.trim())
        .ok_or_else(|| UsageError::new(format!("{name} is not valid base64")))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| UsageError::new(format!("{name} does not decode to UTF-8 text")))?;
    if text.is_empty() {
        return Err(UsageError::new(format!("{name} decodes to an empty value")));
    }
    Ok(text)
}

/// `T33000`: connectd prefixes the local port with its protocol, and only TCP (`T`) exists.
fn tcp_port(arg: &str) -> Result<u16, UsageError> {
    let digits = arg.strip_prefix(['T', 't']).ok_or_else(|| {
        UsageError::new(format!(
            "T<port>: '{}' must be T followed by the local port, like T33000",
            shown(arg)
        ))
    })?;
    parse_listen_port(digits).map_err(|e| arg_error("T<port>", e))
}

fn window(arg: &str) -> Result<u32, UsageError> {
    parse_window(arg).map_err(|e| arg_error("MAXOUTSTANDING", e))
}

fn limits(lifetime: &str, idle: &str) -> Result<(u32, u32), UsageError> {
    let lifetime = parse_limit(lifetime).map_err(|e| arg_error("LIFETIME_MIN", e))?;
    let idle = parse_limit(idle).map_err(|e| arg_error("IDLE_LIMIT", e))?;
    Ok((lifetime, idle))
}

/// RESTRICT_IP: the only client address allowed on the local port; the unspecified address means any.
fn restrict_ip(arg: &str) -> Result<Option<IpAddr>, UsageError> {
    let ip = parse_ip(arg).map_err(|e| arg_error("RESTRICT_IP", e))?;
    Ok((!ip.is_unspecified()).then_some(ip))
}
