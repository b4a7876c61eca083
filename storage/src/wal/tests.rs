use std::io::Write;

use super::*;
use crate::head::SeriesSplit;
use crate::labels::Labels;
use crate::testing::one_frame_profile;

#[test]
fn stream_names_round_trip_and_the_first_is_the_tenant() {
    assert_eq!(stream_name("acme", 0), "acme");
    assert_eq!(stream_name("acme", 3), "acme#3");
    for (tenant, shard) in [("acme", 0), ("acme", 3), ("a.b-c", 12)] {
        assert_eq!(
            parse_stream(&stream_name(tenant, shard)),
            Some((tenant, shard))
        );
    }
    for bad in ["acme#0", "acme#x", "#2", "acme#"] {
        assert_eq!(parse_stream(bad), None, "{bad}");
    }
}

fn profile(ts: i64, value: i64) -> SplitProfile {
    SplitProfile {
        profile_id: crate::ProfileId::generate(),
        profile: crate::FlatProfile::from_proto(&one_frame_profile("f", 3, value)).unwrap(),
        timestamp_ns: ts,
        series: vec![SeriesSplit {
            labels: Labels::from_pairs([("a", "b")]),
            value_index: 0,
            samples: vec![0],
        }],
    }
}

fn open(dir: &Path) -> Wal {
    Wal::open(dir, WalSync::Always, Duration::from_millis(100)).unwrap()
}

/// Every record replayed: (seq, stream, timestamp, value).
fn replayed(wal: &Wal) -> Vec<(u64, String, i64, i64)> {
    let mut seen = Vec::new();
    wal.replay(|seq, stream, ps| {
        for p in ps {
            seen.push((
                seq,
                stream.to_string(),
                p.timestamp_ns,
                p.profile.sample(0).unwrap().values[0],
            ));
        }
    })
    .unwrap();
    seen
}

fn segment_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir.join(SEGMENTS_DIR))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    files.sort();
    files
}

/// Past half a segment a zero-filled spare is made in the background; the
/// next segment is that file, already at its full size, and records written
/// over its zeros replay exactly; a record torn in the zeros is cut off.
#[test]
fn segments_made_ahead_replay_their_records_and_end_at_the_zeros() {
    let dir = tempfile::tempdir().unwrap();
    let segments = dir.path().join(SEGMENTS_DIR);
    let spares = || {
        std::fs::read_dir(&segments)
            .unwrap()
            .filter(|e| {
                let path = e.as_ref().unwrap().path();
                path.extension().is_some_and(|e| e == "spare")
            })
            .count()
    };
    let segment_bytes = 64 << 10;
    let record = vec![9u8; 3_000];
    let mut want = Vec::new();
    {
        let wal = open(dir.path());
        wal.set_segment_bytes(segment_bytes);
        // 11 records fill the first segment past half; the spare is ready
        // before the 22nd starts the second.
        for i in 0..41 {
            let seq = wal.append_record("t", &record).unwrap().0;
            want.push((seq, "t".to_string(), record.clone()));
            if i == 10 {
                wal.log().settle_spare();
            }
        }
        wal.flush().unwrap();
        let files = segment_files(dir.path());
        assert_eq!(files.len(), 2, "{files:?}");
        // The second segment is the spare: full size before it is full.
        assert_eq!(files[1].metadata().unwrap().len(), segment_bytes);
        // It is half full too: the next spare is made (or being made).
        wal.log().settle_spare();
        assert_eq!(spares(), 1);
    }
    // The spare the WAL had ready went with it.
    assert_eq!(spares(), 0);
    // A record torn in the middle of the zeros (never acknowledged), and a
    // spare a killed process was filling.
    let last = segment_files(dir.path()).pop().unwrap();
    let mut frame = Vec::new();
    segment::encode_frame(&mut frame, 1_000, "t", &record).unwrap();
    // The first segment holds 21 records, the second the other 20.
    let used = 8 + 20 * frame.len() as u64;
    std::os::unix::fs::FileExt::write_all_at(
        &std::fs::OpenOptions::new().write(true).open(&last).unwrap(),
        &frame[..frame.len() / 2],
        used,
    )
    .unwrap();
    let leftover = segments.join("4242-0.spare");
    std::fs::write(&leftover, [0u8; 4096]).unwrap();
    // And zeros after the first segment's last record (made ahead, closed).
    let first = segment_files(dir.path()).remove(0);
    let full = 8 + 21 * frame.len() as u64;
    assert_eq!(first.metadata().unwrap().len(), full);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&first)
        .unwrap()
        .set_len(full + 2_000)
        .unwrap();
    let wal = open(dir.path());
    assert!(!leftover.exists());
    assert_eq!(replayed_records(&wal), want);
    assert_eq!(
        last.metadata().unwrap().len(),
        used,
        "cut at the torn record"
    );
    assert_eq!(first.metadata().unwrap().len(), full, "zeros trimmed");
}

/// Every record replayed: (seq, stream, bytes).
fn replayed_records(wal: &Wal) -> Vec<(u64, String, Vec<u8>)> {
    let log = wal.log();
    let mut seen = Vec::new();
    for path in log.segment_paths() {
        segment::read_segment::<std::io::Error>(&path, |f| {
            seen.push((f.seq, f.stream.to_string(), f.record.to_vec()));
            Ok(())
        })
        .unwrap();
    }
    seen
}

#[test]
fn appends_survive_reopen_in_order_and_truncate() {
    let dir = tempfile::tempdir().unwrap();
    {
        let wal = open(dir.path());
        assert_eq!(wal.append("t1", &[profile(1, 5)]).unwrap().0, 0);
        assert_eq!(
            wal.append("t2", &[profile(2, 6), profile(3, 7)]).unwrap().0,
            1
        );
    }
    let wal = open(dir.path());
    let mut seen = Vec::new();
    let stats = wal
        .replay(|seq, tenant, ps| {
            for p in ps {
                seen.push((
                    seq,
                    tenant.to_string(),
                    p.timestamp_ns,
                    p.profile.sample(0).unwrap().values[0],
                    p.series[0].labels.clone(),
                ));
            }
        })
        .unwrap();
    assert_eq!(stats.records, 2);
    assert_eq!(stats.profiles, 3);
    assert_eq!(seen[2].1, "t2");
    assert_eq!(
        (seen[2].2, seen[2].3, &seen[2].4),
        (3, 7, &Labels::from_pairs([("a", "b")]))
    );
    let last_t2 = seen[2].0;
    let (seq, _) = wal.append("t1", &[profile(4, 1)]).unwrap();
    assert!(
        seq > seen.iter().map(|s| s.0).max().unwrap(),
        "sequence grows across reopen"
    );
    let epoch = wal.epoch().to_string();
    assert_eq!(wal.truncate_through("t2", last_t2).unwrap(), 1);
    assert_eq!(wal.len(), 2);
    assert_eq!(wal.truncate_through("t1", seq).unwrap(), 2);
    assert!(wal.is_empty());
    drop(wal);
    let wal = open(dir.path());
    assert_eq!(wal.epoch(), epoch);
    assert!(replayed(&wal).is_empty(), "truncated records stay gone");
    // Every segment was truncated and deleted: numbers still grow.
    assert_eq!(wal.segments(), 0);
    assert!(wal.append("t1", &[profile(5, 1)]).unwrap().0 > seq);
}

/// Appends from several threads at once, each waiting for its group
/// commit: every one resolves, fewer syncs than appends run, and all
/// records are there after a reopen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_makes_concurrent_appends_durable() {
    let dir = tempfile::tempdir().unwrap();
    let wal =
        Arc::new(Wal::open(dir.path(), WalSync::Always, Duration::from_millis(10_000)).unwrap());
    let record = encode_record("t", &[profile(1, 5)]).unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (wal, record) = (wal.clone(), record.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..25 {
                let (_, durable) = wal.append_record("t", &record).unwrap();
                durable.wait().await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let syncs = wal.group.completed();
    assert!((1..=200).contains(&syncs), "{syncs} syncs for 200 appends");
    // Batched mode never waits.
    drop(Arc::try_unwrap(wal).ok().unwrap());
    let wal = Wal::open(dir.path(), WalSync::Batched, Duration::from_millis(100)).unwrap();
    assert!(wal.durable().is_immediate());
    let stats = wal.replay(|_, _, _| {}).unwrap();
    assert_eq!(stats.records, 200);
}

/// A record costs its own bytes on disk once (plus a frame): no copy
/// inside a tree that is rewritten as it grows.
#[test]
fn records_are_written_once() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path());
    let record = vec![7u8; 10_000];
    for _ in 0..500 {
        let (_, durable) = wal.append_record("t", &record).unwrap();
        drop(durable);
    }
    wal.flush().unwrap();
    let on_disk: u64 = segment_files(dir.path())
        .iter()
        .map(|p| p.metadata().unwrap().len())
        .sum();
    let frame = 8 + 10 + 1;
    assert_eq!(on_disk, 8 + 500 * (10_000 + frame));
}

/// Segments close at their size; one is deleted once every stream in it is
/// truncated past its records, not before; the open one never.
#[test]
fn segments_rotate_and_are_deleted_once_every_stream_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path());
    let record = encode_record("a", &[profile(1, 1)]).unwrap();
    // One record per segment.
    wal.set_segment_bytes(record.len() as u64 + 30);
    let mut seqs = Vec::new();
    for (i, stream) in ["a", "b", "a", "b", "a"].iter().enumerate() {
        let (seq, _) = wal.append_record(stream, &record).unwrap();
        seqs.push((seq, *stream, i));
    }
    wal.flush().unwrap();
    assert_eq!(wal.segments(), 5);
    assert_eq!(segment_files(dir.path()).len(), 5);
    // Truncating a through its second record frees the segments that hold
    // only a's first two (the first and the third).
    assert_eq!(wal.truncate_through("a", seqs[2].0).unwrap(), 2);
    assert_eq!(segment_files(dir.path()).len(), 3);
    // b's first record frees the second.
    assert_eq!(wal.truncate_through("b", seqs[1].0).unwrap(), 1);
    assert_eq!(segment_files(dir.path()).len(), 2);
    assert_eq!(wal.truncate_through("b", seqs[3].0).unwrap(), 1);
    assert_eq!(segment_files(dir.path()).len(), 1);
    // The open segment stays even when all it holds is truncated.
    assert_eq!(wal.truncate_through("a", seqs[4].0).unwrap(), 1);
    assert_eq!(segment_files(dir.path()).len(), 1);
    assert!(wal.is_empty());
    drop(wal);
    // ... and goes at the next open, which holds nothing.
    let wal = open(dir.path());
    assert_eq!(segment_files(dir.path()).len(), 0);
    assert!(replayed(&wal).is_empty());
    assert!(wal.append_record("a", &record).unwrap().0 > seqs[4].0);
}

/// A crash in the middle of a write leaves a torn last record: the next
/// open cuts it off, replays every whole record and appends after them.
#[test]
fn a_torn_last_record_is_cut_and_the_rest_replays() {
    let dir = tempfile::tempdir().unwrap();
    {
        let wal = open(dir.path());
        for i in 0..3 {
            wal.append("t", &[profile(i, 10 + i)]).unwrap();
        }
    }
    let files = segment_files(dir.path());
    assert_eq!(files.len(), 1);
    let whole = files[0].metadata().unwrap().len();
    // The fourth record, torn halfway through its write.
    let mut frame = Vec::new();
    let record = encode_record("t", &[profile(3, 13)]).unwrap();
    segment::encode_frame(&mut frame, 3, "t", &record).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&files[0])
        .unwrap();
    f.write_all(&frame[..frame.len() / 2]).unwrap();
    drop(f);
    let wal = open(dir.path());
    assert_eq!(files[0].metadata().unwrap().len(), whole, "cut back");
    let seen = replayed(&wal);
    assert_eq!(
        seen.iter().map(|s| (s.0, s.3)).collect::<Vec<_>>(),
        [(0, 10), (1, 11), (2, 12)]
    );
    let (seq, _) = wal.append("t", &[profile(4, 14)]).unwrap();
    assert!(seq > 2);
    drop(wal);
    let wal = open(dir.path());
    assert_eq!(replayed(&wal).len(), 4);
    assert_eq!(segment_files(dir.path()).len(), 2);
}

/// A WAL written before segments (records as values of sled trees) replays
/// first, truncates, and its numbers stay below the new records'.
#[test]
fn a_wal_of_sled_trees_still_replays_and_truncates() {
    let dir = tempfile::tempdir().unwrap();
    let mut old = Vec::new();
    {
        let db = sled::open(dir.path()).unwrap();
        db.insert("epoch", "0123456789abcdef").unwrap();
        let tree = db.open_tree(format!("{TREE_PREFIX}t#1")).unwrap();
        for i in 0..3 {
            let seq = db.generate_id().unwrap();
            let record = encode_record("t", &[profile(i, 20 + i)]).unwrap();
            tree.insert(seq.to_be_bytes(), record).unwrap();
            old.push(seq);
        }
        db.flush().unwrap();
    }
    let wal = open(dir.path());
    assert_eq!(wal.epoch(), "0123456789abcdef");
    let (new, _) = wal.append("t", &[profile(9, 29)]).unwrap();
    assert!(new > old[2]);
    let seen = replayed(&wal);
    assert_eq!(
        seen.iter()
            .map(|s| (s.0, s.1.as_str(), s.3))
            .collect::<Vec<_>>(),
        [
            (old[0], "t#1", 20),
            (old[1], "t#1", 21),
            (old[2], "t#1", 22),
            (new, "t", 29)
        ]
    );
    assert_eq!(wal.len(), 4);
    assert_eq!(wal.truncate_through("t#1", old[1]).unwrap(), 2);
    assert_eq!(wal.truncate_through("t#1", old[2]).unwrap(), 1);
    drop(wal);
    let wal = open(dir.path());
    let seen = replayed(&wal);
    assert_eq!(seen.iter().map(|s| s.0).collect::<Vec<_>>(), [new]);
}

/// A crash between renaming a spare into a segment and its header reaching
/// the disk leaves a segment of zeros: it holds nothing and is deleted at
/// open, and appends go on after it.
#[test]
fn a_segment_of_zeros_is_deleted_at_open() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    let zeros = dir.path().join(SEGMENTS_DIR).join(segment::segment_name(5));
    std::fs::write(&zeros, vec![0u8; 64 << 10]).unwrap();
    let wal = open(dir.path());
    assert!(!zeros.exists());
    assert!(replayed(&wal).is_empty());
    wal.append("t", &[profile(1, 11)]).unwrap();
    drop(wal);
    let wal = open(dir.path());
    assert_eq!(
        replayed(&wal)
            .iter()
            .map(|s| (s.2, s.3))
            .collect::<Vec<_>>(),
        [(1, 11)]
    );
}
