//! Ingest path cost: decode + normalize/split + head insert of the Go CPU fixture,
//! next to the decode floor (gzip inflate + protobuf decode and nothing else).
//!
//! `cargo bench -p ignis-actors --bench ingest`

mod common;

use std::io::Read;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ignis_ingest::{IngestBody, IngestParams, LegacyFormat, Limits, decode_legacy};
use std::time::Duration;

use bytes::Bytes;
use ignis_storage::proto::google::v1 as pprof;
use ignis_storage::{FlatProfile, Head, Wal, WalSync};
use prost::Message;

fn params() -> IngestParams {
    IngestParams {
        name: "bench.app{env=bench}".into(),
        format: Some("pprof".into()),
        ..Default::default()
    }
}

fn ingest(c: &mut Criterion) {
    let body = common::go_cpu_fixture();
    let limits = Limits::default();
    let now = 1_800_000_000_000_000_000;
    let mut g = c.benchmark_group("go_cpu_fixture");
    g.throughput(Throughput::Bytes(body.len() as u64));
    // The floor: what any server must spend to read these bytes at all.
    g.bench_function("decode_floor", |b| {
        b.iter(|| {
            let mut plain = Vec::with_capacity(body.len() * 8);
            flate2::read::GzDecoder::new(body.as_slice())
                .read_to_end(&mut plain)
                .expect("gzip");
            pprof::Profile::decode(plain.as_slice()).expect("pprof")
        })
    });
    // The floor's first half alone (flate2's default backend).
    g.bench_function("gunzip_only", |b| {
        b.iter(|| {
            let mut plain = Vec::with_capacity(body.len() * 8);
            flate2::read::GzDecoder::new(body.as_slice())
                .read_to_end(&mut plain)
                .expect("gzip");
            plain
        })
    });
    // The new floor: gunzip + the in-place decoder.
    g.bench_function("decode_floor_in_place", |b| {
        b.iter(|| {
            let mut plain = Vec::with_capacity(body.len() * 8);
            flate2::read::GzDecoder::new(body.as_slice())
                .read_to_end(&mut plain)
                .expect("gzip");
            FlatProfile::decode(Bytes::from(body.clone()), Bytes::from(plain)).expect("pprof")
        })
    });
    g.bench_function("decode_split", |b| {
        b.iter(|| {
            decode_legacy(
                &params(),
                LegacyFormat::Pprof,
                IngestBody::Raw(body.clone()),
                &limits,
                now,
            )
            .expect("fixture decodes")
        })
    });
    let split = decode_legacy(
        &params(),
        LegacyFormat::Pprof,
        IngestBody::Raw(body.clone()),
        &limits,
        now,
    )
    .expect("fixture decodes");
    g.bench_function("head_insert_warm", |b| {
        let mut head = Head::new();
        b.iter(|| {
            for p in &split {
                head.insert(p).expect("insert");
            }
        })
    });
    g.bench_function("decode_split_insert_cold", |b| {
        b.iter(|| {
            let mut head = Head::new();
            for p in decode_legacy(
                &params(),
                LegacyFormat::Pprof,
                IngestBody::Raw(body.clone()),
                &limits,
                now,
            )
            .expect("fixture decodes")
            {
                head.insert(&p).expect("insert");
            }
            head
        })
    });
    g.finish();
}

/// The protobuf decoders alone on the uncompressed fixture: prost's
/// `Profile` against the in-place [`FlatProfile`].
fn decoders(c: &mut Criterion) {
    let body = common::go_cpu_fixture();
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(body.as_slice())
        .read_to_end(&mut plain)
        .expect("gzip");
    let plain = Bytes::from(plain);
    let mut g = c.benchmark_group("pprof_decode_go_cpu");
    // Throughput in gzipped bytes, as the other ingest figures.
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("prost", |b| {
        b.iter(|| pprof::Profile::decode(plain.as_ref()).expect("pprof"))
    });
    g.bench_function("in_place", |b| {
        b.iter(|| FlatProfile::decode_plain(plain.clone()).expect("pprof"))
    });
    g.finish();
}

fn wal(c: &mut Criterion) {
    let body = common::go_cpu_fixture();
    let limits = Limits::default();
    let split = decode_legacy(
        &params(),
        LegacyFormat::Pprof,
        IngestBody::Raw(body),
        &limits,
        1_800_000_000_000_000_000,
    )
    .expect("fixture decodes");
    let mut g = c.benchmark_group("wal_append_go_cpu");
    for (name, sync) in [
        ("always_fsync", WalSync::Always),
        ("batched", WalSync::Batched),
    ] {
        let dir = tempfile::tempdir().expect("temp dir");
        let wal = Wal::open(dir.path(), sync, Duration::from_millis(200)).expect("open WAL");
        g.bench_function(name, |b| {
            b.iter(|| wal.append("bench", &split).expect("append"))
        });
    }
    g.finish();
}

criterion_group!(benches, ingest, decoders, wal);
criterion_main!(benches);
