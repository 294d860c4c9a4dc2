//! The engine's lease on PostgreSQL ([`ferrota_server::lease::PgLease`]): one holder at a time,
//! a standby takes over within seconds when the holder's session dies, and work forwarded by
//! the other workers reaches the holder only.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ferrota_infra::Postgres;
use ferrota_server::lease::{Inbox, Lease, PgLease};
use sqlx::postgres::PgPool;

/// A new database on the process's private server; `None` (with the one-line note) when
/// PostgreSQL is not installed.
async fn database() -> Option<(String, PgPool)> {
    if ferrota_infra::skip_without("PostgreSQL", Postgres::available()) {
        return None;
    }
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "lease_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    );
    let url = Postgres::shared().unwrap().create_database(&name).unwrap();
    let pool = PgPool::connect(&url).await.unwrap();
    Some((url, pool))
}

async fn until(limit: Duration, mut f: impl AsyncFnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

#[tokio::test]
async fn one_worker_holds_and_a_standby_takes_over_when_the_holder_dies() {
    let Some((url, admin)) = database().await else {
        return;
    };
    let a = PgLease::new(PgPool::connect(&url).await.unwrap());
    let b = PgLease::new(PgPool::connect(&url).await.unwrap());
    let first = a.hold().await;
    assert!(first.is_some(), "a free lease was not taken");
    assert_eq!(
        a.hold().await,
        first,
        "the holder's epoch changed while it held"
    );
    tokio::time::sleep(PgLease::TRY_EVERY).await;
    assert_eq!(b.hold().await, None, "two workers hold at once");

    // The holder's session dies (its process was killed, its connection cut): the one session
    // holding an advisory lock in this test's database (other tests of the binary hold leases
    // on the same server meanwhile; the standby's refused try may still be closing).
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(l.pid)) FROM pg_locks l \
         JOIN pg_database d ON d.oid = l.database \
         WHERE l.locktype = 'advisory' AND l.granted AND d.datname = current_database()",
    )
    .fetch_one(&admin)
    .await
    .unwrap();
    assert_eq!(killed, 1);
    let took = until(Duration::from_secs(5), async || b.hold().await.is_some()).await;
    let took = took.expect("the standby never took the lease");
    assert!(took <= PgLease::TRY_EVERY * 2, "takeover took {took:?}");
    // The old holder learns it lost the lease at its next check, and does not take it back.
    let lost = until(Duration::from_secs(3), async || a.hold().await.is_none()).await;
    assert!(lost.is_some(), "the old holder still thinks it holds");
    tokio::time::sleep(PgLease::TRY_EVERY).await;
    assert_eq!(a.hold().await, None);
    assert!(b.hold().await.is_some());

    // A holder dropped (its process ended) frees the lease too.
    drop(b);
    let again = until(Duration::from_secs(5), async || a.hold().await.is_some()).await;
    assert!(
        again.is_some(),
        "the lease stayed taken after its holder ended"
    );
    assert!(
        a.hold().await > first,
        "a new taking has a new epoch (the runner recovers on it)"
    );
}

#[tokio::test]
async fn forwarded_work_reaches_the_holder_and_only_the_holder() {
    let Some((url, _admin)) = database().await else {
        return;
    };
    let holder = Arc::new(PgLease::new(PgPool::connect(&url).await.unwrap()));
    let other = Arc::new(PgLease::new(PgPool::connect(&url).await.unwrap()));
    assert!(holder.hold().await.is_some());
    assert!(other.hold().await.is_none());
    let at_holder = common::Mem::new();
    let at_other = common::Mem::new();
    let (h, s) = (holder.clone(), at_holder.services.clone() as Arc<dyn Inbox>);
    let r1 = tokio::spawn(async move { h.receive(s).await });
    let (o, s) = (other.clone(), at_other.services.clone() as Arc<dyn Inbox>);
    let r2 = tokio::spawn(async move { o.receive(s).await });
    // Listeners need a moment to LISTEN; forward until the holder hears (NOTIFY before LISTEN
    // is lost by design: the holder recovers by scanning, see the lease's docs).
    let many: Vec<(String, String)> = (0..400)
        .map(|i| {
            (
                "AFR_OTA-job".to_string(),
                format!("thing-with-a-long-name-{i:04}"),
            )
        })
        .collect();
    let heard = until(Duration::from_secs(5), async || {
        other.forward(&many, &["joined".to_string()]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        !at_holder.services.take_finished().is_empty()
    })
    .await;
    assert!(heard.is_some(), "the holder never heard forwarded work");
    // One more round, whole: 400 finished executions (several NOTIFY payloads) and a change.
    tokio::time::sleep(Duration::from_millis(200)).await;
    at_holder.services.take_finished();
    at_holder.services.take_changed();
    other.forward(&many, &["joined".to_string()]).await.unwrap();
    let mut got = Vec::new();
    until(Duration::from_secs(3), async || {
        got.extend(at_holder.services.take_finished());
        got.len() >= many.len()
    })
    .await;
    got.sort();
    let mut want = many.clone();
    want.sort();
    assert_eq!(got, want);
    assert_eq!(at_holder.services.take_changed(), ["joined"]);
    // The worker that does not hold dropped all of it (it would forward it again, forever).
    assert!(at_other.services.take_finished().is_empty());
    assert!(at_other.services.take_changed().is_empty());
    r1.abort();
    r2.abort();
}
