//! Real servers for tests, started from the binaries `make setup` installs: Debian's
//! `redis-server`, and SeaweedFS's `weed mini` as the S3 server of the document jobs, built
//! from its Go module with a lifecycle day of 10 s (KEDA will join them). Each runs on free
//! loopback ports in a temporary directory of its own, is killed when dropped, and offers
//! the faults the tests need: kill it, pause it (a server that accepts connections and never
//! answers), start it again on the same port.

mod error;
mod process;
mod redis;
mod s3;
mod tls;

pub use error::TestServerError;
pub use redis::{RedisOptions, RedisServer};
pub use s3::{LifecycleWorker, S3Server};
