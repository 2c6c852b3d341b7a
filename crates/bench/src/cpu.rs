//! CPU time this process spent: split by thread name, read from `/proc/self/task` (Linux only;
//! elsewhere every sample is empty). It tells whether the server or the load generator used the
//! cores during a run — and in all, exited threads included, from `/proc/self/stat`
//! ([`process_cpu`]).

use std::time::Duration;

/// Thread-name prefix of the load generator's runtime.
pub const LOAD_THREAD_PREFIX: &str = "rt-load";
/// Thread-name prefix of the in-process server's runtime.
pub const SERVER_THREAD_PREFIX: &str = "rt-server";

/// CPU time used so far by the load generator's threads and by everything else in the process
/// (the server's runtime, SQLite's worker threads, the main thread).
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuSample {
    pub load: Duration,
    pub server: Duration,
}

impl CpuSample {
    /// The current totals; zero when `/proc` is unavailable.
    pub fn now() -> Self {
        let mut sample = Self::default();
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return sample };
        for task in tasks.flatten() {
            let dir = task.path();
            let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            let Some(used) = std::fs::read_to_string(dir.join("schedstat")).ok().and_then(|s| parse_schedstat(&s))
            else {
                continue;
            };
            if name.starts_with(LOAD_THREAD_PREFIX) {
                sample.load += used;
            } else {
                sample.server += used;
            }
        }
        sample
    }

    /// CPU used between `earlier` and this sample. Threads that exited in between are lost, which
    /// only matters for short-lived blocking threads.
    pub fn since(self, earlier: Self) -> Self {
        Self { load: self.load.saturating_sub(earlier.load), server: self.server.saturating_sub(earlier.server) }
    }
}

/// User + system CPU time of this whole process, exited threads included (`/proc/self/stat`
/// fields 14 and 15, in clock ticks of 10 ms).
pub fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name (field 2) may hold spaces; the fields after it start past the last `)`.
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |index: usize| fields.get(index).and_then(|field| field.parse::<u64>().ok()).unwrap_or(0);
    // After `)`: field 3 is at index 0, so utime (14) and stime (15) are at 11 and 12.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// `/proc/<pid>/task/<tid>/schedstat`: nanoseconds on CPU, nanoseconds waiting, timeslices.
fn parse_schedstat(text: &str) -> Option<Duration> {
    text.split_whitespace().next()?.parse().ok().map(Duration::from_nanos)
}

/// `used` as a share of one core over `wall`, e.g. `"143%"`.
pub fn percent_of_core(used: Duration, wall: Duration) -> String {
    if wall.is_zero() {
        return "-".into();
    }
    format!("{:.0}%", used.as_secs_f64() / wall.as_secs_f64() * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_schedstat() {
        assert_eq!(parse_schedstat("1500000000 20 30\n"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_schedstat(""), None);
    }
}
