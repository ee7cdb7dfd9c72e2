//! The self-test report as text, in connectd's `-n` layout (the seed's lines, in the seed's order), with
//! our extra lines (UPnP, NAT classification, AEAD tests, the verdict) where they fit.

use std::fmt::Write;

use super::SelfTestReport;

pub(super) fn text(r: &SelfTestReport) -> String {
    let mut o = String::new();
    // `write!` to a String cannot fail.
    let mut line = |s: String| {
        o.push_str(&s);
        o.push('\n');
    };
    line("Running Network Diagnostics".into());
    line("---------------------------------".into());
    line(match (&r.dns.ok, &r.dns.error) {
        (true, _) => "Checking if DNS works ... .[OK]".into(),
        (false, e) => format!(
            "Checking if DNS works ... .[FAILED] {}",
            e.as_deref().unwrap_or("")
        ),
    });
    line(match (&r.tcp.ok, &r.tcp.error) {
        (true, _) => format!(
            "Checking TCP connectivity to {}...<oip={}> [OK]",
            r.server,
            r.tcp.source_ip.as_deref().unwrap_or("?")
        ),
        (false, e) => format!(
            "Checking TCP connectivity to {}...[FAILED] {}",
            r.server,
            e.as_deref().unwrap_or("")
        ),
    });
    line(control_line(r));
    line(format!("Checking UDP connectivity to {}...", r.server));
    let last = r.udp.probes.len().saturating_sub(1);
    for (i, p) in r.udp.probes.iter().enumerate() {
        let mut s = format!(
            "Send to {} []",
            p.address
                .map(|a| a.to_string())
                .unwrap_or_else(|| p.target.clone())
        );
        match p.mapped {
            Some(m) => {
                let _ = write!(
                    s,
                    " [mip={}] [oport={} mport={}]",
                    m.ip(),
                    p.local_port
                        .map(|v| v.to_string())
                        .unwrap_or_else(|| "?".into()),
                    m.port()
                );
                if p.no_remap == Some(true) {
                    s.push_str(" [no remap]");
                }
                let flags: Vec<&str> = [
                    (p.preserve_port, "preserve port"),
                    (p.different_ip, "different IP"),
                ]
                .into_iter()
                .filter_map(|(on, name)| on.then_some(name))
                .collect();
                if !flags.is_empty() {
                    let _ = write!(s, " [{}]", flags.join(" "));
                }
            }
            None => {
                let _ = write!(s, " [FAILED] {}", p.error.as_deref().unwrap_or(""));
            }
        }
        if i == last && r.udp.ok {
            s.push_str(" [OK]");
        }
        line(s);
    }
    if !r.udp.ok {
        line(format!(
            "[FAILED] {}",
            r.udp.error.as_deref().unwrap_or("no probe answered")
        ));
    }
    let mut pmp = String::from("Checking if NAT-PMP Router is found...");
    if r.nat_pmp.found {
        let _ = write!(
            pmp,
            "[Pub IP {}][epoch {}][FOUND]",
            r.nat_pmp.public_ip.as_deref().unwrap_or("?"),
            r.nat_pmp.epoch.unwrap_or(0)
        );
    } else {
        let _ = write!(
            pmp,
            "[NOT FOUND] {}",
            r.nat_pmp.error.as_deref().unwrap_or("")
        );
    }
    line(pmp.trim_end().to_string());
    line(if r.upnp.found {
        format!(
            "Checking if UPnP IGD is found...[FOUND]{}",
            r.upnp
                .location
                .as_deref()
                .map(|l| format!(" {l}"))
                .unwrap_or_default()
        )
    } else {
        format!(
            "Checking if UPnP IGD is found...[NOT FOUND] {}",
            r.upnp.error.as_deref().unwrap_or("")
        )
        .trim_end()
        .to_string()
    });
    line(String::new());
    match r.nat.port_preservation {
        Some(true) => line("This router preserves ports, this is optimal.".into()),
        Some(false) => line("This router does not preserve ports.".into()),
        None => {}
    }
    let remaps = r.udp.probes.iter().filter_map(|p| p.no_remap);
    let remap_known: Vec<bool> = remaps.collect();
    if remap_known.contains(&false) {
        line("This router remaps new connections to new ports.".into());
    } else if !remap_known.is_empty() {
        line("This router doesn't remap new connections to new ports.".into());
    }
    line(if r.upnp.found {
        "UPNP is enabled on this router, this is optimal.".into()
    } else {
        "UPNP was not found on this network.".into()
    });
    line(format!(
        "NAT mapping (RFC 4787): {}",
        r.nat.mapping.describe()
    ));
    line(format!("NAT filtering: {}", r.nat.filtering));
    line(format!(
        "Hairpinning: {}",
        match r.nat.hairpinning {
            Some(true) => "supported",
            Some(false) => "not supported",
            None => "not measured",
        }
    ));
    for n in &r.nat.notes {
        line(format!("Note: {n}"));
    }
    line(r.ipv6.line());
    line(format!("Endian : {}", r.endian));
    for c in &r.crypto {
        line(format!("{} test:", c.name));
        line(if c.passed {
            "  passed.".into()
        } else {
            "  FAILED.".into()
        });
    }
    line(r.verdict.clone());
    line(if r.compatible {
        "Looks compatible.".into()
    } else {
        format!("Not compatible: {}.", r.problems.join("; "))
    });
    o
}

/// Not in connectd's layout: whether the server's key worked and whose probe ports the UDP lines use.
fn control_line(r: &SelfTestReport) -> String {
    let c = &r.control;
    let head = format!("Checking the control channel to {}...", r.server);
    match (c.ok, c.checked, c.problem) {
        (true, _, _) if c.probe_addrs_from == "server" => {
            format!("{head}[OK] probe ports {}", c.probe_addrs.join(","))
        }
        (true, _, _) => format!(
            "{head}[OK] probe ports {} (P2P_PROBE_ADDRn override some)",
            c.probe_addrs.join(",")
        ),
        (false, true, true) => format!("{head}[FAILED] {}", c.error.as_deref().unwrap_or("")),
        _ => format!("{head}[SKIPPED] {}", c.error.as_deref().unwrap_or("")),
    }
}
