//! Pod IPs: every pod gets its own local address, so two pods can both listen on :8080.
//!
//! Two kinds of range work without any network setup per pod:
//! - a *routable* range made local once with `ip route add local 10.244.0.0/16 dev lo`
//!   (root; `tools/local-pod-network.sh`): every address in it can be bound and reached,
//!   like loopback, and the API server accepts them in EndpointSlices;
//! - loopback, 127.0.0.0/8, local on every Linux machine without setup. But the API server
//!   refuses loopback addresses in EndpointSlices ("may not be in the loopback range"), so
//!   Services then have no endpoints; pods are still reachable at their status.podIP.
//!
//! [`choose_pod_ip_range`] picks the routable range when it is set up, else loopback.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, TcpListener};

use super::error::NodeAgentError;

/// The routable range the agent uses when it is local (see the module docs).
pub const ROUTABLE_POD_IP_RANGE: &str = "10.244.0.0/16";
/// The fallback range: loopback, always local, but not accepted in EndpointSlices.
pub const LOOPBACK_POD_IP_RANGE: &str = "127.0.0.0/16";

/// Whether the first allocatable address of `range` can be bound on this machine.
pub fn range_is_local(range: &str) -> bool {
    IpPool::new(range, 0).ok().and_then(|mut pool| pool.allocate()).is_some_and(|ip| TcpListener::bind((ip, 0)).is_ok())
}

/// `configured` if given (it must be local), else [`ROUTABLE_POD_IP_RANGE`] when it is
/// local, else [`LOOPBACK_POD_IP_RANGE`]. The flag says whether EndpointSlices can list
/// pods of the chosen range.
pub fn choose_pod_ip_range(configured: Option<&str>) -> Result<(String, bool), NodeAgentError> {
    let endpoint_slices_ok = |range: &str| {
        range.split('/').next().and_then(|a| a.parse::<Ipv4Addr>().ok()).is_some_and(|a| !a.is_loopback())
    };
    match configured {
        Some(range) => {
            IpPool::new(range, 0)?;
            if !range_is_local(range) {
                return Err(NodeAgentError::PodIpRange {
                    range: range.to_owned(),
                    reason: format!(
                        "its addresses are not local on this machine; run `sudo ip route add local {range} dev lo` (tools/local-pod-network.sh) or use a 127.x range"
                    ),
                });
            }
            Ok((range.to_owned(), endpoint_slices_ok(range)))
        }
        None if range_is_local(ROUTABLE_POD_IP_RANGE) => Ok((ROUTABLE_POD_IP_RANGE.to_owned(), true)),
        None => Ok((LOOPBACK_POD_IP_RANGE.to_owned(), false)),
    }
}

/// Allocates addresses round-robin from a CIDR, like host-local IPAM: a freed address is
/// reused only after the rest of the range. Skipped: the range's network address, every
/// address ending in .0 or .255, and 127.0.0.0/24 (where the host's own services, the API
/// server included, listen).
#[derive(Debug, Clone)]
pub struct IpPool {
    first: u32,
    size: u32,
    cursor: u32,
    used: BTreeSet<u32>,
}

impl IpPool {
    /// A pool over `range` (`a.b.c.d/len`), starting at offset `start`
    /// (taken modulo the size; agents pick it at random so that two agents on one machine
    /// rarely hand out the same address).
    pub fn new(range: &str, start: u32) -> Result<Self, NodeAgentError> {
        let invalid = |reason: &str| NodeAgentError::PodIpRange { range: range.to_owned(), reason: reason.to_owned() };
        let (address, prefix) = range.split_once('/').unwrap_or((range, "16"));
        let address: Ipv4Addr = address.trim().parse().map_err(|_| invalid("not an IPv4 address"))?;
        let prefix: u32 = prefix.trim().parse().map_err(|_| invalid("the prefix length is not a number"))?;
        if !(8..=30).contains(&prefix) {
            return Err(invalid("the prefix length must be between 8 and 30"));
        }
        let size = 1u32 << (32 - prefix);
        let first = u32::from(address) & !(size - 1);
        let pool = Self { first, size, cursor: start % size, used: BTreeSet::new() };
        if (0..size).all(|offset| !pool.usable(first + offset)) {
            return Err(invalid("no usable address in the range"));
        }
        Ok(pool)
    }

    fn usable(&self, ip: u32) -> bool {
        let last_octet = ip & 0xff;
        ip != self.first && last_octet != 0 && last_octet != 255 && (ip >> 8) != (u32::from(Ipv4Addr::LOCALHOST) >> 8)
    }

    /// The next free address for which `accept` holds (the agent checks that the pod's
    /// ports can be bound there); `None` when the range is exhausted.
    pub fn allocate_where(&mut self, mut accept: impl FnMut(Ipv4Addr) -> bool) -> Option<Ipv4Addr> {
        for _ in 0..self.size {
            let ip = self.first + self.cursor;
            self.cursor = (self.cursor + 1) % self.size;
            if self.usable(ip) && !self.used.contains(&ip) && accept(Ipv4Addr::from(ip)) {
                self.used.insert(ip);
                return Some(Ipv4Addr::from(ip));
            }
        }
        None
    }

    /// The next free address.
    pub fn allocate(&mut self) -> Option<Ipv4Addr> {
        self.allocate_where(|_| true)
    }

    /// Returns an address to the pool.
    pub fn release(&mut self, ip: Ipv4Addr) {
        self.used.remove(&u32::from(ip));
    }

    /// How many addresses are allocated.
    pub fn in_use(&self) -> usize {
        self.used.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_distinct_loopback_addresses_outside_the_host_block() {
        let mut pool = IpPool::new(LOOPBACK_POD_IP_RANGE, 0).unwrap();
        let first = pool.allocate().unwrap();
        assert_eq!(first, Ipv4Addr::new(127, 0, 1, 1));
        let second = pool.allocate().unwrap();
        assert_eq!(second, Ipv4Addr::new(127, 0, 1, 2));
        assert_eq!(pool.in_use(), 2);
    }

    #[test]
    fn freed_addresses_come_back_only_after_the_rest_of_the_range() {
        let mut pool = IpPool::new("127.0.5.0/30", 0).unwrap();
        // .0 is the network address; .1, .2, .3 are usable.
        let a = pool.allocate().unwrap();
        let b = pool.allocate().unwrap();
        pool.release(a);
        let c = pool.allocate().unwrap();
        assert_eq!((a, b, c), (Ipv4Addr::new(127, 0, 5, 1), Ipv4Addr::new(127, 0, 5, 2), Ipv4Addr::new(127, 0, 5, 3)));
        assert_eq!(pool.allocate(), Some(a));
        assert_eq!(pool.allocate(), None);
        pool.release(b);
        assert_eq!(pool.allocate(), Some(b));
    }

    #[test]
    fn skips_addresses_ending_in_0_or_255_and_rejected_ones() {
        let mut pool = IpPool::new("127.3.0.0/16", 254).unwrap();
        assert_eq!(pool.allocate(), Some(Ipv4Addr::new(127, 3, 0, 254)));
        assert_eq!(pool.allocate(), Some(Ipv4Addr::new(127, 3, 1, 1)));
        assert_eq!(pool.allocate_where(|ip| ip.octets()[3] % 2 == 1), Some(Ipv4Addr::new(127, 3, 1, 3)));
    }

    #[test]
    fn the_start_offset_wraps() {
        let mut pool = IpPool::new("127.9.9.0/24", 256 + 7).unwrap();
        assert_eq!(pool.allocate(), Some(Ipv4Addr::new(127, 9, 9, 7)));
    }

    #[test]
    fn loopback_is_always_local() {
        assert!(range_is_local(LOOPBACK_POD_IP_RANGE));
        assert_eq!(choose_pod_ip_range(Some("127.5.0.0/16")).unwrap(), ("127.5.0.0/16".to_owned(), false));
        // 192.0.2.0/24 (TEST-NET-1) is nowhere local unless a machine is configured so.
        if !range_is_local("192.0.2.128/25") {
            let error = choose_pod_ip_range(Some("192.0.2.128/25")).unwrap_err().to_string();
            assert!(error.contains("ip route add local 192.0.2.128/25 dev lo"), "{error}");
        }
        let (auto, endpoint_slices) = choose_pod_ip_range(None).unwrap();
        assert_eq!(endpoint_slices, auto == ROUTABLE_POD_IP_RANGE);
    }

    #[test]
    fn rejects_bad_ranges() {
        for range in ["127.0.0.0/31", "127.0.0.0/4", "localhost/16", "127.0.0.0/x", "127.0.0.0/24"] {
            assert!(IpPool::new(range, 0).is_err(), "{range}");
        }
        assert!(IpPool::new("127.1.0.0", 0).is_ok());
        let mut routable = IpPool::new(ROUTABLE_POD_IP_RANGE, 0).unwrap();
        assert_eq!(routable.allocate(), Some(Ipv4Addr::new(10, 244, 0, 1)));
    }
}
