//! The target (device) daemon: `connectd -f target.conf`, on `p2p_net::Target`.
//!
//! ```text
//! !!status - pid=4242                                   (-s)
//! Registering 80:00:00:00:01:00:0A:C2 with 127.0.0.1:5980, forwarding to 127.0.0.1:22.
//! !!status - bound to UDP port 40123                    (-s)
//! Registered 80:00:00:00:01:00:0A:C2.
//! !!status registered uid=80:00:00:00:01:00:0A:C2       (-s)
//! !!status connecttunnel=1                              (-s, each new session; closetunnel= when one ends)
//! !!exit [003] : terminated by signal                   (-s)
//! ```

use p2p_config::{ExitCode, TargetConfig};
use p2p_net::{Target, TargetState, TargetStatus};

use crate::os::Shutdown;
use crate::output::Output;

pub async fn run(config: TargetConfig, out: &Output) -> ExitCode {
    let mut shutdown = Shutdown::register();
    out.status(&format!("!!status - pid={}", std::process::id()));
    let target = match Target::start(config).await {
        Ok(target) => target,
        Err(e) => return out.fail(crate::exit_codes::for_error(e.kind), &e.message),
    };
    let first = target.status();
    out.line(&format!(
        "Registering {} with {}, forwarding to {}.",
        first.uid, first.server, first.service
    ));
    let mut watch = target.watch();
    let mut shown = StatusReporter::default();
    loop {
        let status = watch.borrow_and_update().clone();
        shown.report(&status, out);
        if status.state.is_final() {
            return finish(&status, out);
        }
        tokio::select! {
            changed = watch.changed() => {
                if changed.is_err() {
                    return out.fail(ExitCode::Unknown, "the target ended without a final status");
                }
            }
            signal = shutdown.wait() => {
                log::info!("{signal}: closing every session");
                target.stop().await;
                return out.exit(ExitCode::Signal, ExitCode::Signal.description());
            }
        }
    }
}

fn finish(status: &TargetStatus, out: &Output) -> ExitCode {
    match &status.last_error {
        Some(error) => out.fail(crate::exit_codes::for_end(error), &error.message),
        None => out.exit(ExitCode::Ok, ""),
    }
}

/// Prints the status lines for what changed: remembers what has been printed, so each change is
/// reported once.
#[derive(Default)]
struct StatusReporter {
    state: Option<TargetState>,
    udp_port: Option<u16>,
    sessions_total: u64,
    sessions_open: u32,
}

impl StatusReporter {
    fn report(&mut self, status: &TargetStatus, out: &Output) {
        if let Some(port) = status.local_udp_port {
            if self.udp_port != Some(port) {
                self.udp_port = Some(port);
                out.status(&format!("!!status - bound to UDP port {port}"));
            }
        }
        if self.state != Some(status.state) {
            match status.state {
                TargetState::Registered => {
                    out.line(&format!("Registered {}.", status.uid));
                    out.status(&format!("!!status registered uid={}", status.uid));
                }
                TargetState::Reconnecting => {
                    let why = status
                        .last_error
                        .as_ref()
                        .map_or("lost the server", |e| e.message.as_str());
                    out.problem(&format!(
                        "{why}; registering again (running sessions go on)"
                    ));
                    out.status("!!status reconnecting");
                }
                TargetState::Connecting | TargetState::Stopped | TargetState::Failed => {}
            }
            self.state = Some(status.state);
        }
        if status.sessions_total > self.sessions_total {
            self.sessions_total = status.sessions_total;
            out.status(&format!("!!status connecttunnel={}", status.sessions_total));
        }
        if status.sessions_open < self.sessions_open {
            out.status(&format!("!!status closetunnel={}", status.sessions_open));
        }
        self.sessions_open = status.sessions_open;
    }
}
