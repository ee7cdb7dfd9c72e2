//! NAT probe responders: every UDP listener answers a `ProbeRequest` with the source address it saw, so
//! a client comparing the answers of the three listeners learns its public address, whether its NAT keeps
//! the port, and whether the mapping changes with the destination (see `connectd -n`). A flagged request
//! is answered from another listener (RFC 5780 "change port" / "change IP"), which tells the client how
//! its NAT filters datagrams from addresses it never sent to. Every answer also names the second-IP
//! listener, so clients need not guess where it is.
//!
//! The probe ports must not be an amplifier for someone who spoofs a victim's source address: requests
//! are padded to the longest answer (`wire::PROBE_REQUEST_LEN`; shorter ones are refused), and answers
//! to one source address are rate-limited ([`ProbeLimits`]), on all three listeners together.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use p2p_proto::wire::{self, Kind, ProbeRequest, ProbeResponse};
use tokio::net::UdpSocket;

/// Receive buffer: larger than any datagram a peer sends, so a full buffer means "too big, maybe cut".
pub const RECV_BUF: usize = 2048;

/// Indexes into the server's three UDP listeners (`udp[0]` is also the relay).
pub const SECOND_IP_LISTENER: usize = 2;

/// Which listener answers a request that arrived on `arrived_on` with `flags`, or `None` when no
/// listener fits (a change of port asked of the second IP, which has only one port). Change-IP wins
/// when both are set: the second-IP listener's port differs too.
pub fn answering_listener(arrived_on: usize, flags: u8) -> Option<usize> {
    if flags & wire::PROBE_CHANGE_IP != 0 {
        Some(if arrived_on == SECOND_IP_LISTENER {
            0
        } else {
            SECOND_IP_LISTENER
        })
    } else if flags & wire::PROBE_CHANGE_PORT != 0 {
        match arrived_on {
            0 => Some(1),
            1 => Some(0),
            _ => None,
        }
    } else {
        Some(arrived_on)
    }
}

/// The addresses every answer advertises: the second-IP listener first (what a client probes for the
/// mapping test), then the second port. A wildcard address tells a client nothing and is left out.
pub fn advertised(public: [SocketAddr; 3]) -> Vec<SocketAddr> {
    [public[SECOND_IP_LISTENER], public[1]]
        .into_iter()
        .filter(|a| !a.ip().is_unspecified() && a.port() != 0)
        .collect()
}

/// How many probe answers one source address gets (`p2p-server run --probe-rate`, `--probe-burst`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeLimits {
    /// Answers per second to one source IP address, sustained (all listeners together).
    pub per_second: u32,
    /// Answers one source IP address may get at once before `per_second` applies. `connectd -n` sends
    /// at most 18 requests (6 probes, 3 attempts each).
    pub burst: u32,
}

impl Default for ProbeLimits {
    fn default() -> Self {
        ProbeLimits {
            per_second: 10,
            burst: 20,
        }
    }
}

/// Source addresses whose buckets are kept at once; beyond this, full (idle) buckets are forgotten and,
/// if none is, new sources wait until some are (a flood of spoofed sources cannot grow the table).
const MAX_SOURCES: usize = 16 * 1024;

/// A token bucket per source IP address (pure logic: time is passed in).
pub struct SourceLimiter {
    limits: ProbeLimits,
    buckets: HashMap<IpAddr, (f64, Instant)>,
}

impl SourceLimiter {
    pub fn new(limits: ProbeLimits) -> Self {
        SourceLimiter {
            limits,
            buckets: HashMap::new(),
        }
    }

    fn refill(&self, tokens: f64, since: Instant, now: Instant) -> f64 {
        let burst = f64::from(self.limits.burst.max(1));
        let add =
            now.saturating_duration_since(since).as_secs_f64() * f64::from(self.limits.per_second);
        (tokens + add).min(burst)
    }

    /// Whether `ip` may get one more answer now (and if so, counts it). An IPv6 source counts by its
    /// /64 (one site or host has a whole /64 to spread requests over), an IPv4-mapped one as IPv4.
    pub fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        let ip = match ip.to_canonical() {
            IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
            v4 => v4,
        };
        if !self.buckets.contains_key(&ip) && self.buckets.len() >= MAX_SOURCES {
            let burst = f64::from(self.limits.burst.max(1));
            let limits = self.limits;
            self.buckets.retain(|_, (tokens, since)| {
                let add = now.saturating_duration_since(*since).as_secs_f64()
                    * f64::from(limits.per_second);
                *tokens + add < burst
            });
            if self.buckets.len() >= MAX_SOURCES {
                return false;
            }
        }
        let burst = f64::from(self.limits.burst.max(1));
        let (tokens, since) = self.buckets.get(&ip).copied().unwrap_or((burst, now));
        let tokens = self.refill(tokens, since, now);
        if tokens >= 1.0 {
            self.buckets.insert(ip, (tokens - 1.0, now));
            true
        } else {
            self.buckets.insert(ip, (tokens, now));
            false
        }
    }

    pub fn sources(&self) -> usize {
        self.buckets.len()
    }
}

/// How often the server logs that it is refusing probe answers (with the count since the start).
const LIMITED_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// What became of a well-formed request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Response {
    Answered,
    /// No listener fits the request's flags.
    Unanswerable,
    /// Its source address had its share of answers.
    RateLimited,
}

/// The three listeners, shared by every probe-answering task so any of them can answer from another.
pub struct Responder {
    sockets: [Arc<UdpSocket>; 3],
    others: Vec<SocketAddr>,
    limiter: Mutex<(SourceLimiter, Option<Instant>)>,
    /// Requests refused by the rate limit, since the start.
    pub rate_limited: AtomicU64,
}

impl Responder {
    /// `public` are the listeners' addresses as clients must use them (bound or configured).
    pub fn new(sockets: [Arc<UdpSocket>; 3], public: [SocketAddr; 3], limits: ProbeLimits) -> Self {
        Responder {
            sockets,
            others: advertised(public),
            limiter: Mutex::new((SourceLimiter::new(limits), None)),
            rate_limited: AtomicU64::new(0),
        }
    }

    /// Which listener answers `req` and with what bytes; never more bytes than the request had.
    pub fn answer(
        &self,
        req: &ProbeRequest,
        from: SocketAddr,
        arrived_on: usize,
    ) -> Option<(usize, Vec<u8>)> {
        let via = answering_listener(arrived_on, req.flags)?;
        let bytes = ProbeResponse {
            txid: req.txid,
            seen: from,
            others: self.others.clone(),
        }
        .encode();
        (bytes.len() <= wire::PROBE_REQUEST_LEN).then_some((via, bytes))
    }

    /// Whether `from` may get another answer; logs refusals at most every `LIMITED_LOG_INTERVAL`.
    fn admit(&self, from: SocketAddr) -> bool {
        let now = Instant::now();
        let mut guard = self.limiter.lock().unwrap_or_else(|p| p.into_inner());
        let (limiter, last_log) = &mut *guard;
        if limiter.allow(from.ip(), now) {
            return true;
        }
        let refused = self.rate_limited.fetch_add(1, Ordering::Relaxed) + 1;
        if last_log.is_none_or(|t| now.duration_since(t) >= LIMITED_LOG_INTERVAL) {
            *last_log = Some(now);
            log::warn!(
                "probe answers rate-limited (latest source {}; {refused} refused since start, limit {}/s per address)",
                from.ip(),
                limiter.limits.per_second
            );
        }
        false
    }

    /// Answers `req` if its source address is within its limit and a listener fits its flags.
    pub async fn respond(
        &self,
        req: &ProbeRequest,
        from: SocketAddr,
        arrived_on: usize,
    ) -> Response {
        let Some((via, bytes)) = self.answer(req, from, arrived_on) else {
            return Response::Unanswerable;
        };
        if !self.admit(from) {
            return Response::RateLimited;
        }
        if let Err(e) = self.sockets[via].send_to(&bytes, from).await {
            log::debug!("probe answer to {from} failed: {e}");
        }
        Response::Answered
    }
}

/// Counters of the probe-only listeners.
#[derive(Debug, Default)]
pub struct ProbeCounters {
    pub answered: AtomicU64,
    /// Anything that is not a well-formed probe request we can answer (unpadded, or over its source's
    /// rate limit): dropped without an answer.
    pub ignored: AtomicU64,
}

/// Serves the probe-only listener `udp[index]` (1 or 2) until the task is aborted.
pub async fn serve(responder: Arc<Responder>, index: usize, counters: Arc<ProbeCounters>) {
    let socket = responder.sockets[index].clone();
    let mut buf = vec![0u8; RECV_BUF];
    loop {
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            // Windows reports an earlier send's ICMP "port unreachable" here; it concerns nobody now.
            Err(e) => {
                log::debug!("probe socket receive error: {e}");
                tokio::task::yield_now().await;
                continue;
            }
        };
        let request = if n < RECV_BUF && wire::peek_kind(&buf[..n]) == Ok(Kind::ProbeRequest) {
            ProbeRequest::decode(&buf[..n]).ok()
        } else {
            None
        };
        let answered = match request {
            Some(req) => responder.respond(&req, from, index).await == Response::Answered,
            None => false,
        };
        let counter = if answered {
            &counters.answered
        } else {
            &counters.ignored
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn listeners() -> ([Arc<UdpSocket>; 3], [SocketAddr; 3]) {
        let mut socks = Vec::new();
        // Linux routes all of 127/8 to loopback: 127.0.0.2 plays the server's second IP.
        for ip in ["127.0.0.1", "127.0.0.1", "127.0.0.2"] {
            socks.push(Arc::new(UdpSocket::bind((ip, 0)).await.unwrap()));
        }
        let addrs = [0, 1, 2].map(|i| socks[i].local_addr().unwrap());
        (socks.try_into().unwrap(), addrs)
    }

    async fn receive(client: &UdpSocket) -> (ProbeResponse, SocketAddr) {
        let mut buf = [0u8; 128];
        let (n, from) = tokio::time::timeout(Duration::from_secs(5), client.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        (ProbeResponse::decode(&buf[..n]).unwrap(), from)
    }

    #[tokio::test]
    async fn answers_with_the_source_address_and_ignores_garbage() {
        let (socks, addrs) = listeners().await;
        let responder = Arc::new(Responder::new(socks, addrs, ProbeLimits::default()));
        let counters = Arc::new(ProbeCounters::default());
        let task = tokio::spawn(serve(responder, 1, counters.clone()));
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client.send_to(b"garbage", addrs[1]).await.unwrap();
        client
            .send_to(&wire::encode_probe_request([9; 12]), addrs[1])
            .await
            .unwrap();
        let (resp, from) = receive(&client).await;
        assert_eq!(from, addrs[1]);
        assert_eq!(resp.txid, [9; 12]);
        assert_eq!(resp.seen, client.local_addr().unwrap());
        assert_eq!(resp.others, vec![addrs[2], addrs[1]]);
        assert_eq!(counters.ignored.load(Ordering::Relaxed), 1);
        assert_eq!(counters.answered.load(Ordering::Relaxed), 1);
        task.abort();
    }

    #[tokio::test]
    async fn flagged_requests_are_answered_from_the_other_port_or_ip() {
        let (socks, addrs) = listeners().await;
        let responder = Arc::new(Responder::new(socks, addrs, ProbeLimits::default()));
        let counters = Arc::new(ProbeCounters::default());
        let tasks = [1, 2].map(|i| tokio::spawn(serve(responder.clone(), i, counters.clone())));
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        for (flags, to, want_from) in [
            (wire::PROBE_CHANGE_PORT, 1, 0),
            (wire::PROBE_CHANGE_IP, 1, 2),
            (wire::PROBE_CHANGE_IP | wire::PROBE_CHANGE_PORT, 2, 0),
        ] {
            let req = ProbeRequest {
                txid: [flags; 12],
                flags,
            };
            client.send_to(&req.encode(), addrs[to]).await.unwrap();
            let (resp, from) = receive(&client).await;
            assert_eq!(from, addrs[want_from], "flags {flags}");
            assert_eq!(resp.txid, [flags; 12]);
            assert_eq!(resp.seen, client.local_addr().unwrap());
        }
        // The second IP has no second port: a change-port request there goes unanswered.
        let req = ProbeRequest {
            txid: [7; 12],
            flags: wire::PROBE_CHANGE_PORT,
        };
        client.send_to(&req.encode(), addrs[2]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(counters.ignored.load(Ordering::Relaxed), 1);
        assert_eq!(counters.answered.load(Ordering::Relaxed), 3);
        for t in tasks {
            t.abort();
        }
    }

    #[test]
    fn answers_per_source_are_limited_to_the_burst_then_the_rate() {
        let limits = ProbeLimits {
            per_second: 10,
            burst: 20,
        };
        let mut l = SourceLimiter::new(limits);
        let t0 = Instant::now();
        let victim: IpAddr = "198.51.100.1".parse().unwrap();
        let other: IpAddr = "198.51.100.2".parse().unwrap();
        let allowed = (0..1000).filter(|_| l.allow(victim, t0)).count();
        assert_eq!(allowed, 20);
        // Another source is not affected; time refills at the rate.
        assert!(l.allow(other, t0));
        // One IPv6 /64 is one source.
        let mut l6 = SourceLimiter::new(limits);
        let in_64 = |i: u16| IpAddr::from([0x2001, 0xdb8, 0, 1, 0, 0, 0, i]);
        assert_eq!((0..100).filter(|i| l6.allow(in_64(*i), t0)).count(), 20);
        assert!(l6.allow(IpAddr::from([0x2001, 0xdb8, 0, 2, 0, 0, 0, 1]), t0));
        let after = t0 + Duration::from_millis(500);
        assert_eq!((0..100).filter(|_| l.allow(victim, after)).count(), 5);
        // Over 10 s of constant flooding: the burst plus 10 per second.
        let mut l = SourceLimiter::new(limits);
        let mut n = 0;
        for ms in 0..10_000u64 {
            n += (0..10)
                .filter(|_| l.allow(victim, t0 + Duration::from_millis(ms)))
                .count();
        }
        assert!((100..=121).contains(&n), "{n}");
        // The table stays bounded under a flood of distinct sources.
        let mut l = SourceLimiter::new(limits);
        for i in 0..(MAX_SOURCES as u32 + 100) {
            l.allow(IpAddr::from(i.to_be_bytes()), t0);
        }
        assert!(l.sources() <= MAX_SOURCES);
    }

    #[tokio::test]
    async fn unpadded_requests_get_nothing_and_answers_never_outgrow_requests() {
        let (socks, addrs) = listeners().await;
        let responder = Arc::new(Responder::new(
            socks,
            addrs,
            ProbeLimits {
                per_second: 1,
                burst: 3,
            },
        ));
        let counters = Arc::new(ProbeCounters::default());
        let task = tokio::spawn(serve(responder.clone(), 1, counters.clone()));
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        // The old 14-byte request and a padded one cut short.
        let padded = wire::encode_probe_request([1; 12]);
        client.send_to(&padded[..14], addrs[1]).await.unwrap();
        client.send_to(&padded[..60], addrs[1]).await.unwrap();
        for _ in 0..10 {
            client.send_to(&padded, addrs[1]).await.unwrap();
        }
        let mut buf = [0u8; 256];
        let mut answers = 0;
        while let Ok(Ok((n, _))) =
            tokio::time::timeout(Duration::from_millis(300), client.recv_from(&mut buf)).await
        {
            assert!(
                n <= padded.len(),
                "a {n}-byte answer to a {}-byte request",
                padded.len()
            );
            answers += 1;
        }
        assert_eq!(answers, 3, "the burst, then nothing until the rate refills");
        assert_eq!(counters.answered.load(Ordering::Relaxed), 3);
        assert_eq!(counters.ignored.load(Ordering::Relaxed), 9);
        assert_eq!(responder.rate_limited.load(Ordering::Relaxed), 7);
        task.abort();
    }

    #[test]
    fn wildcard_addresses_are_not_advertised() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(
            advertised([a("0.0.0.0:5959"), a("0.0.0.0:5960"), a("198.18.0.2:5961")]),
            vec![a("198.18.0.2:5961")]
        );
        assert_eq!(answering_listener(0, 0), Some(0));
        assert_eq!(answering_listener(2, wire::PROBE_CHANGE_PORT), None);
    }
}
