//! `p2p-server`: see `cli.rs` for the command line.

fn main() -> std::process::ExitCode {
    p2p_server::cli::main()
}
