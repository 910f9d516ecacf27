//! Which address a request comes from: the TCP peer, or, only when that peer is a
//! `--trusted-proxy`, the nearest untrusted hop in `X-Forwarded-For` (DESIGN §9). It must
//! never believe a header sent by a peer it does not trust: that header is the client's to
//! forge.

use actix_web::http::header::HeaderName;
use actix_web::HttpRequest;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

/// The `X-Forwarded-For` header name.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The proxies whose `X-Forwarded-For` we believe, from `--trusted-proxy`.
///
/// Empty (the default) means the peer address is always the client address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// No trusted proxy: `X-Forwarded-For` is ignored.
    pub fn none() -> Self {
        Self::default()
    }

    /// Parses CIDRs (`10.0.0.0/8`, `fd00::/8`) or bare addresses (`192.0.2.7`, `::1`).
    /// Each entry may be surrounded by spaces; empty entries are skipped. The error names
    /// the first entry that is neither.
    pub fn parse(list: &[String]) -> Result<Self, String> {
        let mut nets = Vec::with_capacity(list.len());
        for raw in list {
            let item = raw.trim();
            if item.is_empty() {
                continue;
            }
            let net = match item.parse::<IpNet>() {
                Ok(net) => net.trunc(),
                Err(_) => match item.parse::<IpAddr>() {
                    Ok(ip) => IpNet::from(ip),
                    Err(_) => {
                        return Err(format!(
                            "trusted proxy {item:?} is neither an IP address nor a CIDR"
                        ))
                    }
                },
            };
            nets.push(net);
        }
        Ok(Self(nets))
    }

    /// True when no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when `ip` is inside one of the trusted networks. An IPv4-mapped IPv6 address
    /// (`::ffff:10.0.0.1`, what a dual-stack listener reports) counts as its IPv4 form.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client address, given the TCP peer and the raw `X-Forwarded-For` value (all
    /// occurrences joined with `,`).
    ///
    /// - An untrusted peer (or no trusted proxy at all) is the client: the header is ignored.
    /// - Behind a trusted peer, the header is walked from the right, skipping hops that are
    ///   themselves trusted; the first untrusted hop is the client. Entries further left were
    ///   written by that client and may be forged, so they are never looked at.
    /// - An entry that is not an address (`unknown`, garbage) stops the walk: the peer is the
    ///   answer, since nothing left of it can be vouched for.
    /// - If every hop is trusted, the leftmost one is the client.
    /// - No peer (a unit test, a Unix socket) means no answer.
    pub fn client_ip(&self, peer: Option<IpAddr>, x_forwarded_for: Option<&str>) -> Option<IpAddr> {
        let peer = peer?.to_canonical();
        if !self.is_trusted(peer) {
            return Some(peer);
        }
        let Some(header) = x_forwarded_for else {
            return Some(peer);
        };
        let mut leftmost_trusted = None;
        for entry in header.rsplit(',') {
            let entry = entry.trim();
            if entry.is_empty() {
                // `a,,b` or a trailing comma: nothing there, nothing vouched for.
                continue;
            }
            let Some(hop) = parse_hop(entry) else {
                return Some(peer);
            };
            if !self.is_trusted(hop) {
                return Some(hop);
            }
            leftmost_trusted = Some(hop);
        }
        Some(leftmost_trusted.unwrap_or(peer))
    }

    /// [`Self::client_ip`] for an actix request: its peer address and every
    /// `X-Forwarded-For` header it carries, in order.
    pub fn from_request(&self, req: &HttpRequest) -> Option<IpAddr> {
        let peer = req.peer_addr().map(|a| a.ip());
        if self.is_empty() {
            return peer.map(|ip| ip.to_canonical());
        }
        let mut values = req.headers().get_all(X_FORWARDED_FOR).peekable();
        if values.peek().is_none() {
            return self.client_ip(peer, None);
        }
        let mut joined = String::new();
        for value in values {
            // A header that is not visible ASCII cannot hold addresses: treat it as garbage.
            let text = value.to_str().unwrap_or("garbage");
            if !joined.is_empty() {
                joined.push(',');
            }
            joined.push_str(text);
        }
        self.client_ip(peer, Some(&joined))
    }
}

/// One `X-Forwarded-For` hop: `1.2.3.4`, `2001:db8::1`, and the forms some proxies write
/// with a port or brackets (`1.2.3.4:5678`, `[2001:db8::1]:443`, `[2001:db8::1]`).
fn parse_hop(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(sock) = entry.parse::<SocketAddr>() {
        return Some(sock.ip().to_canonical());
    }
    let inner = entry.strip_prefix('[')?.strip_suffix(']')?;
    inner.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn parse_accepts_cidrs_and_bare_addresses() {
        let p = proxies(&["10.0.0.0/8", " 192.0.2.7 ", "fd00::/8", "::1", ""]);
        assert!(p.is_trusted(ip("10.200.1.1")));
        assert!(p.is_trusted(ip("192.0.2.7")));
        assert!(!p.is_trusted(ip("192.0.2.8")));
        assert!(p.is_trusted(ip("fd12::5")));
        assert!(p.is_trusted(ip("::1")));
        assert!(!p.is_trusted(ip("::2")));
        // A host address written as a CIDR is truncated to its network.
        assert!(proxies(&["10.1.2.3/16"]).is_trusted(ip("10.1.99.99")));
    }

    #[test]
    fn parse_rejects_garbage_naming_it() {
        let err = TrustedProxies::parse(&["10.0.0.0/8".into(), "proxy.local".into()]).unwrap_err();
        assert!(err.contains("proxy.local"), "{err}");
        assert!(TrustedProxies::parse(&["10.0.0.0/33".into()]).is_err());
    }

    #[test]
    fn no_trusted_proxy_ignores_forwarded_for() {
        let p = TrustedProxies::none();
        let got = p.client_ip(Some(ip("203.0.113.9")), Some("1.1.1.1, 2.2.2.2"));
        assert_eq!(got, Some(ip("203.0.113.9")));
    }

    #[test]
    fn untrusted_peer_cannot_spoof_even_when_proxies_are_configured() {
        let p = proxies(&["10.0.0.0/8"]);
        let got = p.client_ip(Some(ip("203.0.113.9")), Some("10.0.0.1"));
        assert_eq!(got, Some(ip("203.0.113.9")));
    }

    #[test]
    fn trusted_peer_uses_forwarded_for() {
        let p = proxies(&["10.0.0.1"]);
        let got = p.client_ip(Some(ip("10.0.0.1")), Some("198.51.100.4"));
        assert_eq!(got, Some(ip("198.51.100.4")));
    }

    #[test]
    fn trusted_peer_without_header_is_the_client() {
        let p = proxies(&["10.0.0.1"]);
        assert_eq!(
            p.client_ip(Some(ip("10.0.0.1")), None),
            Some(ip("10.0.0.1"))
        );
        assert_eq!(
            p.client_ip(Some(ip("10.0.0.1")), Some(" ")),
            Some(ip("10.0.0.1"))
        );
    }

    #[test]
    fn multi_hop_chain_skips_trusted_hops() {
        // client -> CDN edge (172.16.5.5) -> load balancer (10.0.0.2) -> us
        let p = proxies(&["10.0.0.0/8", "172.16.0.0/12"]);
        let got = p.client_ip(Some(ip("10.0.0.2")), Some("198.51.100.4, 172.16.5.5"));
        assert_eq!(got, Some(ip("198.51.100.4")));
    }

    #[test]
    fn spoofed_leftmost_entries_are_ignored() {
        // The client sent `X-Forwarded-For: 6.6.6.6, 10.9.9.9` itself; the proxy appended
        // the real address. Only the nearest untrusted hop counts.
        let p = proxies(&["10.0.0.0/8"]);
        let got = p.client_ip(
            Some(ip("10.0.0.2")),
            Some("6.6.6.6, 10.9.9.9, 198.51.100.4"),
        );
        assert_eq!(got, Some(ip("198.51.100.4")));
    }

    #[test]
    fn garbage_falls_back_to_the_peer() {
        let p = proxies(&["10.0.0.0/8"]);
        let peer = Some(ip("10.0.0.2"));
        assert_eq!(p.client_ip(peer, Some("unknown")), peer);
        assert_eq!(p.client_ip(peer, Some("1.2.3.4, not-an-ip")), peer);
        assert_eq!(p.client_ip(peer, Some("1.2.3.4, 10.0.0.7, ;;;")), peer);
        // Garbage left of the first untrusted hop is never reached.
        assert_eq!(
            p.client_ip(peer, Some("garbage, 198.51.100.4")),
            Some(ip("198.51.100.4"))
        );
    }

    #[test]
    fn all_hops_trusted_gives_the_leftmost() {
        let p = proxies(&["10.0.0.0/8"]);
        let got = p.client_ip(Some(ip("10.0.0.2")), Some("10.1.1.1, 10.0.0.3"));
        assert_eq!(got, Some(ip("10.1.1.1")));
    }

    #[test]
    fn ipv6_hops_ports_and_brackets() {
        let p = proxies(&["2001:db8:aaaa::/48"]);
        let peer = Some(ip("2001:db8:aaaa::1"));
        assert_eq!(
            p.client_ip(peer, Some("2001:db8:ffff::42")),
            Some(ip("2001:db8:ffff::42"))
        );
        assert_eq!(
            p.client_ip(peer, Some("[2001:db8:ffff::42]:443, 2001:db8:aaaa::9")),
            Some(ip("2001:db8:ffff::42"))
        );
        assert_eq!(
            p.client_ip(peer, Some("[2001:db8:ffff::42]")),
            Some(ip("2001:db8:ffff::42"))
        );
        assert_eq!(
            p.client_ip(peer, Some("198.51.100.4:5678")),
            Some(ip("198.51.100.4"))
        );
        // An untrusted IPv6 peer is the client.
        assert_eq!(
            p.client_ip(Some(ip("2001:db8:bbbb::1")), Some("1.1.1.1")),
            Some(ip("2001:db8:bbbb::1"))
        );
    }

    #[test]
    fn ipv4_mapped_peer_matches_an_ipv4_proxy() {
        let p = proxies(&["10.0.0.1"]);
        let got = p.client_ip(Some(ip("::ffff:10.0.0.1")), Some("::ffff:198.51.100.4"));
        assert_eq!(got, Some(ip("198.51.100.4")));
    }

    #[test]
    fn no_peer_no_answer() {
        let p = proxies(&["10.0.0.0/8"]);
        assert_eq!(p.client_ip(None, Some("198.51.100.4")), None);
    }

    #[test]
    fn from_request_joins_repeated_headers_in_order() {
        let p = proxies(&["10.0.0.0/8"]);
        let req = TestRequest::default()
            .peer_addr("10.0.0.2:40000".parse().unwrap())
            .append_header(("X-Forwarded-For", "6.6.6.6"))
            .append_header(("X-Forwarded-For", "198.51.100.4, 10.0.0.9"))
            .to_http_request();
        assert_eq!(p.from_request(&req), Some(ip("198.51.100.4")));

        let untrusted = TestRequest::default()
            .peer_addr("203.0.113.9:40000".parse().unwrap())
            .insert_header(("X-Forwarded-For", "198.51.100.4"))
            .to_http_request();
        assert_eq!(p.from_request(&untrusted), Some(ip("203.0.113.9")));
        assert_eq!(
            TrustedProxies::none().from_request(&req),
            Some(ip("10.0.0.2"))
        );
    }
}
