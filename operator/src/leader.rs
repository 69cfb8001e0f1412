//! Leader election on a coordination.k8s.io Lease, so several operator replicas are safe:
//! one reconciles, the others wait. Writes use the Lease's resourceVersion, so two
//! replicas racing for an expired Lease cannot both win.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::error::OperatorError;

/// Which Lease, who we are, and its timing.
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    pub duration: Duration,
    pub retry: Duration,
}

/// What to do with the Lease as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseDecision {
    /// No Lease yet.
    Create,
    /// We hold it.
    Renew,
    /// Its holder let it expire or released it.
    TakeOver,
    /// Someone else holds it.
    Wait { holder: String },
}

/// Pure: the decision for `identity` given the Lease spec at `now`.
pub fn decide(lease: Option<&LeaseSpec>, identity: &str, now: Timestamp) -> LeaseDecision {
    let Some(spec) = lease else { return LeaseDecision::Create };
    let holder = spec.holder_identity.clone().unwrap_or_default();
    if holder == identity {
        return LeaseDecision::Renew;
    }
    if holder.is_empty() {
        return LeaseDecision::TakeOver;
    }
    let duration = SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(15)));
    match &spec.renew_time {
        Some(MicroTime(renewed)) if *renewed + duration > now => LeaseDecision::Wait { holder },
        _ => LeaseDecision::TakeOver,
    }
}

/// One replica's side of the election.
#[derive(Debug, Clone)]
pub struct LeaderElector {
    api: Api<Lease>,
    settings: LeaseSettings,
}

impl LeaderElector {
    pub fn new(client: kube::Client, settings: LeaseSettings) -> Self {
        Self { api: Api::namespaced(client, &settings.namespace), settings }
    }

    fn acquire_error(&self, source: kube::Error) -> OperatorError {
        OperatorError::AcquireLease {
            namespace: self.settings.namespace.clone(),
            name: self.settings.name.clone(),
            source,
        }
    }

    /// One round: take or renew the Lease if we may. `Ok(true)`: we hold it now.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, OperatorError> {
        let current = self.api.get_opt(&self.settings.name).await.map_err(|e| self.acquire_error(e))?;
        let now = Timestamp::now();
        let decision = decide(current.as_ref().and_then(|l| l.spec.as_ref()), &self.settings.identity, now);
        let duration_seconds = i32::try_from(self.settings.duration.as_secs()).unwrap_or(i32::MAX);
        let result = match (decision, current) {
            (LeaseDecision::Wait { .. }, _) => return Ok(false),
            (LeaseDecision::Create, _) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.settings.name.clone()),
                        namespace: Some(self.settings.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.settings.identity.clone()),
                        lease_duration_seconds: Some(duration_seconds),
                        acquire_time: Some(MicroTime(now)),
                        renew_time: Some(MicroTime(now)),
                        lease_transitions: Some(0),
                        ..LeaseSpec::default()
                    }),
                };
                self.api.create(&PostParams::default(), &lease).await.map(|_| ())
            }
            (decision, Some(mut lease)) => {
                let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
                if decision == LeaseDecision::TakeOver {
                    spec.holder_identity = Some(self.settings.identity.clone());
                    spec.acquire_time = Some(MicroTime(now));
                    spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                }
                spec.lease_duration_seconds = Some(duration_seconds);
                spec.renew_time = Some(MicroTime(now));
                // `replace` carries the resourceVersion we read: a concurrent writer wins
                // and we get 409 Conflict.
                self.api.replace(&self.settings.name, &PostParams::default(), &lease).await.map(|_| ())
            }
            (_, None) => return Ok(false),
        };
        match result {
            Ok(()) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(source) => Err(self.acquire_error(source)),
        }
    }

    /// Waits until we hold the Lease (`true`) or `stop` fires (`false`). API errors are
    /// logged and retried: a standby must survive an apiserver restart.
    pub async fn acquire(&self, stop: &CancellationToken) -> bool {
        let mut announced = false;
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    info!(lease = %self.settings.name, identity = %self.settings.identity, "acquired the leader Lease");
                    return true;
                }
                Ok(false) if !announced => {
                    info!(lease = %self.settings.name, "another replica leads; waiting for the Lease");
                    announced = true;
                }
                Ok(false) => {}
                Err(error) => warn!(%error, "leader election round failed; retrying"),
            }
            tokio::select! {
                _ = stop.cancelled() => return false,
                _ = tokio::time::sleep(self.settings.retry) => {}
            }
        }
    }

    /// Renews until `stop` fires (`Ok`) or the Lease is lost or cannot be renewed before it
    /// would expire (`Err`: the caller must stop reconciling at once).
    pub async fn hold(&self, stop: &CancellationToken) -> Result<(), OperatorError> {
        let mut last_renewal = Instant::now();
        // Give up a little before others may take over, so two leaders never overlap.
        let deadline = self.settings.duration.saturating_sub(self.settings.retry);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                _ = tokio::time::sleep(self.settings.retry) => {}
            }
            match self.try_acquire_or_renew().await {
                Ok(true) => last_renewal = Instant::now(),
                Ok(false) => return Err(self.lost().await),
                Err(error) => warn!(%error, "renewing the leader Lease failed; retrying"),
            }
            if last_renewal.elapsed() > deadline {
                return Err(self.lost().await);
            }
        }
    }

    async fn lost(&self) -> OperatorError {
        let holder = self.api.get_opt(&self.settings.name).await.ok().flatten().and_then(|l| l.spec?.holder_identity);
        OperatorError::RenewLease {
            namespace: self.settings.namespace.clone(),
            name: self.settings.name.clone(),
            holder,
        }
    }

    /// Hands the Lease over at shutdown so a standby takes it at once instead of waiting
    /// for it to expire. Best effort.
    pub async fn release(&self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.settings.name).await else { return };
        let Some(spec) = lease.spec.as_mut() else { return };
        if spec.holder_identity.as_deref() != Some(self.settings.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        match self.api.replace(&self.settings.name, &PostParams::default(), &lease).await {
            Ok(_) => info!(lease = %self.settings.name, "released the leader Lease"),
            Err(error) => warn!(%error, "releasing the leader Lease failed; it expires on its own"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: Option<&str>, renewed_at: i64) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_owned),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(Timestamp::from_second(renewed_at).unwrap())),
            ..LeaseSpec::default()
        }
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).unwrap()
    }

    #[test]
    fn no_lease_is_created() {
        assert_eq!(decide(None, "a", at(100)), LeaseDecision::Create);
    }

    #[test]
    fn our_lease_is_renewed_even_when_late() {
        assert_eq!(decide(Some(&spec(Some("a"), 0)), "a", at(100)), LeaseDecision::Renew);
    }

    #[test]
    fn a_fresh_foreign_lease_is_waited_on() {
        assert_eq!(decide(Some(&spec(Some("b"), 95)), "a", at(100)), LeaseDecision::Wait { holder: "b".into() });
    }

    #[test]
    fn an_expired_or_released_lease_is_taken_over() {
        assert_eq!(decide(Some(&spec(Some("b"), 80)), "a", at(100)), LeaseDecision::TakeOver);
        assert_eq!(decide(Some(&spec(None, 99)), "a", at(100)), LeaseDecision::TakeOver);
        let mut never_renewed = spec(Some("b"), 0);
        never_renewed.renew_time = None;
        assert_eq!(decide(Some(&never_renewed), "a", at(100)), LeaseDecision::TakeOver);
    }
}
