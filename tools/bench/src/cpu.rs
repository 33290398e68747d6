//! CPU time of the device under test (user + system of its processes, all threads, from
//! `/proc/<pid>/stat`), of the whole host's softirq handling (from `/proc/stat`), where
//! kernel forwarding, TUN and veth work is accounted and no process owns it, and of the
//! calling thread (the generator's and the sink's own cost, to the nanosecond).

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

/// CPU time of the calling thread so far (CLOCK_THREAD_CPUTIME_ID), nanoseconds.
pub fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own; the thread CPU clock always exists.
    unsafe {
        libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts);
    }
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// The softirq ticks of the whole host, from the text of `/proc/stat`.
pub fn parse_softirq_ticks(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|line| line.starts_with("cpu "))?;
    // cpu user nice system idle iowait irq softirq …
    line.split_whitespace().nth(7)?.parse().ok()
}

/// The parent pid of one process, from the text of its `/proc/<pid>/stat`.
pub fn parse_parent(stat: &str) -> Option<u32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // After the name: state, then ppid.
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// `roots` and every process descended from them, given (pid, parent) pairs.
pub fn with_descendants(roots: &[u32], processes: &[(u32, u32)]) -> Vec<u32> {
    let mut all: Vec<u32> = roots.to_vec();
    let mut i = 0;
    while i < all.len() {
        let parent = all[i];
        for &(pid, ppid) in processes {
            if ppid == parent && !all.contains(&pid) {
                all.push(pid);
            }
        }
        i += 1;
    }
    all
}

/// Every process's (pid, parent) now.
fn process_table() -> Vec<(u32, u32)> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            Some((pid, parse_parent(&stat)?))
        })
        .collect()
}

/// CPU seconds (user + system) used so far by the processes `pids` and their descendants (a
/// daemon's data plane may be a child process); processes that are gone count nothing.
pub fn process_seconds(pids: &[u32]) -> f64 {
    if pids.is_empty() {
        return 0.0;
    }
    let ticks: u64 = with_descendants(pids, &process_table())
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
        assert_eq!(parse_parent(stat), Some(1));
        assert_eq!(parse_process_ticks("garbage"), None);
        assert_eq!(parse_process_ticks("1 (x) S 1 2"), None);
    }

    #[test]
    fn descendants_are_found_at_any_depth_and_strangers_are_not() {
        // 10 → 11 → 12, 10 → 13; 20 is another tree; 11 lists itself as its own child once.
        let table = [(11, 10), (12, 11), (13, 10), (20, 1), (21, 20), (11, 11)];
        let mut found = with_descendants(&[10], &table);
        found.sort_unstable();
        assert_eq!(found, vec![10, 11, 12, 13]);
        assert_eq!(with_descendants(&[], &table), Vec::<u32>::new());
    }

    #[test]
    fn a_child_process_counts_with_its_parent() {
        // A shell that waits for a spinning child: only through the child does the tree use
        // more than the parent alone.
        use std::os::unix::process::CommandExt;
        let mut parent = std::process::Command::new("sh")
            .process_group(0)
            .args([
                "-c",
                "sh -c 'i=0; while [ $i -lt 5000000 ]; do i=$((i+1)); done'; true",
            ])
            .spawn()
            .unwrap();
        let pid = parent.id();
        let own = || {
            fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| parse_process_ticks(&stat))
                .map_or(0.0, |ticks| ticks as f64 / ticks_per_second())
        };
        let start = std::time::Instant::now();
        let mut tree_beyond_parent = false;
        while start.elapsed().as_secs() < 10 && !tree_beyond_parent {
            std::thread::sleep(std::time::Duration::from_millis(100));
            tree_beyond_parent = process_seconds(&[pid]) > own();
        }
        // The whole group: the spinning child too.
        // SAFETY: kill(2) on the process group of a child we spawned and have not reaped.
        unsafe {
            libc::kill(-(pid as i32), libc::SIGKILL);
        }
        let _ = parent.wait();
        assert!(tree_beyond_parent);
    }

    #[test]
    fn softirq_is_the_seventh_number_of_the_cpu_line() {
        let stat = "cpu  10 20 30 40 50 60 777 0 0 0\ncpu0 1 2 3 4 5 6 7 0 0 0\n";
        assert_eq!(parse_softirq_ticks(stat), Some(777));
        assert_eq!(parse_softirq_ticks("intr 5\n"), None);
    }

    #[test]
    fn a_thread_that_sleeps_uses_less_cpu_than_one_that_spins() {
        let spin = std::thread::spawn(|| {
            let start = thread_cpu_ns();
            let wall = std::time::Instant::now();
            let mut x = 0u64;
            while wall.elapsed().as_millis() < 30 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            thread_cpu_ns() - start
        })
        .join()
        .unwrap();
        let sleep = std::thread::spawn(|| {
            let start = thread_cpu_ns();
            std::thread::sleep(std::time::Duration::from_millis(30));
            thread_cpu_ns() - start
        })
        .join()
        .unwrap();
        // Sleeping costs microseconds; 30 ms of spinning costs at least some milliseconds of
        // CPU even on a loaded machine.
        assert!(sleep < spin, "sleep {sleep} ns, spin {spin} ns");
        assert!(spin > 1_000_000, "spin {spin} ns");
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
