//! The SSRF guard: webhooks may only reach public addresses, unless an operator
//! allows more. The check runs on the addresses DNS returned, and those very
//! addresses are what the HTTP client connects to, so a name that resolves to a
//! public address when checked and a private one later (DNS rebinding) gains nothing.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Which destinations deliveries may reach.
#[derive(Debug, Clone, Default)]
pub struct Destinations {
    /// Any address at all (local stacks, tests).
    pub allow_private: bool,
    /// Non-public networks that are allowed nonetheless (`10.1.2.0/24`).
    pub allowed: Vec<IpNet>,
}

/// Why a destination was refused; the sender fails the delivery for good with it.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "destination blocked: {host} is {address}, not a public address (HOOKRELAY_ALLOWED_DESTINATIONS can allow it)"
)]
pub struct Blocked {
    pub host: String,
    pub address: IpAddr,
}

impl Destinations {
    pub fn permits(&self, ip: IpAddr) -> bool {
        self.allow_private || is_public(ip) || self.allowed.iter().any(|n| n.contains(&ip))
    }

    /// Checks a URL whose host is an IP literal (the client resolves no name then).
    pub fn check_url(&self, url: &str) -> Result<(), Blocked> {
        let Ok(parsed) = reqwest::Url::parse(url) else {
            return Ok(()); // The client refuses it with its own error.
        };
        let host = parsed.host_str().unwrap_or_default();
        let Ok(ip) = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        else {
            return Ok(());
        };
        if self.permits(ip) {
            Ok(())
        } else {
            Err(Blocked {
                host: ip.to_string(),
                address: ip,
            })
        }
    }
}

/// A public unicast address: not loopback, private, link-local, shared (CGNAT),
/// documentation, benchmarking, multicast, reserved or unspecified.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        || a >= 240
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (18..20).contains(&b)))
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    // Addresses that carry an IPv4 address are judged by it.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    let embedded_v4 = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match s {
        // IPv4-translated (::ffff:0:0/96) and NAT64's well-known prefix (64:ff9b::/96).
        [0, 0, 0, 0, 0xffff, 0, hi, lo] | [0x0064, 0xff9b, 0, 0, 0, 0, hi, lo] => {
            return is_public_v4(embedded_v4(hi, lo));
        }
        [0x2002, hi, lo, ..] => return is_public_v4(embedded_v4(hi, lo)), // 6to4
        _ => {}
    }
    // Only global unicast (2000::/3) is public, less its special-purpose blocks. An
    // allowlist of what is public, not a list of what is not: a block assigned later
    // (or missed here) is refused rather than reached.
    (s[0] & 0xe000) == 0x2000
        && !(s[0] == 0x2001 && s[1] < 0x0200) // 2001::/23: Teredo, benchmarking, ORCHID, other IETF
        && !(s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        && (s[0] & 0xfff0) != 0x3ff0 // 3fff::/20, documentation (RFC 9637)
}

/// Resolves names with the system resolver and keeps only permitted addresses.
pub struct GuardedResolver {
    pub destinations: Arc<Destinations>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let destinations = Arc::clone(&self.destinations);
        Box::pin(async move {
            let permitted = resolve_permitted(&destinations, name.as_str()).await?;
            let addrs = permitted.into_iter().map(|ip| SocketAddr::new(ip, 0));
            Ok(Box::new(addrs) as Addrs)
        })
    }
}

/// Resolves `host` (a name or an IP literal) with the system resolver and returns the
/// permitted addresses, or the guard's refusal when DNS gave none that is: the one
/// check both the direct client and the egress proxy's tunnel make.
pub(crate) async fn resolve_permitted(
    destinations: &Destinations,
    host: &str,
) -> Result<Vec<IpAddr>, Box<dyn std::error::Error + Send + Sync>> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let found: Vec<IpAddr> = tokio::net::lookup_host((host, 0))
        .await?
        .map(|a| a.ip())
        .collect();
    let permitted: Vec<IpAddr> = found
        .iter()
        .copied()
        .filter(|ip| destinations.permits(*ip))
        .collect();
    match (permitted.is_empty(), found.first()) {
        (false, _) => Ok(permitted),
        (true, Some(first)) => Err(Box::new(Blocked {
            host: host.to_owned(),
            address: *first,
        })),
        (true, None) => Err(format!("{host} has no address").into()),
    }
}

/// The guard's refusal behind a client error, if that is what it was.
pub fn blocked_in<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a Blocked> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(b) = e.downcast_ref::<Blocked>() {
            return Some(b);
        }
        current = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(s: &str) -> bool {
        is_public(s.parse().unwrap())
    }

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for s in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "240.0.0.1",
            "192.0.0.8",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "2002:a00:1::1",
            "::127.0.0.1",
            "::ffff:0:7f00:1",
            "64:ff9b:1::a00:1",
            "fec0::1",
            "100::1",
            "3fff::1",
            "5f00::1",
            "4000::1",
        ] {
            assert!(!public(s), "{s} must not count as public");
        }
        for s in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700::1111",
            "::ffff:1.1.1.1",
            "2002:101:101::1",
        ] {
            assert!(public(s), "{s} is public");
        }
    }

    #[test]
    fn allowlists_open_their_networks_only() {
        let d = Destinations {
            allow_private: false,
            allowed: vec!["10.1.0.0/16".parse().unwrap()],
        };
        assert!(d.permits("10.1.2.3".parse().unwrap()));
        assert!(!d.permits("10.2.0.1".parse().unwrap()));
        assert!(d.check_url("http://10.1.0.9:8080/x").is_ok());
        let blocked = d.check_url("http://[::1]:9000/x").unwrap_err();
        assert!(blocked.to_string().contains("not a public address"));
        assert!(
            d.check_url("https://example.com/x").is_ok(),
            "names are checked on resolution"
        );
    }

    #[test]
    fn every_spelling_of_a_loopback_literal_is_refused() {
        let d = Destinations::default();
        for url in [
            "http://[::ffff:127.0.0.1]/x",
            "http://[::1]/x",
            "http://0/x",
            "http://2130706433/x",
            "http://0x7f.1/x",
            "http://127.1/x",
            "http://[0:0:0:0:0:ffff:7f00:1]/x",
        ] {
            assert!(d.check_url(url).is_err(), "{url} must be refused");
        }
    }
}
