//! Files only their owner may read, and the static keys kept in them (a device's key, an initiator
//! installation's key). Every owner-only permission in the product is set here, so each OS has one
//! place: Unix modes 0600/0700; on Windows a protected DACL granting the current user only
//! (`windows_acl`).

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use p2p_proto::crypto::{StaticKey, STATIC_KEY_LEN};
use zeroize::Zeroizing;

/// Why a key file could not be made or used. Each names the file.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{path} is not a key file (expected one line of base64 of 32 bytes)")]
    Invalid { path: PathBuf },
    #[error("{path} is readable by other users: run `chmod 600 {path}`")]
    ReadableByOthers { path: PathBuf },
    #[error("cannot generate a key: {0}")]
    Random(String),
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> KeyFileError {
    let path = path.to_path_buf();
    move |source| KeyFileError::Io {
        action,
        path,
        source,
    }
}

/// Creates a file only the owner can read; fails if anything (a file, a planted symlink) is there.
#[cfg(unix)]
pub fn create_private_file(path: &Path) -> io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(windows)]
#[allow(unsafe_code)] // Win32 security calls; each says why it is sound
mod windows_acl;
#[cfg(windows)]
pub use windows_acl::{allowed_entries, AllowedEntry};

/// Access rights the Windows opens below ask for beside reading or writing: read and change the DACL.
#[cfg(windows)]
const READ_CONTROL_WRITE_DAC: u32 = 0x0002_0000 | 0x0004_0000;

/// Creates a file only the owner can open (a protected DACL with one entry, the current user); fails
/// if anything is there. The DACL is set through the new handle, before anything is written.
#[cfg(windows)]
pub fn create_private_file(path: &Path) -> io::Result<fs::File> {
    use std::os::windows::fs::OpenOptionsExt;
    const GENERIC_WRITE: u32 = 0x4000_0000;
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .access_mode(GENERIC_WRITE | READ_CONTROL_WRITE_DAC)
        .open(path)?;
    if let Err(e) = windows_acl::restrict_to_owner(&file, false) {
        drop(file);
        let _ = fs::remove_file(path);
        return Err(e);
    }
    Ok(file)
}

/// Elsewhere (neither Unix nor Windows) the file inherits its directory's permissions.
#[cfg(not(any(unix, windows)))]
pub fn create_private_file(path: &Path) -> io::Result<fs::File> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

/// Creates a directory (and its parents) that only the owner can enter; an existing one is left as is.
#[cfg(unix)]
pub fn create_private_dir(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

/// Creates a directory (and its parents); one this call creates gets a protected DACL for the current
/// user only, inherited by what is made in it. An existing one is left as is.
#[cfg(windows)]
pub fn create_private_dir(path: &Path) -> io::Result<()> {
    use std::os::windows::fs::OpenOptionsExt;
    const FILE_FLAG_BACKUP_SEMANTICS: u32 = 0x0200_0000;
    if path.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new().recursive(true).create(path)?;
    let dir = fs::OpenOptions::new()
        .access_mode(READ_CONTROL_WRITE_DAC)
        .custom_flags(FILE_FLAG_BACKUP_SEMANTICS)
        .open(path)?;
    windows_acl::restrict_to_owner(&dir, true)
}

#[cfg(not(any(unix, windows)))]
pub fn create_private_dir(path: &Path) -> io::Result<()> {
    fs::DirBuilder::new().recursive(true).create(path)
}

/// Whether users other than the owner may read or write `path`.
#[cfg(unix)]
pub fn readable_by_others(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0)
}

/// Not checked on Windows yet (the files are created owner-only): wine, where the Windows build is
/// tested, reports entries for other accounts in every DACL, so a check could not be tested here.
#[cfg(not(unix))]
pub fn readable_by_others(_path: &Path) -> bool {
    false
}

/// The static key in `path`, created on first use (its directory too, owner-only). Two processes
/// starting at once end up with the same key: the key is written to a temporary and published with a
/// hard link, which fails if the other process published first, and then theirs is read.
pub fn load_or_create_static_key(path: &Path) -> Result<StaticKey, KeyFileError> {
    match load_static_key(path) {
        Err(KeyFileError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
        loaded => return loaded,
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir).map_err(io_error("create the directory", dir))?;
    }
    let (secret, _) = crate::control_channel::generate_server_keypair()
        .map_err(|e| KeyFileError::Random(e.to_string()))?;
    let secret = Zeroizing::new(secret);
    let text = Zeroizing::new(format!("{}\n", B64.encode(*secret)));
    // Unique per process and per call: two threads (two connections in one cmdlet host) may race too.
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(format!(".{}.{call}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp_name);
    let written = create_private_file(&tmp)
        .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.sync_all()))
        .map_err(io_error("write", &tmp));
    let published = written.and_then(|()| match fs::hard_link(&tmp, path) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        other => other.map_err(io_error("create", path)),
    });
    // The temporary goes whatever happened; if nothing was written there is nothing to remove.
    let _ = fs::remove_file(&tmp);
    published?;
    load_static_key(path)
}

/// The static key in `path`, refused if other users may read it (as ssh refuses such keys).
pub fn load_static_key(path: &Path) -> Result<StaticKey, KeyFileError> {
    let text = Zeroizing::new(fs::read_to_string(path).map_err(io_error("read", path))?);
    if readable_by_others(path) {
        return Err(KeyFileError::ReadableByOthers {
            path: path.to_path_buf(),
        });
    }
    let invalid = || KeyFileError::Invalid {
        path: path.to_path_buf(),
    };
    let bytes = Zeroizing::new(B64.decode(text.trim()).map_err(|_| invalid())?);
    let secret: [u8; STATIC_KEY_LEN] = bytes.as_slice().try_into().map_err(|_| invalid())?;
    Ok(StaticKey::from_secret_bytes(secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_use_creates_an_owner_only_key_and_later_uses_load_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("remoteitp2p").join("initiator.key");
        let first = load_or_create_static_key(&path).unwrap();
        let again = load_or_create_static_key(&path).unwrap();
        assert_eq!(first.public(), again.public());
        assert_eq!(load_static_key(&path).unwrap().public(), first.public());
        // Nothing but the key is left behind.
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["initiator.key"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(path.parent().unwrap()), 0o700);
        }
    }

    #[test]
    fn different_files_hold_different_keys() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create_static_key(&dir.path().join("a.key")).unwrap();
        let b = load_or_create_static_key(&dir.path().join("b.key")).unwrap();
        assert_ne!(a.public(), b.public());
    }

    #[test]
    fn processes_starting_at_once_share_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("device.key");
        let keys: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| load_or_create_static_key(&path).unwrap().public()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(keys.iter().all(|k| *k == keys[0]), "{keys:?}");
    }

    #[cfg(unix)]
    #[test]
    fn a_key_readable_by_others_is_refused_naming_the_fix() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("device.key");
        load_or_create_static_key(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let e = load_or_create_static_key(&path).unwrap_err();
        assert!(matches!(e, KeyFileError::ReadableByOthers { .. }), "{e}");
        assert!(e.to_string().contains("chmod 600"), "{e}");
    }

    /// The key file's DACL, read back, has one entry, the current user's. Real Windows only: wine
    /// reports entries for other accounts (`cargo test -p p2p-link -- --ignored` there).
    #[cfg(windows)]
    #[test]
    #[ignore = "wine synthesizes DACL entries; run on Windows with --ignored"]
    fn a_new_key_file_is_for_the_current_user_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys").join("device.key");
        load_or_create_static_key(&path).unwrap();
        for p in [path.as_path(), path.parent().unwrap()] {
            let entries = allowed_entries(p).expect("a DACL");
            assert_eq!(entries.len(), 1, "{}: {entries:?}", p.display());
            assert!(entries[0].current_user, "{}: {entries:?}", p.display());
        }
    }

    #[test]
    fn a_damaged_key_file_is_refused_and_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("device.key");
        create_private_file(&path)
            .unwrap()
            .write_all(b"not base64!\n")
            .unwrap();
        let e = load_or_create_static_key(&path).unwrap_err();
        assert!(matches!(e, KeyFileError::Invalid { .. }), "{e}");
        assert!(e.to_string().contains("device.key"), "{e}");
        assert_eq!(fs::read(&path).unwrap(), b"not base64!\n");
    }
}
