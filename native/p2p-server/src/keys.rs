//! The server's static X25519 key: the private half stays in `DATA_DIR/server.key` (mode 0600 on Unix),
//! the public half is what clients pin (`server_key` in their configuration).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

pub const KEY_FILE: &str = "server.key";

pub fn key_path(data_dir: &Path) -> PathBuf {
    data_dir.join(KEY_FILE)
}

/// The one line `init` and `key` print.
pub fn server_key_line(public: &[u8; 32]) -> String {
    format!("server_key {}", B64.encode(public))
}

/// Creates a new key in `data_dir` and returns its public half. Never overwrites: every client pinned the
/// old public key, so replacing it silently would lock all of them out.
pub fn create(data_dir: &Path) -> Result<[u8; 32]> {
    let path = key_path(data_dir);
    if path.exists() {
        return Err(Error::new(format!(
            "{} already exists: refusing to overwrite the server key (every client pins its public key); \
             use `p2p-server key --data-dir {}` to print it",
            path.display(),
            data_dir.display()
        )));
    }
    let (private, public) = p2p_link::control_channel::generate_server_keypair()?;
    let private = Zeroizing::new(private);
    let text = Zeroizing::new(format!("{}\n", B64.encode(*private)));
    let mut f = create_private_file(&path)
        .map_err(|e| Error::new(format!("cannot create {}: {e}", path.display())))?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::new(format!("cannot write {}: {e}", path.display())))?;
    Ok(public)
}

// Owner-only files and directories are made in one place for the whole product.
pub use p2p_link::key_file::{create_private_dir, create_private_file};

/// Loads the private key.
pub fn load_private(data_dir: &Path) -> Result<Zeroizing<[u8; 32]>> {
    let path = key_path(data_dir);
    let text = match fs::read_to_string(&path) {
        Ok(t) => Zeroizing::new(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::new(format!(
                "no server key at {}: run `p2p-server init --data-dir {}` first",
                path.display(),
                data_dir.display()
            )))
        }
        Err(e) => return Err(Error::new(format!("cannot read {}: {e}", path.display()))),
    };
    warn_if_readable_by_others(&path);
    let bytes = Zeroizing::new(B64.decode(text.trim()).map_err(|_| {
        Error::new(format!(
            "{} is not a valid server key (base64)",
            path.display()
        ))
    })?);
    let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
        Error::new(format!(
            "{} is not a valid server key (expected 32 bytes)",
            path.display()
        ))
    })?;
    Ok(Zeroizing::new(key))
}

/// The public key of the key in `data_dir`.
pub fn load_public(data_dir: &Path) -> Result<[u8; 32]> {
    let private = load_private(data_dir)?;
    Ok(p2p_link::control_channel::public_key_of(&private)?)
}

/// The server only warns (a device or initiator key readable by others is refused): refusing now would
/// stop servers that have run for years with a looser mode.
fn warn_if_readable_by_others(path: &Path) {
    if p2p_link::key_file::readable_by_others(path) {
        log::warn!(
            "{} is readable by other users: run `chmod 600 {}`",
            path.display(),
            path.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_then_load_gives_the_same_public_key_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let public = create(dir.path()).unwrap();
        assert_eq!(load_public(dir.path()).unwrap(), public);
        let e = create(dir.path()).unwrap_err();
        assert!(e.0.contains("refusing to overwrite"), "{e}");
        assert_eq!(load_public(dir.path()).unwrap(), public);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(key_path(dir.path()))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn missing_key_says_to_run_init() {
        let dir = tempfile::tempdir().unwrap();
        let e = load_private(dir.path()).unwrap_err();
        assert!(e.0.contains("p2p-server init"), "{e}");
    }
}
