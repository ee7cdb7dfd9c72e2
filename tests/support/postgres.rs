//! A throwaway PostgreSQL cluster for the tests that run `p2p-server` over PostgreSQL: `initdb` into a
//! temporary directory, a server that listens only on a private Unix socket directory (no TCP port, so
//! parallel tests cannot collide and nothing outside the machine can reach it), trust authentication for
//! one superuser role, and an immediate stop on drop.
//!
//! PostgreSQL refuses to run as root, which is how CI and containers run the tests: then the cluster
//! belongs to `nobody` and its programs run through `runuser`. The server binaries come from Debian's
//! `postgresql` package (`/usr/lib/postgresql/<version>/bin`, not on PATH); a missing install fails the
//! test with the package to install, like the other external tools.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The superuser role `initdb` creates; tests connect as it.
pub const ROLE: &str = "p2ptest";
/// The socket file's name carries the port number; with a private directory any port is free.
const PORT: u16 = 5432;
/// The unprivileged account the cluster runs as when the tests run as root.
const UNPRIVILEGED_USER: &str = "nobody";

pub struct Postgres {
    bin_dir: PathBuf,
    data_dir: PathBuf,
    socket_dir: PathBuf,
    log_file: PathBuf,
    run_as: Option<&'static str>,
    // Last: removed after `drop` has stopped the server.
    _dir: tempfile::TempDir,
}

impl Postgres {
    /// Initialises and starts a fresh cluster; panics with the server's log if it does not come up.
    pub fn start() -> Postgres {
        let bin_dir = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("p2p-pg-")
            .tempdir()
            .expect("temp dir");
        let run_as = (std::fs::metadata(dir.path()).expect("stat temp dir").uid() == 0)
            .then_some(UNPRIVILEGED_USER);
        if let Some(user) = run_as {
            let (uid, gid) = ids_of(user);
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown cluster dir");
        }
        let pg = Postgres {
            data_dir: dir.path().join("data"),
            socket_dir: dir.path().join("socket"),
            log_file: dir.path().join("postgres.log"),
            bin_dir,
            run_as,
            _dir: dir,
        };
        pg.run_ok(
            "initdb",
            &[
                "--pgdata",
                path_str(&pg.data_dir),
                "--username",
                ROLE,
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--no-sync",
            ],
        );
        pg.run_ok("mkdir", &["-m", "0700", path_str(&pg.socket_dir)]);
        // Appended settings win over initdb's defaults. fsync off: a test cluster need not survive a power
        // cut, and every commit would otherwise wait for the disk.
        let settings = format!(
            "\nlisten_addresses = ''\nunix_socket_directories = '{}'\nport = {PORT}\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\n",
            pg.socket_dir.display()
        );
        append(&pg.data_dir.join("postgresql.conf"), &settings);
        let started = pg.run(
            "pg_ctl",
            &[
                "start",
                "--wait",
                "--timeout",
                "60",
                "--pgdata",
                path_str(&pg.data_dir),
                "--log",
                path_str(&pg.log_file),
            ],
        );
        if !started.status.success() {
            panic!(
                "PostgreSQL did not start: {}\n--- server log ---\n{}",
                String::from_utf8_lossy(&started.stderr),
                std::fs::read_to_string(&pg.log_file).unwrap_or_default()
            );
        }
        pg
    }

    /// Creates database `name` and returns its connection string.
    pub fn create_database(&self, name: &str) -> String {
        self.run_ok(
            "createdb",
            &[
                "--host",
                path_str(&self.socket_dir),
                "--port",
                &PORT.to_string(),
                "--username",
                ROLE,
                name,
            ],
        );
        self.connection_string(name)
    }

    /// A libpq-style key/value connection string, as tokio-postgres parses it.
    pub fn connection_string(&self, database: &str) -> String {
        format!(
            "host={} port={PORT} user={ROLE} dbname={database}",
            self.socket_dir.display()
        )
    }

    /// The same as a `postgres://` URL (the socket directory percent-encoded as the host), the form
    /// `p2p-server --database` takes.
    pub fn url(&self, database: &str) -> String {
        let host = path_str(&self.socket_dir)
            .replace('%', "%25")
            .replace('/', "%2F");
        format!("postgres://{ROLE}@{host}:{PORT}/{database}")
    }

    pub fn log_file(&self) -> &Path {
        &self.log_file
    }

    fn run(&self, program: &str, args: &[&str]) -> Output {
        let exe = if program == "mkdir" {
            PathBuf::from("mkdir")
        } else {
            self.bin_dir.join(program)
        };
        let mut cmd = match self.run_as {
            Some(user) => {
                let mut c = Command::new(crate::tools::require("runuser", "util-linux"));
                c.args(["-u", user, "--"]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        // initdb and pg_ctl look for their siblings next to themselves; a foreign PGDATA/PGHOST from the
        // developer's shell must not redirect them.
        cmd.args(args)
            .env_remove("PGDATA")
            .env_remove("PGHOST")
            .env_remove("PGPORT")
            .current_dir("/");
        cmd.output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()))
    }

    fn run_ok(&self, program: &str, args: &[&str]) {
        let out = self.run(program, args);
        assert!(
            out.status.success(),
            "{program} {args:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // Immediate: the cluster is thrown away, so there is nothing to flush.
        let _ = self.run(
            "pg_ctl",
            &[
                "stop",
                "--wait",
                "--mode",
                "immediate",
                "--pgdata",
                path_str(&self.data_dir),
            ],
        );
    }
}

/// The newest installed PostgreSQL's server binaries: Debian keeps them per major version, off PATH.
fn bin_dir() -> PathBuf {
    let newest = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .max_by_key(|(version, _)| *version)
        .map(|(_, bin)| bin);
    newest
        .or_else(|| crate::tools::find("initdb", &[]).and_then(|p| Some(p.parent()?.to_path_buf())))
        .unwrap_or_else(|| {
            panic!("this test needs a PostgreSQL server (initdb, pg_ctl), which is not installed: install the 'postgresql' package (e.g. `apt-get install postgresql`; .ci/run does this)")
        })
}

fn ids_of(user: &str) -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, user])
            .output()
            .expect("run id");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("no account '{user}' to run PostgreSQL as"))
    };
    (id("-u"), id("-g"))
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    f.write_all(text.as_bytes()).expect("append settings");
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}
