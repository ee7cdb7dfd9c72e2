//! `p2p-server`: see `cli.rs` for the command line.

#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    p2p_server::memory::return_large_buffers_to_the_os();
    p2p_server::cli::main()
}
