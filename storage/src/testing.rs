//! Helpers for tests of this crate and others (feature `testing`).

use crate::proto::google::v1 as pprof;

/// A pprof of one sample of `value` whose stack is the one frame
/// `function` at `line`: the smallest profile a head takes.
pub fn one_frame_profile(function: &str, line: i64, value: i64) -> pprof::Profile {
    pprof::Profile {
        string_table: vec!["".into(), function.into()],
        function: vec![pprof::Function {
            id: 1,
            name: 1,
            ..Default::default()
        }],
        location: vec![pprof::Location {
            id: 1,
            line: vec![pprof::Line {
                function_id: 1,
                line,
            }],
            ..Default::default()
        }],
        sample: vec![pprof::Sample {
            location_id: vec![1],
            value: vec![value],
            label: vec![],
        }],
        ..Default::default()
    }
}
