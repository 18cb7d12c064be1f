//! Start-up recovery of a sweep the previous run left unfinished.

use anyhow::Result;

use crate::bench::result::{now_ms, Record, ResultRecord, SCHEMA};
use crate::mqtt::messages::SweepState;
use crate::store::{JournalConfig, Recovery, Store, SweepJournal};

/// A sweep the previous run left unfinished (power loss, crash, `kill -9`): the
/// configuration that was running gets an `interrupted` record, so consumers see
/// why the sweep has no more results. Returns the state to publish.
pub(super) fn recover(
    device_id: &str,
    board: &str,
    store: &Store,
    r: Recovery,
) -> Result<Option<SweepState>> {
    if r.truncated_bytes > 0 {
        log::warn!(
            "store: the previous run left a torn record ({} bytes), removed",
            r.truncated_bytes
        );
    }
    if let Some(e) = &r.journal_error {
        log::warn!("store: unreadable sweep journal: {e}");
    }
    let Some(j) = r.interrupted else {
        return Ok(None);
    };
    let error =
        "the daemon stopped before this configuration finished (power loss, crash or kill); \
                 configurations measured before it are kept";
    // The journal names the configuration that was running; if its record made it
    // to disk, the stop came between configurations and the next one is cut.
    let cut = match &j.current {
        Some(c) => {
            let run_id = format!("{}-{:04}", j.sweep_id, c.index);
            if stored_run_id(store, j.store_end, &run_id)? {
                j.next.clone()
            } else {
                Some(c.clone())
            }
        }
        None => None,
    };
    let done = cut.as_ref().map(|c| c.index).unwrap_or(j.total);
    if let Some(c) = &cut {
        let rec = stand_in_record(
            device_id,
            board,
            &j.sweep_id,
            c,
            "interrupted",
            error,
            "daemon_stopped",
        );
        // A full disk must not stop the daemon from starting and draining what is
        // stored: the record waits in memory and goes in before the next record
        // that fits; the journal stays until then, so a restart tries again.
        match store.append_or_defer(&Record::Result(Box::new(rec)).to_json()) {
            Ok(true) => {}
            Ok(false) => return Ok(Some(interrupted_state(&j, done, error))),
            Err(e) => {
                log::error!("cannot record the interrupted sweep (kept for the next start): {e:#}");
                return Ok(Some(interrupted_state(&j, done, error)));
            }
        }
    }
    if let Err(e) = store.clear_journal() {
        log::error!("store: {e:#}");
    }
    log::warn!(
        "sweep {} ({}) was interrupted at configuration {} of {} by the end of the previous run; recorded as interrupted",
        j.sweep_id,
        j.sweep,
        done + 1,
        j.total
    );
    Ok(Some(interrupted_state(&j, done, error)))
}

/// A result for a configuration that produced none itself (the daemon stopped, or
/// gave up on it): what it was, why, and no measurements.
pub(super) fn stand_in_record(
    device_id: &str,
    board: &str,
    sweep_id: &str,
    c: &JournalConfig,
    status: &str,
    error: &str,
    stop_reason: &str,
) -> ResultRecord {
    ResultRecord {
        record: "result".into(),
        schema: SCHEMA,
        ts: now_ms(),
        device_id: device_id.to_string(),
        board: board.to_string(),
        sweep_id: sweep_id.to_string(),
        run_id: format!("{}-{:04}", sweep_id, c.index),
        status: status.into(),
        error: Some(error.into()),
        model: c.model.clone(),
        backend: c.backend.clone(),
        ep: c.ep.clone(),
        ep_requested: Some(c.ep.clone()),
        precision: c.precision.clone(),
        batch: c.batch,
        threads: c.threads,
        stop_reason: Some(stop_reason.into()),
        runtime: if c.backend == "ort" {
            "onnxruntime".into()
        } else {
            c.backend.clone()
        },
        edgebench_version: crate::VERSION.into(),
        ..Default::default()
    }
}

fn interrupted_state(j: &SweepJournal, done: usize, error: &str) -> SweepState {
    SweepState {
        state: "interrupted".into(),
        sweep: (!j.sweep.is_empty()).then(|| j.sweep.clone()),
        sweep_id: (!j.sweep_id.is_empty()).then(|| j.sweep_id.clone()),
        request_id: j.request_id.clone(),
        done,
        total: j.total,
        error: Some(error.into()),
        ..Default::default()
    }
}

/// Whether a result with `run_id` was stored at or after `from`.
pub(super) fn stored_run_id(store: &Store, from: u64, run_id: &str) -> Result<bool> {
    let lines = store.read_from(from, 10_000)?;
    Ok(lines.iter().any(|l| {
        serde_json::from_str::<serde_json::Value>(&l.line)
            .is_ok_and(|v| v["record"] == "result" && v["run_id"] == run_id)
    }))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::store::{JournalConfig, SweepJournal};

    fn cfg(index: usize, batch: u32) -> JournalConfig {
        JournalConfig {
            index,
            model: "tiny_cnn".into(),
            precision: "fp32".into(),
            backend: "ort".into(),
            ep: "cpu".into(),
            batch,
            threads: 1,
            config: None,
        }
    }

    fn journal(store_end: u64) -> SweepJournal {
        SweepJournal {
            sweep: "slow".into(),
            sweep_id: "s1".into(),
            request_id: Some("r1".into()),
            started_ms: 1,
            done: 1,
            total: 4,
            current: Some(cfg(1, 2)),
            next: Some(cfg(2, 4)),
            store_end,
        }
    }

    fn result(run_id: &str) -> String {
        format!(r#"{{"record":"result","run_id":"{run_id}","status":"ok"}}"#)
    }

    /// Reopens the store after a simulated power cut and returns the records after `from`.
    fn recover_in(dir: &Path) -> (Option<SweepState>, Vec<serde_json::Value>) {
        let (store, rec) = Store::open(dir, 1 << 20).unwrap();
        let st = recover("dev", "board", &store, rec).unwrap();
        let lines = store.read_from(0, 100).unwrap();
        let (_, again) = Store::open(dir, 1 << 20).unwrap();
        assert!(again.interrupted.is_none(), "journal cleared");
        (
            st,
            lines
                .iter()
                .map(|l| serde_json::from_str(&l.line).unwrap())
                .collect(),
        )
    }

    #[test]
    fn power_cut_during_a_configuration_records_that_one_as_interrupted() {
        let d = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(d.path(), 1 << 20).unwrap();
        store.append(&result("s1-0000")).unwrap();
        store.write_journal(&journal(store.end())).unwrap();
        drop(store);
        let (st, recs) = recover_in(d.path());
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[1]["run_id"], "s1-0001");
        assert_eq!(recs[1]["status"], "interrupted");
        assert_eq!(recs[1]["batch"], 2);
        let st = st.unwrap();
        assert_eq!(
            (st.state.as_str(), st.done, st.total),
            ("interrupted", 1, 4)
        );
    }

    #[test]
    fn power_cut_between_configurations_cuts_the_next_one() {
        let d = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(d.path(), 1 << 20).unwrap();
        store.append(&result("s1-0000")).unwrap();
        store.write_journal(&journal(store.end())).unwrap();
        // Configuration 1 finished and was stored; the cut came before the next progress.
        store.append(&result("s1-0001")).unwrap();
        drop(store);
        let (st, recs) = recover_in(d.path());
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[2]["run_id"], "s1-0002");
        assert_eq!(recs[2]["batch"], 4);
        assert_eq!(st.unwrap().done, 2);
    }

    #[test]
    fn no_journal_means_nothing_to_recover() {
        let d = tempfile::tempdir().unwrap();
        let (st, recs) = recover_in(d.path());
        assert!(st.is_none() && recs.is_empty());
    }

    #[test]
    fn a_full_store_does_not_stop_the_start_and_keeps_the_journal() {
        let d = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(d.path(), 1 << 20).unwrap();
        store.append(&result("s1-0000")).unwrap();
        store.write_journal(&journal(store.end())).unwrap();
        drop(store);
        // The guard asks for more free space than any disk has: every append is refused.
        let full = crate::store::Limits {
            min_free_bytes: u64::MAX / 4,
            ..crate::store::Limits::retention(1 << 20)
        };
        let (store, rec) = Store::open_with(d.path(), full).unwrap();
        let st = recover("dev", "board", &store, rec).unwrap().unwrap();
        assert_eq!((st.state.as_str(), st.done), ("interrupted", 1));
        assert_eq!(store.read_from(0, 10).unwrap().len(), 1, "still drainable");
        assert_eq!(store.stats().alarm, Some("full"));
        assert!(store.append(&result("s2-0000")).is_err(), "still full");
        drop(store);
        // Space is back: the next start records the interruption.
        let (st, recs) = recover_in(d.path());
        assert_eq!(st.unwrap().done, 1);
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[1]["status"], "interrupted");
    }
}
