//! The server's error: one plain line for the operator (admin commands print it as is).

/// A failure worded for the person running the server ("unknown user 'bob'").
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Error(pub String);

impl Error {
    pub fn new(msg: impl Into<String>) -> Self {
        Error(msg.into())
    }
}

/// How a database failure starts; `in_database` replaces it with the file's name.
const DATABASE_ERROR: &str = "database error: ";

impl Error {
    /// Names the database file in a database failure (disk full, read-only, locked), so the operator
    /// knows where to look; other errors are returned as they are.
    pub fn in_database(self, path: &std::path::Path) -> Error {
        match self.0.strip_prefix(DATABASE_ERROR) {
            Some(cause) => Error(format!("database {}: {cause}", path.display())),
            None => self,
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error(format!("{DATABASE_ERROR}{e}"))
    }
}

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Self {
        Error(format!("{DATABASE_ERROR}{}", with_causes(&e)))
    }
}

/// An error and its causes on one line: tokio-postgres' own text is only the kind ("db error",
/// "error connecting to server"); the cause says what happened.
pub fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let shown = c.to_string();
        if !text.contains(&shown) {
            text.push_str(": ");
            text.push_str(&shown);
        }
        cause = c.source();
    }
    text
}

/// The control channel's failures (key handling, a connection) as the operator reads them.
impl From<p2p_link::LinkError> for Error {
    fn from(e: p2p_link::LinkError) -> Self {
        Error(e.to_string())
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error(format!("I/O error: {e}"))
    }
}

pub type Result<T> = std::result::Result<T, Error>;
