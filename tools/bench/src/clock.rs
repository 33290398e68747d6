//! CLOCK_MONOTONIC in nanoseconds: one clock for every network namespace of the host, so a send
//! time written by the generator can be subtracted from a receive time read by the sink.

/// Nanoseconds of CLOCK_MONOTONIC.
#[inline]
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own; CLOCK_MONOTONIC always exists on Linux.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
    }
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    #[test]
    fn it_agrees_with_std_instant_and_never_goes_back() {
        let instant = std::time::Instant::now();
        let a = super::now_ns();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let b = super::now_ns();
        let elapsed = instant.elapsed().as_nanos() as u64;
        assert!(b >= a + 20_000_000);
        // Both read the same clock, and Instant's interval encloses [a, b].
        assert!(b - a <= elapsed);
    }
}
