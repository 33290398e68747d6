//! When things happen: rekey jitter, the pause before retrying a refused rekey, hard
//! lifetimes and the NAT keepalive interval.

use std::time::{Duration, Instant};

use crate::crypto::{Rng, SystemRng};

/// The hard lifetime for a rekey time: a tenth later (strongSwan's default life_time), so
/// that a rekey that keeps failing ends the SA rather than keeping old keys for ever.
pub(super) fn hard_lifetime(now: Instant, rekey_time: Duration) -> Option<Instant> {
    (!rekey_time.is_zero()).then(|| now + rekey_time + rekey_time / 10)
}

/// How often we refresh the NAT mapping in front of us (strongSwan's default keep_alive).
pub(super) const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);

/// A random 2 to 12 seconds: the pause before retrying a refused rekey. Two peers whose
/// rekeys collided (each refusing the other's, §2.8) pick different pauses and then succeed.
pub(super) fn retry_pause() -> Duration {
    let mut random = [0u8; 2];
    let _ = SystemRng.fill(&mut random);
    Duration::from_secs(2) + Duration::from_millis(u64::from(u16::from_le_bytes(random)) % 10_000)
}

/// `base` from now, shortened by a random amount of up to a tenth (as strongSwan's
/// rekey jitter) so that the two peers, and many SAs, do not rekey at the same moment: two
/// simultaneous rekeys of one SA cost a wasted exchange (§2.8.1, §2.8.2). `None` for a zero
/// time (no rekey).
pub(super) fn jittered(now: Instant, base: Duration) -> Option<Instant> {
    if base.is_zero() {
        return None;
    }
    let mut random = [0u8; 2];
    // Without randomness the rekey simply comes at `base`.
    let _ = SystemRng.fill(&mut random);
    let spread = u16::from_le_bytes(random) >> 6; // 0..1024
    let cut = base / 10 * u32::from(spread) / 1024;
    Some(now + (base - cut))
}
