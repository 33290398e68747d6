//! CPU time of the device under test (user + system of its processes, all threads, from
//! `/proc/<pid>/stat`) and of the whole host's softirq handling (from `/proc/stat`), where
//! kernel forwarding, TUN and veth work is accounted and no process owns it.

use std::fs;

/// Clock ticks per second of the times in `/proc`.
fn ticks_per_second() -> f64 {
    // SAFETY: sysconf takes an integer constant and reads nothing of ours.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// utime + stime of one process, in ticks, from the text of its `/proc/<pid>/stat`; `None`
/// when the text does not parse.
pub fn parse_process_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// The softirq ticks of the whole host, from the text of `/proc/stat`.
pub fn parse_softirq_ticks(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|line| line.starts_with("cpu "))?;
    // cpu user nice system idle iowait irq softirq …
    line.split_whitespace().nth(7)?.parse().ok()
}

/// CPU seconds (user + system) used so far by the processes `pids`; processes that are gone
/// count nothing.
pub fn process_seconds(pids: &[u32]) -> f64 {
    let ticks: u64 = pids
        .iter()
        .filter_map(|pid| fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .filter_map(|stat| parse_process_ticks(&stat))
        .sum();
    ticks as f64 / ticks_per_second()
}

/// Softirq CPU seconds of the whole host so far.
pub fn softirq_seconds() -> f64 {
    fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|stat| parse_softirq_ticks(&stat))
        .map_or(0.0, |ticks| ticks as f64 / ticks_per_second())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_ticks_survive_odd_command_names() {
        let stat =
            "4242 (xip) sec (d)) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 3 0 99 \
                    1000 10 18446744073709551615";
        assert_eq!(parse_process_ticks(stat), Some(325));
        assert_eq!(parse_process_ticks("garbage"), None);
        assert_eq!(parse_process_ticks("1 (x) S 1 2"), None);
    }

    #[test]
    fn softirq_is_the_seventh_number_of_the_cpu_line() {
        let stat = "cpu  10 20 30 40 50 60 777 0 0 0\ncpu0 1 2 3 4 5 6 7 0 0 0\n";
        assert_eq!(parse_softirq_ticks(stat), Some(777));
        assert_eq!(parse_softirq_ticks("intr 5\n"), None);
    }

    #[test]
    fn our_own_process_has_used_some_cpu() {
        // Burn a little so that at least one tick is on the books.
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed().as_millis() < 50 {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        assert!(process_seconds(&[std::process::id()]) > 0.0);
        assert_eq!(process_seconds(&[u32::MAX]), 0.0);
    }
}
