//! Where a local cluster's real nodes and pods live on the network: pure arithmetic, no IO.
//!
//! Each cluster takes a slot (several clusters may run at once, e.g. `make demo` beside
//! `make test`). Slot `s` owns:
//! - the node network `10.87.s.0/24`: the host side (where the control plane listens) is
//!   `10.87.s.254`, node `i` is `10.87.s.(i + 1)`;
//! - the pod network `10.88.4s.0/22`: node `i` hands out `10.88.(4s + i).0/24`.
//!
//! Neither overlaps the Service range (`10.0.0.0/16`) or `10.244.0.0/16` (flannel's default
//! pod range, which earlier versions of this project made local on the machine with a route).

use std::fmt;
use std::net::Ipv4Addr;

/// How many clusters can run at once.
pub const MAX_SLOTS: u8 = 64;
/// How many nodes one cluster can have (one /24 of the cluster's /22 pod network each).
pub const MAX_NODES: u8 = 4;

/// An IPv4 network: address and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub address: Ipv4Addr,
    pub prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
        u32::from(ip) & mask == u32::from(self.address) & mask
    }

    /// The `n`th address of the network (`n` = 1 is the first host).
    pub fn host(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.address) + n)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

/// The addresses of the cluster in one slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterAddressing {
    slot: u8,
}

impl ClusterAddressing {
    /// `None` past [`MAX_SLOTS`].
    pub fn new(slot: u8) -> Option<ClusterAddressing> {
        (slot < MAX_SLOTS).then_some(ClusterAddressing { slot })
    }

    pub fn slot(&self) -> u8 {
        self.slot
    }

    /// The network the nodes and the host share.
    pub fn node_network(&self) -> Cidr {
        Cidr { address: Ipv4Addr::new(10, 87, self.slot, 0), prefix: 24 }
    }

    /// The host's address on the node network: the control plane listens here.
    pub fn host_ip(&self) -> Ipv4Addr {
        self.node_network().host(254)
    }

    /// The address of node `index`; `None` past [`MAX_NODES`].
    pub fn node_ip(&self, index: u8) -> Option<Ipv4Addr> {
        (index < MAX_NODES).then(|| self.node_network().host(u32::from(index) + 1))
    }

    /// Every pod of the cluster: kube-proxy's `clusterCIDR`.
    pub fn pod_network(&self) -> Cidr {
        Cidr { address: Ipv4Addr::new(10, 88, self.slot * MAX_NODES, 0), prefix: 22 }
    }

    /// The pods of node `index`; `None` past [`MAX_NODES`].
    pub fn node_pod_network(&self, index: u8) -> Option<Cidr> {
        (index < MAX_NODES)
            .then(|| Cidr { address: Ipv4Addr::new(10, 88, self.slot * MAX_NODES + index, 0), prefix: 24 })
    }

    /// The host's end of the link into the cluster's network namespace.
    pub fn host_link(&self) -> String {
        format!("kocr{}", self.slot)
    }

    /// The cluster network's end of node `index`'s link (the node's end is its `eth0`).
    pub fn node_link(&self, index: u8) -> String {
        format!("kocr{}n{index}", self.slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_pod_networks() -> Vec<Cidr> {
        (0..MAX_SLOTS)
            .flat_map(|slot| {
                let cluster = ClusterAddressing::new(slot).unwrap();
                (0..MAX_NODES).map(move |node| cluster.node_pod_network(node).unwrap())
            })
            .collect()
    }

    #[test]
    fn no_two_nodes_of_any_clusters_share_pod_addresses() {
        let networks = all_pod_networks();
        for (i, a) in networks.iter().enumerate() {
            for b in &networks[i + 1..] {
                assert!(!a.contains(b.address) && !b.contains(a.address), "{a} overlaps {b}");
            }
        }
    }

    #[test]
    fn a_clusters_pod_network_holds_exactly_its_nodes_pods() {
        for slot in 0..MAX_SLOTS {
            let cluster = ClusterAddressing::new(slot).unwrap();
            for other in all_pod_networks() {
                let own = (0..MAX_NODES).any(|node| cluster.node_pod_network(node) == Some(other));
                assert_eq!(cluster.pod_network().contains(other.host(1)), own, "slot {slot}, {other}");
            }
        }
    }

    #[test]
    fn nodes_and_host_are_distinct_members_of_the_node_network() {
        let cluster = ClusterAddressing::new(7).unwrap();
        let mut addresses: Vec<Ipv4Addr> = (0..MAX_NODES).map(|i| cluster.node_ip(i).unwrap()).collect();
        addresses.push(cluster.host_ip());
        for ip in &addresses {
            assert!(cluster.node_network().contains(*ip), "{ip}");
        }
        addresses.sort();
        addresses.dedup();
        assert_eq!(addresses.len(), usize::from(MAX_NODES) + 1);
    }

    #[test]
    fn cluster_ranges_stay_clear_of_services_and_flannels_default() {
        let services = Cidr { address: Ipv4Addr::new(10, 0, 0, 0), prefix: 16 };
        let flannel = Cidr { address: Ipv4Addr::new(10, 244, 0, 0), prefix: 16 };
        for slot in 0..MAX_SLOTS {
            let cluster = ClusterAddressing::new(slot).unwrap();
            for network in [cluster.node_network(), cluster.pod_network()] {
                for other in [services, flannel] {
                    assert!(!other.contains(network.address) && !network.contains(other.address), "{network}");
                }
            }
        }
    }

    #[test]
    fn slots_and_nodes_past_the_limits_are_refused() {
        assert!(ClusterAddressing::new(MAX_SLOTS).is_none());
        let cluster = ClusterAddressing::new(0).unwrap();
        assert!(cluster.node_ip(MAX_NODES).is_none());
        assert!(cluster.node_pod_network(MAX_NODES).is_none());
    }

    #[test]
    fn link_names_fit_the_kernels_limit() {
        let cluster = ClusterAddressing::new(MAX_SLOTS - 1).unwrap();
        // IFNAMSIZ is 16 with the terminating NUL.
        assert!(cluster.host_link().len() <= 15);
        assert!(cluster.node_link(MAX_NODES - 1).len() <= 15);
    }
}
