//! `connectd`: the connectd-compatible command line of RemoteItP2P. Parses the arguments (p2p-config's
//! `cli_args`), then runs one mode on a tokio runtime and exits with connectd's exit code.
//!
//! - [`initiator`]: `-c`, `-p`, an initiator file: one tunnel with connectd's output lines.
//! - [`target`]: a target file: the device daemon.
//! - [`self_test`]: `-n [--json]`.
//! - [`auth_hash`]: `--auth-hash`: print a derived credential.
//! - [`os`]: everything that differs between Unix and Windows (signals, `-d`).
//! - [`output`]: stdout / stderr lines, `!!` status lines.

// Unsafe code is refused everywhere but in `os`, which tunes glibc's allocator (`mallopt`, which has
// no safe wrapper); the one use there says why it is sound.
#![deny(unsafe_code)]

mod auth_hash;
mod exit_codes;
mod initiator;
mod logging;
#[allow(unsafe_code)]
mod os;
mod output;
mod self_test;
mod target;

use std::time::Duration;

use p2p_config::cli_args::{Command, KeyOwner, RunOptions, USAGE_EXIT_STATUS};
use p2p_config::{parse_args, usage, ExitCode};
use p2p_net::device_trust;

use output::Output;

fn main() {
    os::tune_allocator();
    let args = match text_args() {
        Ok(args) => args,
        Err(message) => usage_error(&message),
    };
    let command = parse_args(&args).unwrap_or_else(|e| usage_error(e.message()));
    let options = match &command {
        Command::Help => {
            print!("{}", usage());
            return;
        }
        Command::Version => {
            println!(
                "connectd {} (RemoteItP2P, connectd 4.6 compatible command line)",
                env!("CARGO_PKG_VERSION")
            );
            // Said only by test builds, so the test harness can tell that the knobs it sets are read.
            if p2p_net::TEST_HOOKS {
                println!(
                    "test hooks: P2P_DISABLE_DIRECT, P2P_DISABLE_DIRECT_FILE, P2P_RELAY_OVERRIDE, \
                     P2P_REKEY_BYTES, P2P_REKEY_SECONDS"
                );
            }
            return;
        }
        Command::Fingerprint { key } => std::process::exit(print_fingerprint(key)),
        Command::Initiator { options, .. }
        | Command::Target { options, .. }
        | Command::SelfTest { options, .. }
        | Command::AuthHash { options, .. } => options.clone(),
    };
    logging::init(options.verbose);
    if let Some(background) = &options.background {
        // The parent only starts the background copy of itself and reports its PID.
        std::process::exit(os::run_in_background(&args, background));
    }
    std::process::exit(run(command, &options));
}

/// The arguments as text; connectd's arguments are all text, so a non-UTF-8 one is a usage error.
fn text_args() -> Result<Vec<String>, String> {
    std::env::args_os()
        .skip(1)
        .enumerate()
        .map(|(i, a)| {
            a.into_string()
                .map_err(|_| format!("argument #{} is not valid text (UTF-8)", i + 1))
        })
        .collect()
}

/// `--fingerprint`: the key's fingerprint on stdout (created on first use), or why not on stderr.
fn print_fingerprint(owner: &KeyOwner) -> i32 {
    let path = match owner {
        KeyOwner::Initiator(file) => device_trust::initiator_key_path(file.as_deref()),
        KeyOwner::Device(target) => {
            device_trust::device_key_path(target.device_key_file.as_deref(), target.uid)
        }
    };
    match path.and_then(|p| device_trust::load_key(&p)) {
        Ok(key) => {
            println!("{}", key.public().fingerprint());
            0
        }
        Err(e) => {
            eprintln!("connectd: {e}");
            i32::from(ExitCode::Unknown.code())
        }
    }
}

fn usage_error(message: &str) -> ! {
    eprintln!("connectd: {message}");
    std::process::exit(i32::from(USAGE_EXIT_STATUS));
}

fn run(command: Command, options: &RunOptions) -> i32 {
    // One thread: a tunnel's packets all go through one endpoint task anyway, and with worker
    // threads its TCP reader and writer tasks woke each other across cores (about 10% more CPU per
    // GB in p2p-bench, for no throughput).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("connectd: cannot start the async runtime: {e}");
            return i32::from(ExitCode::Unknown.code());
        }
    };
    let out = Output::new(options.status_lines);
    let status = runtime.block_on(async {
        let _background = os::BackgroundChild::detect();
        match command {
            Command::Initiator {
                config, warnings, ..
            } => {
                out.warnings(&warnings);
                i32::from(initiator::run(config, &out).await.code())
            }
            Command::Target {
                config, warnings, ..
            } => {
                out.warnings(&warnings);
                i32::from(target::run(config, &out).await.code())
            }
            Command::SelfTest { server, json, .. } => self_test::run(&server, json, &out).await,
            Command::AuthHash {
                user,
                label,
                server,
                ..
            } => auth_hash::run(&user, label, &server, &out).await,
            Command::Help | Command::Version | Command::Fingerprint { .. } => 0,
        }
    });
    // Tasks still winding down (a stream being closed) must not keep the process alive.
    runtime.shutdown_timeout(Duration::from_secs(2));
    status
}
