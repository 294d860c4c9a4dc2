//! Execution timeouts → TIMED_OUT (AWS `timeoutConfig.inProgressTimeoutInMinutes` on the job,
//! `stepTimeoutInMinutes` from the device; [`crate::jobs`] sets the timers).
//!
//! A timer is a deadline (epoch seconds of the broker's [`Clock`](crate::broker::Clock)) stored
//! with the execution, so it survives a restart: an execution whose deadline passed while the
//! server was down times out when the server is back. [`run`] sleeps until the earliest
//! deadline (at most `max_sleep`, and woken early by [`Services::timers`] when a timer is set),
//! then [`expire_due`] moves every due IN_PROGRESS execution to TIMED_OUT ([`crate::jobs`] holds the expiry of one): terminal, version
//! +1, a history entry, committed with the same compare-and-set as a device update (a device
//! update that commits first wins), then the job may complete and `notify-next` / `notify`
//! go out as for any other change. Requests about a thing expire its due executions first
//! ([`expire_thing`]), so a device never sees a timer past its expiry.

use std::sync::Arc;
use std::time::Duration;

use crate::context::Services;
use crate::jobs;
use crate::store::StoreResult;

pub use crate::jobs::{TIMEOUT_MAX_MINUTES, TIMEOUT_MIN_MINUTES, expire_thing, valid_minutes};

/// Times out every IN_PROGRESS execution whose timer expired; returns how many.
pub async fn expire_due(b: &Services) -> StoreResult<usize> {
    let now = b.clock.now();
    let mut n = 0;
    for e in b.store.due_executions(now).await? {
        if jobs::expire(b, &e, now).await? {
            n += 1;
        }
    }
    Ok(n)
}

/// Expires executions as their timers run out, forever (spawn it; abort it to stop).
/// Of several workers, only the [`crate::lease`]'s holder expires; it reads the timers the
/// others set at least every [`crate::lease::Lease::poll`].
pub async fn run(b: Arc<Services>, max_sleep: Duration) {
    let lease = b.lease();
    let max_sleep = lease.poll().map_or(max_sleep, |p| p.min(max_sleep));
    loop {
        if lease.hold().await.is_none() {
            tokio::select! {
                _ = tokio::time::sleep(max_sleep) => {}
                _ = b.timers.notified() => {}
            }
            continue;
        }
        if let Err(e) = expire_due(&b).await {
            tracing::error!(error = %e, "expiring job executions failed");
        }
        let wait = match b.store.next_deadline().await {
            // Deadlines are whole seconds; one already past (a failed expiry) is retried in 1 s.
            Ok(Some(d)) => Duration::from_secs(d.saturating_sub(b.clock.now()).max(1)),
            Ok(None) => max_sleep,
            Err(e) => {
                tracing::error!(error = %e, "reading execution timers failed");
                max_sleep
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait.min(max_sleep)) => {}
            _ = b.timers.notified() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use std::sync::Mutex;

    use bytes::Bytes;
    use ferrota_proto::topic::{JobsTopic, Reply};

    use super::*;
    use crate::context::{Clock, Outbound};
    use crate::store::Execution;
    use crate::store::{DirBlobStore, Job, JobState, SqliteStore, Store, Thing};
    use ferrota_proto::JobStatus;

    const T0: u64 = 1_700_000_000;

    struct ManualClock(AtomicU64);
    impl Clock for ManualClock {
        fn now(&self) -> u64 {
            self.0.load(Ordering::SeqCst)
        }
    }

    /// What device `d` receives: the replies sent to it and what it subscribed to
    /// (`jobs/notify`, `jobs/notify-next`), as a broker would route them.
    #[derive(Default)]
    struct Device(Mutex<Vec<(String, Bytes)>>);

    impl Outbound for Device {
        fn publish(&self, topic: &str, payload: Bytes, _qos: rumqttc::QoS) {
            if topic == "$aws/things/d/jobs/notify" || topic == "$aws/things/d/jobs/notify-next" {
                self.0.lock().unwrap().push((topic.into(), payload));
            }
        }
        fn deliver_to(&self, client_id: &str, topic: &str, payload: Bytes, _qos: rumqttc::QoS) {
            if client_id == "d" {
                self.0.lock().unwrap().push((topic.into(), payload));
            }
        }
    }

    struct Fixture {
        b: Arc<Services>,
        clock: Arc<ManualClock>,
        device: Arc<Device>,
        _dir: tempfile::TempDir,
    }

    impl Fixture {
        fn set(&self, t: u64) {
            self.clock.0.store(T0 + t, Ordering::SeqCst);
        }
        /// Every message queued for the device so far, as (topic suffix, JSON).
        fn drain(&mut self) -> Vec<(String, serde_json::Value)> {
            let mut out = Vec::new();
            for (topic, payload) in std::mem::take(&mut *self.device.0.lock().unwrap()) {
                let t = topic
                    .strip_prefix("$aws/things/d/jobs/")
                    .unwrap()
                    .to_string();
                out.push((t, serde_json::from_slice(&payload).unwrap()));
            }
            out
        }
        async fn request(&self, kind: JobsTopic<'_>, body: &str) {
            jobs::handle(&self.b, "d", "d", kind, body.as_bytes())
                .await
                .unwrap();
        }
        async fn update(&self, job: &str, body: &str) {
            let kind = JobsTopic::Update {
                job,
                reply: Reply::Request,
            };
            self.request(kind, body).await;
        }
        async fn exec(&self, job: &str) -> Execution {
            self.b.store.execution(job, "d").await.unwrap().unwrap()
        }
    }

    async fn add_job(store: &dyn Store, id: &str, timeout: Option<u64>) {
        store
            .create_job(
                &Job {
                    job_id: id.into(),
                    document: "{}".into(),
                    state: JobState::InProgress,
                    ota_update_id: None,
                    created_at: T0,
                    in_progress_timeout_minutes: timeout,
                },
                &["d".to_string()],
            )
            .await
            .unwrap();
    }

    async fn fixture_on(store: SqliteStore, dir: tempfile::TempDir, t: u64) -> Fixture {
        let clock = Arc::new(ManualClock(AtomicU64::new(T0 + t)));
        let blobs = DirBlobStore::new(dir.path().join("files")).unwrap();
        let device = Arc::new(Device::default());
        let b = Arc::new(Services::new(
            Arc::new(store),
            Arc::new(blobs),
            clock.clone(),
            device.clone(),
        ));
        Fixture {
            b,
            clock,
            device,
            _dir: dir,
        }
    }

    async fn fixture(jobs: &[(&str, Option<u64>)]) -> Fixture {
        let store = SqliteStore::memory().await.unwrap();
        store
            .create_thing(&Thing {
                name: "d".into(),
                groups: vec![],
                created_at: T0,
            })
            .await
            .unwrap();
        for (id, t) in jobs {
            add_job(&store, id, *t).await;
        }
        fixture_on(store, tempfile::tempdir().unwrap(), 0).await
    }

    const START_NEXT: JobsTopic<'static> = JobsTopic::StartNext(Reply::Request);

    #[tokio::test]
    async fn in_progress_timeout_times_out_and_the_next_job_follows() {
        let mut f = fixture(&[("j1", Some(5)), ("j2", None)]).await;
        f.request(START_NEXT, "{}").await;
        let e = f.exec("j1").await;
        assert_eq!(e.status, JobStatus::InProgress);
        assert_eq!(e.in_progress_deadline, Some(T0 + 300));
        assert_eq!(f.b.store.next_deadline().await.unwrap(), Some(T0 + 300));
        f.drain();
        f.set(299);
        assert_eq!(expire_due(&f.b).await.unwrap(), 0);
        assert!(f.drain().is_empty());
        f.set(300);
        assert_eq!(expire_due(&f.b).await.unwrap(), 1);
        let e = f.exec("j1").await;
        assert_eq!(e.status, JobStatus::TimedOut);
        assert_eq!(e.version_number, 3);
        assert_eq!(e.last_updated_at, T0 + 300);
        assert_eq!(e.deadline(), None);
        let h = f.b.store.history("j1", "d").await.unwrap();
        assert_eq!(h.last().unwrap().status, JobStatus::TimedOut);
        assert_eq!(h.last().unwrap().version_number, 3);
        let job = f.b.store.job("j1").await.unwrap().unwrap();
        assert_eq!(job.state, JobState::Completed);
        assert_eq!(f.b.store.next_deadline().await.unwrap(), None);
        // notify-next names j2; notify lists only j2 as QUEUED.
        let out = f.drain();
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[0].0, "notify-next");
        assert_eq!(out[0].1["execution"]["jobId"], "j2");
        assert_eq!(out[1].0, "notify");
        assert_eq!(out[1].1["timestamp"], T0 + 300);
        assert_eq!(out[1].1["jobs"]["QUEUED"][0]["jobId"], "j2");
        assert_eq!(out[1].1["jobs"].as_object().unwrap().len(), 1);
        // Nothing more to do; the device's late update is refused.
        assert_eq!(expire_due(&f.b).await.unwrap(), 0);
        f.update("j1", r#"{"status":"SUCCEEDED"}"#).await;
        let out = f.drain();
        assert_eq!(out[0].0, "j1/update/rejected");
        assert_eq!(out[0].1["code"], "InvalidStateTransition");
        assert_eq!(out[0].1["executionState"]["status"], "TIMED_OUT");
    }

    #[tokio::test]
    async fn a_request_expires_a_due_execution_before_it_is_answered() {
        let mut f = fixture(&[("j1", Some(1))]).await;
        f.request(START_NEXT, "{}").await;
        f.drain();
        f.set(61);
        // No timer task ran: the update itself finds the timer expired.
        f.update("j1", r#"{"status":"SUCCEEDED","clientToken":"t"}"#)
            .await;
        let out = f.drain();
        let topics: Vec<&str> = out.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(topics, ["notify-next", "notify", "j1/update/rejected"]);
        assert!(out[0].1.get("execution").is_none());
        assert_eq!(out[1].1["jobs"], serde_json::json!({}));
        assert_eq!(out[2].1["executionState"]["status"], "TIMED_OUT");
        assert_eq!(f.exec("j1").await.status, JobStatus::TimedOut);
    }

    #[tokio::test]
    async fn step_timeout_is_set_reset_cleared_and_expires() {
        let mut f = fixture(&[("j1", None)]).await;
        // Out of range: refused, nothing started.
        for bad in ["0", "10081"] {
            f.request(START_NEXT, &format!(r#"{{"stepTimeoutInMinutes":{bad}}}"#))
                .await;
            let out = f.drain();
            assert_eq!(out[0].0, "start-next/rejected");
            assert_eq!(out[0].1["code"], "InvalidRequest");
        }
        assert_eq!(f.exec("j1").await.status, JobStatus::Queued);
        f.request(START_NEXT, r#"{"stepTimeoutInMinutes":2}"#).await;
        assert_eq!(f.exec("j1").await.deadline(), Some(T0 + 120));
        // Reset at +100 to 3 minutes from then.
        f.set(100);
        f.update("j1", r#"{"status":"IN_PROGRESS","stepTimeoutInMinutes":3}"#)
            .await;
        assert_eq!(f.exec("j1").await.deadline(), Some(T0 + 280));
        // An update without the field keeps the timer.
        f.update("j1", r#"{"status":"IN_PROGRESS"}"#).await;
        assert_eq!(f.exec("j1").await.deadline(), Some(T0 + 280));
        f.set(200);
        assert_eq!(expire_due(&f.b).await.unwrap(), 0);
        // -1 clears it.
        f.update(
            "j1",
            r#"{"status":"IN_PROGRESS","stepTimeoutInMinutes":-1}"#,
        )
        .await;
        let out = f.drain();
        assert!(
            out.iter().all(|(t, _)| t != "j1/update/rejected"),
            "{out:?}"
        );
        assert_eq!(f.exec("j1").await.deadline(), None);
        f.set(100_000);
        assert_eq!(expire_due(&f.b).await.unwrap(), 0);
        assert_eq!(f.exec("j1").await.status, JobStatus::InProgress);
        // Other negative values are invalid.
        f.update(
            "j1",
            r#"{"status":"IN_PROGRESS","stepTimeoutInMinutes":-2}"#,
        )
        .await;
        assert_eq!(f.drain().last().unwrap().1["code"], "InvalidRequest");
        f.update("j1", r#"{"status":"IN_PROGRESS","stepTimeoutInMinutes":1}"#)
            .await;
        f.set(100_060);
        assert_eq!(expire_due(&f.b).await.unwrap(), 1);
        assert_eq!(f.exec("j1").await.status, JobStatus::TimedOut);
    }

    #[tokio::test]
    async fn the_earlier_timer_wins_and_a_terminal_update_stops_both() {
        let f = fixture(&[("j1", Some(10)), ("j2", Some(10))]).await;
        f.request(START_NEXT, r#"{"stepTimeoutInMinutes":2}"#).await;
        let e = f.exec("j1").await;
        assert_eq!(
            (e.in_progress_deadline, e.step_deadline, e.deadline()),
            (Some(T0 + 600), Some(T0 + 120), Some(T0 + 120))
        );
        f.update("j1", r#"{"status":"SUCCEEDED"}"#).await;
        assert_eq!(f.exec("j1").await.deadline(), None);
        // j2 started by an update from QUEUED: the job's timer starts then.
        f.set(30);
        f.update("j2", r#"{"status":"IN_PROGRESS"}"#).await;
        assert_eq!(f.exec("j2").await.deadline(), Some(T0 + 630));
        f.set(10_000);
        assert_eq!(expire_due(&f.b).await.unwrap(), 1);
        assert_eq!(f.exec("j1").await.status, JobStatus::Succeeded);
        assert_eq!(f.exec("j2").await.status, JobStatus::TimedOut);
    }

    #[tokio::test]
    async fn the_timer_task_expires_executions_as_the_clock_moves() {
        let mut f = fixture(&[("j1", Some(1))]).await;
        let task = tokio::spawn(run(f.b.clone(), Duration::from_millis(20)));
        f.request(START_NEXT, "{}").await;
        f.drain();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(f.exec("j1").await.status, JobStatus::InProgress);
        f.set(60);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while f.exec("j1").await.status != JobStatus::TimedOut {
            assert!(tokio::time::Instant::now() < deadline, "never timed out");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The status is stored before the notifications are queued: wait for them before
        // stopping the task (aborting at once raced the publish on a busy machine).
        let mut out = f.drain();
        while out.is_empty() {
            assert!(tokio::time::Instant::now() < deadline, "no notification");
            tokio::time::sleep(Duration::from_millis(10)).await;
            out = f.drain();
        }
        task.abort();
        assert_eq!(out[0].0, "notify-next");
    }

    #[tokio::test]
    async fn a_deadline_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db.sqlite");
        {
            let store = SqliteStore::open(&db).await.unwrap();
            store
                .create_thing(&Thing {
                    name: "d".into(),
                    groups: vec![],
                    created_at: T0,
                })
                .await
                .unwrap();
            add_job(&store, "j1", Some(30)).await;
            add_job(&store, "j2", None).await;
            let f = fixture_on(store, tempfile::tempdir().unwrap(), 0).await;
            f.request(START_NEXT, "{}").await;
            assert_eq!(f.exec("j1").await.deadline(), Some(T0 + 1800));
        }
        // The server was down past the deadline.
        let store = SqliteStore::open(&db).await.unwrap();
        assert_eq!(store.next_deadline().await.unwrap(), Some(T0 + 1800));
        let mut f = fixture_on(store, dir, 3600).await;
        assert_eq!(expire_due(&f.b).await.unwrap(), 1);
        assert_eq!(f.exec("j1").await.status, JobStatus::TimedOut);
        assert_eq!(f.drain()[0].1["execution"]["jobId"], "j2");
    }
}
