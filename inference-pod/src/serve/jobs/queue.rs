//! The job queue and the job records in Redis: a stream per service that a consumer
//! group of its pods reads, and a hash per job. Every change of a job's state is one Lua
//! script, so two pods (one that was thought dead, and the one that took its job over)
//! can never both finish it: each transition checks that the pod asking still owns the
//! job.
//!
//! Keys, under the service's prefix `P`: `P:jobs` (the stream; entries carry `job=<id>`)
//! and `P:job:<id>` (the record, expiring with the job's TTL).

use std::collections::HashMap;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{StreamAutoClaimOptions, StreamId, StreamReadOptions, StreamReadReply};
use redis::{AsyncCommands, Client, Script};

use super::error::JobError;
use super::record::{JobRecord, JobRequest, JobState, fields};

/// The consumer group of a service's pods.
const GROUP: &str = "workers";
/// The stream entry's field that names the job.
const ENTRY_JOB_FIELD: &str = "job";

/// Creates a job unless a reusable one exists. KEYS: record, stream. ARGV: id, ttl ms,
/// oldest stream id to keep, then field/value pairs. Returns {created (0/1), state}.
const SUBMIT: &str = r"
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'queued' or state == 'running' or state == 'succeeded' then
  return {0, state}
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
local entry = redis.call('XADD', KEYS[2], 'MINID', '~', ARGV[3], '*', 'job', ARGV[1])
redis.call('HSET', KEYS[1], 'state', 'queued', 'entry', entry, 'attempts', 0)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1, 'queued'}
";

/// A pod takes the job an entry carries. KEYS: record, stream. ARGV: group, entry,
/// consumer, now ms, most attempts. Returns the state after: `running` when this pod
/// now works it; anything else means there is nothing to do (the entry is acknowledged).
const START: &str = r"
local state = redis.call('HGET', KEYS[1], 'state')
if not state or redis.call('HGET', KEYS[1], 'entry') ~= ARGV[2] then
  redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
  return 'gone'
end
if state ~= 'queued' and state ~= 'running' then
  redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
  return state
end
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
if attempts > tonumber(ARGV[5]) then
  redis.call('HSET', KEYS[1], 'state', 'failed', 'finished_ms', ARGV[4], 'owner', '',
    'error_code', 'ABORTED',
    'error_message', 'the job was started ' .. (attempts - 1) .. ' times and its pod stopped each time before it finished (--jobs-max-attempts); the document may crash or exhaust the pod')
  redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
  return 'failed'
end
redis.call('HSET', KEYS[1], 'state', 'running', 'owner', ARGV[3], 'started_ms', ARGV[4])
return 'running'
";

/// Keeps a running job's entry from looking abandoned. KEYS: record, stream. ARGV:
/// group, entry, consumer. Returns the state; `running` only while this pod owns it.
const HEARTBEAT: &str = r"
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 'gone' end
if state ~= 'running' or redis.call('HGET', KEYS[1], 'owner') ~= ARGV[3] then
  if state == 'running' then return 'lost' end
  return state
end
redis.call('XCLAIM', KEYS[2], ARGV[1], ARGV[3], 0, ARGV[2], 'JUSTID')
return 'running'
";

/// Records progress of the owner. KEYS: record. ARGV: consumer, then field/value pairs.
const PROGRESS: &str = r"
if redis.call('HGET', KEYS[1], 'state') == 'running' and redis.call('HGET', KEYS[1], 'owner') == ARGV[1] then
  redis.call('HSET', KEYS[1], unpack(ARGV, 2))
  return 1
end
return 0
";

/// Ends the owner's job. KEYS: record, stream. ARGV: group, entry, consumer, ttl ms,
/// then field/value pairs (the final state among them). Returns 1 when this call ended
/// it, 0 when the pod no longer owned it.
const FINISH: &str = r"
if redis.call('HGET', KEYS[1], 'state') ~= 'running' or redis.call('HGET', KEYS[1], 'owner') ~= ARGV[3] then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
redis.call('HSET', KEYS[1], 'owner', '')
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
return 1
";

/// Puts the owner's job back in the queue (a draining pod, a transient failure). KEYS:
/// record, stream. ARGV: group, entry, consumer, id, oldest stream id to keep, count the
/// attempt (1/0).
const RELEASE: &str = r"
if redis.call('HGET', KEYS[1], 'state') ~= 'running' or redis.call('HGET', KEYS[1], 'owner') ~= ARGV[3] then
  return 0
end
redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
local entry = redis.call('XADD', KEYS[2], 'MINID', '~', ARGV[5], '*', 'job', ARGV[4])
redis.call('HSET', KEYS[1], 'state', 'queued', 'owner', '', 'entry', entry)
if ARGV[6] == '0' then redis.call('HINCRBY', KEYS[1], 'attempts', -1) end
return 1
";

/// Cancels a queued or running job. KEYS: record. ARGV: now ms. Returns the state
/// before (`gone` for none); the worker sees `cancelled` at its next heartbeat.
const CANCEL: &str = r"
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 'gone' end
if state == 'queued' or state == 'running' then
  redis.call('HSET', KEYS[1], 'state', 'cancelled', 'finished_ms', ARGV[1])
end
return state
";

/// Whether a submit made a new job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Submitted {
    Created,
    Existing(JobState),
}

/// What [`JobQueue::start`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Started {
    /// This pod now works it.
    Running,
    /// Nothing to do: finished, cancelled, expired, or an older entry of a resubmitted job.
    Skip,
}

/// What a heartbeat found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Beat {
    Running,
    Cancelled,
    /// Another pod took it over, or the record is gone: stop without writing anything.
    Lost,
}

/// An entry this pod read from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Delivery {
    pub entry: String,
    pub job_id: String,
}

/// The backlog, for metrics and autoscaling.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Backlog {
    /// Entries no pod has read yet.
    pub queued: u64,
    /// Entries read and not acknowledged (being worked, or abandoned by a dead pod).
    pub pending: u64,
    /// Age of the oldest entry queued or pending.
    pub oldest_age: Option<Duration>,
}

/// The Redis side of jobs.
pub(crate) struct JobQueue {
    /// Short calls (submits, status, heartbeats).
    connection: ConnectionManager,
    /// Blocking reads of the stream, which would hold up every other call on a shared
    /// connection.
    reader: ConnectionManager,
    prefix: String,
    consumer: String,
    scripts: Scripts,
}

impl std::fmt::Debug for JobQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobQueue").field("prefix", &self.prefix).field("consumer", &self.consumer).finish()
    }
}

struct Scripts {
    submit: Script,
    start: Script,
    heartbeat: Script,
    progress: Script,
    finish: Script,
    release: Script,
    cancel: Script,
}

/// Most entries counted when Redis cannot tell the lag itself (the gauge then reads at
/// most this; a backlog that large is alerting anyway).
const UNKNOWN_LAG_COUNT_LIMIT: usize = 10_000;

/// How long a blocking read waits for a new entry before the worker looks around again.
pub(crate) const READ_BLOCK: Duration = Duration::from_secs(1);

impl JobQueue {
    pub(crate) fn new(client: Client, prefix: String, consumer: String, timeout: Duration) -> Result<Self, JobError> {
        let connect = |response_timeout: Duration| {
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(response_timeout))
                .set_number_of_retries(1);
            ConnectionManager::new_lazy_with_config(client.clone(), config).map_err(JobError::ConnectQueue)
        };
        Ok(Self {
            connection: connect(timeout)?,
            reader: connect(READ_BLOCK + timeout)?,
            prefix,
            consumer,
            scripts: Scripts {
                submit: Script::new(SUBMIT),
                start: Script::new(START),
                heartbeat: Script::new(HEARTBEAT),
                progress: Script::new(PROGRESS),
                finish: Script::new(FINISH),
                release: Script::new(RELEASE),
                cancel: Script::new(CANCEL),
            },
        })
    }

    pub(crate) fn consumer(&self) -> &str {
        &self.consumer
    }

    fn stream(&self) -> String {
        format!("{}:jobs", self.prefix)
    }

    fn record(&self, id: &str) -> String {
        format!("{}:job:{id}", self.prefix)
    }

    /// Creates the consumer group (and the stream) unless it exists. From id 0, so jobs
    /// submitted before any pod started are read too.
    pub(crate) async fn ensure_group(&self) -> Result<(), JobError> {
        let mut connection = self.connection.clone();
        let created: redis::RedisResult<()> = connection.xgroup_create_mkstream(self.stream(), GROUP, "0").await;
        match created {
            Ok(()) => Ok(()),
            Err(error) if error.code() == Some("BUSYGROUP") => Ok(()),
            Err(error) => Err(JobError::CreateGroup(error)),
        }
    }

    pub(crate) async fn submit(
        &self,
        id: &str,
        request: &JobRequest,
        document_sha256: &str,
        now_ms: i64,
        ttl: Duration,
    ) -> Result<Submitted, JobError> {
        let request = serde_json::to_string(request).map_err(JobError::EncodeRequest)?;
        let ttl_ms = millis(ttl);
        let oldest_kept = format!("{}-0", (now_ms - ttl_ms).max(0));
        let mut invocation = self.scripts.submit.key(self.record(id));
        invocation.key(self.stream()).arg(id).arg(ttl_ms).arg(oldest_kept);
        for (field, value) in [
            (fields::REQUEST, request),
            (fields::DOCUMENT_SHA256, document_sha256.to_owned()),
            (fields::SUBMITTED_MS, now_ms.to_string()),
            (fields::EXPIRES_MS, (now_ms + ttl_ms).to_string()),
            (fields::PAGES_DONE, "0".to_owned()),
            (fields::PAGES_TOTAL, "0".to_owned()),
        ] {
            invocation.arg(field).arg(value);
        }
        let mut connection = self.connection.clone();
        let (created, state): (i64, String) =
            invocation.invoke_async(&mut connection).await.map_err(JobError::Submit)?;
        if created == 1 {
            return Ok(Submitted::Created);
        }
        let state = JobState::parse(&state).ok_or_else(|| JobError::UnknownState { id: id.to_owned(), state })?;
        Ok(Submitted::Existing(state))
    }

    pub(crate) async fn get(&self, id: &str) -> Result<Option<JobRecord>, JobError> {
        let mut connection = self.connection.clone();
        let hash: HashMap<String, String> = connection.hgetall(self.record(id)).await.map_err(JobError::ReadRecord)?;
        JobRecord::from_hash(id, &hash).map_err(JobError::DamagedRecord)
    }

    /// Cancels a queued or running job; returns the state it had (`None`: no such job).
    pub(crate) async fn cancel(&self, id: &str, now_ms: i64) -> Result<Option<JobState>, JobError> {
        let mut connection = self.connection.clone();
        let before: String = self
            .scripts
            .cancel
            .key(self.record(id))
            .arg(now_ms)
            .invoke_async(&mut connection)
            .await
            .map_err(JobError::Cancel)?;
        if before == "gone" {
            return Ok(None);
        }
        JobState::parse(&before).map(Some).ok_or(JobError::UnknownState { id: id.to_owned(), state: before })
    }

    /// The next new entry for this pod, waiting up to [`READ_BLOCK`] for one.
    pub(crate) async fn read_new(&self) -> Result<Option<Delivery>, JobError> {
        let options =
            StreamReadOptions::default().group(GROUP, &self.consumer).count(1).block(millis(READ_BLOCK) as usize);
        let mut reader = self.reader.clone();
        let reply: Option<StreamReadReply> =
            reader.xread_options(&[self.stream()], &[">"], &options).await.map_err(JobError::ReadQueue)?;
        Ok(reply.into_iter().flat_map(|reply| reply.keys).flat_map(|key| key.ids).find_map(delivery))
    }

    /// Takes over one entry that has not been heartbeaten for `min_idle` (its pod died).
    pub(crate) async fn claim_abandoned(&self, min_idle: Duration) -> Result<Option<Delivery>, JobError> {
        let mut connection = self.connection.clone();
        let reply: redis::streams::StreamAutoClaimReply = connection
            .xautoclaim_options(
                self.stream(),
                GROUP,
                &self.consumer,
                millis(min_idle),
                "0-0",
                StreamAutoClaimOptions::default().count(1),
            )
            .await
            .map_err(JobError::ReadQueue)?;
        Ok(reply.claimed.into_iter().find_map(delivery))
    }

    pub(crate) async fn start(&self, delivery: &Delivery, now_ms: i64, max_attempts: u32) -> Result<Started, JobError> {
        let mut connection = self.connection.clone();
        let state: String = self
            .scripts
            .start
            .key(self.record(&delivery.job_id))
            .key(self.stream())
            .arg(GROUP)
            .arg(&delivery.entry)
            .arg(&self.consumer)
            .arg(now_ms)
            .arg(max_attempts)
            .invoke_async(&mut connection)
            .await
            .map_err(JobError::Start)?;
        Ok(if state == "running" { Started::Running } else { Started::Skip })
    }

    pub(crate) async fn heartbeat(&self, delivery: &Delivery) -> Result<Beat, JobError> {
        let mut connection = self.connection.clone();
        let state: String = self
            .scripts
            .heartbeat
            .key(self.record(&delivery.job_id))
            .key(self.stream())
            .arg(GROUP)
            .arg(&delivery.entry)
            .arg(&self.consumer)
            .invoke_async(&mut connection)
            .await
            .map_err(JobError::Heartbeat)?;
        Ok(match state.as_str() {
            "running" => Beat::Running,
            "cancelled" => Beat::Cancelled,
            _ => Beat::Lost,
        })
    }

    pub(crate) async fn progress(&self, job_id: &str, pages: (u32, u32)) -> Result<(), JobError> {
        let mut connection = self.connection.clone();
        let _: i64 = self
            .scripts
            .progress
            .key(self.record(job_id))
            .arg(&self.consumer)
            .arg(fields::PAGES_DONE)
            .arg(pages.0)
            .arg(fields::PAGES_TOTAL)
            .arg(pages.1)
            .invoke_async(&mut connection)
            .await
            .map_err(JobError::Progress)?;
        Ok(())
    }

    /// Ends the job with `outcome`; `false` when this pod no longer owned it (another
    /// pod finishes it, or a cancel came first).
    pub(crate) async fn finish(
        &self,
        delivery: &Delivery,
        outcome: &[(&'static str, String)],
        ttl: Duration,
    ) -> Result<bool, JobError> {
        let mut invocation = self.scripts.finish.key(self.record(&delivery.job_id));
        invocation.key(self.stream()).arg(GROUP).arg(&delivery.entry).arg(&self.consumer).arg(millis(ttl));
        for (field, value) in outcome {
            invocation.arg(*field).arg(value);
        }
        let mut connection = self.connection.clone();
        let ended: i64 = invocation.invoke_async(&mut connection).await.map_err(JobError::Finish)?;
        Ok(ended == 1)
    }

    /// Puts the job back for any pod; `count_attempt` = false when the pod gives it up
    /// for reasons other than dying (draining, a bucket or engine that cannot take it
    /// now), so that only pods that stopped use attempts up.
    pub(crate) async fn release(
        &self,
        delivery: &Delivery,
        now_ms: i64,
        ttl: Duration,
        count_attempt: bool,
    ) -> Result<bool, JobError> {
        let mut connection = self.connection.clone();
        let oldest_kept = format!("{}-0", (now_ms - millis(ttl)).max(0));
        let released: i64 = self
            .scripts
            .release
            .key(self.record(&delivery.job_id))
            .key(self.stream())
            .arg(GROUP)
            .arg(&delivery.entry)
            .arg(&self.consumer)
            .arg(&delivery.job_id)
            .arg(oldest_kept)
            .arg(u8::from(count_attempt))
            .invoke_async(&mut connection)
            .await
            .map_err(JobError::Release)?;
        Ok(released == 1)
    }

    /// Acknowledges an entry this pod will not work (a cancelled job it stopped).
    pub(crate) async fn acknowledge(&self, delivery: &Delivery) -> Result<(), JobError> {
        let mut connection = self.connection.clone();
        let _: i64 = connection.xack(self.stream(), GROUP, &[&delivery.entry]).await.map_err(JobError::Acknowledge)?;
        Ok(())
    }

    /// Leaves the group on shutdown (after releasing its jobs), so the group lists live pods.
    pub(crate) async fn leave(&self) -> Result<(), JobError> {
        let mut connection = self.connection.clone();
        let _: i64 =
            connection.xgroup_delconsumer(self.stream(), GROUP, &self.consumer).await.map_err(JobError::Acknowledge)?;
        Ok(())
    }

    /// The backlog: unread entries (`lag`), entries being worked, and the oldest one's age.
    pub(crate) async fn backlog(&self, now_ms: i64) -> Result<Backlog, JobError> {
        let mut connection = self.connection.clone();
        let groups: redis::streams::StreamInfoGroupsReply =
            connection.xinfo_groups(self.stream()).await.map_err(JobError::ReadBacklog)?;
        let Some(group) = groups.groups.into_iter().find(|group| group.name == GROUP) else {
            return Ok(Backlog::default());
        };
        let pending = group.pending as u64;
        let queued = match group.lag {
            Some(lag) => lag as u64,
            // Redis cannot always tell the lag (entries deleted or trimmed in the middle of
            // the stream): count what follows the last delivered entry instead.
            None => {
                let after = format!("({}", group.last_delivered_id);
                let unread: redis::streams::StreamRangeReply = connection
                    .xrange_count(self.stream(), after, "+", UNKNOWN_LAG_COUNT_LIMIT)
                    .await
                    .map_err(JobError::ReadBacklog)?;
                unread.ids.len() as u64
            }
        };
        let mut oldest: Option<i64> = None;
        if pending > 0 {
            let summary: redis::streams::StreamPendingReply =
                connection.xpending(self.stream(), GROUP).await.map_err(JobError::ReadBacklog)?;
            if let redis::streams::StreamPendingReply::Data(data) = summary {
                oldest = entry_millis(&data.start_id);
            }
        }
        if queued > 0 {
            // The first entry after the last one delivered is the oldest unread.
            let after = format!("({}", group.last_delivered_id);
            let first: redis::streams::StreamRangeReply =
                connection.xrange_count(self.stream(), after, "+", 1).await.map_err(JobError::ReadBacklog)?;
            if let Some(entry) = first.ids.first().and_then(|entry| entry_millis(&entry.id)) {
                oldest = Some(oldest.map_or(entry, |pending| pending.min(entry)));
            }
        }
        let oldest_age = oldest.map(|ms| Duration::from_millis(u64::try_from(now_ms - ms).unwrap_or(0)));
        Ok(Backlog { queued, pending, oldest_age })
    }
}

fn delivery(entry: StreamId) -> Option<Delivery> {
    let job_id = match entry.map.get(ENTRY_JOB_FIELD)? {
        redis::Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok()?,
        redis::Value::SimpleString(text) => text.clone(),
        _ => return None,
    };
    Some(Delivery { entry: entry.id, job_id })
}

/// The milliseconds part of a stream id (`<ms>-<seq>`).
fn entry_millis(id: &str) -> Option<i64> {
    id.split('-').next()?.parse().ok()
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_carry_their_time() {
        assert_eq!(entry_millis("1700000000123-4"), Some(1_700_000_000_123));
        assert_eq!(entry_millis("nonsense"), None);
    }
}
