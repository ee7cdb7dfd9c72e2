//! The command line: `init`, `key`, `run` and the admin subcommands. Errors are one line on stderr
//! (`error: ...`) and exit code 1; usage errors are clap's (exit code 2).

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use p2p_proto::Uid;

use crate::admin::{self, Format};
use crate::broker::BrokerLimits;
use crate::error::{Error, Result};
use crate::probe::ProbeLimits;
use crate::relay::RelayLimits;
use crate::secret_input::read_secret;
use crate::server::{self, Config, Listeners};
use crate::store::{self, Store};
use crate::throttle::Limit;
use crate::{accounts, db};

#[derive(Debug, Parser)]
#[command(
    name = "p2p-server",
    version,
    about = "RemoteItP2P rendezvous, authentication and relay server",
    after_help = "Passwords and device secrets are read from standard input (one line) or, on a terminal, \
                  from a prompt without echo: never from the command line."
)]
pub struct Cli {
    /// The server's data directory (database `p2p.db` and key `server.key`).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Log lines on stderr as text, or as one JSON object per line (`ts`, `level`, `target`, `msg`) for
    /// log collectors. The level comes from RUST_LOG (default info).
    #[arg(long, global = true, value_name = "FORMAT", default_value = "text")]
    pub log_format: LogFormat,
    /// Keep users, devices, shares and auth hashes in PostgreSQL (`postgres://user@host/db`) instead of
    /// the data directory's SQLite database. The server key stays in the data directory.
    #[arg(long, global = true, value_name = "URL")]
    pub database: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

// `Run` carries every limit; the command line is parsed once, so its size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the data directory, database and server key; print the key clients pin (`server_key ...`).
    Init,
    /// Print the server's public key (`server_key ...`).
    Key,
    /// Run the server.
    Run(RunArgs),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage devices (targets).
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Share devices with users other than their owner.
    #[command(subcommand)]
    Share(ShareCommand),
    /// List and revoke auth hashes (issued to users by `connectd --auth-hash`).
    #[command(subcommand, name = "auth-hash", alias = "authhash")]
    AuthHash(AuthHashCommand),
    /// Copy a data directory's SQLite database into the empty PostgreSQL database given by --database,
    /// in one transaction, checked table by table (row counts and SHA-256 of the rows) before it commits.
    Migrate {
        /// The data directory whose `p2p.db` is copied (the server key stays there: copy `server.key`
        /// to the nodes yourself, auth hashes are bound to it).
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// TCP control listener. Each listener takes one address, or an IPv4 and an IPv6 one
    /// (comma-separated) to serve both families: then every listener needs one of each.
    #[arg(long, value_name = "ADDR[,ADDR]", value_delimiter = ',', default_value = server::DEFAULT_CONTROL)]
    pub control: Vec<SocketAddr>,
    /// First UDP listener: NAT probes and the relay (which carries sessions between the families).
    #[arg(long, value_name = "ADDR[,ADDR]", value_delimiter = ',', default_value = server::DEFAULT_UDP[0])]
    pub udp: Vec<SocketAddr>,
    /// Second UDP listener (NAT probes; same address as --udp, another port).
    #[arg(long, value_name = "ADDR[,ADDR]", value_delimiter = ',', default_value = server::DEFAULT_UDP[1])]
    pub udp2: Vec<SocketAddr>,
    /// Third UDP listener (NAT probes; a second IP address).
    #[arg(long, value_name = "ADDR[,ADDR]", value_delimiter = ',', default_value = server::DEFAULT_UDP[2])]
    pub udp3: Vec<SocketAddr>,
    /// Serve `/metrics` (Prometheus text format) and `/healthz` over HTTP on this address. They need
    /// no login: keep it on a private address (127.0.0.1, a management network).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
    /// On SIGTERM or Ctrl-C, answer `/healthz` with 503 for this many seconds before closing, so that
    /// load balancers stop sending clients here first.
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    pub drain_seconds: u64,
    /// Write the bound addresses and the server key as JSON to this file once every listener is bound.
    #[arg(long, value_name = "PATH")]
    pub ready_file: Option<PathBuf>,
    /// Keep the relay's counters and sessions (JSON) in this file, rewritten every second.
    #[arg(long, value_name = "PATH")]
    pub stats_file: Option<PathBuf>,
    /// Seconds a target has to accept a session.
    #[arg(long, value_name = "SECS", default_value_t = 8)]
    pub accept_timeout: u64,
    /// Seconds without a datagram after which a relay session is forgotten.
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    pub relay_idle_timeout: u64,
    /// Relay sessions at most.
    #[arg(long, value_name = "N", default_value_t = RelayLimits::default().max_sessions)]
    pub max_sessions: usize,
    /// Sessions one user may hold at once. A session counts from its grant until a peer reports it
    /// ended (RelayRelease) or, for peers that vanish, --relay-idle-timeout after its last packet.
    #[arg(long, value_name = "N", default_value_t = RelayLimits::default().max_sessions_per_user)]
    pub max_sessions_per_user: usize,
    /// Milliseconds between two logged and punched moves of a relay session's peer to a new source
    /// address (the binding follows at once; moves in between are reported together afterwards).
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub relay_rebind_interval: u64,
    /// Probe answers per second to one source address (the probe ports, all three together).
    #[arg(long, value_name = "N", default_value_t = ProbeLimits::default().per_second)]
    pub probe_rate: u32,
    /// Probe answers one source address may get at once before --probe-rate applies.
    #[arg(long, value_name = "N", default_value_t = ProbeLimits::default().burst)]
    pub probe_burst: u32,
    /// Sessions waiting for their target to accept, server-wide.
    #[arg(long, value_name = "N", default_value_t = BrokerLimits::default().max_pending)]
    pub max_pending: usize,
    /// Control connections open at once (targets and initiators); one more is told the limit and closed.
    #[arg(long, value_name = "N", default_value_t = server::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Failed logins per user and source address within --throttle-window before further logins for
    /// that user from that address are refused (for a window, doubling with each new lock, up to 64).
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub max_failures_per_user: usize,
    /// Failed password logins per user within --throttle-window from addresses it has not logged in from
    /// lately; then such addresses are refused (logged as a warning). Known addresses and auth hashes go on.
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub max_failures_per_user_total: usize,
    /// Failed logins or registrations per source address within --throttle-window.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub max_failures_per_ip: usize,
    /// Failed registrations per device and source address within --throttle-window.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub max_failures_per_device: usize,
    /// Failed registrations per device within --throttle-window from addresses it has not registered
    /// from lately; then such addresses are refused (logged as a warning). Known addresses go on.
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub max_failures_per_device_total: usize,
    /// Logins and registrations one source address may have in progress at once (the others are refused);
    /// each address also gets at most 2 of the 4 concurrent password checks.
    #[arg(long, value_name = "N", default_value_t = 128)]
    pub max_logins_in_progress_per_address: usize,
    /// Active (not revoked) auth hashes per user; more are refused until some are revoked.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub max_auth_hashes_per_user: usize,
    /// Seconds a new control connection has to log in or register (pings do not extend it).
    #[arg(long, value_name = "SECS", default_value_t = 15)]
    pub login_timeout: u64,
    /// Control connections from one source address that have not logged in or registered yet
    /// [default: --max-connections / 8, at least 8].
    #[arg(long, value_name = "N")]
    pub max_unauthenticated_per_address: Option<usize>,
    /// Control connection slots kept for addresses that logged in or registered lately
    /// [default: --max-connections / 8].
    #[arg(long, value_name = "N")]
    pub reserved_connections: Option<usize>,
    /// The throttling window, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub throttle_window: u64,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl ListArgs {
    fn format(&self) -> Format {
        if self.json {
            Format::Json
        } else {
            Format::Text
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user; the password is read from stdin or a prompt.
    Add {
        name: String,
    },
    /// Change a user's password (read from stdin or a prompt).
    Passwd {
        name: String,
    },
    /// Remove a user (refused while they own devices).
    Remove {
        name: String,
    },
    List(ListArgs),
    /// The static keys the user's initiators logged in with (fingerprints, first and last seen).
    Keys {
        name: String,
        #[command(flatten)]
        list: ListArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Add a device; its secret is read from stdin or a prompt, or generated with --generate-secret.
    Add {
        uid: Uid,
        /// The owning user.
        #[arg(long, value_name = "USER")]
        owner: String,
        /// A label for listings.
        #[arg(long, value_name = "LABEL", default_value = "")]
        name: String,
        /// The application type (remote.it's service type: 28 SSH, 7 HTTP, 1 TCP...).
        #[arg(long, value_name = "N", default_value_t = 1)]
        app_type: u16,
        /// Generate a random secret and print it (`secret <hex>`) instead of reading one.
        #[arg(long)]
        generate_secret: bool,
        /// The device's static public key (base64), recorded now instead of at its first
        /// registration, so that not even the first registration is taken on trust.
        #[arg(long, value_name = "BASE64")]
        key: Option<String>,
    },
    Remove {
        uid: Uid,
    },
    List(ListArgs),
    /// Show one device and the fingerprint of its recorded key.
    Show {
        uid: Uid,
    },
    /// Let the device's next registration replace its recorded key (a re-installed device); until
    /// then a registration with another key is refused.
    RotateKey {
        uid: Uid,
    },
}

#[derive(Debug, Subcommand)]
pub enum ShareCommand {
    Add {
        uid: Uid,
        user: String,
    },
    Remove {
        uid: Uid,
        user: String,
    },
    List {
        /// Only this device's shares.
        uid: Option<Uid>,
        #[command(flatten)]
        list: ListArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuthHashCommand {
    List {
        /// Only this user's auth hashes.
        #[arg(long, value_name = "USER")]
        user: Option<String>,
        #[command(flatten)]
        list: ListArgs,
    },
    /// Revoke an auth hash by its id (the part before the '.').
    Revoke { id: String },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match dispatch(cli) {
        Ok(output) => {
            if !output.is_empty() {
                println!("{output}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

fn init_logging(format: LogFormat) {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if format == LogFormat::Json {
        builder.format(|buf, record| {
            let line = serde_json::json!({
                "ts": buf.timestamp_millis().to_string(),
                "level": record.level().as_str(),
                "target": record.target(),
                "msg": record.args().to_string(),
            });
            writeln!(buf, "{line}")
        });
    }
    builder.init();
}

fn data_dir(cli: &Cli) -> Result<&Path> {
    cli.data_dir
        .as_deref()
        .ok_or_else(|| Error::new("--data-dir DIR is required (the server's data directory)"))
}

fn dispatch(cli: Cli) -> Result<String> {
    // The only command without a data directory of its own: it names the one it reads.
    if let Command::Migrate { from } = &cli.command {
        return migrate(from, cli.database.as_deref());
    }
    let dir = data_dir(&cli)?.to_path_buf();
    if cli.database.is_some() {
        return run_command(cli, &dir);
    }
    run_command(cli, &dir).map_err(|e| e.in_database(&db::db_path(&dir)))
}

fn run_command(cli: Cli, dir: &Path) -> Result<String> {
    let database = cli.database.as_deref();
    let open = || store::open(dir, database);
    match cli.command {
        Command::Init => admin::init_with(dir, database),
        Command::Key => admin::key(dir),
        Command::Run(args) => run(dir, cli.database, args).map(|_| String::new()),
        Command::User(cmd) => user_command(open()?.as_ref(), cmd),
        Command::Device(cmd) => device_command(open()?.as_ref(), cmd),
        Command::Share(cmd) => share_command(open()?.as_ref(), cmd),
        Command::AuthHash(cmd) => auth_hash_command(open()?.as_ref(), cmd),
        Command::Migrate { from } => migrate(&from, database),
    }
}

fn migrate(from: &Path, database: Option<&str>) -> Result<String> {
    let database = database.ok_or_else(|| {
        Error::new("migrate needs --database postgres://... (the empty database to copy into)")
    })?;
    store::migrate::migrate(from, database).map(|copied| copied.to_string())
}

fn user_command(conn: &dyn Store, cmd: UserCommand) -> Result<String> {
    match cmd {
        UserCommand::Add { name } => {
            accounts::check_user_name(&name)?;
            let pw = read_secret(&format!("password for user '{name}'"), true)?;
            admin::user_add(conn, &name, &pw)
        }
        UserCommand::Passwd { name } => {
            let pw = read_secret(&format!("new password for user '{name}'"), true)?;
            admin::user_passwd(conn, &name, &pw)
        }
        UserCommand::Remove { name } => admin::user_remove(conn, &name),
        UserCommand::List(l) => admin::user_list(conn, l.format()),
        UserCommand::Keys { name, list } => admin::user_keys(conn, &name, list.format()),
    }
}

fn device_command(conn: &dyn Store, cmd: DeviceCommand) -> Result<String> {
    match cmd {
        DeviceCommand::Add {
            uid,
            owner,
            name,
            app_type,
            generate_secret,
            key,
        } => {
            let key = key.as_deref().map(accounts::parse_device_key).transpose()?;
            let secret = if generate_secret {
                accounts::generate_device_secret()?
            } else {
                read_secret(&format!("secret for device {uid}"), true)?
            };
            let done = admin::device_add_with_key(
                conn,
                uid,
                &owner,
                &name,
                app_type,
                &secret,
                key.as_ref(),
            )?;
            // A generated secret is shown once, here: the server keeps only its hash.
            Ok(if generate_secret {
                format!("secret {}\n{done}", secret.as_str())
            } else {
                done
            })
        }
        DeviceCommand::Remove { uid } => admin::device_remove(conn, uid),
        DeviceCommand::List(l) => admin::device_list(conn, l.format()),
        DeviceCommand::Show { uid } => admin::device_show(conn, uid),
        DeviceCommand::RotateKey { uid } => admin::device_rotate_key(conn, uid),
    }
}

fn share_command(conn: &dyn Store, cmd: ShareCommand) -> Result<String> {
    match cmd {
        ShareCommand::Add { uid, user } => admin::share_add(conn, uid, &user),
        ShareCommand::Remove { uid, user } => admin::share_remove(conn, uid, &user),
        ShareCommand::List { uid, list } => admin::share_list(conn, uid, list.format()),
    }
}

fn auth_hash_command(conn: &dyn Store, cmd: AuthHashCommand) -> Result<String> {
    match cmd {
        AuthHashCommand::List { user, list } => {
            admin::auth_hash_list(conn, user.as_deref(), list.format())
        }
        AuthHashCommand::Revoke { id } => admin::auth_hash_revoke(conn, &id),
    }
}

fn run_config(dir: &Path, args: RunArgs) -> Result<Config> {
    let window = Duration::from_secs(args.throttle_window.max(1));
    let mut config = Config::new(dir);
    let (first, second) =
        Listeners::split_families(&args.control, [&args.udp, &args.udp2, &args.udp3])?;
    config.control = first.control;
    config.udp = first.udp;
    config.second_family = second;
    config.ready_file = args.ready_file;
    config.stats_file = args.stats_file;
    config.metrics = args.metrics;
    config.broker.accept_timeout = Duration::from_secs(args.accept_timeout.max(1));
    config.relay.idle_timeout = Duration::from_secs(args.relay_idle_timeout.max(1));
    config.relay.max_sessions = args.max_sessions.max(1);
    config.relay.max_sessions_per_user = args.max_sessions_per_user.max(1);
    config.relay.rebind_interval = Duration::from_millis(args.relay_rebind_interval);
    config.probe = ProbeLimits {
        per_second: args.probe_rate.max(1),
        burst: args.probe_burst.max(1),
    };
    config.broker.max_pending = args.max_pending.max(1);
    config.max_connections = args.max_connections.max(1);
    config.auth.per_user = Limit::new(args.max_failures_per_user.max(1), window);
    config.auth.per_ip = Limit::new(args.max_failures_per_ip.max(1), window);
    config.auth.per_device = Limit::new(args.max_failures_per_device.max(1), window);
    config.auth.per_user_total = Limit::new(args.max_failures_per_user_total.max(1), window);
    config.auth.per_device_total = Limit::new(args.max_failures_per_device_total.max(1), window);
    config.auth.max_in_progress_per_address = args.max_logins_in_progress_per_address.max(1);
    config.auth.max_auth_hashes_per_user = args.max_auth_hashes_per_user.max(1);
    config.control_limits.login_timeout = Duration::from_secs(args.login_timeout.max(1));
    let eighth = config.max_connections / 8;
    config.control_limits.max_unauthenticated_per_address = args
        .max_unauthenticated_per_address
        .unwrap_or(eighth.max(8))
        .max(1);
    config.control_limits.reserved_connections = args
        .reserved_connections
        .unwrap_or(eighth)
        .min(config.max_connections.saturating_sub(1));
    Ok(config)
}

fn run(dir: &Path, database: Option<String>, args: RunArgs) -> Result<()> {
    let drain = Duration::from_secs(args.drain_seconds);
    let mut config = run_config(dir, args)?;
    config.database = database;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::new(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(async move {
        let handle = server::start(config).await?;
        // The one line tests and scripts read to learn the ports (port 0 means "pick one").
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", handle.listening_line())
            .and_then(|_| out.flush())
            .map_err(|e| Error::new(format!("cannot write to standard output: {e}")))?;
        drop(out);
        wait_for_shutdown().await;
        handle.begin_draining();
        if !drain.is_zero() {
            log::info!("draining: /healthz answers 503 for {} s", drain.as_secs());
            tokio::time::sleep(drain).await;
        }
        log::info!("shutting down");
        handle.shutdown();
        Ok(())
    })
}

/// Ctrl-C everywhere; SIGTERM too on Unix (what `kill` and service managers send).
async fn wait_for_shutdown() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn data_dir_is_accepted_before_or_after_the_subcommand() {
        let a = Cli::try_parse_from(["p2p-server", "--data-dir", "d", "user", "list"]).unwrap();
        let b = Cli::try_parse_from(["p2p-server", "user", "list", "--data-dir", "d"]).unwrap();
        assert_eq!(a.data_dir, b.data_dir);
        assert!(
            Cli::try_parse_from(["p2p-server", "device", "add", "nope", "--owner", "x"]).is_err()
        );
        let c = Cli::try_parse_from(["p2p-server", "authhash", "revoke", "abc"]).unwrap();
        assert!(matches!(
            c.command,
            Command::AuthHash(AuthHashCommand::Revoke { .. })
        ));
    }

    /// The configuration `p2p-server run EXTRA...` runs with.
    fn run_args(extra: &[&str]) -> Result<Config> {
        let mut argv = vec!["p2p-server", "run"];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Run(args) => run_config(Path::new("d"), args),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn limits_reach_the_configuration() {
        let run_args = |extra: &[&str]| run_args(extra).unwrap();
        let defaults = run_args(&[]);
        let library = Config::new("d");
        assert_eq!(defaults.relay.max_sessions_per_user, 64);
        assert_eq!(
            defaults.relay.max_sessions_per_user,
            library.relay.max_sessions_per_user
        );
        assert_eq!(defaults.broker.max_pending, library.broker.max_pending);
        assert_eq!(defaults.max_connections, library.max_connections);
        let set = run_args(&[
            "--max-sessions-per-user",
            "3",
            "--max-pending",
            "5",
            "--max-connections",
            "7",
        ]);
        assert_eq!(set.relay.max_sessions_per_user, 3);
        assert_eq!(set.broker.max_pending, 5);
        assert_eq!(set.max_connections, 7);
    }

    #[test]
    fn listeners_take_one_address_of_each_family() {
        let both = run_args(&[
            "--control",
            "[2001:db8::1]:5980,198.18.0.1:5980",
            "--udp",
            "198.18.0.1:5959,[2001:db8::1]:5959",
            "--udp2",
            "198.18.0.1:5960,[2001:db8::1]:5960",
            "--udp3",
            "198.18.0.2:5961,[2001:db8::2]:5961",
        ])
        .unwrap();
        // The first --control address's family comes first; each listener's other address goes second.
        assert_eq!(both.control, "[2001:db8::1]:5980".parse().unwrap());
        assert_eq!(both.udp[2], "[2001:db8::2]:5961".parse().unwrap());
        let v4 = both.second_family.unwrap();
        assert_eq!(v4.control, "198.18.0.1:5980".parse().unwrap());
        assert_eq!(v4.udp[0], "198.18.0.1:5959".parse().unwrap());
        assert_eq!(v4.udp[2], "198.18.0.2:5961".parse().unwrap());

        let half = run_args(&["--control", "127.0.0.1:5980,[::1]:5980"]).unwrap_err();
        assert!(
            half.to_string().contains("an address of each family"),
            "{half}"
        );
        let twice = run_args(&["--udp", "127.0.0.1:1,127.0.0.2:1"]).unwrap_err();
        assert!(
            twice.to_string().contains("--udp takes one address"),
            "{twice}"
        );
        assert!(run_args(&[]).unwrap().second_family.is_none());
    }
}
