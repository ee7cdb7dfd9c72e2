//! Reading a password or device secret: never from the command line (argv is visible to every user of
//! the machine and lands in shell history), but from a no-echo prompt on a terminal, or one line of
//! standard input when it is a pipe or a file (scripts and tests).

use std::io::{BufRead, IsTerminal};

use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Reads a secret for `what` ("password for user 'bob'"). On a terminal it is asked twice when
/// `confirm` is set, so a typo does not become the stored password.
pub fn read_secret(what: &str, confirm: bool) -> Result<Zeroizing<String>> {
    if std::io::stdin().is_terminal() {
        let first = prompt(&format!("{what}: "))?;
        if confirm {
            let again = prompt(&format!("{what} (again): "))?;
            if *again != *first {
                return Err(Error::new("the two entries differ: nothing was changed"));
            }
        }
        check_not_empty(first, what)
    } else {
        read_secret_line(std::io::stdin().lock(), what)
    }
}

fn prompt(text: &str) -> Result<Zeroizing<String>> {
    rpassword::prompt_password(text)
        .map(Zeroizing::new)
        .map_err(|e| Error::new(format!("cannot read from the terminal: {e}")))
}

/// Reads the first line of `input` (without its line ending) as the secret.
pub fn read_secret_line(mut input: impl BufRead, what: &str) -> Result<Zeroizing<String>> {
    let mut line = Zeroizing::new(String::new());
    input
        .read_line(&mut line)
        .map_err(|e| Error::new(format!("cannot read the {what} from standard input: {e}")))?;
    let trimmed = Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_string());
    if trimmed.is_empty() {
        return Err(Error::new(format!(
            "no {what} on standard input: pipe it in (one line) or run the command in a terminal to be prompted"
        )));
    }
    Ok(trimmed)
}

fn check_not_empty(secret: Zeroizing<String>, what: &str) -> Result<Zeroizing<String>> {
    if secret.is_empty() {
        return Err(Error::new(format!("the {what} is empty")));
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_line_without_line_ending() {
        let s = read_secret_line(&b"s3cret\r\nignored\n"[..], "password").unwrap();
        assert_eq!(s.as_str(), "s3cret");
        let s = read_secret_line(&b"with spaces inside "[..], "password").unwrap();
        assert_eq!(s.as_str(), "with spaces inside ");
    }

    #[test]
    fn empty_input_is_a_clear_error() {
        let e = read_secret_line(&b""[..], "password").unwrap_err();
        assert!(e.0.contains("no password on standard input"), "{e}");
        assert!(read_secret_line(&b"\n"[..], "password").is_err());
    }
}
