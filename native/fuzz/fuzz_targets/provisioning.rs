//! Provisioning files and `-e` base64 blobs (`p2p_config`): never a panic, and a refusal is one line
//! that names the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use p2p_config::{parse_provisioning, parse_provisioning_base64};

fuzz_target!(|d: &[u8]| {
    if let Err(e) = parse_provisioning(d, "fuzz.conf") {
        let message = e.to_string();
        assert!(message.starts_with("fuzz.conf"), "{message}");
        assert!(!message.contains(['\n', '\r']), "{message}");
    }
    if let Ok(text) = std::str::from_utf8(d) {
        if let Err(e) = parse_provisioning_base64(text) {
            assert!(!e.to_string().contains(['\n', '\r']), "{e}");
        }
    }
});
