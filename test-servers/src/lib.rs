//! Real servers for tests, started from the binaries `make setup` installs (Debian's
//! `redis-server` today; the S3 server and KEDA of the jobs path will join them). Each runs
//! on a free loopback port in a temporary directory of its own, is killed when dropped, and
//! offers the faults the tests need: kill it, pause it (a server that accepts connections
//! and never answers), start it again on the same port.

mod error;
mod process;
mod redis;
mod tls;

pub use error::TestServerError;
pub use redis::{RedisOptions, RedisServer};
