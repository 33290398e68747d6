//! Retransmission of an outstanding request (RFC 7296 §2.1): the initiator of an exchange
//! resends the request, byte for byte, with exponential backoff until a response comes or it
//! gives up.

use std::time::{Duration, Instant};

use super::RetransmitConfig;

/// What to do when the timer fires.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Expiry {
    /// Not yet.
    Wait,
    /// Send the request again.
    Resend,
    /// No response after this many transmissions.
    GiveUp {
        /// How many times the request was sent.
        transmissions: u32,
    },
}

/// An outstanding request and its timer.
#[derive(Debug)]
pub(crate) struct Retransmit {
    /// The Message ID the response must carry.
    pub message_id: u32,
    /// The request, as sent.
    pub bytes: Vec<u8>,
    /// How many times it has been sent.
    transmissions: u32,
    /// When the current wait ends.
    deadline: Instant,
}

impl Retransmit {
    /// A request sent for the first time at `now`.
    pub fn new(message_id: u32, bytes: Vec<u8>, now: Instant, config: &RetransmitConfig) -> Self {
        Retransmit {
            message_id,
            bytes,
            transmissions: 1,
            deadline: deadline(now, wait(config, 0)),
        }
    }

    /// When [`Retransmit::on_timeout`] must be called.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The timer fired at `now`.
    pub fn on_timeout(&mut self, now: Instant, config: &RetransmitConfig) -> Expiry {
        if now < self.deadline {
            return Expiry::Wait;
        }
        let retransmissions = self.transmissions.saturating_sub(1);
        if retransmissions >= config.max_retransmits {
            return Expiry::GiveUp {
                transmissions: self.transmissions,
            };
        }
        self.deadline = deadline(now, wait(config, self.transmissions));
        self.transmissions = self.transmissions.saturating_add(1);
        Expiry::Resend
    }
}

/// The wait after the `n`-th retransmission (0 = after the first transmission):
/// `initial × factor^n`, capped.
fn wait(config: &RetransmitConfig, n: u32) -> Duration {
    let factor = config
        .factor
        .max(1.0)
        .powi(i32::try_from(n).unwrap_or(i32::MAX));
    let secs = config.initial_timeout.as_secs_f64() * factor;
    if !secs.is_finite() || secs >= config.max_timeout.as_secs_f64() {
        return config.max_timeout;
    }
    Duration::try_from_secs_f64(secs).unwrap_or(config.max_timeout)
}

/// `now + wait`, saturating far in the future.
pub(crate) fn deadline(now: Instant, wait: Duration) -> Instant {
    now.checked_add(wait)
        .or_else(|| now.checked_add(Duration::from_secs(86_400 * 365)))
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_and_give_up() {
        let config = RetransmitConfig {
            initial_timeout: Duration::from_secs(1),
            factor: 2.0,
            max_timeout: Duration::from_secs(5),
            max_retransmits: 3,
        };
        let t0 = Instant::now();
        let mut r = Retransmit::new(1, vec![1], t0, &config);
        assert_eq!(r.deadline(), t0 + Duration::from_secs(1));
        assert_eq!(r.on_timeout(t0, &config), Expiry::Wait);
        let mut now = r.deadline();
        let mut waits = Vec::new();
        loop {
            match r.on_timeout(now, &config) {
                Expiry::Resend => {
                    waits.push(r.deadline() - now);
                    now = r.deadline();
                }
                Expiry::GiveUp { transmissions } => {
                    assert_eq!(transmissions, 4);
                    break;
                }
                Expiry::Wait => unreachable!(),
            }
        }
        assert_eq!(
            waits,
            [2, 4, 5].map(Duration::from_secs).to_vec(),
            "doubling, capped at 5 s"
        );
    }
}
