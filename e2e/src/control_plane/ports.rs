//! Free loopback ports for the components, so that any number of control planes (and
//! anything else on the machine) can run side by side.

use std::net::{Ipv4Addr, TcpListener};

use super::ControlPlaneError;

/// `count` distinct ports that were free on 127.0.0.1 a moment ago.
///
/// Every listener is held until all are reserved, so one call never returns a port twice.
/// The kernel may still hand a port to someone else before the component binds it; the
/// start-up retries with fresh ports when a component reports "address already in use".
pub(crate) fn free_loopback_ports(count: usize) -> Result<Vec<u16>, ControlPlaneError> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(ControlPlaneError::ReservePorts)?;
    listeners
        .iter()
        .map(|listener| listener.local_addr().map(|addr| addr.port()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(ControlPlaneError::ReservePorts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_and_bindable() {
        let ports = free_loopback_ports(5).unwrap();
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), 5);
        for port in ports {
            TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
        }
    }
}
