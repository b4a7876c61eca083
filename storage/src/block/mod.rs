//! Blocks: a tenant's profiles over a time range as Parquet files plus a
//! `meta.json`, stored under `<tenant>/blocks/<ULID>/` (format: `storage/FORMAT.md`).

mod decode;
mod encode;
mod meta;
mod rollup;
#[cfg(feature = "blocks")]
mod store;
mod totals;
mod ulid;

pub use decode::{
    RowKey, SYMBOL_FILES, attach_spans, decode_block, decode_series, decode_symbols,
    group_profile_rows, group_sample_rows, read_parquet, row_keys, span_samples, trace_id_at,
    trace_ids,
};
pub use encode::{
    BlockTable, BlockWriter, EncodedBlock, SAMPLES_ROW_GROUP, encode_block, head_tables,
};
pub use meta::{
    BLOCK_FILES, BlockFile, BlockMeta, BlockStats, Compaction, FORMAT_VERSION, ROLLUPS_FILE,
    SPANS_FILE, TOTALS_FILE, TRACE_IDS_SINCE, WINDOW_EXEMPLARS_SINCE, WalPosition, block_files,
    row_files,
};
pub use rollup::{ROLLUP_RESOLUTIONS_NS, RollupPlan, WindowRun};
#[cfg(feature = "blocks")]
pub use store::{BlockStore, ObjectStoreConfig, local_root};
pub use totals::{TotalsWriter, WINDOW_BEST_COLUMNS, WindowBest, WindowTotal, group_window_totals};
pub use ulid::{new_ulid, ulid_time_ms};

/// A block that cannot be written, read or stored.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    /// Arrow failed to build or read a batch.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// Parquet failed to encode or decode.
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// The object store failed.
    #[cfg(feature = "blocks")]
    #[error("object storage: {0}")]
    Store(#[from] opendal::Error),
    /// `meta.json` could not be encoded or parsed.
    #[error("block meta: {0}")]
    Meta(#[from] serde_json::Error),
    /// The block's content is inconsistent.
    #[error("corrupt block: {0}")]
    Corrupt(String),
    /// A block file could not be read (the query engine's error).
    #[error("reading a block: {0}")]
    Read(String),
    /// The object store configuration is invalid.
    #[error("object storage configuration: {0}")]
    Config(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::head::{Head, SeriesSplit, SplitProfile};
    use crate::labels::Labels;
    use crate::proto::google::v1 as pprof;

    fn sample_head() -> Head {
        let p = pprof::Profile {
            string_table: [
                "",
                "main",
                "work",
                "inlined",
                "/bin/app",
                "main.go",
                "build-1",
                "span_id",
                "00000000000000a1",
                "trace_id",
                "000102030405060708090a0b0c0d0e0f",
            ]
            .map(String::from)
            .to_vec(),
            mapping: vec![pprof::Mapping {
                id: 1,
                memory_start: 0x1000,
                memory_limit: 0x9000,
                filename: 4,
                build_id: 6,
                has_functions: true,
                ..Default::default()
            }],
            function: vec![
                pprof::Function {
                    id: 1,
                    name: 1,
                    filename: 5,
                    start_line: 10,
                    ..Default::default()
                },
                pprof::Function {
                    id: 2,
                    name: 2,
                    filename: 5,
                    ..Default::default()
                },
                pprof::Function {
                    id: 3,
                    name: 3,
                    ..Default::default()
                },
            ],
            location: vec![
                pprof::Location {
                    id: 1,
                    mapping_id: 1,
                    line: vec![pprof::Line {
                        function_id: 1,
                        line: 12,
                    }],
                    ..Default::default()
                },
                pprof::Location {
                    id: 2,
                    mapping_id: 1,
                    line: vec![
                        pprof::Line {
                            function_id: 3,
                            line: 5,
                        },
                        pprof::Line {
                            function_id: 2,
                            line: 20,
                        },
                    ],
                    ..Default::default()
                },
                pprof::Location {
                    id: 3,
                    mapping_id: 1,
                    address: 0xdead,
                    ..Default::default()
                },
            ],
            sample: vec![
                pprof::Sample {
                    location_id: vec![2, 1],
                    value: vec![3, 30],
                    label: vec![],
                },
                pprof::Sample {
                    location_id: vec![3, 1],
                    value: vec![1, 10],
                    label: vec![pprof::Label {
                        key: 9,
                        str: 10,
                        ..Default::default()
                    }],
                },
                pprof::Sample {
                    location_id: vec![3, 1],
                    value: vec![2, 20],
                    label: vec![pprof::Label {
                        key: 7,
                        str: 8,
                        ..Default::default()
                    }],
                },
            ],
            ..Default::default()
        };
        let mut head = Head::new();
        for (ts, svc) in [(1_000, "a"), (2_000, "a"), (1_500, "b")] {
            let labels =
                |t: &str| Labels::from_pairs([("service_name", svc), ("__profile_type__", t)]);
            head.insert(&SplitProfile {
                profile_id: crate::ProfileId::generate(),
                profile: crate::FlatProfile::from_proto(&p).unwrap(),
                timestamp_ns: ts,
                series: vec![
                    SeriesSplit {
                        labels: labels("x:samples:count::"),
                        value_index: 0,
                        samples: vec![0, 1, 2],
                    },
                    SeriesSplit {
                        labels: labels("x:cpu:nanoseconds::"),
                        value_index: 1,
                        samples: vec![0, 1, 2],
                    },
                ],
            })
            .unwrap();
        }
        head
    }

    fn same(a: &Head, b: &Head) {
        assert_eq!(a.series().len(), b.series().len());
        for (x, y) in a.series().iter().zip(b.series()) {
            assert_eq!(x.labels, y.labels);
            assert_eq!(x.fingerprint, y.fingerprint);
            assert_eq!(x.profiles.len(), y.profiles.len());
            for (p, q) in x.profiles.iter().zip(&y.profiles) {
                assert_eq!(
                    (p.timestamp_ns, p.total, &p.stacks, &p.values, &p.spans),
                    (q.timestamp_ns, q.total, &q.stacks, &q.values, &q.spans)
                );
            }
        }
        let (sa, sb) = (a.symbols(), b.symbols());
        assert_eq!(sa.strings.items(), sb.strings.items());
        assert_eq!(sa.functions.items(), sb.functions.items());
        assert_eq!(sa.locations.items(), sb.locations.items());
        assert_eq!(sa.mappings.items(), sb.mappings.items());
        assert_eq!(sa.stacks.items(), sb.stacks.items());
        assert_eq!(a.stats(), b.stats());
    }

    #[tokio::test]
    async fn block_round_trip_through_a_store() {
        let head = sample_head();
        let ulid = new_ulid();
        let block = encode_block("t1", &ulid, &head).unwrap();
        assert_eq!(block.meta.stats.series, 4);
        assert_eq!(block.meta.stats.profiles, 6);
        // Per profile and series: one span sample, one trace sample.
        assert_eq!(block.meta.stats.span_samples, 12);
        assert_eq!(head.stats().span_samples, 12);
        assert_eq!(
            (block.meta.min_time_ns, block.meta.max_time_ns),
            (1_000, 2_000)
        );
        // In memory, and on a filesystem bucket (whose files are read in place).
        let dir = tempfile::tempdir().unwrap();
        let fs = BlockStore::open(&ObjectStoreConfig::default(), dir.path()).unwrap();
        for store in [BlockStore::memory().unwrap(), fs] {
            store.upload(&block).await.unwrap();
            assert_eq!(store.tenants().await.unwrap(), vec!["t1".to_string()]);
            let metas = store.blocks("t1").await.unwrap();
            assert_eq!(metas, vec![block.meta.clone()]);
            let files = store.fetch(&metas[0]).await.unwrap();
            let decoded = decode_block(&metas[0], &files).unwrap();
            same(&head, &decoded);
            let series = store.fetch_file(&metas[0], "series.parquet").await.unwrap();
            assert_eq!(Some(&series), files.get("series.parquet"));
            store.delete("t1", &ulid).await.unwrap();
            assert!(store.blocks("t1").await.unwrap().is_empty());
            assert!(store.fetch_file(&metas[0], "series.parquet").await.is_err());
        }
    }

    #[test]
    fn format_2_blocks_without_spans_still_read() {
        let head = sample_head();
        let mut block = encode_block("t1", &new_ulid(), &head).unwrap();
        block.meta.format_version = 2;
        block.meta.files.retain(|f| f.name != SPANS_FILE);
        let files: std::collections::HashMap<String, bytes::Bytes> = block
            .files
            .iter()
            .filter(|(n, _)| n != SPANS_FILE)
            .map(|(n, b)| (n.clone(), bytes::Bytes::from(b.clone())))
            .collect();
        let decoded = decode_block(&block.meta, &files).unwrap();
        assert_eq!(decoded.stats().profiles, head.stats().profiles);
        assert_eq!(decoded.stats().span_samples, 0);
        // A format-3 block must have its span table.
        block.meta.format_version = 3;
        assert!(
            decode_block(&block.meta, &files)
                .unwrap_err()
                .to_string()
                .contains(SPANS_FILE)
        );
    }

    #[test]
    fn format_6_span_tables_without_trace_ids_still_read() {
        // A format-6 block of the sample head: its span table without the
        // trace column and the trace-only samples.
        let src = sample_head();
        let mut block = encode_block("t1", &new_ulid(), &src).unwrap();
        let spans = block
            .files
            .iter_mut()
            .find(|(n, _)| n == SPANS_FILE)
            .unwrap();
        let batches = read_parquet(&bytes::Bytes::from(spans.1.clone())).unwrap();
        let mut kept = Vec::new();
        for b in batches {
            let traces = b
                .column_by_name("trace_id")
                .unwrap()
                .as_any()
                .downcast_ref::<arrow::array::FixedSizeBinaryArray>()
                .unwrap()
                .clone();
            let spans_only: arrow::array::BooleanArray = (0..b.num_rows())
                .map(|i| Some(traces.value(i) == [0; 16]))
                .collect();
            let b = arrow::compute::filter_record_batch(&b, &spans_only).unwrap();
            let keep: Vec<usize> = (0..b.num_columns())
                .filter(|&i| b.schema().field(i).name() != "trace_id")
                .collect();
            kept.push(b.project(&keep).unwrap());
        }
        let mut w =
            parquet::arrow::ArrowWriter::try_new(Vec::new(), kept[0].schema(), None).unwrap();
        for b in &kept {
            w.write(b).unwrap();
        }
        let out = w.into_inner().unwrap();
        spans.1 = out;
        block.meta.format_version = 6;
        let files: std::collections::HashMap<String, bytes::Bytes> = block
            .files
            .iter()
            .map(|(n, b)| (n.clone(), bytes::Bytes::from(b.clone())))
            .collect();
        let decoded = decode_block(&block.meta, &files).unwrap();
        assert_eq!(decoded.stats().span_samples, 6);
        for (s, d) in src.series().iter().zip(decoded.series()) {
            for (p, q) in s.profiles.iter().zip(&d.profiles) {
                let want: Vec<_> = p
                    .spans
                    .iter()
                    .flat_map(|s| s.iter())
                    .filter(|s| s.trace_id == [0; 16])
                    .copied()
                    .collect();
                assert_eq!(q.spans.as_deref().unwrap(), &want[..]);
                assert_eq!(
                    (p.total, &p.stacks, &p.values),
                    (q.total, &q.stacks, &q.values)
                );
            }
        }
    }

    #[test]
    fn profile_rows_from_the_profiles_table_match_the_decoded_rows() {
        let head = sample_head();
        let block = encode_block("t1", &new_ulid(), &head).unwrap();
        let file = |name: &str| {
            block
                .files
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, b)| bytes::Bytes::from(b.clone()))
                .unwrap()
        };
        let mut from_profiles = Vec::new();
        group_profile_rows(
            &read_parquet(&file("profiles.parquet")).unwrap(),
            true,
            &mut |s, row| {
                from_profiles.push((s, row.timestamp_ns, row.profile_id, row.total));
                Ok(())
            },
        )
        .unwrap();
        let whole: Vec<(u32, i64, crate::ProfileId, i64)> = head
            .series()
            .iter()
            .enumerate()
            .flat_map(|(i, s)| {
                s.profiles
                    .iter()
                    .map(move |r| (i as u32, r.timestamp_ns, r.profile_id, r.total))
            })
            .collect();
        assert_eq!(from_profiles, whole);
        let series = decode_series(&file("series.parquet")).unwrap();
        assert_eq!(
            series.iter().map(|s| &s.labels).collect::<Vec<_>>(),
            head.series().iter().map(|s| &s.labels).collect::<Vec<_>>()
        );
        // Garbage instead of Parquet is an error, not a panic.
        assert!(decode_series(&bytes::Bytes::from_static(b"PAR1 nope")).is_err());
    }

    #[tokio::test]
    async fn an_interrupted_upload_leaves_no_visible_block() {
        let store = BlockStore::memory().unwrap();
        let block = encode_block("t1", &new_ulid(), &sample_head()).unwrap();
        // A crash after the data files and before meta.json.
        store.upload_files(&block).await.unwrap();
        assert!(store.blocks("t1").await.unwrap().is_empty());
        store.publish(&block.meta).await.unwrap();
        assert_eq!(store.blocks("t1").await.unwrap().len(), 1);
    }

    #[test]
    fn corrupt_blocks_are_refused() {
        let block = encode_block("t1", &new_ulid(), &sample_head()).unwrap();
        let mut files: std::collections::HashMap<String, bytes::Bytes> = block
            .files
            .iter()
            .map(|(n, b)| (n.clone(), bytes::Bytes::from(b.clone())))
            .collect();
        files.insert(
            "samples.parquet".into(),
            bytes::Bytes::from_static(b"not parquet"),
        );
        assert!(decode_block(&block.meta, &files).is_err());
        files.remove("stacks.parquet");
        assert!(
            decode_block(&block.meta, &files)
                .unwrap_err()
                .to_string()
                .contains("stacks.parquet")
        );
    }

    /// Every file of a valid block damaged thousands of ways (bytes
    /// overwritten, truncated at every length, a byte flipped at every
    /// offset, also in `meta.json`): decoding gives a head or an error,
    /// never a panic. The fuzz target `block` searches further.
    #[test]
    fn damaged_block_files_never_panic_a_reader() {
        let block = encode_block("t1", &new_ulid(), &sample_head()).unwrap();
        let valid: std::collections::HashMap<String, bytes::Bytes> = block
            .files
            .iter()
            .map(|(n, b)| (n.clone(), bytes::Bytes::from(b.clone())))
            .collect();
        let decode = |meta: &BlockMeta, files: &std::collections::HashMap<String, bytes::Bytes>| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let _ = decode_block(meta, files);
            }))
            .is_ok()
        };
        // A small deterministic generator (xorshift), so failures replay.
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut cases = 0;
        for (name, original) in &block.files {
            let len = original.len();
            let mut variants: Vec<Vec<u8>> = Vec::new();
            for cut in (0..len).step_by((len / 200).max(1)) {
                variants.push(original[..cut].to_vec());
            }
            for at in (0..len).step_by((len / 300).max(1)) {
                let mut v = original.clone();
                v[at] ^= 0xff;
                variants.push(v);
            }
            for _ in 0..300 {
                let mut v = original.clone();
                for _ in 0..(next() % 8 + 1) {
                    let at = (next() % len as u64) as usize;
                    v[at] = next() as u8;
                }
                variants.push(v);
            }
            for v in variants {
                let mut files = valid.clone();
                files.insert(name.clone(), bytes::Bytes::from(v));
                assert!(decode(&block.meta, &files), "{name} damaged: a panic");
                cases += 1;
            }
        }
        let json = serde_json::to_vec(&block.meta).unwrap();
        for at in 0..json.len() {
            for b in [b'0', b'9', b'-', b'"', b'{', b'x'] {
                let mut v = json.clone();
                v[at] = b;
                if let Ok(meta) = serde_json::from_slice::<BlockMeta>(&v) {
                    assert!(decode(&meta, &valid), "meta.json damaged at {at}: a panic");
                    cases += 1;
                }
            }
        }
        assert!(cases > 3000, "{cases} cases");
    }
}
