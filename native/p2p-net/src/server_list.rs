//! The servers a client may use: one `host:port`, or several separated by commas (`a:5980,b:5980`, the
//! nodes of one service, which share one server key), wherever a server is given (`-y`, `server` in a
//! provisioning file, `P2P_SERVER`, the cmdlets' `-Server`). They are tried in turn: a node that cannot
//! be reached is skipped, while an answer (even a refusal: a wrong password is wrong on every node) ends
//! the attempt. The node that answered last is tried first next time, so reconnects stay on a node that
//! works and move on when it goes away.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::{Error, ErrorKind, Result};
use crate::net_util;

#[derive(Debug)]
pub struct ServerList {
    nodes: Vec<String>,
    /// Index of the node to try first.
    preferred: AtomicUsize,
}

impl ServerList {
    /// Parses `host:port[,host:port...]`. Errors ([`ErrorKind::InvalidConfig`]) name the bad entry.
    pub fn parse(text: &str) -> Result<ServerList> {
        let nodes: Vec<String> = text.split(',').map(|s| s.trim().to_string()).collect();
        if nodes.iter().any(String::is_empty) {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                format!("invalid server list '{text}': an empty entry (expected host:port[,host:port...])"),
            ));
        }
        for node in &nodes {
            net_util::check_host_port(node)?;
        }
        Ok(ServerList {
            nodes,
            preferred: AtomicUsize::new(0),
        })
    }

    /// The node tried first: the one that answered last.
    pub fn preferred(&self) -> &str {
        &self.nodes[self.preferred.load(Ordering::Relaxed)]
    }

    /// The nodes as given: `a:5980,b:5980`.
    pub fn display(&self) -> String {
        self.nodes.join(",")
    }

    /// The nodes in the order to try them now, from the preferred one; [`on_first_reachable!`] runs
    /// the pass.
    pub fn attempts(&self) -> Attempts<'_> {
        Attempts {
            list: self,
            first: self.preferred.load(Ordering::Relaxed),
            tried: 0,
            unreachable: None,
        }
    }
}

/// Evaluates `$attempt` (an expression, `.await` allowed, using `$server: &str`) on each node of
/// `$list` in turn until a node is reached, to that attempt's result, or to the error of the last node
/// when none is. (A macro over a cursor rather than a method taking an async closure: the callers'
/// futures must be `Send` for tokio, which async closures borrowing `&mut self` do not manage yet.)
macro_rules! on_first_reachable {
    ($list:expr, |$server:ident| $attempt:expr) => {{
        let mut attempts = $list.attempts();
        loop {
            let Some($server) = attempts.next() else {
                break attempts.exhausted();
            };
            if let Some(done) = attempts.outcome($attempt) {
                break done;
            }
        }
    }};
}
pub(crate) use on_first_reachable;

/// One pass over a [`ServerList`].
pub struct Attempts<'a> {
    list: &'a ServerList,
    first: usize,
    tried: usize,
    unreachable: Option<Error>,
}

impl<'a> Attempts<'a> {
    /// The next node to try, or `None` when every node has been tried.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<&'a str> {
        let count = self.list.nodes.len();
        (self.tried < count).then(|| {
            self.tried += 1;
            self.list.nodes[(self.first + self.tried - 1) % count].as_str()
        })
    }

    /// The result of trying the node [`Attempts::next`] gave last: `Some` ends the pass (the node was
    /// reached; it is preferred from now on), `None` goes on to the next node (it could not be reached).
    pub fn outcome<T>(&mut self, result: Result<T>) -> Option<Result<T>> {
        let count = self.list.nodes.len();
        let index = (self.first + self.tried - 1) % count;
        match result {
            Err(e) if e.kind == ErrorKind::ServerUnreachable => {
                if count > 1 {
                    log::warn!(
                        "server {} cannot be reached ({e}): trying the next one",
                        self.list.nodes[index]
                    );
                }
                self.unreachable = Some(e);
                None
            }
            answered => {
                self.list.preferred.store(index, Ordering::Relaxed);
                Some(answered)
            }
        }
    }

    /// The error when no node could be reached: the last node's, which names it (and, for a list, how
    /// many were tried).
    pub fn exhausted<T>(self) -> Result<T> {
        let e = self
            .unreachable
            .unwrap_or_else(|| Error::new(ErrorKind::ServerUnreachable, "no server was tried"));
        Err(match self.list.nodes.len() {
            1 => e,
            n => Error::new(
                ErrorKind::ServerUnreachable,
                format!(
                    "none of the {n} servers can be reached; the last: {}",
                    e.message
                ),
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn try_each<T>(list: &ServerList, mut attempt: impl FnMut(&str) -> Result<T>) -> Result<T> {
        on_first_reachable!(list, |node| attempt(node))
    }

    fn unreachable(node: &str) -> Error {
        Error::new(ErrorKind::ServerUnreachable, format!("{node} is down"))
    }

    #[test]
    fn parses_one_or_several_and_names_a_bad_entry() {
        assert_eq!(ServerList::parse("a:1").unwrap().display(), "a:1");
        assert_eq!(
            ServerList::parse(" a:1 , b:2 ").unwrap().display(),
            "a:1,b:2"
        );
        let e = ServerList::parse("a:1,b").unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidConfig);
        assert!(e.message.contains("'b'"), "{e}");
        assert!(ServerList::parse("a:1,,b:2")
            .unwrap_err()
            .message
            .contains("empty entry"));
    }

    #[test]
    fn skips_unreachable_nodes_and_starts_from_the_one_that_answered() {
        let list = ServerList::parse("a:1,b:2,c:3").unwrap();
        let mut tried = Vec::new();
        let got = try_each(&list, |n| {
            tried.push(n.to_string());
            match n {
                "a:1" => Err(unreachable(n)),
                _ => Ok(n.to_string()),
            }
        });
        assert_eq!(got.unwrap(), "b:2");
        assert_eq!(tried, ["a:1", "b:2"]);

        // Next time b is tried first; when it goes away, c, then a.
        let mut tried = Vec::new();
        let got = try_each(&list, |n| {
            tried.push(n.to_string());
            match n {
                "c:3" => Ok(n.to_string()),
                _ => Err(unreachable(n)),
            }
        });
        assert_eq!(got.unwrap(), "c:3");
        assert_eq!(tried, ["b:2", "c:3"]);
    }

    #[test]
    fn a_refusal_is_not_retried_elsewhere() {
        let list = ServerList::parse("a:1,b:2").unwrap();
        let mut tried = 0;
        let got: Result<()> = try_each(&list, |_| {
            tried += 1;
            Err(Error::new(ErrorKind::AuthFailed, "wrong password"))
        });
        assert_eq!(got.unwrap_err().kind, ErrorKind::AuthFailed);
        assert_eq!(tried, 1);
    }

    #[test]
    fn when_none_answers_the_error_says_how_many_were_tried() {
        let list = ServerList::parse("a:1,b:2").unwrap();
        let got: Result<()> = try_each(&list, |n| Err(unreachable(n)));
        let e = got.unwrap_err();
        assert_eq!(e.kind, ErrorKind::ServerUnreachable);
        assert!(e.message.contains("none of the 2 servers"), "{e}");
        assert!(e.message.contains("b:2 is down"), "{e}");
    }
}
