//! Time to connect through the PowerShell cmdlet: `New-P2PConnection` to the first byte echoed back,
//! measured inside one `pwsh` process (the module imported once, as a user's session would), so the
//! figure is the cmdlet's own cost on top of the C ABI, not PowerShell's start-up.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::lab::{Lab, PASSWORD, USER};
use crate::tcp_load::ECHO;

/// Where the module and PowerShell are (`build.ps1 -Task Bench` passes both).
pub struct CmdletHost {
    pub pwsh: PathBuf,
    pub module: PathBuf,
}

/// `runs` connects through the cmdlet to device `uid`, each to the first echoed byte, then stopped.
pub fn connects(
    host: &CmdletHost,
    lab: &Lab,
    uid: &str,
    runs: usize,
) -> Result<Vec<Duration>, String> {
    // Values reach the script as environment variables, so nothing needs quoting; the password is
    // the benchmark user's throw-away one.
    let script = format!(
        r#"$ErrorActionPreference = 'Stop'
if ($PSStyle) {{ $PSStyle.OutputRendering = 'PlainText' }}
Import-Module $env:BENCH_MODULE
$cred = [pscredential]::new($env:BENCH_USER, (ConvertTo-SecureString $env:BENCH_PASSWORD -AsPlainText -Force))
$times = foreach ($i in 1..{runs}) {{
    $sw = [Diagnostics.Stopwatch]::StartNew()
    $c = New-P2PConnection -DeviceId $env:BENCH_UID -Credential $cred -LocalPort 0 -Server $env:BENCH_SERVER -ServerKey $env:BENCH_SERVER_KEY -DeviceKey $env:BENCH_DEVICE_KEY
    $tcp = [Net.Sockets.TcpClient]::new('127.0.0.1', $c.LocalPort)
    $tcp.NoDelay = $true
    $s = $tcp.GetStream()
    $s.Write([byte[]]@({ECHO}, 120), 0, 2)
    if ($s.ReadByte() -ne 120) {{ throw 'no echo through the tunnel' }}
    $sw.Elapsed.TotalMilliseconds
    $tcp.Dispose()
    $c | Stop-P2PConnection
}}
'TIMES ' + (($times | ForEach-Object {{ $_.ToString([Globalization.CultureInfo]::InvariantCulture) }}) -join ',')
"#
    );
    // A relative path would be taken for a module name.
    let module = std::path::absolute(&host.module)
        .map_err(|e| format!("module path {}: {e}", host.module.display()))?;
    let out = Command::new(&host.pwsh)
        .args(["-NoProfile", "-NonInteractive", "-Command", &script])
        .env("BENCH_MODULE", &module)
        .env("BENCH_USER", USER)
        .env("BENCH_PASSWORD", PASSWORD)
        .env("BENCH_UID", uid)
        .env("BENCH_DEVICE_KEY", lab.device_fingerprint(uid)?)
        .env("BENCH_SERVER", lab.control.to_string())
        .env("BENCH_SERVER_KEY", &lab.key)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", host.pwsh.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let Some(line) = stdout.lines().find_map(|l| l.strip_prefix("TIMES ")) else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let why = stderr
            .lines()
            .chain(stdout.lines())
            .find(|l| !l.trim().is_empty());
        return Err(format!(
            "the cmdlet run failed ({}): {}",
            out.status,
            why.unwrap_or("no output")
        ));
    };
    line.split(',')
        .map(|t| {
            t.trim()
                .parse::<f64>()
                .map(|ms| Duration::from_secs_f64(ms / 1000.0))
                .map_err(|_| format!("unexpected time '{t}' from the cmdlet run"))
        })
        .collect()
}
