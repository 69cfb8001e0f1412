//! The shared result cache: Redis, behind the in-process LRU, so that every replica (and a
//! restarted pod) benefits from work any of them did. It is an optimisation, never a
//! dependency: each call is bounded by `timeout`, failures are counted and skipped, and
//! a [`Breaker`] stops asking a Redis that keeps failing, so a slow or dead Redis costs a
//! request at most one timeout, and most requests nothing.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Client, IntoConnectionInfo, SetExpiry, SetOptions, TlsCertificates};
use tokio::sync::Semaphore;

use super::breaker::{Breaker, BreakerPolicy, Transition};
use super::codec::{self, FORMAT_VERSION};
use super::memory::CacheKey;
use crate::serve::engine::OcrOutput;

/// Where the shared cache is and how long to wait for it.
#[derive(Clone)]
pub struct SharedCacheSettings {
    /// `redis://host:port[/db]`, or `rediss://` for TLS.
    pub url: String,
    /// ACL user (Redis 6+); `None` = the URL's, else `default`.
    pub username: Option<String>,
    /// AUTH password; `None` = the URL's, if any.
    pub password: Option<String>,
    /// PEM file of the CA that signed the server's certificate (`rediss://` only);
    /// `None` = the system's roots.
    pub ca_file: Option<PathBuf>,
    /// How long an entry lives.
    pub ttl: Duration,
    /// Longest a lookup or a write may take before it counts as failed.
    pub timeout: Duration,
    /// Prefix of every key: keeps services that share one Redis apart.
    pub key_prefix: String,
    /// Writes in flight at most; more are dropped (and counted) rather than queued.
    pub max_pending_writes: usize,
}

impl fmt::Debug for SharedCacheSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedCacheSettings")
            .field("url", &redact_url(&self.url))
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("ca_file", &self.ca_file)
            .field("ttl", &self.ttl)
            .field("timeout", &self.timeout)
            .field("key_prefix", &self.key_prefix)
            .field("max_pending_writes", &self.max_pending_writes)
            .finish()
    }
}

/// The URL with any password in it replaced, for logs.
pub(crate) fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://<credentials>@{}", &url[..scheme_end], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// Why the shared cache could not be set up. Only configuration can fail: an unreachable
/// Redis is not an error at start (it is skipped until it answers).
#[derive(Debug, thiserror::Error)]
pub enum SharedCacheError {
    #[error("--redis-url {url:?} is not a Redis URL (redis://host:port or rediss://host:port): {source}")]
    ParseUrl { url: String, source: redis::RedisError },
    #[error("could not read the Redis CA file {}: {source}", path.display())]
    ReadCaFile { path: PathBuf, source: std::io::Error },
    #[error("could not set up the Redis client for {url}: {source}")]
    BuildClient { url: String, source: redis::RedisError },
}

/// A client for the Redis `settings` name, with its credentials and CA (the job queue
/// uses the same Redis through its own connections).
pub(crate) fn redis_client(settings: &SharedCacheSettings) -> Result<Client, SharedCacheError> {
    let address = redact_url(&settings.url);
    let parse_error = |source| SharedCacheError::ParseUrl { url: address.clone(), source };
    let mut info = settings.url.as_str().into_connection_info().map_err(parse_error)?;
    let mut redis_settings = info.redis_settings().clone();
    if let Some(username) = &settings.username {
        redis_settings = redis_settings.set_username(username);
    }
    if let Some(password) = &settings.password {
        redis_settings = redis_settings.set_password(password);
    }
    info = info.set_redis_settings(redis_settings);
    let build_error = |source| SharedCacheError::BuildClient { url: address.clone(), source };
    // rediss:// needs a crypto provider; another part of the process may have installed
    // one already, which is as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match &settings.ca_file {
        Some(path) => {
            let root_cert =
                std::fs::read(path).map_err(|source| SharedCacheError::ReadCaFile { path: path.clone(), source })?;
            Client::build_with_tls(info, TlsCertificates { client_tls: None, root_cert: Some(root_cert) })
                .map_err(build_error)
        }
        None => Client::open(info).map_err(build_error),
    }
}

/// What one lookup found.
#[derive(Debug)]
pub(crate) enum SharedLookup {
    Hit(OcrOutput),
    Miss,
    /// Not asked: the breaker is open after failures.
    Skipped,
    /// Asked and failed (timeout, connection, an entry that does not decode).
    Failed,
}

/// What happened to one write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SharedWrite {
    Stored,
    /// Not attempted: the breaker is open, or too many writes are pending.
    Skipped,
    Failed,
}

/// Hears every write's outcome (writes finish after the request has been answered).
pub(crate) type WriteObserver = Arc<dyn Fn(SharedWrite) + Send + Sync>;

pub(crate) struct SharedCache {
    connection: ConnectionManager,
    breaker: Mutex<Breaker>,
    settings: SharedCacheSettings,
    pending_writes: Arc<Semaphore>,
    on_write: WriteObserver,
    /// Shown in logs.
    address: String,
}

impl fmt::Debug for SharedCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedCache").field("address", &self.address).finish_non_exhaustive()
    }
}

impl SharedCache {
    /// Sets the client up; connects on first use, and again by itself after failures.
    pub(crate) fn new(settings: SharedCacheSettings, on_write: WriteObserver) -> Result<Self, SharedCacheError> {
        let address = redact_url(&settings.url);
        let client = redis_client(&settings)?;
        let build_error = |source| SharedCacheError::BuildClient { url: address.clone(), source };
        // Retries inside the manager would only hold a request longer than `timeout`;
        // the breaker decides when to try again.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.timeout))
            .set_response_timeout(Some(settings.timeout))
            .set_number_of_retries(0);
        let connection = ConnectionManager::new_lazy_with_config(client, config).map_err(build_error)?;
        Ok(Self {
            connection,
            breaker: Mutex::new(Breaker::new(BreakerPolicy::default())),
            pending_writes: Arc::new(Semaphore::new(settings.max_pending_writes)),
            settings,
            on_write,
            address,
        })
    }

    /// Whether the last calls succeeded (the breaker is closed).
    pub(crate) fn is_available(&self) -> bool {
        lock(&self.breaker).is_closed()
    }

    pub(crate) async fn get(&self, key: &CacheKey) -> SharedLookup {
        if !lock(&self.breaker).allow(Instant::now()) {
            return SharedLookup::Skipped;
        }
        let mut connection = self.connection.clone();
        match self.bounded(connection.get::<_, Option<Vec<u8>>>(self.key(key))).await {
            Some(Some(bytes)) => match codec::decode(&bytes) {
                Ok(output) => SharedLookup::Hit(output),
                Err(error) => {
                    tracing::warn!(%error, "a shared cache entry does not decode; computing instead");
                    SharedLookup::Failed
                }
            },
            Some(None) => SharedLookup::Miss,
            None => SharedLookup::Failed,
        }
    }

    /// Stores `output` in the background: the request never waits for Redis.
    pub(crate) fn put(self: &Arc<Self>, key: &CacheKey, output: &OcrOutput) {
        if !lock(&self.breaker).allow(Instant::now()) {
            (self.on_write)(SharedWrite::Skipped);
            return;
        }
        let Ok(permit) = self.pending_writes.clone().try_acquire_owned() else {
            (self.on_write)(SharedWrite::Skipped);
            return;
        };
        let value = codec::encode(output);
        let key = self.key(key);
        let cache = self.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let ttl_ms = u64::try_from(cache.settings.ttl.as_millis()).unwrap_or(u64::MAX).max(1);
            let options = SetOptions::default().with_expiration(SetExpiry::PX(ttl_ms));
            let mut connection = cache.connection.clone();
            let write = connection.set_options::<_, _, ()>(key, value, options);
            let outcome = match cache.bounded(write).await {
                Some(()) => SharedWrite::Stored,
                None => SharedWrite::Failed,
            };
            (cache.on_write)(outcome);
        });
    }

    /// One Redis call within the timeout; tells the breaker how it went. `None`: it
    /// failed or did not answer in time (logged by [`Self::failed`]).
    async fn bounded<T>(&self, call: impl Future<Output = redis::RedisResult<T>>) -> Option<T> {
        match tokio::time::timeout(self.settings.timeout, call).await {
            Ok(Ok(value)) => {
                self.succeeded();
                Some(value)
            }
            Ok(Err(error)) => {
                self.failed(&error.to_string());
                None
            }
            Err(_) => {
                self.failed(&format!("no answer within {:?}", self.settings.timeout));
                None
            }
        }
    }

    /// `<prefix>:result:v<format>:<hex of the key>`.
    fn key(&self, key: &CacheKey) -> String {
        format!("{}:result:v{FORMAT_VERSION}:{}", self.settings.key_prefix, key.to_hex())
    }

    fn succeeded(&self) {
        if lock(&self.breaker).record_success() == Transition::Closed {
            tracing::info!(redis = %self.address, "the shared cache answers again");
        }
    }

    fn failed(&self, error: &str) {
        match lock(&self.breaker).record_failure(Instant::now()) {
            Transition::Opened { backoff } => tracing::warn!(
                redis = %self.address, %error, backoff_ms = backoff.as_millis() as u64,
                "the shared cache keeps failing: skipping it (requests are computed or served from memory)"
            ),
            _ => tracing::debug!(redis = %self.address, %error, "a shared cache call failed"),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_logs() {
        assert_eq!(redact_url("redis://:hunter2@cache:6379/0"), "redis://<credentials>@cache:6379/0");
        assert_eq!(redact_url("rediss://ocr:hunter2@cache:6380"), "rediss://<credentials>@cache:6380");
        assert_eq!(redact_url("redis://cache:6379"), "redis://cache:6379");
        let settings = SharedCacheSettings {
            url: "redis://:hunter2@cache:6379".into(),
            username: None,
            password: Some("hunter3".into()),
            ca_file: None,
            ttl: Duration::from_secs(60),
            timeout: Duration::from_millis(50),
            key_prefix: "p".into(),
            max_pending_writes: 1,
        };
        let shown = format!("{settings:?}");
        assert!(!shown.contains("hunter"), "{shown}");
    }
}
