//! CIDR blocks for `aws:SourceIp`: `192.0.2.0/24`, `2001:db8::/32`, or a bare address (a
//! host: /32 or /128). IPv4 blocks also match IPv4-mapped IPv6 sources (`::ffff:192.0.2.7`),
//! which a dual-stack listener reports for IPv4 clients.

use std::net::IpAddr;

/// One CIDR block, its host bits cleared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix_len: u8,
}

impl Cidr {
    /// Parse `ADDR/LEN` or `ADDR`. `None` when either part does not parse or `LEN` exceeds
    /// the family's width.
    pub fn parse(s: &str) -> Option<Cidr> {
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let net: IpAddr = addr.trim().parse().ok()?;
        let width = if net.is_ipv4() { 32 } else { 128 };
        let prefix_len = match len {
            None => width,
            Some(l) if !l.is_empty() && l.len() <= 3 && l.bytes().all(|b| b.is_ascii_digit()) => {
                l.parse::<u8>().ok()?
            }
            Some(_) => return None,
        };
        if prefix_len > width {
            return None;
        }
        Some(Cidr {
            net: mask(net, prefix_len),
            prefix_len,
        })
    }

    /// The prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// Whether `ip` lies in the block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match (self.net, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => return false,
            },
            (_, ip) => ip,
        };
        ip.is_ipv4() == self.net.is_ipv4() && mask(ip, self.prefix_len) == self.net
    }
}

fn mask(ip: IpAddr, len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let m = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len))
            };
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len))
            };
            IpAddr::V6((bits & m).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn blocks_contain_what_they_should() {
        let c = Cidr::parse("192.0.2.0/24").unwrap();
        assert!(c.contains(ip("192.0.2.255")));
        assert!(c.contains(ip("::ffff:192.0.2.7")));
        assert!(!c.contains(ip("192.0.3.0")));
        assert!(!c.contains(ip("2001:db8::1")));
        let host = Cidr::parse("10.1.2.3").unwrap();
        assert_eq!(host.prefix_len(), 32);
        assert!(host.contains(ip("10.1.2.3")) && !host.contains(ip("10.1.2.4")));
        let all = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(all.contains(ip("255.255.255.255")));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")) && !v6.contains(ip("2001:db9::")));
        assert!(!v6.contains(ip("192.0.2.1")));
        assert!(Cidr::parse("::/0").unwrap().contains(ip("::1")));
        // Host bits are cleared, as AWS does.
        assert_eq!(Cidr::parse("192.0.2.77/24"), Cidr::parse("192.0.2.0/24"));
    }

    #[test]
    fn bad_blocks_are_refused() {
        for s in [
            "",
            "/",
            "1.2.3.4/",
            "1.2.3.4/33",
            "::/129",
            "1.2.3/8",
            "x/8",
            "1.2.3.4/+8",
            "1.2.3.4/0008",
            "1.2.3.4/-1",
        ] {
            assert_eq!(Cidr::parse(s), None, "{s:?}");
        }
    }
}
