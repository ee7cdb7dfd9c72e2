//! Congestion control against a simulated path: sessions in pairs, each initiator uploading without
//! end, through one bottleneck with a rate, a queue, a one-way delay and random loss, on a virtual
//! clock. What a user of a real path would check: throughput under random loss, the share two
//! tunnels get of one link, the round trip a ping would see while the link is loaded, and that
//! packets are spaced out rather than sent in bursts.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::*;
use crate::wire::Role;

const RELAY: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::new(9, 9, 9, 9),
    9,
));
const MS: Duration = Duration::from_millis(1);

/// One direction of the path.
#[derive(Clone, Copy)]
struct Link {
    /// Bytes per second the bottleneck serves; `None`: no bottleneck.
    rate: Option<f64>,
    /// Bytes the bottleneck queues before it drops.
    queue: usize,
    delay: Duration,
    loss: f64,
}

impl Link {
    fn delay_only(delay: Duration) -> Link {
        Link {
            rate: None,
            queue: usize::MAX,
            delay,
            loss: 0.0,
        }
    }
}

struct Pair {
    i: Session,
    t: Session,
    stream: Option<StreamId>,
    /// Bytes the target read, and when the pair starts uploading.
    received: u64,
    start: Duration,
    /// The application writes nothing while set.
    paused: bool,
    /// The target sends instead (a download) while set; the initiator counts what it reads.
    download: bool,
    downloaded: u64,
    /// Instants the initiator sent ack-eliciting datagrams at.
    sends: Vec<Instant>,
}

struct Flight {
    pair: usize,
    to_target: bool,
    data: Vec<u8>,
}

struct PathSim {
    t0: Instant,
    now: Instant,
    pairs: Vec<Pair>,
    up: Link,
    down: Link,
    /// When each direction's bottleneck (down, up) has served everything queued.
    busy_until: [Instant; 2],
    in_flight: BinaryHeap<Reverse<(Instant, u64)>>,
    flights: BTreeMap<u64, Flight>,
    next_flight: u64,
    rng: u64,
    /// The round trip a ping sent at each upward datagram would have seen.
    ping_rtts: Vec<(Instant, Duration)>,
}

impl PathSim {
    fn new(up: Link, down: Link) -> PathSim {
        let now = Instant::now();
        PathSim {
            t0: now,
            now,
            pairs: Vec::new(),
            up,
            down,
            busy_until: [now; 2],
            in_flight: BinaryHeap::new(),
            flights: BTreeMap::new(),
            next_flight: 0,
            rng: 0x9e37_79b9_7f4a_7c15,
            ping_rtts: Vec::new(),
        }
    }

    /// A path whose upward direction is a bottleneck of `rate` bytes per second with `queue` bytes of
    /// buffer; the round trip is `rtt` without queueing.
    fn bottleneck(rate: f64, queue: usize, rtt: Duration) -> PathSim {
        let mut up = Link::delay_only(rtt / 2);
        up.rate = Some(rate);
        up.queue = queue;
        PathSim::new(up, Link::delay_only(rtt / 2))
    }

    /// A pair that starts uploading `start` after the beginning; `max_outstanding` for its
    /// initiator.
    fn add_pair(&mut self, start: Duration, max_outstanding: Option<u32>) {
        let id = 0x1000 + self.pairs.len() as u64;
        let config = |role| {
            let mut c = SessionConfig::new(role, id, EncryptionMode::None, [3; 32]);
            c.relay = Some(RELAY);
            c.idle_timeout = Duration::from_secs(600);
            c
        };
        let mut ci = config(Role::Initiator);
        ci.max_outstanding = max_outstanding;
        let mut random = [0u8; SESSION_RANDOM_LEN];
        random[0] = self.pairs.len() as u8;
        self.pairs.push(Pair {
            i: Session::new(ci, self.now, random),
            t: Session::new(config(Role::Target), self.now, random),
            stream: None,
            received: 0,
            start,
            paused: false,
            download: false,
            downloaded: 0,
            sends: Vec::new(),
        });
    }

    fn random(&mut self) -> f64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Puts a datagram on the path: dropped at random or by a full queue, otherwise delivered
    /// after the bottleneck has served it and the delay has passed.
    fn send(&mut self, pair: usize, to_target: bool, data: Vec<u8>) {
        let link = if to_target { self.up } else { self.down };
        if self.random() < link.loss {
            return;
        }
        let mut depart = self.now;
        if let Some(rate) = link.rate {
            let busy_until = &mut self.busy_until[to_target as usize];
            let queued = busy_until.saturating_duration_since(self.now);
            if to_target {
                self.ping_rtts
                    .push((self.now, queued + self.up.delay + self.down.delay));
            }
            if queued.as_secs_f64() * rate > link.queue as f64 {
                return;
            }
            depart =
                (*busy_until).max(self.now) + Duration::from_secs_f64(data.len() as f64 / rate);
            *busy_until = depart;
        }
        let key = self.next_flight;
        self.next_flight += 1;
        self.in_flight.push(Reverse((depart + link.delay, key)));
        self.flights.insert(
            key,
            Flight {
                pair,
                to_target,
                data,
            },
        );
    }

    /// Both sessions of every pair: the application's part, then what they send.
    fn service(&mut self) {
        let mut buf = Vec::new();
        let zeros = [0u8; 16 * 1024];
        let mut out = Vec::new();
        for (k, p) in self.pairs.iter_mut().enumerate() {
            if p.i.is_connected() && p.stream.is_none() && self.now >= self.t0 + p.start {
                p.stream = Some(p.i.open_stream().unwrap());
            }
            if let Some(id) = p.stream {
                let (sender, receiver) = if p.download {
                    (&mut p.t, &mut p.i)
                } else {
                    (&mut p.i, &mut p.t)
                };
                while !p.paused && sender.write(id, &zeros).unwrap_or(0) > 0 {}
                let mut sink = [0u8; 16 * 1024];
                while let Ok(ReadResult::Data(n)) = receiver.read(id, &mut sink) {
                    if p.download {
                        p.downloaded += n as u64;
                    } else {
                        p.received += n as u64;
                    }
                }
            }
            for to_target in [true, false] {
                let s = if to_target { &mut p.i } else { &mut p.t };
                while s.poll_transmit(self.now, &mut buf).is_some() {
                    if to_target && buf.len() > 200 {
                        p.sends.push(self.now);
                    }
                    out.push((k, to_target, buf.clone()));
                }
                while s.poll_event().is_some() {}
            }
        }
        for (k, to_target, data) in out {
            self.send(k, to_target, data);
        }
    }

    /// Runs the path until `until` after the beginning.
    fn run(&mut self, until: Duration) {
        let end = self.t0 + until;
        let mut steps_at_this_instant = 0;
        while self.now < end {
            self.service();
            let mut next = self.in_flight.peek().map(|Reverse((at, _))| *at);
            for p in &self.pairs {
                for t in [p.i.poll_timeout(), p.t.poll_timeout()]
                    .into_iter()
                    .flatten()
                {
                    next = Some(next.map_or(t, |n: Instant| n.min(t)));
                }
            }
            let next = next.unwrap_or(end).min(end).max(self.now);
            steps_at_this_instant = if next == self.now {
                steps_at_this_instant + 1
            } else {
                0
            };
            assert!(
                steps_at_this_instant < 1000,
                "the sessions spin: a timer stays in the past"
            );
            self.now = next;
            while let Some(&Reverse((at, key))) = self.in_flight.peek() {
                if at > self.now {
                    break;
                }
                self.in_flight.pop();
                let Some(f) = self.flights.remove(&key) else {
                    continue;
                };
                let p = &mut self.pairs[f.pair];
                let s = if f.to_target { &mut p.t } else { &mut p.i };
                s.handle_datagram(self.now, RELAY, &f.data);
            }
            for p in &mut self.pairs {
                for s in [&mut p.i, &mut p.t] {
                    if s.poll_timeout().is_some_and(|t| t <= self.now) {
                        s.handle_timeout(self.now);
                    }
                }
            }
        }
    }

    /// Bytes each pair's target has read so far.
    fn received(&self) -> Vec<u64> {
        self.pairs.iter().map(|p| p.received).collect()
    }

    /// Bytes per second each pair delivered between `from` and `to` after the beginning.
    fn goodput(&mut self, from: Duration, to: Duration) -> Vec<f64> {
        self.run(from);
        let before = self.received();
        self.run(to);
        let seconds = (to - from).as_secs_f64();
        self.received()
            .iter()
            .zip(before)
            .map(|(after, before)| (after - before) as f64 / seconds)
            .collect()
    }
}

/// 50 ms RTT, 2 MB/s, a bandwidth-delay product of queue, `loss` each way.
fn lossy_path(loss: f64) -> PathSim {
    let mut sim = PathSim::bottleneck(2_000_000.0, 100_000, 50 * MS);
    sim.up.loss = loss;
    sim.down.loss = loss;
    sim.add_pair(Duration::ZERO, None);
    sim
}

#[test]
fn one_percent_random_loss_keeps_throughput_near_the_loss_free_rate() {
    let clean = lossy_path(0.0).goodput(3 * 1000 * MS, 15 * 1000 * MS)[0];
    let lossy = lossy_path(0.01).goodput(3 * 1000 * MS, 15 * 1000 * MS)[0];
    eprintln!("goodput: loss-free {clean:.0} B/s, 1% loss {lossy:.0} B/s");
    assert!(
        clean > 1_600_000.0,
        "the loss-free path is not filled: {clean}"
    );
    assert!(lossy > 0.8 * clean, "1% loss: {lossy} B/s vs {clean} B/s");
}

#[test]
fn two_sessions_share_a_bottleneck_fairly() {
    // 1.25 MB/s (10 Mbit/s), 40 ms RTT, two bandwidth-delay products of queue; the second
    // tunnel starts two seconds after the first.
    let mut sim = PathSim::bottleneck(1_250_000.0, 100_000, 40 * MS);
    sim.add_pair(Duration::ZERO, None);
    sim.add_pair(2 * 1000 * MS, None);
    let rates = sim.goodput(10 * 1000 * MS, 40 * 1000 * MS);
    let (slow, fast) = (rates[0].min(rates[1]), rates[0].max(rates[1]));
    eprintln!("two tunnels on one bottleneck: {rates:?} B/s");
    assert!(slow / fast >= 0.7, "{rates:?}");
    assert!(slow + fast > 0.85 * 1_250_000.0, "link not used: {rates:?}");
}

#[test]
fn rtt_under_load_stays_below_twice_the_base_rtt_with_a_deep_buffer() {
    // 1.25 MB/s, 40 ms base RTT, a 1 MB buffer (800 ms of queue: a bloated home router).
    let mut sim = PathSim::bottleneck(1_250_000.0, 1_000_000, 40 * MS);
    sim.add_pair(Duration::ZERO, None);
    let rate = sim.goodput(5 * 1000 * MS, 30 * 1000 * MS)[0];
    assert!(rate > 0.85 * 1_250_000.0, "link not used: {rate}");
    let loaded: Vec<Duration> = sim
        .ping_rtts
        .iter()
        .filter(|(at, _)| *at >= sim.t0 + 5 * 1000 * MS)
        .map(|&(_, rtt)| rtt)
        .collect();
    let mean = loaded.iter().sum::<Duration>() / loaded.len() as u32;
    eprintln!("goodput {rate:.0} B/s, mean RTT under load {mean:?}");
    assert!(mean < 80 * MS, "mean RTT under load {mean:?} (base 40 ms)");
}

#[test]
fn pacing_spaces_packets_in_small_bursts() {
    // A tunnel that filled a 1.25 MB/s, 40 ms path goes idle, then the application writes a
    // megabyte at once: the window (about two bandwidth-delay products, 70 packets) is open, but
    // the packets leave at the pacing rate in bursts of at most two quanta (20 packets).
    let mut sim = PathSim::bottleneck(1_250_000.0, 1_000_000, 40 * MS);
    sim.add_pair(Duration::ZERO, None);
    sim.run(3000 * MS);
    sim.pairs[0].paused = true;
    sim.run(5000 * MS);
    let window = sim.pairs[0].i.stats().congestion_window;
    assert!(window > 60 * 1400, "window {window}");
    sim.pairs[0].paused = false;
    sim.pairs[0].sends.clear();
    sim.run(5100 * MS);
    let sends = &sim.pairs[0].sends;
    let mut largest_burst = 0;
    let mut k = 0;
    while k < sends.len() {
        let same = sends[k..].iter().take_while(|&&at| at == sends[k]).count();
        largest_burst = largest_burst.max(same);
        k += same;
    }
    eprintln!("{} packets, largest burst {largest_burst}", sends.len());
    assert!(largest_burst <= 20, "a burst of {largest_burst} packets");
    // 60 packets of ~1.4 kB at about 1.25 MB/s take about 60 ms.
    let spread = sends[59] - sends[0];
    assert!(spread >= 40 * MS, "60 packets within {spread:?}");
}

#[test]
fn the_seeds_max_depth_12_reaches_the_default_throughput_at_50ms_rtt() {
    let run = |max_outstanding| {
        let mut sim = PathSim::bottleneck(4_000_000.0, 200_000, 50 * MS);
        sim.add_pair(Duration::ZERO, max_outstanding);
        sim.goodput(2 * 1000 * MS, 8 * 1000 * MS)[0]
    };
    let (seed, default) = (run(Some(12)), run(None));
    eprintln!("max_depth 12: {seed:.0} B/s, default {default:.0} B/s");
    assert!(
        seed >= 0.9 * default,
        "max_depth 12: {seed} B/s, default {default} B/s"
    );
    // 12 packets per 50 ms was all a fixed depth allowed.
    assert!(seed > 10.0 * 12.0 * 1400.0 / 0.05, "{seed}");
}

#[test]
fn a_download_after_a_long_upload_still_fills_the_path() {
    // Twenty seconds of upload, in which the target sent only acknowledgements and window updates
    // (their samples measure the application, not the path), then the target sends: it must not
    // take those samples' tiny rate as the path's. The download's path has the same 2 MB/s.
    let mut sim = lossy_path(0.01);
    sim.down.rate = Some(2_000_000.0);
    sim.down.queue = 100_000;
    sim.run(20 * 1000 * MS);
    sim.pairs[0].download = true;
    sim.run(22 * 1000 * MS);
    let before = sim.pairs[0].downloaded;
    sim.run(30 * 1000 * MS);
    let rate = (sim.pairs[0].downloaded - before) as f64 / 8.0;
    assert!(rate > 1_500_000.0, "{rate} B/s downloaded after an upload");
}
