//! Initiator provisioning files for tests: the seed's sample file (kept byte for byte under
//! `tests/provisioning/`) with the test's own values put into its keys, and the server keys appended.

use std::path::PathBuf;

/// The seed's sample initiator file.
pub fn seed_sample() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("provisioning")
        .join("seed-sample.txt");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// `text` with the value of each `(key, value)` replaced on the line that sets that key (comments and
/// every other byte kept), and keys not present appended.
pub fn with_values(text: &str, values: &[(&str, String)]) -> String {
    let mut out = String::new();
    let mut done = vec![false; values.len()];
    for line in text.split_inclusive('\n') {
        let key = line.split_whitespace().next().unwrap_or("");
        match values
            .iter()
            .position(|(k, _)| !line.starts_with('#') && *k == key)
        {
            Some(i) => {
                done[i] = true;
                let ending = if line.ends_with('\n') { "\n" } else { "" };
                out.push_str(&format!("{} {}{ending}", values[i].0, values[i].1));
            }
            None => out.push_str(line),
        }
    }
    if !out.ends_with('\n') && !out.is_empty() {
        out.push('\n');
    }
    for (i, (k, v)) in values.iter().enumerate() {
        if !done[i] {
            out.push_str(&format!("{k} {v}\n"));
        }
    }
    out
}
