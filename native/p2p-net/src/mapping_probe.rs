//! The endpoint's own NAT mapping, for hard-NAT traversal (the session's `set_nat_mapping`): the
//! server's probe answers to two of its addresses, both asked from the endpoint's own socket. The
//! relay's listener answers first and names the listener on the server's second IP; the same public
//! address seen by both means an endpoint-independent mapping, another port a mapping that depends on
//! the destination. Four small datagrams at most per measurement (the server rate-limits probes),
//! repeated only when the result is old: a NAT's behaviour rarely changes, its address might.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use p2p_proto::session::NatMapping;
use p2p_proto::wire::{self, ProbeResponse};

/// An unanswered request is repeated after this, up to `TRIES` times.
const RETRY: Duration = Duration::from_millis(400);
const TRIES: u32 = 3;
/// A result older than this is measured again when a session starts (the old one still serves).
const VALID_FOR: Duration = Duration::from_secs(300);

#[derive(Default)]
pub struct MappingProbe {
    txid: [u8; 12],
    /// The relay listener we ask, and the public address it saw.
    relay: Option<SocketAddr>,
    first_seen: Option<SocketAddr>,
    /// The server's second-IP listener, as the first answer names it.
    second: Option<SocketAddr>,
    tries: u32,
    next_try: Option<Instant>,
    result: Option<(NatMapping, Instant)>,
}

impl MappingProbe {
    /// The mapping, once measured.
    pub fn result(&self) -> Option<NatMapping> {
        self.result.map(|(m, _)| m)
    }

    /// A session starts with the server whose relay is `relay`: measure unless a fresh result
    /// exists or a measurement runs.
    pub fn start(&mut self, now: Instant, relay: SocketAddr) {
        let fresh = self.result.is_some_and(|(_, at)| now < at + VALID_FOR);
        if fresh || self.next_try.is_some() {
            return;
        }
        if getrandom::getrandom(&mut self.txid).is_err() {
            return;
        }
        self.relay = Some(relay);
        self.first_seen = None;
        self.second = None;
        self.tries = 0;
        self.next_try = Some(now);
    }

    /// The request due now, if any: (datagram, destination).
    pub fn due(&mut self, now: Instant) -> Option<(Vec<u8>, SocketAddr)> {
        let at = self.next_try?;
        if now < at {
            return None;
        }
        if self.tries == TRIES {
            // No answer: this server does not answer probes here (or something filters them).
            self.next_try = None;
            return None;
        }
        self.tries += 1;
        self.next_try = Some(now + RETRY);
        let dest = match (self.first_seen, self.second) {
            (Some(_), Some(second)) => second,
            _ => self.relay?,
        };
        Some((wire::encode_probe_request(self.txid), dest))
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.next_try
    }

    /// A probe answer from `from`. Returns the next request (the second listener, at once) and
    /// records the result once both answered.
    pub fn on_response(
        &mut self,
        now: Instant,
        from: SocketAddr,
        data: &[u8],
    ) -> Option<(Vec<u8>, SocketAddr)> {
        let r = ProbeResponse::decode(data).ok()?;
        if r.txid != self.txid || self.next_try.is_none() {
            return None;
        }
        if Some(from) == self.relay && self.first_seen.is_none() {
            self.first_seen = Some(r.seen);
            // The second-IP listener of the same family (a server predating the list names none).
            self.second = r
                .others
                .iter()
                .copied()
                .find(|a| a.is_ipv4() == from.is_ipv4());
            let Some(second) = self.second else {
                self.next_try = None;
                return None;
            };
            self.tries = 1;
            self.next_try = Some(now + RETRY);
            return Some((wire::encode_probe_request(self.txid), second));
        }
        if Some(from) == self.second {
            let mapping = if Some(r.seen) == self.first_seen {
                NatMapping::EndpointIndependent
            } else {
                NatMapping::EndpointDependent
            };
            log::info!(
                "nat mapping: {mapping:?} (public {} toward the relay, {} toward {from})",
                self.first_seen.map_or_else(String::new, |a| a.to_string()),
                r.seen
            );
            self.result = Some((mapping, now));
            self.next_try = None;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(txid: [u8; 12], seen: u16, others: Vec<SocketAddr>) -> Vec<u8> {
        ProbeResponse {
            txid,
            seen: SocketAddr::from(([198, 18, 10, 3], seen)),
            others,
        }
        .encode()
    }

    #[test]
    fn the_same_public_port_for_both_listeners_is_endpoint_independent_else_dependent() {
        let relay: SocketAddr = "198.18.0.1:5959".parse().unwrap();
        let second: SocketAddr = "198.18.0.2:5961".parse().unwrap();
        for (second_port, want) in [
            (40000, NatMapping::EndpointIndependent),
            (51234, NatMapping::EndpointDependent),
        ] {
            let t0 = Instant::now();
            let mut m = MappingProbe::default();
            m.start(t0, relay);
            let (req, dest) = m.due(t0).unwrap();
            assert_eq!(dest, relay);
            let txid = wire::decode_probe_request(&req).unwrap();
            assert!(m.due(t0).is_none(), "one at a time");
            let (_, dest) = m
                .on_response(t0, relay, &answer(txid, 40000, vec![second]))
                .unwrap();
            assert_eq!(dest, second);
            assert_eq!(
                m.on_response(t0, second, &answer(txid, second_port, vec![])),
                None
            );
            assert_eq!(m.result(), Some(want));
            assert_eq!(m.deadline(), None);
            // Fresh: a new session measures nothing.
            m.start(t0 + Duration::from_secs(1), relay);
            assert!(m.due(t0 + Duration::from_secs(1)).is_none());
        }
    }

    #[test]
    fn no_answer_gives_up_after_a_few_tries_and_a_stranger_is_ignored() {
        let relay: SocketAddr = "198.18.0.1:5959".parse().unwrap();
        let t0 = Instant::now();
        let mut m = MappingProbe::default();
        m.start(t0, relay);
        let (req, _) = m.due(t0).unwrap();
        let txid = wire::decode_probe_request(&req).unwrap();
        assert_eq!(m.on_response(t0, relay, &answer([0; 12], 1, vec![])), None);
        assert_eq!(
            m.on_response(t0, "10.0.0.1:1".parse().unwrap(), &answer(txid, 1, vec![])),
            None
        );
        let mut sent = 1;
        let mut t = t0;
        while m.deadline().is_some() {
            t += RETRY;
            sent += u32::from(m.due(t).is_some());
        }
        assert_eq!(sent, TRIES);
        assert_eq!(m.result(), None);
    }
}
