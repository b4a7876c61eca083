//! Which JFR events become which profile types (reference §3.4 C), and the
//! values each event contributes.

use super::chunk::ChunkHeader;
use super::value::Fields;

/// A profile built from a JFR recording; each is one pprof.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `jdk.ExecutionSample` (thread not sleeping) → `process_cpu`.
    Cpu,
    /// `profiler.WallClockSample`, or execution samples of a wall-clock recording → `wall`.
    Wall,
    /// `jdk.ObjectAllocationInNewTLAB` → `memory:alloc_in_new_tlab_*`.
    AllocInNewTlab,
    /// `jdk.ObjectAllocationOutsideTLAB` → `memory:alloc_outside_tlab_*`.
    AllocOutsideTlab,
    /// `jdk.ObjectAllocationSample` → `memory:alloc_sample_*`.
    AllocSample,
    /// `jdk.JavaMonitorEnter` → `mutex`.
    Lock,
    /// `jdk.ThreadPark` → `block`.
    ThreadPark,
    /// `profiler.LiveObject` → `memory:live`.
    LiveObject,
    /// `profiler.Malloc` → `memory:malloc_*`.
    Malloc,
}

impl Kind {
    /// The series `__name__`.
    pub fn metric(self) -> &'static str {
        match self {
            Kind::Cpu => "process_cpu",
            Kind::Wall => "wall",
            Kind::Lock => "mutex",
            Kind::ThreadPark => "block",
            _ => "memory",
        }
    }

    /// The pprof sample types, `(type, unit)`.
    pub fn sample_types(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Kind::Cpu => &[("cpu", "nanoseconds")],
            Kind::Wall => &[("wall", "nanoseconds")],
            Kind::AllocInNewTlab => &[
                ("alloc_in_new_tlab_objects", "count"),
                ("alloc_in_new_tlab_bytes", "bytes"),
            ],
            Kind::AllocOutsideTlab => &[
                ("alloc_outside_tlab_objects", "count"),
                ("alloc_outside_tlab_bytes", "bytes"),
            ],
            Kind::AllocSample => &[
                ("alloc_sample_objects", "count"),
                ("alloc_sample_bytes", "bytes"),
            ],
            Kind::Lock | Kind::ThreadPark => &[("contentions", "count"), ("delay", "nanoseconds")],
            Kind::LiveObject => &[("live", "count")],
            Kind::Malloc => &[("malloc_objects", "count"), ("malloc_bytes", "bytes")],
        }
    }

    /// The pprof period type, `(type, unit)`.
    pub fn period_type(self) -> Option<(&'static str, &'static str)> {
        Some(match self {
            Kind::Cpu => ("cpu", "nanoseconds"),
            Kind::Wall => ("wall", "nanoseconds"),
            Kind::AllocInNewTlab | Kind::AllocOutsideTlab | Kind::AllocSample => ("space", "bytes"),
            Kind::Lock => ("mutex", "count"),
            Kind::ThreadPark => ("block", "count"),
            Kind::LiveObject => ("objects", "count"),
            Kind::Malloc => return None,
        })
    }

    /// The canonical profile-type ids of this kind's series.
    pub fn profile_type_ids(self) -> Vec<String> {
        let (pt, pu) = self.period_type().unwrap_or(("", ""));
        self.sample_types()
            .iter()
            .map(|(t, u)| format!("{}:{t}:{u}:{pt}:{pu}", self.metric()))
            .collect()
    }
}

/// The JFR event types that feed profiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// `jdk.ExecutionSample`.
    ExecutionSample,
    /// `profiler.WallClockSample` (async-profiler).
    WallClockSample,
    /// `jdk.ObjectAllocationInNewTLAB`.
    AllocInNewTlab,
    /// `jdk.ObjectAllocationOutsideTLAB`.
    AllocOutsideTlab,
    /// `jdk.ObjectAllocationSample`.
    AllocSample,
    /// `jdk.JavaMonitorEnter`.
    MonitorEnter,
    /// `jdk.ThreadPark`.
    ThreadPark,
    /// `profiler.LiveObject` (async-profiler).
    LiveObject,
    /// `profiler.Malloc` (async-profiler).
    Malloc,
}

impl EventType {
    /// The event type with this JFR name.
    pub fn of(name: &str) -> Option<Self> {
        Some(match name {
            "jdk.ExecutionSample" => Self::ExecutionSample,
            "profiler.WallClockSample" => Self::WallClockSample,
            "jdk.ObjectAllocationInNewTLAB" => Self::AllocInNewTlab,
            "jdk.ObjectAllocationOutsideTLAB" => Self::AllocOutsideTlab,
            "jdk.ObjectAllocationSample" => Self::AllocSample,
            "jdk.JavaMonitorEnter" => Self::MonitorEnter,
            "jdk.ThreadPark" => Self::ThreadPark,
            "profiler.LiveObject" => Self::LiveObject,
            "profiler.Malloc" => Self::Malloc,
            _ => return None,
        })
    }
}

/// What a recording's settings and header tell about its events.
#[derive(Debug, Clone, Copy)]
pub struct EventContext<'a> {
    /// The `event` setting of the recording (`cpu`, `itimer`, `wall`, …), if any.
    pub jfr_event: Option<&'a str>,
    /// The sampled thread's state, e.g. `STATE_RUNNABLE`, if the event has one.
    pub state: Option<&'a str>,
    /// Nanoseconds per cpu or wall sample (`1e9 / sampleRate`).
    pub period_ns: i64,
    /// The chunk's header, to convert durations from ticks.
    pub chunk: &'a ChunkHeader,
}

/// The profiles one event adds to and its values there (only the first
/// `kind.sample_types().len()` values are used).
pub fn contributions(
    ev: EventType,
    f: &Fields<'_>,
    cx: &EventContext<'_>,
) -> Vec<(Kind, [i64; 2])> {
    let wall_mode = cx.jfr_event == Some("wall");
    let field = |name: &str| f.int(name).unwrap_or(0);
    let duration = || cx.chunk.ticks_to_nanos(field("duration"));
    match ev {
        EventType::ExecutionSample => {
            let mut out = Vec::with_capacity(2);
            if cx.state != Some("STATE_SLEEPING") {
                out.push((Kind::Cpu, [cx.period_ns, 0]));
            }
            if wall_mode {
                out.push((Kind::Wall, [cx.period_ns, 0]));
            }
            out
        }
        EventType::WallClockSample => {
            let samples = f.int("samples").unwrap_or(1);
            let v = samples.saturating_mul(cx.period_ns);
            let mut out = vec![(Kind::Wall, [v, 0])];
            if wall_mode && cx.state == Some("STATE_RUNNABLE") {
                out.push((Kind::Cpu, [v, 0]));
            }
            out
        }
        EventType::AllocInNewTlab => vec![(Kind::AllocInNewTlab, [1, field("tlabSize")])],
        EventType::AllocOutsideTlab => {
            vec![(Kind::AllocOutsideTlab, [1, field("allocationSize")])]
        }
        EventType::AllocSample => vec![(Kind::AllocSample, [1, field("weight")])],
        EventType::MonitorEnter => vec![(Kind::Lock, [1, duration()])],
        EventType::ThreadPark => vec![(Kind::ThreadPark, [1, duration()])],
        EventType::LiveObject => vec![(Kind::LiveObject, [1, 0])],
        EventType::Malloc => vec![(Kind::Malloc, [1, field("size")])],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jfr_profile_type_ids_are_canonical() {
        let ids: Vec<String> = [
            Kind::Cpu,
            Kind::Wall,
            Kind::AllocInNewTlab,
            Kind::AllocOutsideTlab,
            Kind::Lock,
            Kind::ThreadPark,
            Kind::LiveObject,
        ]
        .into_iter()
        .flat_map(Kind::profile_type_ids)
        .collect();
        assert_eq!(
            ids,
            [
                "process_cpu:cpu:nanoseconds:cpu:nanoseconds",
                "wall:wall:nanoseconds:wall:nanoseconds",
                "memory:alloc_in_new_tlab_objects:count:space:bytes",
                "memory:alloc_in_new_tlab_bytes:bytes:space:bytes",
                "memory:alloc_outside_tlab_objects:count:space:bytes",
                "memory:alloc_outside_tlab_bytes:bytes:space:bytes",
                "mutex:contentions:count:mutex:count",
                "mutex:delay:nanoseconds:mutex:count",
                "block:contentions:count:block:count",
                "block:delay:nanoseconds:block:count",
                "memory:live:count:objects:count",
            ]
        );
        assert_eq!(
            Kind::AllocSample.profile_type_ids(),
            [
                "memory:alloc_sample_objects:count:space:bytes",
                "memory:alloc_sample_bytes:bytes:space:bytes"
            ]
        );
        assert_eq!(
            Kind::Malloc.profile_type_ids()[1],
            "memory:malloc_bytes:bytes::"
        );
    }
}
