//! Reconnect backoff: exponential with jitter. Pure (the random source is seeded).
//!
//! rumqttc reconnects immediately when polled after an error; without a pause a
//! board whose broker is away would spin. Each failed attempt doubles the ceiling
//! (from `min` up to `max`); the delay is drawn uniformly from the upper half of the
//! ceiling ("equal jitter"), so a fleet that lost its broker together does not come
//! back in lock-step, and no delay is ever shorter than half the ceiling.

use std::time::Duration;

use rand::{Rng, SeedableRng};

/// Backoff state of one connection.
#[derive(Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
    rng: rand::rngs::SmallRng,
}

impl Backoff {
    /// `min` and `max` bound the ceiling; `seed` makes the jitter reproducible in tests.
    pub fn new(min: Duration, max: Duration, seed: u64) -> Backoff {
        let min = min.max(Duration::from_millis(1));
        Backoff {
            min,
            max: max.max(min),
            attempt: 0,
            rng: rand::rngs::SmallRng::seed_from_u64(seed),
        }
    }

    /// The ceiling of the next delay.
    pub fn ceiling(&self) -> Duration {
        let factor = 2u32.saturating_pow(self.attempt.min(30));
        self.min.saturating_mul(factor).min(self.max)
    }

    /// The delay to wait before the next attempt; raises the ceiling.
    pub fn next_delay(&mut self) -> Duration {
        let ceil = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let half = ceil / 2;
        let jitter = self.rng.gen_range(0..=half.as_micros() as u64);
        half + Duration::from_micros(jitter)
    }

    /// Failed attempts since the last success.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// After a successful connection.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_with_jitter_inside_the_upper_half() {
        let min = Duration::from_millis(500);
        let max = Duration::from_secs(60);
        let mut b = Backoff::new(min, max, 1);
        let mut ceilings = vec![];
        for _ in 0..12 {
            let c = b.ceiling();
            let d = b.next_delay();
            assert!(d >= c / 2 && d <= c, "{d:?} not in [{:?}, {c:?}]", c / 2);
            ceilings.push(c);
        }
        assert_eq!(ceilings[0], min);
        assert_eq!(ceilings[1], Duration::from_secs(1));
        assert_eq!(ceilings[3], Duration::from_secs(4));
        assert_eq!(*ceilings.last().unwrap(), max);
        b.reset();
        assert_eq!(b.ceiling(), min);
    }

    #[test]
    fn jitter_differs_between_boards() {
        let mut a = Backoff::new(Duration::from_secs(1), Duration::from_secs(60), 1);
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60), 2);
        let da: Vec<_> = (0..6).map(|_| a.next_delay()).collect();
        let db: Vec<_> = (0..6).map(|_| b.next_delay()).collect();
        assert_ne!(da, db);
    }

    #[test]
    fn never_overflows() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(3600), 3);
        for _ in 0..200 {
            assert!(b.next_delay() <= Duration::from_secs(3600));
        }
    }
}
