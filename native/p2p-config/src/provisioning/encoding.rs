//! From the bytes of a provisioning file to its text.
//!
//! connectd's files are ASCII; ours may be UTF-8 with or without a byte-order mark (Notepad writes one)
//! or UTF-16 with its mark, which is what Windows PowerShell 5's `Out-File` and `>` write by default: a
//! file made that way should work rather than fail with a puzzling "unknown key".

use std::borrow::Cow;

/// Larger than any real provisioning file by far; refusing bigger input keeps a mistaken path (a log,
/// a disk image) from being read whole and turned into a million warnings.
pub const MAX_FILE_BYTES: usize = 1 << 20;

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum NotText {
    TooLarge(usize),
    /// A byte sequence that is not text, on this 1-based line.
    Binary {
        line: usize,
        why: &'static str,
    },
}

impl NotText {
    pub(crate) fn line(&self) -> Option<usize> {
        match self {
            NotText::TooLarge(_) => None,
            NotText::Binary { line, .. } => Some(*line),
        }
    }

    pub(crate) fn message(&self) -> String {
        match self {
            NotText::TooLarge(n) => format!(
                "{n} bytes is too large for a provisioning file (the limit is {MAX_FILE_BYTES} bytes)"
            ),
            NotText::Binary { why, .. } => format!("not a text provisioning file: {why}"),
        }
    }
}

pub(crate) fn decode(bytes: &[u8]) -> Result<Cow<'_, str>, NotText> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(NotText::TooLarge(bytes.len()));
    }
    let text = if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        Cow::Borrowed(utf8(rest)?)
    } else if let Some(rest) = bytes.strip_prefix(b"\xFF\xFE") {
        Cow::Owned(utf16(rest, u16::from_le_bytes)?)
    } else if let Some(rest) = bytes.strip_prefix(b"\xFE\xFF") {
        Cow::Owned(utf16(rest, u16::from_be_bytes)?)
    } else {
        Cow::Borrowed(utf8(bytes)?)
    };
    if let Some(at) = text.find('\0') {
        return Err(NotText::Binary {
            line: line_at(&text[..at]),
            why: "it contains a NUL byte",
        });
    }
    Ok(text)
}

fn utf8(bytes: &[u8]) -> Result<&str, NotText> {
    std::str::from_utf8(bytes).map_err(|e| {
        let valid = &bytes[..e.valid_up_to()];
        NotText::Binary {
            line: 1 + valid.iter().filter(|&&b| b == b'\n').count(),
            why: "invalid UTF-8",
        }
    })
}

fn utf16(bytes: &[u8], unit: fn([u8; 2]) -> u16) -> Result<String, NotText> {
    let pairs = bytes.chunks_exact(2);
    let odd_length = !pairs.remainder().is_empty();
    let mut text = String::with_capacity(bytes.len() / 2);
    for c in char::decode_utf16(pairs.map(|p| unit([p[0], p[1]]))) {
        let Ok(c) = c else {
            return Err(NotText::Binary {
                line: line_at(&text),
                why: "invalid UTF-16 (an unpaired surrogate)",
            });
        };
        text.push(c);
    }
    if odd_length {
        return Err(NotText::Binary {
            line: line_at(&text),
            why: "invalid UTF-16 (an odd number of bytes)",
        });
    }
    Ok(text)
}

/// The 1-based line on which the text after `before` starts.
fn line_at(before: &str) -> usize {
    1 + before.matches('\n').count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_with_and_without_bom() {
        assert_eq!(decode(b"a 1\n").unwrap(), "a 1\n");
        assert_eq!(decode(b"\xEF\xBB\xBFa 1\n").unwrap(), "a 1\n");
    }

    #[test]
    fn utf16_as_windows_powershell_writes_it() {
        let le: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain("a 1\r\n".encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        assert_eq!(decode(&le).unwrap(), "a 1\r\n");
        let be: Vec<u8> = [0xFE, 0xFF]
            .into_iter()
            .chain("a 1\n".encode_utf16().flat_map(u16::to_be_bytes))
            .collect();
        assert_eq!(decode(&be).unwrap(), "a 1\n");
        assert!(matches!(
            decode(&le[..le.len() - 1]),
            Err(NotText::Binary { .. })
        ));
    }

    #[test]
    fn binary_is_refused_with_its_line() {
        assert_eq!(
            decode(b"a 1\nb \xFF\n"),
            Err(NotText::Binary {
                line: 2,
                why: "invalid UTF-8"
            })
        );
        assert_eq!(
            decode(b"a 1\nb 2\n\0"),
            Err(NotText::Binary {
                line: 3,
                why: "it contains a NUL byte"
            })
        );
    }

    #[test]
    fn oversized_input_is_refused_before_decoding() {
        let big = vec![b'#'; MAX_FILE_BYTES + 1];
        assert_eq!(decode(&big), Err(NotText::TooLarge(MAX_FILE_BYTES + 1)));
    }
}
