//! When sweeps run: the command queue, duplicate request ids, the timetable. Pure.
//!
//! One sweep runs at a time. A sweep asked for while one runs waits in a queue of
//! `commands.queue_depth`; beyond that the answer is `busy`. The daemon owns the
//! IO (starting threads, replying); this module only decides.

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// Who asked for a sweep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// An MQTT `sweep-start`.
    Command { request_id: String },
    /// `schedule.on_boot`.
    Boot,
    /// `schedule.every`.
    Timetable,
}

impl Origin {
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Origin::Command { request_id } => Some(request_id),
            _ => None,
        }
    }
}

/// A sweep waiting or running; `P` is what the daemon needs to run it (the plan).
#[derive(Debug, Clone, PartialEq)]
pub struct Job<P> {
    pub origin: Origin,
    pub sweep: String,
    pub sweep_id: String,
    pub payload: P,
}

/// The running sweep, as far as the scheduler knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Running {
    pub origin: Origin,
    pub sweep: String,
    pub sweep_id: String,
}

/// The decision on a submitted sweep.
#[derive(Debug, PartialEq)]
pub enum Admission<P> {
    /// Nothing was running: start this one now (it is now the running one).
    Start(Job<P>),
    /// Waiting; 1 is next.
    Queued { position: usize },
    /// Queue full; the job is dropped.
    Busy,
}

/// The decision on a cancel request.
#[derive(Debug, PartialEq)]
pub struct Cancel<P> {
    /// Stop the running sweep.
    pub running: bool,
    /// Jobs removed from the queue.
    pub dropped: Vec<Job<P>>,
}

/// The sweep queue.
#[derive(Debug)]
pub struct Scheduler<P> {
    running: Option<Running>,
    queue: VecDeque<Job<P>>,
    depth: usize,
}

impl<P> Scheduler<P> {
    /// `depth`: sweeps that may wait behind the running one.
    pub fn new(depth: usize) -> Scheduler<P> {
        Scheduler {
            running: None,
            queue: VecDeque::new(),
            depth,
        }
    }

    pub fn set_depth(&mut self, depth: usize) {
        self.depth = depth;
    }

    pub fn running(&self) -> Option<&Running> {
        self.running.as_ref()
    }

    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Whether a timetable sweep is running or waiting (the timetable then skips a turn).
    pub fn timetable_pending(&self) -> bool {
        self.running
            .as_ref()
            .is_some_and(|r| r.origin == Origin::Timetable)
            || self.queue.iter().any(|j| j.origin == Origin::Timetable)
    }

    pub fn submit(&mut self, job: Job<P>) -> Admission<P> {
        if self.running.is_none() {
            self.running = Some(Running {
                origin: job.origin.clone(),
                sweep: job.sweep.clone(),
                sweep_id: job.sweep_id.clone(),
            });
            return Admission::Start(job);
        }
        if self.queue.len() >= self.depth {
            return Admission::Busy;
        }
        self.queue.push_back(job);
        Admission::Queued {
            position: self.queue.len(),
        }
    }

    /// The running sweep ended; returns the next one to start (now running).
    pub fn finished(&mut self) -> Option<Job<P>> {
        self.running = None;
        let next = self.queue.pop_front()?;
        self.running = Some(Running {
            origin: next.origin.clone(),
            sweep: next.sweep.clone(),
            sweep_id: next.sweep_id.clone(),
        });
        Some(next)
    }

    /// `sweep_id`: only that sweep (running or queued); `None`: the running one.
    /// `all`: the queue too.
    pub fn cancel(&mut self, sweep_id: Option<&str>, all: bool) -> Cancel<P> {
        let running = match (&self.running, sweep_id) {
            (Some(_), None) => true,
            (Some(r), Some(id)) => r.sweep_id == id,
            (None, _) => false,
        };
        let mut dropped = Vec::new();
        let mut keep = VecDeque::new();
        for j in self.queue.drain(..) {
            if all || sweep_id.is_some_and(|id| id == j.sweep_id) {
                dropped.push(j);
            } else {
                keep.push_back(j);
            }
        }
        self.queue = keep;
        Cancel { running, dropped }
    }
}

/// Request ids already answered, with a bounded memory (oldest forgotten first).
#[derive(Debug)]
pub struct RecentIds {
    set: HashSet<String>,
    order: VecDeque<String>,
    cap: usize,
}

impl RecentIds {
    pub fn new(cap: usize) -> RecentIds {
        RecentIds {
            set: HashSet::new(),
            order: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    /// True the first time `id` is seen (it is remembered), false for a repeat.
    pub fn first_time(&mut self, id: &str) -> bool {
        if self.set.contains(id) {
            return false;
        }
        if self.order.len() >= self.cap {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        self.set.insert(id.to_string());
        self.order.push_back(id.to_string());
        true
    }
}

/// `schedule.every`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timetable {
    /// Every interval, counted from the daemon's start.
    Every(Duration),
    /// Once a day at this minute of the day, UTC.
    Daily { minute: u32 },
}

/// Shortest interval accepted (a sweep every few seconds is a mistake, not a plan).
const MIN_INTERVAL: Duration = Duration::from_secs(60);
const DAY_MS: i64 = 24 * 3600 * 1000;

impl Timetable {
    /// `""` (none), `"30m"`, `"6h"`, `"1d"`, `"90s"`, or `"daily HH:MM"` (UTC).
    pub fn parse(s: &str) -> Result<Option<Timetable>> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(None);
        }
        if let Some(hm) = s.strip_prefix("daily") {
            let hm = hm.trim();
            let (h, m) = hm
                .split_once(':')
                .with_context(|| format!("`{s}`: expected `daily HH:MM` (UTC)"))?;
            let h: u32 = h
                .parse()
                .ok()
                .filter(|h| *h < 24)
                .with_context(|| format!("`{s}`: hour `{h}` is not 00..23"))?;
            let m: u32 = m
                .parse()
                .ok()
                .filter(|m| *m < 60 && m_len_ok(hm))
                .with_context(|| format!("`{s}`: minute `{m}` is not 00..59"))?;
            return Ok(Some(Timetable::Daily { minute: h * 60 + m }));
        }
        let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
        let n: u64 = num.parse().with_context(|| {
            format!("`{s}`: expected a number and a unit (30m, 6h, 1d) or `daily HH:MM`")
        })?;
        let secs = match unit {
            "s" => n,
            "m" => n.saturating_mul(60),
            "h" => n.saturating_mul(3600),
            "d" => n.saturating_mul(86_400),
            other => bail!("`{s}`: unknown unit `{other}` (s, m, h, d)"),
        };
        let d = Duration::from_secs(secs);
        if d < MIN_INTERVAL {
            bail!(
                "`{s}`: interval is below the minimum of {}s",
                MIN_INTERVAL.as_secs()
            );
        }
        if secs > 366 * 86_400 {
            bail!("`{s}`: interval is above one year");
        }
        Ok(Some(Timetable::Every(d)))
    }

    /// The first due time strictly after `now_ms` (Unix ms). `anchor_ms`: when the
    /// daemon started (intervals count from it).
    pub fn next_after(&self, now_ms: i64, anchor_ms: i64) -> i64 {
        match *self {
            Timetable::Every(d) => {
                let p = d.as_millis() as i64;
                if now_ms < anchor_ms {
                    return anchor_ms + p;
                }
                let k = (now_ms - anchor_ms) / p + 1;
                anchor_ms + k * p
            }
            Timetable::Daily { minute } => {
                let day_start = now_ms.div_euclid(DAY_MS) * DAY_MS;
                let t = day_start + minute as i64 * 60_000;
                if t > now_ms {
                    t
                } else {
                    t + DAY_MS
                }
            }
        }
    }
}

fn m_len_ok(hm: &str) -> bool {
    hm.split_once(':').is_some_and(|(_, m)| m.len() == 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str, origin: Origin) -> Job<()> {
        Job {
            origin,
            sweep: "quick".into(),
            sweep_id: id.into(),
            payload: (),
        }
    }
    fn cmd(r: &str) -> Origin {
        Origin::Command {
            request_id: r.into(),
        }
    }

    #[test]
    fn queue_then_busy_then_next_in_order() {
        let mut s = Scheduler::new(2);
        assert!(matches!(s.submit(job("a", cmd("1"))), Admission::Start(_)));
        assert_eq!(
            s.submit(job("b", cmd("2"))),
            Admission::Queued { position: 1 }
        );
        assert_eq!(
            s.submit(job("c", cmd("3"))),
            Admission::Queued { position: 2 }
        );
        assert_eq!(s.submit(job("d", cmd("4"))), Admission::Busy);
        assert_eq!(s.running().unwrap().sweep_id, "a");
        assert_eq!(s.finished().unwrap().sweep_id, "b");
        assert_eq!(s.running().unwrap().sweep_id, "b");
        assert_eq!(s.finished().unwrap().sweep_id, "c");
        assert!(s.finished().is_none());
        assert!(s.running().is_none());
        assert!(matches!(s.submit(job("e", cmd("5"))), Admission::Start(_)));
    }

    #[test]
    fn depth_zero_means_busy_while_running() {
        let mut s = Scheduler::new(0);
        assert!(matches!(s.submit(job("a", cmd("1"))), Admission::Start(_)));
        assert_eq!(s.submit(job("b", cmd("2"))), Admission::Busy);
    }

    #[test]
    fn cancel_running_queued_or_all() {
        let mut s = Scheduler::new(3);
        let _ = s.submit(job("a", Origin::Boot));
        let _ = s.submit(job("b", cmd("2")));
        let _ = s.submit(job("c", Origin::Timetable));
        assert!(s.timetable_pending());
        let c = s.cancel(Some("b"), false);
        assert!(!c.running);
        assert_eq!(c.dropped.len(), 1);
        assert_eq!(s.queued(), 1);
        let c = s.cancel(None, false);
        assert!(c.running && c.dropped.is_empty());
        let c = s.cancel(Some("zzz"), false);
        assert!(!c.running && c.dropped.is_empty());
        let c = s.cancel(None, true);
        assert!(c.running);
        assert_eq!(c.dropped[0].sweep_id, "c");
        assert!(!s.timetable_pending() || s.running().unwrap().origin == Origin::Timetable);
        s.finished();
        assert!(
            s.cancel(None, false)
                == Cancel {
                    running: false,
                    dropped: vec![]
                }
        );
    }

    #[test]
    fn duplicate_ids_answered_once_with_bounded_memory() {
        let mut r = RecentIds::new(3);
        assert!(r.first_time("a"));
        assert!(!r.first_time("a"));
        assert!(r.first_time("b"));
        assert!(r.first_time("c"));
        assert!(r.first_time("d")); // forgets "a"
        assert!(!r.first_time("d"));
        assert!(r.first_time("a"));
        assert!(r.set.len() <= 3 && r.order.len() <= 3);
    }

    #[test]
    fn timetable_parsing() {
        assert_eq!(Timetable::parse("").unwrap(), None);
        assert_eq!(
            Timetable::parse("30m").unwrap(),
            Some(Timetable::Every(Duration::from_secs(1800)))
        );
        assert_eq!(
            Timetable::parse("6h").unwrap(),
            Some(Timetable::Every(Duration::from_secs(21600)))
        );
        assert_eq!(
            Timetable::parse("1d").unwrap(),
            Some(Timetable::Every(Duration::from_secs(86400)))
        );
        assert_eq!(
            Timetable::parse("daily 03:30").unwrap(),
            Some(Timetable::Daily { minute: 210 })
        );
        for bad in [
            "5s",
            "30",
            "m",
            "3w",
            "daily 24:00",
            "daily 3",
            "daily 03:5",
            "daily 03:60",
            "-1h",
            "400d",
        ] {
            let e = Timetable::parse(bad);
            assert!(e.is_err(), "{bad} accepted");
            assert!(format!("{:#}", e.unwrap_err()).contains(bad), "{bad}");
        }
    }

    #[test]
    fn timetable_next_due() {
        let anchor = 1_000_000;
        let t = Timetable::Every(Duration::from_secs(60));
        assert_eq!(t.next_after(anchor, anchor), anchor + 60_000);
        assert_eq!(t.next_after(anchor + 59_999, anchor), anchor + 60_000);
        assert_eq!(t.next_after(anchor + 60_000, anchor), anchor + 120_000);
        assert_eq!(t.next_after(anchor - 5, anchor), anchor + 60_000);

        // 2026-01-01T00:00:00Z = 1767225600000
        let midnight = 1_767_225_600_000;
        let d = Timetable::Daily { minute: 210 };
        assert_eq!(d.next_after(midnight, 0), midnight + 210 * 60_000);
        assert_eq!(
            d.next_after(midnight + 210 * 60_000, 0),
            midnight + DAY_MS + 210 * 60_000
        );
        assert_eq!(
            d.next_after(midnight + 23 * 3_600_000, 0),
            midnight + DAY_MS + 210 * 60_000
        );
    }
}
