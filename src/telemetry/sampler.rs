//! The sampler: one dedicated thread per timed window that scrapes every probe at a
//! fixed rate and folds each scrape into running aggregates. File reads stay off any
//! async runtime; memory is fixed (one reusable [`Scrape`] plus the [`Accum`]).

use std::io;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::probes::{Probes, Scrape};
use super::summary::Accum;

/// A running sampler thread.
pub struct Sampler {
    stop: mpsc::Sender<()>,
    handle: JoinHandle<(Scrape, Accum)>,
}

/// Scrapes `probes` every `period` into `acc` until stopped. The caller has already
/// taken the first scrape.
pub fn start(
    probes: Arc<Mutex<Probes>>,
    scrape: Scrape,
    acc: Accum,
    period: Duration,
) -> io::Result<Sampler> {
    let (stop, rx) = mpsc::channel();
    let handle = std::thread::Builder::new()
        .name("edgebench-sampler".into())
        .spawn(move || run(&probes, scrape, acc, period, &rx))?;
    Ok(Sampler { stop, handle })
}

fn run(
    probes: &Mutex<Probes>,
    mut scrape: Scrape,
    mut acc: Accum,
    period: Duration,
    rx: &mpsc::Receiver<()>,
) -> (Scrape, Accum) {
    let mut next = Instant::now() + period;
    loop {
        let wait = next.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return (scrape, acc),
        }
        probes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .scrape_into(&mut scrape);
        acc.push(&scrape);
        next += period;
        let now = Instant::now();
        if next < now {
            // Fell behind (a stalled read, a busy machine): skip the missed ticks
            // rather than scraping in a burst.
            next = now + period;
        }
    }
}

impl Sampler {
    /// Stops the thread and hands back its scrape buffer and aggregates. None if the
    /// thread panicked.
    pub fn stop(self) -> Option<(Scrape, Accum)> {
        let _ = self.stop.send(());
        self.handle.join().ok()
    }
}
