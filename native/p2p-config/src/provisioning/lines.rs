//! connectd's line syntax: `key value`, one per line.
//!
//! The key runs up to the first space or tab; the value is the rest of the line, trimmed, so it may hold
//! spaces (a password can). Blank lines and lines starting with `#` are skipped. A comment line that ends
//! in a backslash (the seed's sample has one) is still one line: connectd has no line continuation.
//! Both LF and CRLF line ends are accepted.

/// One `key value` line as written, before the key is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Setting<'a> {
    /// 1-based.
    pub line: usize,
    pub key: &'a str,
    /// Empty when the line holds only a key.
    pub value: &'a str,
}

pub(crate) fn settings(text: &str) -> impl Iterator<Item = Setting<'_>> {
    text.split('\n').enumerate().filter_map(|(index, raw)| {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        let (key, value) = line.split_once([' ', '\t']).unwrap_or((line, ""));
        Some(Setting {
            line: index + 1,
            key,
            value: value.trim(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(text: &str) -> Vec<(usize, &str, &str)> {
        settings(text).map(|s| (s.line, s.key, s.value)).collect()
    }

    #[test]
    fn key_value_comments_blank_lines() {
        let text = "# c\n\nautoconnect 1\n  user_id \t me@x \n#x\\\nmax_depth 12\n";
        assert_eq!(
            all(text),
            [
                (3, "autoconnect", "1"),
                (4, "user_id", "me@x"),
                (6, "max_depth", "12")
            ]
        );
    }

    #[test]
    fn value_keeps_inner_spaces_and_crlf_is_stripped() {
        assert_eq!(all("auth_pass a b  c\r\n"), [(1, "auth_pass", "a b  c")]);
        assert_eq!(
            all("\tname\tmy pi\r\nx\r\n"),
            [(1, "name", "my pi"), (2, "x", "")]
        );
    }

    #[test]
    fn comment_ending_in_backslash_does_not_continue() {
        let text =
            "#remote_address is the (UID) address.\\\nremote_address 80:00:00:00:01:00:0A:C2\n";
        assert_eq!(
            all(text),
            [(2, "remote_address", "80:00:00:00:01:00:0A:C2")]
        );
    }
}
