//! What the benchmarks measure with: the calling thread's CPU time and the process's memory.

/// CPU seconds the calling thread has run: the scheduler's on-CPU time
/// (`/proc/thread-self/schedstat`, first field, nanoseconds), unaffected by other processes
/// competing for the cores; else its user + system clock ticks (10 ms) from `stat`. On some
/// kernels (virtual machines among them) it advances only at scheduler ticks (4 ms): measure
/// runs of at least ~0.4 s.
pub fn thread_cpu_seconds() -> f64 {
    if let Some(ns) = std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse::<f64>().ok()))
    {
        return ns / 1e9;
    }
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    // Fields after the parenthesised command: state is field 3; utime 14, stime 15.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// A memory figure of this process in bytes, by its `/proc/self/status` field (`VmRSS:` now,
/// `VmHWM:` the peak); 0 when unavailable.
pub fn memory_bytes(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        * 1024.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_figures_are_read() {
        let before = thread_cpu_seconds();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(thread_cpu_seconds() >= before);
        let now = memory_bytes("VmRSS:");
        assert!(now > 0.0 && memory_bytes("VmHWM:") >= now, "the peak is read after the current figure");
    }
}
