//! `HOOKRELAY_AMQP_URL` as one AMQP URL or a comma-separated list of them (the nodes
//! of a cluster, as other RabbitMQ clients accept), and the order nodes are tried in.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Entries are named by position, never shown: a password may hold a comma, and
    /// its pieces would then show unredacted.
    #[error("RabbitMQ address {position} of {count} in the list is empty")]
    Empty { position: usize, count: usize },
    #[error(
        "RabbitMQ address {position} of {count} in the list is not an amqp:// or amqps:// URL \
         with a host (a comma in a password must be written %2C)"
    )]
    Invalid { position: usize, count: usize },
}

/// One node's URL, and its `host:port` for logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Address {
    url: String,
    node: String,
}

impl Address {
    /// The full URL, credentials included: for connecting only.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `host:port`, never the credentials.
    pub fn node(&self) -> &str {
        &self.node
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.node)
    }
}

/// Debug shows the node only, so a derived Debug elsewhere cannot leak a password.
impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({})", self.node)
    }
}

/// Splits `list` on commas and trims each entry; never returns an empty list.
pub fn parse(list: &str) -> Result<Vec<Address>, AddressError> {
    let entries: Vec<&str> = list.split(',').map(str::trim).collect();
    let count = entries.len();
    entries
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            let position = i + 1;
            if entry.is_empty() {
                return Err(AddressError::Empty { position, count });
            }
            let node = node_of(entry).ok_or(AddressError::Invalid { position, count })?;
            Ok(Address {
                url: (*entry).to_owned(),
                node,
            })
        })
        .collect()
}

/// `host:port` of an `amqp://[user[:pass]@]host[:port][/vhost][?query]` URL, with the
/// scheme's default port when none is given.
fn node_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "amqp" => 5672,
        "amqps" => 5671,
        _ => return None,
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    if host_port.is_empty() {
        return None;
    }
    // `[::1]:5672`: the port follows the bracket, not any colon.
    let has_port = match host_port.rfind(']') {
        Some(bracket) => host_port[bracket..].contains(':'),
        None => host_port.contains(':'),
    };
    if has_port {
        let (host, port) = host_port.rsplit_once(':')?;
        port.parse::<u16>().ok()?;
        (!host.is_empty()).then(|| host_port.to_owned())
    } else {
        Some(format!("{host_port}:{default_port}"))
    }
}

/// The nodes of a list as `host:port`, comma-separated: for messages.
pub fn nodes(addresses: &[Address]) -> String {
    addresses
        .iter()
        .map(Address::node)
        .collect::<Vec<_>>()
        .join(",")
}

/// The order of one attempt over `len` nodes: each once, from `start` on, wrapping.
pub fn round(len: usize, start: usize) -> impl Iterator<Item = usize> {
    (0..len).map(move |k| (start + k) % len.max(1))
}

/// Where the next attempt of this process starts: after the node tried last, by any
/// connect (one process uses one list).
static NEXT: AtomicUsize = AtomicUsize::new(0);

pub(crate) fn next_start() -> usize {
    NEXT.load(Ordering::Relaxed)
}

pub(crate) fn tried(index: usize) {
    NEXT.store(index.wrapping_add(1), Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_url_is_a_list_of_one() {
        let a = parse("amqp://guest:guest@127.0.0.1:5672/%2f").unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].url(), "amqp://guest:guest@127.0.0.1:5672/%2f");
        assert_eq!(a[0].node(), "127.0.0.1:5672");
    }

    #[test]
    fn a_list_is_split_on_commas_and_trimmed() {
        let a = parse(" amqp://u:p@h1:5681/%2f ,amqp://u:p@h2:5682/%2f,\tamqps://h3 ").unwrap();
        let urls: Vec<&str> = a.iter().map(Address::url).collect();
        assert_eq!(
            urls,
            [
                "amqp://u:p@h1:5681/%2f",
                "amqp://u:p@h2:5682/%2f",
                "amqps://h3"
            ]
        );
        assert_eq!(nodes(&a), "h1:5681,h2:5682,h3:5671");
    }

    #[test]
    fn nodes_never_show_credentials() {
        let a = parse("amqp://user:s3cret@mq.example:5672/vh?heartbeat=10").unwrap();
        assert_eq!(a[0].node(), "mq.example:5672");
        assert_eq!(a[0].to_string(), "mq.example:5672");
        assert!(!format!("{a:?}").contains("s3cret"));
        assert_eq!(parse("amqp://[::1]/%2f").unwrap()[0].node(), "[::1]:5672");
        assert_eq!(
            parse("amqp://u:p@[::1]:5690").unwrap()[0].node(),
            "[::1]:5690"
        );
    }

    #[test]
    fn an_empty_entry_is_named_by_position() {
        for (list, position, count) in [
            ("", 1, 1),
            ("amqp://u:pw1@h1,,amqp://u:pw3@h3", 2, 3),
            ("amqp://u:pw1@h1, ", 2, 2),
            (",amqp://u:pw@h", 1, 2),
        ] {
            let e = parse(list).unwrap_err();
            assert_eq!(e, AddressError::Empty { position, count }, "{list:?}");
            assert!(!e.to_string().contains("pw"), "{e}");
        }
    }

    #[test]
    fn an_invalid_entry_is_named_without_showing_it() {
        let e = parse("amqp://u:pw1@h1,http://u:pw2@h2").unwrap_err();
        assert_eq!(
            e,
            AddressError::Invalid {
                position: 2,
                count: 2
            }
        );
        // A comma in a password splits it: neither piece may show.
        let e = parse("amqp://u:pw,rest@h").unwrap_err();
        assert_eq!(
            e,
            AddressError::Invalid {
                position: 1,
                count: 2
            }
        );
        let shown = e.to_string();
        assert!(!shown.contains("pw") && !shown.contains("rest"), "{shown}");
        for bad in [
            "h1:5672",
            "amqp://",
            "amqp://u:p@",
            "amqp://h:port",
            "amqp://:5672",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_round_tries_each_node_once_from_the_start_given() {
        assert_eq!(round(3, 0).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(round(3, 1).collect::<Vec<_>>(), [1, 2, 0]);
        assert_eq!(round(3, 5).collect::<Vec<_>>(), [2, 0, 1]);
        assert_eq!(round(1, 7).collect::<Vec<_>>(), [0]);
        assert_eq!(round(0, 3).count(), 0);
    }

    #[test]
    fn the_next_round_starts_after_the_node_tried_last() {
        // A dead first node is not the first one tried again after it failed.
        tried(0);
        assert_eq!(round(3, next_start()).next(), Some(1));
        tried(2);
        assert_eq!(round(3, next_start()).collect::<Vec<_>>(), [0, 1, 2]);
    }
}
