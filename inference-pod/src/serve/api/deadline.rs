//! When a call must be answered by: the sooner of the client's deadline (gRPC's
//! `grpc-timeout` header, the HTTP API's `timeout_ms`) and the server's own limit on total
//! request time.

use std::time::{Duration, Instant};

/// Answer this much before the client's deadline: tonic cancels the call at exactly the
/// deadline (CANCELLED, no reason), so finishing first lets the client see
/// DEADLINE_EXCEEDED with what happened.
pub(crate) const DEADLINE_MARGIN: Duration = Duration::from_millis(5);

/// The instant by which the server answers a request received at `now`.
pub(crate) fn request_deadline(now: Instant, client_timeout: Option<Duration>, server_limit: Duration) -> Instant {
    let budget = match client_timeout {
        Some(timeout) => timeout.saturating_sub(DEADLINE_MARGIN).min(server_limit),
        None => server_limit,
    };
    now + budget
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sooner_deadline_wins() {
        let now = Instant::now();
        let limit = Duration::from_secs(25);
        assert_eq!(request_deadline(now, None, limit), now + limit);
        assert_eq!(request_deadline(now, Some(Duration::from_secs(60)), limit), now + limit);
        assert_eq!(request_deadline(now, Some(Duration::from_millis(105)), limit), now + Duration::from_millis(100));
        assert_eq!(request_deadline(now, Some(Duration::from_millis(1)), limit), now);
    }
}
