//! `connectd --help`: every option, each with an example.

/// The text `connectd -h` / `--help` prints (to stdout; on a usage error it goes to stderr).
pub fn usage() -> &'static str {
    USAGE
}

const USAGE: &str = "\
connectd - a connectd-compatible P2P initiator and target for a self-hosted RemoteItP2P server

USAGE
  connectd [OPTIONS] -c BASE64_USER BASE64_PASSWORD DEVICE_UID T<port> ENCRYPTION_MODE BIND_ADDRESS MAXOUTSTANDING [LIFETIME_MIN IDLE_LIMIT]
  connectd [OPTIONS] -p BASE64_USER AUTH_HASH DEVICE_UID T<port> ENCRYPTION_MODE BIND_ADDRESS RESTRICT_IP MAXOUTSTANDING LIFETIME_MIN IDLE_LIMIT
  connectd [OPTIONS] -f FILE
  connectd [OPTIONS] -e BLOB
  connectd [-y HOST:PORT] [--server-key KEY] -n [--json]
  connectd [-y HOST:PORT] [--server-key KEY] --auth-hash --user NAME [--label TEXT]
  connectd --fingerprint [-f FILE]

MODES (give exactly one; -c and -p take every argument after them, so they come last)
  -c ...        Open a P2P tunnel, logging in with a password.
                  BASE64_USER      the user name, base64 (UTF-8)
                  BASE64_PASSWORD  the password, base64 (UTF-8)
                  DEVICE_UID       the target's UID, eight hex bytes: 80:00:00:00:01:00:0A:C2
                  T<port>          the local TCP port to listen on, prefixed with T: T33000
                  ENCRYPTION_MODE  0 none, 1 RC4, 2 XXTEA (connectd's; weak), 3 ChaCha20-Poly1305 (recommended)
                  BIND_ADDRESS     the local address to listen on, usually 127.0.0.1
                  MAXOUTSTANDING   packets always allowed in flight, 1-1024 (connectd uses 12; the window still adapts)
                  LIFETIME_MIN     end the tunnel after this many minutes (0 = never)
                  IDLE_LIMIT       end the tunnel after this many seconds without traffic (0 = never)
                e.g. connectd -s -c eW91cm5hbWVAZXhhbXBsZS5jb20= c3VwM3JzZWtyZXQh 80:00:00:00:00:00:00:F1 T33000 3 127.0.0.1 12
  -p ...        The same with an auth hash (see --auth-hash) instead of the password, and RESTRICT_IP:
                the only client address allowed to use the local port (0.0.0.0 = any).
                e.g. connectd -p eW91cm5hbWVAZXhhbXBsZS5jb20= 7.Xk2... 80:00:00:00:00:00:00:F1 T33000 3 127.0.0.1 0.0.0.0 12 0 0
  -f FILE       Run from a provisioning file: an initiator file (remote_address, user_id, auth_hash or
                auth_pass, proxy_local_port...) or a target file (UID, password, proxy_dest_port...).
                e.g. connectd -f SSH-Pi.txt
  -e BLOB       The same with the whole file in base64.
                e.g. connectd -e \"$(base64 -w0 SSH-Pi.txt)\"
  -n            Network self-test against the server: DNS, TCP, UDP and NAT behaviour, port mapping,
                cipher self-tests, and a verdict. With the server's key (--server-key or P2P_SERVER_KEY) it
                checks the key and probes the UDP ports the server names; without, the default ports.
                e.g. connectd -y relay.example.com:5980 -n
  --auth-hash   Log in (the password is read without echo, or from a pipe) and print an auth hash: a
                credential for 'auth_hash' in a provisioning file or -p, valid only on this server, that can
                be revoked on its own and does not reveal the password.
                e.g. connectd --auth-hash --user me@example.com --label laptop
  --fingerprint Print the fingerprint of this installation's key (with -f: that file's key_file, or with
                a target file the device's key), creating the key if needed. Mode 3 sessions are end to
                end between these keys: the server cannot read them. A tunnel pins the device's key on
                first use (known_devices beside the key); pre-seed it with 'device_key SHA256:...' in
                the initiator file, read on the device with: connectd --fingerprint -f TARGET-FILE
                e.g. connectd --fingerprint -f SSH-Pi-target.txt

OPTIONS
  -s                 Print connectd's machine-readable status lines (!!status, !!connected, !!throughput, !!exit).
                       e.g. connectd -s -f SSH-Pi.txt
  -y HOST:PORT       The server's control address (also --server HOST:PORT); several nodes of one service,
                     separated by commas, are tried in turn. Otherwise the file's 'server' key, then the
                     environment variable P2P_SERVER.
                       e.g. connectd -y 203.0.113.7:5980 -f SSH-Pi.txt
  --server-key KEY   The server's public key (base64, printed by 'p2p-server init'). Otherwise the file's
                     'server_key' key, then the environment variable P2P_SERVER_KEY.
                       e.g. connectd --server-key q0Zl...= -f SSH-Pi.txt
  -d [PIDFILE]       Run in the background (Unix) and write its process ID to PIDFILE.
                       e.g. connectd -d /run/connectd-ssh.pid -f SSH-Pi.txt ; kill $(cat /run/connectd-ssh.pid)
  --json             With -n: print the report as one JSON object.
                       e.g. connectd -n --json
  --user NAME        With --auth-hash: the account to log in as.
  --label TEXT       With --auth-hash: a note stored with the hash, to recognise it when revoking.
                       e.g. connectd --auth-hash --user me@example.com --label \"build server\"
  --accept-key SHA256:...
                     The device's key changed (exit 023) and its owner confirmed the new fingerprint on the
                     device: accept it, replacing the pin once the device proves it.
                       e.g. connectd --accept-key SHA256:q0ZlUm... -f SSH-Pi.txt
  --device-key SHA256:...
                     Pin the device's key before the first connection (its fingerprint as 'connectd
                     --fingerprint -f TARGET-FILE' prints it on the device, or its base64 public key), so
                     that not even the first connection trusts the server's word for it.
                       e.g. connectd --device-key SHA256:q0ZlUm... -f SSH-Pi.txt
                     Pinned once the device proves it: later connections need not repeat it. Without
                     it (or a pin), an end-to-end (mode 3) connection refuses the device (exit 024).
  --trust-first-use  Trust the key the server introduces for a device that is neither pinned nor given
                     with --device-key, and pin it (ssh's accept-new): the first connection then trusts
                     the server, which could intercept it. A device without any key gets the legacy
                     handshake, which the server can read. Also 'trust_first_use 1' in the file.
                       e.g. connectd --trust-first-use -f SSH-Pi.txt
  -v                 Log more (info level) to stderr; RUST_LOG=debug etc. also works. Secrets are never logged.
  -h, --help         Show this text.
  --version          Show the version.

OUTPUT
  'Starting Proxy on port 33000 on index 1.' then 'Proxy started.' once the local port accepts connections.
  Ctrl-C (or SIGTERM) closes the tunnel cleanly. The process exit status is connectd's code, also shown
  by -s as '!!exit [CODE] : MESSAGE':
    001 lifetime or idle limit reached   003 ended by a signal        010 bad user
    011 authentication error             012 autoconnect failed       013 session create failed
    014 service timeout (device offline) 015 no such UID              016 UDP bind failed
    017 local port bind failed           020 peer closed or timed out 021 P2P failed
    023 the device's key is not the pinned one (both fingerprints are shown; see --accept-key)
    024 the device's key is not known here (see --device-key, --trust-first-use)
    025 unknown error                    064 command line error (not a connectd code)
";
