//! The ingester owns its state: snapshots are immutable, many of them
//! leave few segments, and a restart keeps the head and the sealed heads.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::*;
use crate::metrics::Metrics;
use crate::testing::fixtures::split;

fn start() -> Addr<Ingester> {
    Supervisor::start(|_| Ingester::new("t".into(), None, Metrics::new()))
}

/// Appends the Go CPU fixture at `ms`; returns the profile rows it added.
async fn append(ingester: &Addr<Ingester>, ms: i64) -> u64 {
    let profiles = Arc::new(split("go/cpu", "svc", ms));
    ingester
        .send(Append::new(profiles))
        .await
        .expect("mailbox")
        .expect("stored")
        .durable()
        .await
        .expect("durable")
        .profiles
}

async fn snapshot(ingester: &Addr<Ingester>) -> Snapshot {
    ingester.send(TakeSnapshot).await.expect("mailbox")
}

#[actix::test]
async fn a_snapshot_does_not_change_when_writes_go_on() {
    let ingester = start();
    let rows = append(&ingester, 1_000).await;
    assert!(rows > 0);
    let first = snapshot(&ingester).await;
    assert_eq!(first.profiles(), rows);
    // The ingester appends while a reader holds the snapshot.
    append(&ingester, 2_000).await;
    append(&ingester, 3_000).await;
    assert_eq!(first.profiles(), rows, "a snapshot is immutable");
    assert_eq!(snapshot(&ingester).await.profiles(), 3 * rows);
}

#[actix::test]
async fn a_snapshot_after_every_write_leaves_few_segments() {
    let ingester = start();
    let mut rows = 0;
    for i in 0..64 {
        rows += append(&ingester, 1_000 + i).await;
        assert_eq!(snapshot(&ingester).await.profiles(), rows);
    }
    // Merges run in the background: wait for them to settle.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut snap = snapshot(&ingester).await;
    while snap.heads.len() > 4 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        snap = snapshot(&ingester).await;
    }
    assert!(snap.heads.len() <= 4, "{} segments", snap.heads.len());
    assert_eq!(snap.profiles(), rows, "merging keeps every profile");
}

#[actix::test]
async fn a_restarted_ingester_resumes_with_its_heads() {
    let ingester = start();
    let rows = append(&ingester, 1_000).await;
    let cut = ingester
        .send(Cut {
            force: true,
            max_age: Duration::MAX,
            max_samples: 0,
        })
        .await
        .expect("mailbox")
        .expect("a non-empty head is cut");
    append(&ingester, 2_000).await;
    ingester.send(Restart).await.expect("mailbox");
    // The supervisor restarts it after a backoff; the next message waits.
    let snap = snapshot(&ingester).await;
    assert_eq!(snap.profiles(), 2 * rows);
    assert_eq!(snap.sealed.len(), 1);
    assert_eq!(snap.sealed[0].ulid, cut.ulid);
    let sealed = ingester.send(SealedHeads).await.expect("mailbox");
    assert_eq!(sealed.len(), 1, "the shipper still finds the cut head");
    // Writes go on into the head it kept.
    append(&ingester, 3_000).await;
    assert_eq!(snapshot(&ingester).await.profiles(), 3 * rows);
}

#[actix::test]
async fn a_cut_takes_every_segment_and_drops_a_merge_of_them() {
    let mut segments = Segments::default();
    let profiles = split("go/cpu", "svc", 1_000);
    for _ in 0..4 {
        for p in &profiles {
            segments.active_mut().insert(p).expect("insert");
        }
        segments.freeze();
    }
    let job = segments.plan_merge().expect("four segments start a merge");
    let merged = Head::merged(job.parts.iter().map(|h| &**h));
    let taken = segments.take_all();
    assert_eq!(taken.len(), 4);
    assert!(
        !segments.finish_merge(job, merged),
        "the cut took its parts"
    );
    assert_eq!(segments.stats().profiles, 0);
}
