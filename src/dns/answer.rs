//! What the DNS server answers, as a pure function of the routing table.
//!
//! devingress is authoritative only for the names it serves. Each exact
//! host is its own zone, so that `example.com` and its other names still
//! resolve publicly; a wildcard host `*.apps.test` makes `apps.test` a zone
//! whose names one label down are served.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::RecordType;

use crate::routes::RouteTable;

/// The answer to one question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The name is served: these addresses (127.0.0.1 for A, ::1 for AAAA).
    Addresses(Vec<IpAddr>),
    /// The name is served, but has no record of that type.
    NoData,
    /// The name is under a served zone but is not served.
    NxDomain,
    /// Not devingress's business: it never recurses.
    Refused,
}

/// A served name: an exact host, or a name under a wildcard's domain (one
/// label deeper for an Ingress wildcard, any depth for a Gateway's).
fn is_served(table: &RouteTable, name: &str) -> bool {
    table.served_hosts.iter().any(|h| h.matches(name))
}

/// The zones: each exact host, and each wildcard's domain.
fn zones(table: &RouteTable) -> impl Iterator<Item = &str> {
    table.served_hosts.iter().map(|h| h.zone())
}

/// Answers `name` (any case, with or without the final dot) for `qtype`.
pub fn answer(table: &RouteTable, name: &str, qtype: RecordType) -> Answer {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if is_served(table, &name) {
        return match qtype {
            RecordType::A => Answer::Addresses(vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]),
            RecordType::AAAA => Answer::Addresses(vec![IpAddr::V6(Ipv6Addr::LOCALHOST)]),
            RecordType::ANY => {
                Answer::Addresses(vec![IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V6(Ipv6Addr::LOCALHOST)])
            }
            _ => Answer::NoData,
        };
    }
    for zone in zones(table) {
        if name == zone {
            // A wildcard's domain itself: the zone exists, the name has no address.
            return Answer::NoData;
        }
        if name.strip_suffix(zone).is_some_and(|rest| rest.ends_with('.')) {
            return Answer::NxDomain;
        }
    }
    Answer::Refused
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::routes::table_for_hosts as table;

    #[test]
    fn answers_table() {
        let t = table(&["alpaca.example.com", "*.apps.test", ""]);
        let v4 = Answer::Addresses(vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]);
        let v6 = Answer::Addresses(vec![IpAddr::V6(Ipv6Addr::LOCALHOST)]);
        let cases: &[(&str, RecordType, Answer)] = &[
            ("alpaca.example.com", RecordType::A, v4.clone()),
            ("ALPACA.example.com.", RecordType::A, v4.clone()),
            ("alpaca.example.com", RecordType::AAAA, v6.clone()),
            ("alpaca.example.com", RecordType::MX, Answer::NoData),
            ("alpaca.example.com", RecordType::TXT, Answer::NoData),
            ("web.apps.test", RecordType::A, v4.clone()),
            ("web.apps.test", RecordType::AAAA, v6),
            ("apps.test", RecordType::A, Answer::NoData),
            ("a.web.apps.test", RecordType::A, Answer::NxDomain),
            ("x.alpaca.example.com", RecordType::A, Answer::NxDomain),
            // The public parent and siblings are not ours: no authority, no recursion.
            ("example.com", RecordType::A, Answer::Refused),
            ("bandicoot.example.com", RecordType::A, Answer::Refused),
            ("www.google.com", RecordType::A, Answer::Refused),
            ("xapps.test", RecordType::A, Answer::Refused),
        ];
        for (name, qtype, want) in cases {
            assert_eq!(&answer(&t, name, *qtype), want, "{name} {qtype}");
        }
    }
}
