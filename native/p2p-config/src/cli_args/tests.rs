use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use p2p_proto::{EncryptionMode, Uid};

use super::*;

/// The seed's one-line example: `.\connectd.exe -s -c eW91... c3Vw... 80:00:00:00:00:00:00:F1 T33000 1 127.0.0.1 12`.
const SEED_LINE: &str =
    "-s -c eW91cm5hbWVAZXhhbXBsZS5jb20= c3VwM3JzZWtyZXQh 80:00:00:00:00:00:00:F1 T33000 1 127.0.0.1 12";

/// A valid server key (base64 of 32 bytes).
const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn args(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_string).collect()
}

fn parse(line: &str) -> Result<Command, UsageError> {
    parse_args(&args(line))
}

fn initiator(line: &str) -> (InitiatorConfig, RunOptions) {
    match parse(line) {
        Ok(Command::Initiator {
            config, options, ..
        }) => (config, options),
        other => panic!("{line}: expected an initiator, got {other:?}"),
    }
}

fn error(line: &str) -> String {
    match parse(line) {
        Err(e) => e.to_string(),
        Ok(c) => panic!("{line}: expected an error, got {c:?}"),
    }
}

fn seed_sample() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/provisioning/seed-sample.txt")
}

#[test]
fn the_seeds_example_line() {
    let (config, options) = initiator(SEED_LINE);
    let expected = InitiatorConfig {
        name: None,
        device_id: "80:00:00:00:00:00:00:F1".parse::<Uid>().unwrap(),
        user: "yourname@example.com".into(),
        password: Some("sup3rsekret!".into()),
        auth_hash: None,
        server: None,
        server_key: None,
        local_port: 33000,
        bind_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
        encryption: EncryptionMode::Rc4,
        max_outstanding: Some(12),
        autoconnect: AutoConnect::Once,
        restrict_ip: None,
        lifetime_min: 0,
        idle_limit_sec: 0,
        key_file: None,
        device_key: None,
        accept_key: None,
        trust_first_use: false,
    };
    assert_eq!(config, expected);
    assert_eq!(
        options,
        RunOptions {
            status_lines: true,
            verbose: false,
            background: None
        }
    );
}

#[test]
fn lifetime_and_idle_limit() {
    let (config, _) = initiator(&format!("{SEED_LINE} 60 300"));
    assert_eq!((config.lifetime_min, config.idle_limit_sec), (60, 300));
}

#[test]
fn options_before_c_and_server_override() {
    let line = format!("-v -y 127.0.0.1:5980 --server-key={KEY} -d /run/x.pid {SEED_LINE}");
    let (config, options) = initiator(&line);
    assert_eq!(config.server.as_deref(), Some("127.0.0.1:5980"));
    assert_eq!(config.server_key.as_deref(), Some(KEY));
    assert!(options.verbose && options.status_lines);
    assert_eq!(
        options.background,
        Some(Background {
            pid_file: Some(PathBuf::from("/run/x.pid"))
        })
    );
    let (config, options) = initiator(&format!("--server=[::1]:5980 -d {SEED_LINE}"));
    assert_eq!(config.server.as_deref(), Some("[::1]:5980"));
    assert_eq!(options.background, Some(Background { pid_file: None }));
}

#[test]
fn encryption_by_number_or_name_and_unpadded_base64() {
    let (config, _) = initiator("-c eW91cm5hbWVAZXhhbXBsZS5jb20 c3VwM3JzZWtyZXQh 80:00:00:00:00:00:00:f1 t33000 chacha 0.0.0.0 25");
    assert_eq!(config.encryption, EncryptionMode::ChaCha20Poly1305);
    assert_eq!(config.user, "yourname@example.com");
    assert_eq!(config.bind_address, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    assert_eq!(config.max_outstanding, Some(25));
}

#[test]
fn p_line_with_auth_hash_and_restrict_ip() {
    let (config, _) = initiator(
        "-p eW91cm5hbWVAZXhhbXBsZS5jb20= 7.c2VjcmV0 80:00:00:00:00:00:00:F1 T33001 3 127.0.0.1 192.168.1.5 12 30 600",
    );
    assert_eq!(config.password, None);
    assert_eq!(config.auth_hash.as_deref(), Some("7.c2VjcmV0"));
    assert_eq!(config.restrict_ip, Some("192.168.1.5".parse().unwrap()));
    assert_eq!(config.local_port, 33001);
    assert_eq!((config.lifetime_min, config.idle_limit_sec), (30, 600));
    let (any, _) = initiator(
        "-p eW91cm5hbWVAZXhhbXBsZS5jb20= 7.c2VjcmV0 80:00:00:00:00:00:00:F1 T33001 3 127.0.0.1 0.0.0.0 12 0 0",
    );
    assert_eq!(any.restrict_ip, None, "0.0.0.0 means any client");
}

#[test]
fn provisioning_file_and_blob() {
    let path = seed_sample();
    let line = format!("-s -y 127.0.0.1:5980 -f {}", path.display());
    let (config, _) = initiator(&line);
    assert_eq!(config.user, "username@remote.it");
    assert_eq!(config.password.as_deref(), Some("weaved1234"));
    assert_eq!(config.local_port, 33300);
    assert_eq!(config.max_outstanding, Some(12));
    assert_eq!(config.server.as_deref(), Some("127.0.0.1:5980"));

    use base64::Engine;
    let blob = base64::engine::general_purpose::STANDARD.encode(std::fs::read(&path).unwrap());
    let (from_blob, _) = initiator(&format!("-y 127.0.0.1:5980 -e {blob}"));
    assert_eq!(from_blob, config);
}

#[test]
fn target_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("target.conf");
    std::fs::write(
        &path,
        "UID 80:00:00:00:01:00:0A:C2\npassword s3cret\nproxy_dest_port 22\napplication_type ssh\n",
    )
    .unwrap();
    match parse(&format!("--server-key {KEY} -f {}", path.display())) {
        Ok(Command::Target { config, .. }) => {
            assert_eq!(config.proxy_dest_port, 22);
            assert_eq!(config.application_type, 28);
            assert_eq!(config.server_key.as_deref(), Some(KEY));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn self_test_auth_hash_help_version() {
    assert_eq!(
        parse("-y host:5980 -n --json"),
        Ok(Command::SelfTest {
            server: ServerChoice {
                server: Some("host:5980".into()),
                server_key: None
            },
            json: true,
            options: RunOptions::default(),
        })
    );
    assert_eq!(
        parse("--auth-hash --user me@example.com --label laptop"),
        Ok(Command::AuthHash {
            user: "me@example.com".into(),
            label: Some("laptop".into()),
            server: ServerChoice::default(),
            options: RunOptions::default(),
        })
    );
    assert_eq!(parse(""), Ok(Command::Help));
    assert_eq!(parse("-h"), Ok(Command::Help));
    assert_eq!(parse(&format!("{SEED_LINE} --help")), Ok(Command::Help));
    assert_eq!(parse("--version"), Ok(Command::Version));
}

#[test]
fn every_malformed_line_is_one_line_naming_the_argument() {
    const U: &str = "eW91cm5hbWVAZXhhbXBsZS5jb20=";
    const P: &str = "c3VwM3JzZWtyZXQh";
    const ID: &str = "80:00:00:00:00:00:00:F1";
    let cases: Vec<(String, &str)> = vec![
        (
            format!("-c {U} {P} {ID} T33000 1 127.0.0.1"),
            "-c takes 7 arguments",
        ),
        (format!("-c {U} {P} {ID} T33000 1 127.0.0.1 12 5"), "got 8"),
        (
            format!("-c {U} {P} {ID} T33000 1 127.0.0.1 12 5 5 5"),
            "got 10",
        ),
        (
            format!("-c ***notb64 {P} {ID} T33000 1 127.0.0.1 12"),
            "BASE64_USER is not valid base64",
        ),
        (
            format!("-c {U} c3VwM3JzZWtyZXQh! {ID} T33000 1 127.0.0.1 12"),
            "BASE64_PASSWORD is not valid base64",
        ),
        (
            format!("-c {U} /w== {ID} T33000 1 127.0.0.1 12"),
            "BASE64_PASSWORD does not decode to UTF-8",
        ),
        (
            format!("-c {U} {P} 80:00:00:00:00:00:F1 T33000 1 127.0.0.1 12"),
            "DEVICE_UID: invalid device UID",
        ),
        (
            format!("-c {U} {P} 80-00-00-00-00-00-00-F1 T33000 1 127.0.0.1 12"),
            "DEVICE_UID",
        ),
        (
            format!("-c {U} {P} {ID} 33000 1 127.0.0.1 12"),
            "T<port>: '33000' must be T followed",
        ),
        (format!("-c {U} {P} {ID} U33000 1 127.0.0.1 12"), "T<port>"),
        (
            format!("-c {U} {P} {ID} T70000 1 127.0.0.1 12"),
            "T<port>: invalid port '70000'",
        ),
        (
            format!("-c {U} {P} {ID} T33000 7 127.0.0.1 12"),
            "ENCRYPTION_MODE: invalid encryption mode '7'",
        ),
        (
            format!("-c {U} {P} {ID} T33000 aes 127.0.0.1 12"),
            "ENCRYPTION_MODE",
        ),
        (
            format!("-c {U} {P} {ID} T33000 1 localhost 12"),
            "BIND_ADDRESS: invalid IP address 'localhost'",
        ),
        (
            format!("-c {U} {P} {ID} T33000 1 127.0.0.1 0"),
            "MAXOUTSTANDING: invalid packet window '0'",
        ),
        (
            format!("-c {U} {P} {ID} T33000 1 127.0.0.1 twelve"),
            "MAXOUTSTANDING",
        ),
        (
            format!("-c {U} {P} {ID} T33000 1 127.0.0.1 12 -5 0"),
            "LIFETIME_MIN: invalid limit '-5'",
        ),
        (
            format!("-c {U} {P} {ID} T33000 1 127.0.0.1 12 0 1h"),
            "IDLE_LIMIT: invalid limit '1h'",
        ),
        (
            format!("-p {U} 7.abc {ID} T33000 3 127.0.0.1 12 0 0"),
            "-p takes 10 arguments",
        ),
        (
            format!("-p {U} 7.abc {ID} T33000 3 127.0.0.1 1.2.3 12 0 0"),
            "RESTRICT_IP: invalid IP address",
        ),
        (
            format!("-c {U} {P} {ID} T33000 1 127.0.0.1 12 -s"),
            "LIFETIME_MIN",
        ),
        (
            format!("{U} -c {P} {ID} T33000 1 127.0.0.1 12"),
            "unexpected argument #1",
        ),
        ("-f".into(), "-f needs a value: -f FILE"),
        (
            "-f /nonexistent/dir/p2p.txt".into(),
            "/nonexistent/dir/p2p.txt: cannot read the file",
        ),
        ("-e !!!".into(), "-e blob: invalid base64"),
        (
            "-e cmVtb3RlX2FkZHJlc3MgODA6MDA6MDA6MDA6MDE6MDA6MEE6QzIKYXV0b2Nvbm5lY3QgOQo=".into(),
            "-e blob:2: key 'autoconnect': invalid value '9'",
        ),
        ("-f a -e b".into(), "-f and -e cannot be combined"),
        ("-n -f a".into(), "-n and -f cannot be combined"),
        (format!("-n {SEED_LINE}"), "-n and -c cannot be combined"),
        ("-x".into(), "unknown option '-x'"),
        ("--servr 1.2.3.4:5".into(), "unknown option '--servr'"),
        ("-s -v".into(), "nothing to do"),
        ("-y".into(), "-y needs a value: -y HOST:PORT"),
        (
            "-y relay.example.com -n".into(),
            "-y: invalid server address 'relay.example.com': no port",
        ),
        (
            "--server=host:0 -n".into(),
            "--server: invalid server address",
        ),
        (
            "--server-key abc -n".into(),
            "--server-key: invalid server key",
        ),
        ("-y a:1 -y b:2 -n".into(), "-y/--server is given twice"),
        (
            format!("--json {SEED_LINE}"),
            "--json applies to -n only, not to -c",
        ),
        (
            "-d -n".into(),
            "-d applies to a tunnel or a target, not to -n",
        ),
        ("-d -d -n".into(), "-d is given twice"),
        (
            "--auth-hash".into(),
            "--auth-hash needs the account: --auth-hash --user NAME",
        ),
        ("--auth-hash --user".into(), "--user needs a value"),
        (
            "--user bob -n".into(),
            "--user and --label apply to --auth-hash only",
        ),
        (
            "--auth-hash=1 --user bob".into(),
            "--auth-hash takes no value",
        ),
        ("--json=yes -n".into(), "--json takes no value"),
    ];
    for (line, fragment) in cases {
        let message = error(&line);
        assert!(
            message.contains(fragment),
            "{line}\n  gave: {message}\n  want: {fragment}"
        );
        assert!(
            !message.contains('\n'),
            "{line}: more than one line: {message}"
        );
    }
}

#[test]
fn empty_auth_hash() {
    let mut line = args("-p eW91 x 80:00:00:00:00:00:00:F1 T1 1 127.0.0.1 0.0.0.0 12 0 0");
    line[2] = " ".into();
    assert_eq!(
        parse_args(&line),
        Err(UsageError::new("AUTH_HASH is empty"))
    );
}

#[test]
fn errors_never_show_the_password_or_auth_hash() {
    // A password that is valid base64 but not UTF-8 text, and an invalid -p line: neither may echo them.
    let message = error("-c eW91 /w== 80:00:00:00:00:00:00:F1 T1 1 127.0.0.1 12");
    assert!(!message.contains("/w=="), "{message}");
    let message = error("-p eW91 s3cret.hash 80:00:00:00:00:00:00:F1 T1 1 127.0.0.1 bad 12 0 0");
    assert!(
        message.contains("RESTRICT_IP") && !message.contains("s3cret"),
        "{message}"
    );
    let message = error("s3cret -c");
    assert!(!message.contains("s3cret"), "{message}");
    let debug = format!("{:?}", parse(SEED_LINE).unwrap());
    assert!(!debug.contains("sup3rsekret!"), "{debug}");
}

#[test]
fn usage_lists_every_option_with_an_example() {
    let text = usage();
    for option in [
        "-c ",
        "-p ",
        "-f FILE",
        "-e BLOB",
        "-n",
        "--json",
        "-s",
        "-y HOST:PORT",
        "--server",
        "--server-key",
        "-d [PIDFILE]",
        "--auth-hash",
        "--user",
        "--label",
        "-v",
        "--help",
        "--version",
        "P2P_SERVER",
        "P2P_SERVER_KEY",
    ] {
        assert!(text.contains(option), "usage lacks {option}");
    }
    assert!(text.matches("e.g. connectd").count() >= 10);
    for name in P_ARGS.iter().chain(C_ARGS.iter()) {
        assert!(text.contains(name), "usage lacks {name}");
    }
}

#[test]
fn without_background_drops_only_d_and_its_pid_file() {
    let strip = |line: &str| without_background(&args(line)).join(" ");
    assert_eq!(strip(&format!("-d /run/x.pid {SEED_LINE}")), SEED_LINE);
    assert_eq!(strip(&format!("-d {SEED_LINE}")), SEED_LINE);
    assert_eq!(strip("-y h:1 -d -f a.conf"), "-y h:1 -f a.conf");
    assert_eq!(strip("-f -d.conf -d p"), "-f -d.conf");
    assert_eq!(
        strip("--server=h:1 -d p -s -e QQ=="),
        "--server=h:1 -s -e QQ=="
    );
    // The result parses to the same command without the background option.
    let with = parse(&format!("-d /run/x.pid {SEED_LINE}")).unwrap();
    let without = parse_args(&without_background(&args(&format!(
        "-d /run/x.pid {SEED_LINE}"
    ))))
    .unwrap();
    match (with, without) {
        (
            Command::Initiator {
                config: a,
                options: o,
                ..
            },
            Command::Initiator {
                config: b,
                options: p,
                ..
            },
        ) => {
            assert_eq!(a, b);
            assert!(o.background.is_some() && p.background.is_none());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn t0_asks_for_any_free_port() {
    let (config, _) = initiator(
        "-c eW91cm5hbWVAZXhhbXBsZS5jb20= c3VwM3JzZWtyZXQh 80:00:00:00:00:00:00:F1 T0 3 127.0.0.1 12",
    );
    assert_eq!(config.local_port, 0);
}

#[test]
fn fingerprint_and_accept_key() {
    let fp = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU";
    assert_eq!(
        parse_args(&args("--fingerprint")).unwrap(),
        Command::Fingerprint {
            key: KeyOwner::Initiator(None)
        }
    );
    let line = format!("--accept-key {fp} {SEED_LINE}");
    let (config, _) = initiator(&line);
    assert_eq!(config.accept_key.as_deref(), Some(fp));
    let bad = parse_args(&args(&format!("--accept-key SHA256:short {SEED_LINE}"))).unwrap_err();
    assert!(bad.message().contains("--accept-key"), "{bad}");
    let (config, _) = initiator(&format!("--device-key {fp} {SEED_LINE}"));
    assert_eq!(config.device_key.as_deref(), Some(fp));
    let twice = parse_args(&args(&format!(
        "--device-key {fp} --device-key {fp} {SEED_LINE}"
    )));
    assert!(twice.unwrap_err().message().contains("--device-key"));
    let not_here = parse_args(&args(&format!("--device-key {fp} -n"))).unwrap_err();
    assert!(
        not_here
            .message()
            .contains("--device-key applies to a tunnel"),
        "{not_here}"
    );
    let not_here = parse_args(&args(&format!("--accept-key {fp} -n"))).unwrap_err();
    assert!(
        not_here.message().contains("applies to a tunnel"),
        "{not_here}"
    );
}

#[test]
fn trust_first_use_is_an_explicit_opt_in_of_a_tunnel() {
    let (config, _) = initiator(SEED_LINE);
    assert!(!config.trust_first_use);
    let (config, _) = initiator(&format!("--trust-first-use {SEED_LINE}"));
    assert!(config.trust_first_use);
    let not_here = parse_args(&args("--trust-first-use -n")).unwrap_err();
    assert!(
        not_here
            .message()
            .contains("--trust-first-use applies to a tunnel"),
        "{not_here}"
    );
}
