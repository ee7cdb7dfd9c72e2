//! Device keys for end-to-end sessions (docs/E2E-TRUST.md): the initiator installation's and each
//! device's static key, the initiator's pins (`known_devices`, one per UID), and which key a
//! session's peer must prove.
//!
//! The server introduces the peers with each other's public key (the grant's `peer_key`); that is a
//! hint. What the initiator trusts is its pin: a seeded `device_key`, else `known_devices`. A device
//! with neither is refused (ssh's `StrictHostKeyChecking yes`), unless the user opted into trusting
//! the server's word on first use (`trust_first_use`, ssh's `accept-new`).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use p2p_config::key_paths;
use p2p_link::key_file::{create_private_file, load_or_create_static_key};
use p2p_proto::crypto::{
    ExpectedPeer, Fingerprint, PeerHandshakeError, PublicStaticKey, StaticKey,
};
use p2p_proto::session::PeerKeys;
use p2p_proto::{EncryptionMode, Uid};

use crate::error::{Error, ErrorKind, Result};

const KNOWN_DEVICES: &str = "known_devices";

fn default_path(file: &str, option: &str) -> Result<PathBuf> {
    key_paths::default_key_path(file, option).map_err(|m| Error::new(ErrorKind::InvalidConfig, m))
}

/// The initiator installation's key file: `key_file`, else the default.
pub fn initiator_key_path(key_file: Option<&Path>) -> Result<PathBuf> {
    key_file.map_or_else(
        || default_path(key_paths::INITIATOR_KEY, "key_file"),
        |p| Ok(p.to_path_buf()),
    )
}

/// A device's key file: `device_key_file`, else the default for its UID.
pub fn device_key_path(key_file: Option<&Path>, uid: Uid) -> Result<PathBuf> {
    key_file.map_or_else(
        || default_path(&key_paths::device_key_name(uid), "device_key_file"),
        |p| Ok(p.to_path_buf()),
    )
}

/// Loads the key in `path`, creating it on first use.
pub fn load_key(path: &Path) -> Result<StaticKey> {
    load_or_create_static_key(path).map_err(|e| Error::new(ErrorKind::InvalidConfig, e.to_string()))
}

/// The target's side of a session: its key, and the initiator key the peer must prove.
///
/// Without `authorized_initiators` that is the key the server introduced (any key when the initiator
/// has none: it then runs the legacy handshake anyway). With it, the server's word counts for
/// nothing: the session must be mode 3 with a listed key introduced, and the handshake must prove
/// one of the listed keys (the legacy handshake is then refused, see `PeerKeys`). `Err`: why the
/// session is refused, for the log and the initiator.
pub fn target_peer_keys(
    local: &StaticKey,
    mode: EncryptionMode,
    initiator_key: Option<PublicStaticKey>,
    authorized_initiators: Option<&Path>,
) -> std::result::Result<PeerKeys, String> {
    let expected_peer = match authorized_initiators {
        None => initiator_key.map_or(ExpectedPeer::Any, |k| ExpectedPeer::Key(k.fingerprint())),
        Some(path) => {
            let listed = load_authorized_initiators(path).map_err(|e| e.message)?;
            if mode.is_weak() {
                return Err(format!(
                    "this device takes end-to-end sessions only (authorized_initiators is set), not mode {} ({mode})",
                    mode as u8
                ));
            }
            let Some(key) = initiator_key else {
                return Err(
                    "the initiator has no key, and this device takes listed initiators only (authorized_initiators)"
                        .into(),
                );
            };
            let fingerprint = key.fingerprint();
            if !listed.iter().any(|f| f.matches(&key)) {
                return Err(format!(
                    "initiator key {fingerprint} is not in this device's authorized_initiators"
                ));
            }
            ExpectedPeer::OneOf(listed)
        }
    };
    Ok(PeerKeys {
        local: local.clone(),
        expected_peer,
    })
}

/// A target's `authorized_initiators` file: one key per line, as its fingerprint (`connectd
/// --fingerprint` on the initiator) or its base64 public key, then an optional label; blank lines
/// and `#` comments are skipped. An empty list refuses every session (as an empty authorized_keys).
pub fn load_authorized_initiators(path: &Path) -> Result<Vec<Fingerprint>> {
    let invalid = |m: String| Error::new(ErrorKind::InvalidConfig, m);
    let text = fs::read_to_string(path).map_err(|e| {
        invalid(format!(
            "cannot read authorized_initiators {}: {e}",
            path.display()
        ))
    })?;
    let mut listed = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let Some(word) = line
            .split_whitespace()
            .next()
            .filter(|w| !w.starts_with('#'))
        else {
            continue;
        };
        let fingerprint = Fingerprint::of_key_or_fingerprint(word).ok_or_else(|| {
                invalid(format!(
                    "{} line {}: expected an initiator's fingerprint (SHA256:..., as 'connectd --fingerprint' prints it) or its base64 public key, then an optional label",
                    path.display(),
                    n + 1
                ))
            })?;
        listed.push(fingerprint);
    }
    Ok(listed)
}

/// How the initiator decided to trust a device's key for one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation {
    pub expected: Fingerprint,
    /// Once the device proved the expected key: pin it with this note (`seeded`, `tofu` or
    /// `accepted`), because `known_devices` does not hold it yet.
    pub pin_after: Option<&'static str>,
}

/// The initiator's key and pins.
pub struct InitiatorTrust {
    key: StaticKey,
    known_devices: PathBuf,
    /// `device_key` from the configuration: pinned whatever `known_devices` says.
    seeded: Option<Fingerprint>,
    /// `--accept-key`: the new key the owner confirmed.
    accept: Option<Fingerprint>,
    /// `trust_first_use`: an unknown device's key is taken from the server (then pinned).
    trust_first_use: bool,
}

impl InitiatorTrust {
    pub fn load(
        key_file: Option<&Path>,
        seeded: Option<&str>,
        accept: Option<&str>,
        trust_first_use: bool,
    ) -> Result<InitiatorTrust> {
        let key_path = initiator_key_path(key_file)?;
        // The fingerprint, or the base64 key (as the device's owner may have copied either).
        let fingerprint = |what: &str, text: &str| -> Result<Fingerprint> {
            p2p_config::values::parse_device_key(text)
                .and_then(|f| f.parse().map_err(|_| f))
                .map_err(|e| Error::new(ErrorKind::InvalidConfig, format!("{what}: {e}")))
        };
        Ok(InitiatorTrust {
            key: load_key(&key_path)?,
            known_devices: key_path.with_file_name(KNOWN_DEVICES),
            seeded: seeded.map(|s| fingerprint("device_key", s)).transpose()?,
            accept: accept.map(|s| fingerprint("accept_key", s)).transpose()?,
            trust_first_use,
        })
    }

    pub fn public(&self) -> PublicStaticKey {
        self.key.public()
    }

    /// What the session must expect of device `uid`, given the key the server introduced it with.
    /// Decided before any packet: a device the server reports without a key while one is pinned is
    /// refused (the server may be stripping it), and so is a device with neither a pin nor a seed,
    /// unless trusting the server on first use was asked for. `None`: the legacy handshake (only then,
    /// for a device without any key).
    pub fn expectation(
        &self,
        uid: Uid,
        introduced: Option<PublicStaticKey>,
    ) -> Result<Option<Expectation>> {
        let pinned = self.pinned(uid).map(|k| k.fingerprint());
        let accepted = self
            .accept
            .zip(introduced)
            .filter(|(accept, key)| accept.matches(key));
        if let Some((accept, _)) = accepted {
            return Ok(Some(Expectation {
                expected: accept,
                pin_after: Some("accepted"),
            }));
        }
        if let Some(seed) = self.seeded {
            // Seeding once is enough: the proved key is pinned for the connections without the seed.
            let pin_after = (pinned != Some(seed)).then_some("seeded");
            return match introduced {
                Some(_) => Ok(Some(Expectation {
                    expected: seed,
                    pin_after,
                })),
                None => Err(mismatch_error(uid, &seed, NO_KEY)),
            };
        }
        match (pinned, introduced) {
            (Some(pin), Some(_)) => Ok(Some(Expectation {
                expected: pin,
                pin_after: None,
            })),
            (Some(pin), None) => Err(mismatch_error(uid, &pin, NO_KEY)),
            (None, Some(key)) if self.trust_first_use => Ok(Some(Expectation {
                expected: key.fingerprint(),
                pin_after: Some("tofu"),
            })),
            (None, None) if self.trust_first_use => Ok(None),
            (None, introduced) => Err(unknown_error(uid, introduced)),
        }
    }

    /// The session's keys for an expectation.
    pub fn peer_keys(&self, expectation: &Expectation) -> PeerKeys {
        PeerKeys {
            local: self.key.clone(),
            expected_peer: ExpectedPeer::Key(expectation.expected),
        }
    }

    /// The pinned key of `uid`, if any.
    pub fn pinned(&self, uid: Uid) -> Option<PublicStaticKey> {
        let text = fs::read_to_string(&self.known_devices).ok()?;
        let pinned = pins(&text).find(|(u, _)| *u == uid).map(|(_, key)| key);
        pinned
    }

    /// Pins `key` for `uid`, replacing an older pin: the file is rewritten through a temporary.
    pub fn pin(&self, uid: Uid, key: PublicStaticKey, how: &str) -> Result<()> {
        let old = fs::read_to_string(&self.known_devices).unwrap_or_default();
        let mut text = String::from("# UID  public key (base64)  pinned at (Unix seconds)  how\n");
        for line in old
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        {
            if line
                .split_whitespace()
                .next()
                .and_then(|u| u.parse::<Uid>().ok())
                != Some(uid)
            {
                text.push_str(line);
                text.push('\n');
            }
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        text.push_str(&format!("{uid} {} {now} {how}\n", key.to_base64()));
        let tmp = self
            .known_devices
            .with_file_name(format!("{KNOWN_DEVICES}.{}.tmp", std::process::id()));
        let _ = fs::remove_file(&tmp);
        let written = create_private_file(&tmp)
            .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.sync_all()))
            .and_then(|()| fs::rename(&tmp, &self.known_devices));
        written.map_err(|e| {
            let _ = fs::remove_file(&tmp);
            Error::new(
                ErrorKind::Internal,
                format!("cannot write {}: {e}", self.known_devices.display()),
            )
        })
    }
}

/// The (UID, key) lines of a `known_devices` file; malformed lines are skipped.
fn pins(text: &str) -> impl Iterator<Item = (Uid, PublicStaticKey)> + '_ {
    text.lines().filter_map(|line| {
        let mut words = line.split_whitespace();
        let uid = words.next()?.parse().ok()?;
        let key = PublicStaticKey::from_base64(words.next()?)?;
        Some((uid, key))
    })
}

/// What a device the server introduced without a key presented.
const NO_KEY: &str = "no key (the server reports none: an old target, or the server stripping it)";

/// A device with neither a pin nor a seed: the server's word is all there is, so nothing is sent.
fn unknown_error(uid: Uid, introduced: Option<PublicStaticKey>) -> Error {
    let said = match introduced {
        Some(key) => format!("the server introduced {}", key.fingerprint()),
        None => {
            "the server reports no key for it (an old target, or the server stripping it)".into()
        }
    };
    Error::new(
        ErrorKind::PeerKeyUnknown,
        format!(
            "the key of device {uid} is not known here: {said}. Check the device's fingerprint on the \
             device (connectd --fingerprint -f TARGET-FILE) and pass it with --device-key (cmdlets: \
             -DeviceKey), or trust the server's word once with --trust-first-use (cmdlets: -TrustFirstUse)"
        ),
    )
}

fn mismatch_error(uid: Uid, expected: &Fingerprint, presented: &str) -> Error {
    Error::new(
        ErrorKind::PeerKeyMismatch,
        format!(
            "the key of device {uid} changed: expected {expected}, the device presented {presented}. \
             A re-installed device, or the server or network intercepting: check the fingerprint on the \
             device (connectd --fingerprint -f TARGET-FILE) and, if it is the device's, run connectd \
             --accept-key FINGERPRINT"
        ),
    )
}

/// The error for a session the end-to-end handshake refused.
pub fn refused_error(uid: Uid, refused: &PeerHandshakeError) -> Error {
    match refused {
        PeerHandshakeError::KeyMismatch {
            expected,
            presented,
        } => mismatch_error(uid, expected, &presented.to_string()),
        other => Error::new(
            ErrorKind::P2pFailed,
            format!("the end-to-end handshake failed: {other}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "80:00:00:00:01:00:0A:C2";

    fn key(byte: u8) -> PublicStaticKey {
        StaticKey::from_secret_bytes([byte; 32]).public()
    }

    fn trust(dir: &Path, seeded: Option<&str>, accept: Option<&str>) -> InitiatorTrust {
        InitiatorTrust::load(Some(&dir.join("initiator.key")), seeded, accept, false).unwrap()
    }

    fn trusting_first_use(dir: &Path) -> InitiatorTrust {
        InitiatorTrust::load(Some(&dir.join("initiator.key")), None, None, true).unwrap()
    }

    #[test]
    fn an_unknown_device_is_refused_naming_what_the_server_said() {
        let dir = tempfile::tempdir().unwrap();
        let t = trust(dir.path(), None, None);
        let uid: Uid = UID.parse().unwrap();
        let e = t.expectation(uid, Some(key(1))).unwrap_err();
        assert_eq!(e.kind, ErrorKind::PeerKeyUnknown);
        assert!(e.message.contains(&key(1).fingerprint().to_string()), "{e}");
        assert!(e.message.contains("--device-key"), "{e}");
        assert!(e.message.contains("--trust-first-use"), "{e}");
        // Without a key from the server: refused too, not the legacy handshake.
        let e = t.expectation(uid, None).unwrap_err();
        assert_eq!(e.kind, ErrorKind::PeerKeyUnknown);
        assert!(e.message.contains("reports no key"), "{e}");
        assert_eq!(t.pinned(uid), None);
    }

    #[test]
    fn first_use_trusts_the_introduced_key_when_asked_and_then_only_the_pin() {
        let dir = tempfile::tempdir().unwrap();
        let t = trusting_first_use(dir.path());
        let uid: Uid = UID.parse().unwrap();
        let first = t.expectation(uid, Some(key(1))).unwrap().unwrap();
        assert_eq!(first.expected, key(1).fingerprint());
        assert_eq!(first.pin_after, Some("tofu"));
        t.pin(uid, key(1), "tofu").unwrap();
        assert_eq!(t.pinned(uid), Some(key(1)));
        // The server now introduces another key: the session still expects the pin.
        let later = t.expectation(uid, Some(key(2))).unwrap().unwrap();
        assert_eq!(later.expected, key(1).fingerprint());
        assert_eq!(later.pin_after, None);
        // Without any key from the server, a pinned device is refused before any packet.
        let e = t.expectation(uid, None).unwrap_err();
        assert_eq!(e.kind, ErrorKind::PeerKeyMismatch);
        assert!(e.message.contains(&key(1).fingerprint().to_string()), "{e}");
        // An unpinned device without a key: legacy, as asked.
        let other: Uid = "80:00:00:00:01:00:0A:C3".parse().unwrap();
        assert_eq!(t.expectation(other, None).unwrap(), None);
    }

    #[test]
    fn a_seeded_key_wins_is_pinned_once_and_an_accepted_one_replaces_the_pin() {
        let dir = tempfile::tempdir().unwrap();
        let uid: Uid = UID.parse().unwrap();
        let seeded = key(3).fingerprint().to_string();
        let t = trust(dir.path(), Some(&seeded), None);
        t.pin(uid, key(1), "tofu").unwrap();
        let e = t.expectation(uid, Some(key(1))).unwrap().unwrap();
        assert_eq!(e.expected, key(3).fingerprint());
        assert_eq!(e.pin_after, Some("seeded"));
        // Once pinned, the seed adds nothing and a connection without it expects the same key.
        t.pin(uid, key(3), "seeded").unwrap();
        assert_eq!(
            t.expectation(uid, Some(key(3))).unwrap().unwrap().pin_after,
            None
        );
        let unseeded = trust(dir.path(), None, None);
        let e = unseeded.expectation(uid, Some(key(4))).unwrap().unwrap();
        assert_eq!(e.expected, key(3).fingerprint());
        // A seeded device the server reports without a key: refused, as a pinned one.
        let e = t.expectation(uid, None).unwrap_err();
        assert_eq!(e.kind, ErrorKind::PeerKeyMismatch);
        let accept = key(2).fingerprint().to_string();
        let t = trust(dir.path(), None, Some(&accept));
        let e = t.expectation(uid, Some(key(2))).unwrap().unwrap();
        assert_eq!(e.expected, key(2).fingerprint());
        assert_eq!(e.pin_after, Some("accepted"));
        // Accepting names one key: another introduced key still meets the old pin.
        let e = t.expectation(uid, Some(key(4))).unwrap().unwrap();
        assert_eq!(e.expected, key(3).fingerprint());
    }

    #[test]
    fn pins_are_rewritten_one_line_per_uid_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let t = trust(dir.path(), None, None);
        let a: Uid = UID.parse().unwrap();
        let b: Uid = "80:00:00:00:01:00:0A:C3".parse().unwrap();
        t.pin(a, key(1), "tofu").unwrap();
        t.pin(b, key(2), "tofu").unwrap();
        t.pin(a, key(5), "accepted").unwrap();
        assert_eq!(t.pinned(a), Some(key(5)));
        assert_eq!(t.pinned(b), Some(key(2)));
        let text = fs::read_to_string(dir.path().join(KNOWN_DEVICES)).unwrap();
        assert_eq!(
            text.lines().filter(|l| !l.starts_with('#')).count(),
            2,
            "{text}"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let meta = fs::metadata(dir.path().join(KNOWN_DEVICES)).unwrap();
            assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        }
    }

    #[test]
    fn an_authorized_initiators_file_lists_fingerprints_and_keys_and_names_a_bad_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("authorized_initiators");
        let text = format!(
            "# laptop and build server\n\n{} alice's laptop\n  {}\n",
            key(1).fingerprint(),
            key(2).to_base64()
        );
        std::fs::write(&path, &text).unwrap();
        let listed = load_authorized_initiators(&path).unwrap();
        assert_eq!(listed, vec![key(1).fingerprint(), key(2).fingerprint()]);

        std::fs::write(&path, format!("{text}SHA256:short bob\n")).unwrap();
        let e = load_authorized_initiators(&path).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidConfig);
        assert!(
            e.message.contains(&format!("{} line 5:", path.display())),
            "{e}"
        );

        let e = load_authorized_initiators(&dir.path().join("missing")).unwrap_err();
        assert!(
            e.message.starts_with("cannot read authorized_initiators"),
            "{e}"
        );
    }

    #[test]
    fn a_target_with_authorized_initiators_takes_listed_keys_in_mode_3_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("authorized_initiators");
        std::fs::write(&path, format!("{}\n", key(1).to_base64())).unwrap();
        let local = StaticKey::from_secret_bytes([9; 32]);
        let modern = EncryptionMode::ChaCha20Poly1305;

        let keys = target_peer_keys(&local, modern, Some(key(1)), Some(&path)).unwrap();
        assert_eq!(
            keys.expected_peer,
            ExpectedPeer::OneOf(vec![key(1).fingerprint()])
        );
        assert!(!keys.allows_legacy_handshake());

        let stranger = target_peer_keys(&local, modern, Some(key(2)), Some(&path)).unwrap_err();
        assert!(
            stranger.contains(&key(2).fingerprint().to_string()) && stranger.contains("is not in"),
            "{stranger}"
        );
        let keyless = target_peer_keys(&local, modern, None, Some(&path)).unwrap_err();
        assert!(keyless.contains("has no key"), "{keyless}");
        let legacy =
            target_peer_keys(&local, EncryptionMode::Xxtea, Some(key(1)), Some(&path)).unwrap_err();
        assert!(legacy.contains("not mode 2"), "{legacy}");

        // Without a list the server's introduction decides, as before.
        let keys = target_peer_keys(&local, EncryptionMode::Xxtea, None, None).unwrap();
        assert_eq!(keys.expected_peer, ExpectedPeer::Any);
    }
}
