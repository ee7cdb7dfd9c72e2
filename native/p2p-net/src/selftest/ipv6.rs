//! IPv6 in the self-test: whether this host has a global IPv6 address, which a session offers its peer
//! as a candidate. Behind a home router such an address is not translated, only firewalled (replies
//! only), so two hosts that both have one go direct over IPv6 whatever their IPv4 NATs do.

use serde::{Deserialize, Serialize};

use crate::net_util;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ipv6Check {
    /// This host's global unicast IPv6 addresses: the IPv6 candidates a session offers.
    pub global_addresses: Vec<String>,
}

impl Ipv6Check {
    pub fn gather() -> Ipv6Check {
        Ipv6Check {
            global_addresses: net_util::global_ipv6_candidates(0)
                .iter()
                .map(|c| c.ip().to_string())
                .collect(),
        }
    }

    /// The report's IPv6 line.
    pub fn line(&self) -> String {
        if self.global_addresses.is_empty() {
            "IPv6: no global address; direct paths use IPv4 only.".into()
        } else {
            format!(
                "IPv6: global address {}; peers that have IPv6 too are reached over it directly (no NAT to traverse, only a firewall that the punch opens).",
                self.global_addresses.join(", ")
            )
        }
    }

    /// What IPv6 adds to the verdict about IPv4 (nothing without a global address).
    pub fn verdict_addition(&self) -> Option<&'static str> {
        (!self.global_addresses.is_empty()).then_some(
            "With its global IPv6 address, this host goes direct over IPv6 to peers that have one too, whatever the IPv4 NATs.",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_and_the_verdict_follow_the_global_addresses() {
        let none = Ipv6Check::default();
        assert!(none.line().contains("no global address"));
        assert_eq!(none.verdict_addition(), None);
        let some = Ipv6Check {
            global_addresses: vec!["2001:db8:1::2".into()],
        };
        assert!(some.line().contains("2001:db8:1::2"), "{}", some.line());
        assert!(some.verdict_addition().is_some());
        for a in Ipv6Check::gather().global_addresses {
            assert!(net_util::is_global_ipv6(a.parse().unwrap()), "{a}");
        }
    }
}
