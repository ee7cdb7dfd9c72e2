//! The Windows build (cross-built by tools/windows/cross.sh) under wine, against the Linux
//! server and Linux peers on loopback: `connectd.exe` as initiator with the seed's one-liner and with a
//! provisioning file (CRLF endings, a Windows path), as a target for a Linux initiator, the network
//! self-test, console Ctrl-C, and the C ABI (`remoteitp2p.dll`) from a small C program.
//!
//! They need the Windows binaries and wine, so a plain `cargo test` skips them (`#[ignore]`);
//! `build.ps1 -Task Test` builds the binaries, sets `P2P_WIN_BIN_DIR` and runs them with `--ignored`.
//! What wine cannot show (real Windows network stacks, console windows closed by a user, services) is
//! listed in README's Windows section.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use p2p_system_tests::initiator::Initiator;
use p2p_system_tests::lab::{Build, TRANSFER_TIMEOUT};
use p2p_system_tests::poll::wait_until;
use p2p_system_tests::ports::{free_tcp_port, tcp_port_is_free, wait_for_seed_port};
use p2p_system_tests::proc::Proc;
use p2p_system_tests::services::{HttpServer, Kind, Transfer, TransferService};
use p2p_system_tests::{wine, Lab};

const WIN: Build = Build::WindowsUnderWine;
const LEN: u64 = 20 * 1024 * 1024;
const WINE_TIMEOUT: Duration = Duration::from_secs(60);

/// The seed's one-liner with the local port `port` (the seed's is 33000).
fn seed_args(port: u16) -> Vec<String> {
    [
        "-s",
        "-c",
        "eW91cm5hbWVAZXhhbXBsZS5jb20=",
        "c3VwM3JzZWtyZXQh",
        "80:00:00:00:00:00:00:F1",
        &format!("T{port}"),
        "1",
        "127.0.0.1",
        "12",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// A checksummed LEN-byte transfer each way through `port`.
fn both_ways(port: u16, what: &str) {
    for kind in [Kind::Download, Kind::Upload] {
        Transfer::run(port, kind, LEN, TRANSFER_TIMEOUT)
            .unwrap_or_else(|e| panic!("{what}: {kind:?} of {LEN} bytes: {e}"));
    }
}

/// Under wine quinn-udp's batched socket set-up is refused: the fallback is what carries the tunnel.
fn assert_fell_back(p: &Proc) {
    assert!(
        p.output().contains("UDP batching unavailable"),
        "connectd.exe did not say it fell back to one datagram per system call:\n{}",
        p.tail(30)
    );
}

#[test]
#[ignore = "needs the Windows build (P2P_WIN_BIN_DIR) and wine: build.ps1 -Task Test runs it"]
fn seed_one_liner_carries_curl_and_20_mb_each_way() {
    let lab = Lab::new("wine_oneliner");
    let http = HttpServer::start(b"<html>hello from a Windows initiator</html>\n".to_vec());
    let svc = TransferService::start();
    let (account, device) = lab.seed_account_and_device();
    let _web = lab.target(&device, http.port(), &[]);
    // The seed's line exactly, port 33000 included (the other tests here take free ports).
    let port = wait_for_seed_port(Duration::from_secs(90));
    let mut i = Initiator::new(lab.connectd_of(WIN, "initiator", &seed_args(port), &[]));
    assert_eq!(i.wait_up(), port);
    lab.curl_expect(port, &http.body);
    assert_fell_back(&i.proc);

    // A second device of the same account for the bulk transfer, also through connectd.exe.
    let bulk = lab.device(&account);
    let _bulk_target = lab.target(&bulk, svc.port(), &[]);
    let mut b = Initiator::new(lab.connectd_of(
        WIN,
        "initiator-bulk",
        &lab.spec(&account, &bulk, 3).args(),
        &[],
    ));
    let bulk_port = b.wait_up();
    both_ways(bulk_port, "connectd.exe initiator");
    lab.check_logs();
}

#[test]
#[ignore = "needs the Windows build (P2P_WIN_BIN_DIR) and wine: build.ps1 -Task Test runs it"]
fn ctrl_c_ends_with_exit_3_and_frees_the_port() {
    let lab = Lab::new("wine_ctrl_c");
    let http = HttpServer::start(b"ctrl-c\n".to_vec());
    let (_, device) = lab.seed_account_and_device();
    let _t = lab.target(&device, http.port(), &[]);
    let port = free_tcp_port();
    let mut i = Initiator::new(lab.connectd_of(WIN, "initiator", &seed_args(port), &[]));
    i.wait_up();
    lab.curl_expect(port, &http.body);
    // wine turns SIGINT into the console's CTRL_C_EVENT for the program's handler.
    i.proc.interrupt();
    let (code, line) = i.wait_exit_line(Duration::from_secs(20));
    assert_eq!(code, 3, "Ctrl-C must end with !!exit [003], got: {line}");
    let status = i.proc.wait_exit_code(Duration::from_secs(20));
    assert_eq!(status, 3, "connectd.exe's exit status after Ctrl-C");
    wait_until("the local port to be free", Duration::from_secs(10), || {
        tcp_port_is_free(port)
    });
}

#[test]
#[ignore = "needs the Windows build (P2P_WIN_BIN_DIR) and wine: build.ps1 -Task Test runs it"]
fn provisioning_file_with_crlf_endings_and_a_windows_path() {
    let lab = Lab::new("wine_provisioning");
    let http = HttpServer::start(b"<html>from a CRLF provisioning file</html>\n".to_vec());
    let (account, device) = lab.account_and_device();
    let _t = lab.target(&device, http.port(), &[]);
    let port = free_tcp_port();
    let unix_file = lab.initiator_file(&account, &device, port, 0);
    let text = std::fs::read_to_string(&unix_file).unwrap();
    // Notepad's line endings, in a folder with a space as under "C:\Users\Jane Doe\Documents".
    let folder = lab.dir().join("Jane Doe");
    std::fs::create_dir_all(&folder).unwrap();
    let file = folder.join("SSH-Pi.txt");
    std::fs::write(&file, text.replace("\r\n", "\n").replace('\n', "\r\n")).unwrap();
    let windows_path = wine::windows_path(&file);
    assert!(windows_path.starts_with("Z:\\") && windows_path.contains("Jane Doe\\SSH-Pi.txt"));
    let mut i = Initiator::new(lab.connectd_of(
        WIN,
        "initiator-file",
        &["-s".into(), "-f".into(), windows_path],
        &[],
    ));
    assert_eq!(i.wait_up(), port);
    lab.curl_expect(port, &http.body);
    lab.check_logs();
}

#[test]
#[ignore = "needs the Windows build (P2P_WIN_BIN_DIR) and wine: build.ps1 -Task Test runs it"]
fn windows_target_serves_a_linux_initiator() {
    let lab = Lab::new("wine_target");
    let svc = TransferService::start();
    let (account, device) = lab.account_and_device();
    let mut target = lab.start_target_of(WIN, &device, svc.port(), &[]);
    target.wait_registered();
    // The Windows target keeps its key in wine's %APPDATA%: its fingerprint is read with connectd.exe,
    // as its owner would on that machine, and given to the Linux initiator.
    let args = [
        "--fingerprint".to_string(),
        "-f".into(),
        WIN.path_arg(&target.conf),
    ];
    let out = lab
        .connectd_cmd_of(WIN, &args, &[])
        .output()
        .expect("run connectd.exe --fingerprint");
    let fingerprint = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(fingerprint.starts_with("SHA256:"), "{out:?}");
    let mut spec = lab.spec(&account, &device, 3);
    spec.device_key = Some(fingerprint);
    let i = lab.initiator(&spec, &[]);
    both_ways(i.port(), "connectd.exe target");
    Transfer::run(i.port(), Kind::Echo, 1024 * 1024, TRANSFER_TIMEOUT)
        .unwrap_or_else(|e| panic!("echo through the Windows target: {e}"));
    assert_fell_back(&target.proc);
    lab.check_logs();
}

#[test]
#[ignore = "needs the Windows build (P2P_WIN_BIN_DIR) and wine: build.ps1 -Task Test runs it"]
fn network_self_test_passes() {
    let lab = Lab::new("wine_netcheck");
    let u = &lab.server.addrs.udp;
    let probes = p2p_system_tests::lab::env(&[
        ("P2P_PROBE_ADDR1", &u[0].to_string()),
        ("P2P_PROBE_ADDR2", &u[1].to_string()),
        ("P2P_PROBE_ADDR3", &u[2].to_string()),
    ]);
    let mut p = lab.connectd_of(WIN, "netcheck", &["-n".into()], &probes);
    let code = p.wait_exit_code(WINE_TIMEOUT);
    let out = p.output();
    for section in [
        "Checking TCP connectivity to",
        "Checking UDP connectivity to",
        "SHA1 test:",
        "RC4 test:",
        "XXTEA test:",
        "Looks compatible.",
        // The server's third probe address is on a second IP, and its change-IP answers come from there.
        "different IP",
        "NAT filtering: endpoint-independent",
    ] {
        assert!(
            out.contains(section),
            "no '{section}' in the -n output:\n{out}"
        );
    }
    assert_eq!(code, 0, "connectd.exe -n must pass on loopback:\n{out}");
}

#[test]
#[ignore = "needs the Windows build (P2P_WIN_BIN_DIR) and wine: build.ps1 -Task Test runs it"]
fn c_abi_from_a_windows_program() {
    let lab = Lab::new("wine_c_abi");
    let marker = "MARKER-from-the-windows-c-abi";
    let http = HttpServer::with_marker_body(marker, 64 * 1024);
    let (account, device) = lab.account_and_device();
    let _t = lab.target(&device, http.port(), &[]);

    // The program and a copy of the DLL side by side, as an application would ship them.
    let dir = lab.dir().join("ffi");
    std::fs::create_dir_all(&dir).unwrap();
    let dll = wine::windows_file("remoteitp2p.dll");
    std::fs::copy(&dll, dir.join("remoteitp2p.dll")).unwrap();
    let exe = dir.join("ffi_smoke.exe");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let built = Command::new("x86_64-w64-mingw32-gcc")
        .arg("-O1")
        .arg("-I")
        .arg(root.join("native/p2p-ffi/include"))
        .arg(root.join("tests/windows/ffi_smoke.c"))
        .arg("-o")
        .arg(&exe)
        .arg(dir.join("remoteitp2p.dll"))
        .arg("-lws2_32")
        .status()
        .expect("run x86_64-w64-mingw32-gcc (tools/windows/cross.sh setup installs it)");
    assert!(built.success(), "building tests/windows/ffi_smoke.c failed");

    let config = p2p_system_tests::initiator::tunnel_config(&lab, &account, &device);
    let config_file = dir.join("config.json");
    std::fs::write(&config_file, config.to_string()).unwrap();
    let mut p = Proc::spawn(
        "ffi_smoke",
        {
            let mut c = wine::command(&exe);
            c.arg(wine::windows_path(&config_file)).arg(marker);
            c
        },
        lab.dir(),
        None,
    );
    let code = p.wait_exit_code(WINE_TIMEOUT);
    let out = p.output();
    assert!(
        out.contains("ffi_smoke: 0 failed"),
        "the C program's checks:\n{out}"
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        http.requests(),
        1,
        "the page was fetched once through the tunnel"
    );
}
