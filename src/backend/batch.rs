//! How a requested batch is realised on a model, from the input shape the runtime
//! reports (not the manifest's word alone).
//!
//! A dynamic batch axis runs batch N in one call. A batch axis fixed to B (a model
//! exported as `[1, 3, 224, 224]`) cannot take N in one call: it either runs N / B
//! calls of batch B ([`FixedBatch::Sequential`], as TFLite does) or the configuration
//! fails ([`FixedBatch::Fail`]), as `[protocol] fixed_batch` says. Either way the record
//! says what ran (`batch_mode`, `batch_per_call`, `input_shape`).

pub use super::types::FixedBatch;
use super::{BackendError, BatchMode};

/// How one timed batch runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchPlan {
    /// Input shape of each call, every axis concrete.
    pub shape: Vec<i64>,
    /// Samples per call (`shape[0]`).
    pub per_call: u32,
    /// Calls per timed batch (`batch / per_call`).
    pub calls: u32,
    pub mode: BatchMode,
}

/// Plans batch `batch` for a model whose input is `model` as the runtime reports it
/// (negative or zero: dynamic axis; empty: unknown), with the manifest's `manifest`
/// shape (`-1` on axis 0: dynamic batch) filling dynamic non-batch axes. `what` names
/// the model and input in errors.
pub fn plan_batch(
    model: &[i64],
    manifest: &[i64],
    batch: u32,
    fixed: FixedBatch,
    what: &str,
) -> Result<BatchPlan, BackendError> {
    let batch = batch.max(1);
    let reference = if model.is_empty() { manifest } else { model };
    if reference.is_empty() {
        return Err(BackendError::Failed(format!(
            "{what}: input shape unknown (the model reports none and the manifest gives none)"
        )));
    }
    if !model.is_empty() && !manifest.is_empty() && model.len() != manifest.len() {
        return Err(BackendError::Failed(format!(
            "{what}: the model's input has rank {} ({model:?}) but the manifest says {manifest:?}",
            model.len()
        )));
    }
    let mut shape = Vec::with_capacity(reference.len());
    for (i, &d) in reference.iter().enumerate().skip(1) {
        let m = manifest.get(i).copied().unwrap_or(-1);
        let v = if d > 0 {
            if m > 0 && m != d {
                return Err(BackendError::Failed(format!(
                    "{what}: axis {i} is {d} in the model but {m} in the manifest ({model:?} vs {manifest:?})"
                )));
            }
            d
        } else if m > 0 {
            m
        } else {
            return Err(BackendError::Failed(format!(
                "{what}: axis {i} is dynamic in the model ({model:?}) and the manifest gives no size ({manifest:?})"
            )));
        };
        shape.push(v);
    }
    // The batch axis: fixed only when the runtime says so (or, model shape unknown,
    // when the manifest gives a size).
    let fixed_b = reference[0];
    let (per_call, calls, mode) = if fixed_b <= 0 || fixed_b == i64::from(batch) {
        (batch, 1, BatchMode::Native)
    } else {
        let b = u32::try_from(fixed_b).map_err(|_| {
            BackendError::Failed(format!("{what}: batch axis of size {fixed_b} is too large"))
        })?;
        match fixed {
            FixedBatch::Fail => {
                return Err(BackendError::Failed(format!(
                    "{what}: the model's batch axis is fixed to {b} (input {reference:?}), so batch {batch} \
                     cannot run in one call; [protocol] fixed_batch = \"fail\" refuses it \
                     (\"sequential\" runs {batch} / {b} calls instead, or export the model with a dynamic batch axis)"
                )))
            }
            FixedBatch::Sequential if !batch.is_multiple_of(b) => {
                return Err(BackendError::Failed(format!(
                    "{what}: the model's batch axis is fixed to {b} (input {reference:?}); batch {batch} is not \
                     a multiple of it, so it cannot run as whole calls"
                )))
            }
            FixedBatch::Sequential => (b, batch / b, BatchMode::Sequential),
        }
    };
    shape.insert(0, i64::from(per_call));
    Ok(BatchPlan {
        shape,
        per_call,
        calls,
        mode,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(model: &[i64], manifest: &[i64], batch: u32, f: FixedBatch) -> BatchPlan {
        plan_batch(model, manifest, batch, f, "m").unwrap()
    }

    #[test]
    fn dynamic_axis_runs_native() {
        let p = plan(&[-1, 3, 8, 8], &[-1, 3, 8, 8], 8, FixedBatch::Fail);
        assert_eq!(p.shape, vec![8, 3, 8, 8]);
        assert_eq!((p.per_call, p.calls, p.mode), (8, 1, BatchMode::Native));
    }

    #[test]
    fn fixed_axis_from_the_model_wins_over_a_manifest_that_says_dynamic() {
        let p = plan(&[1, 3, 8, 8], &[-1, 3, 8, 8], 8, FixedBatch::Sequential);
        assert_eq!(p.shape, vec![1, 3, 8, 8]);
        assert_eq!((p.per_call, p.calls, p.mode), (1, 8, BatchMode::Sequential));
    }

    #[test]
    fn manifest_fixed_but_model_dynamic_runs_native() {
        let p = plan(&[-1, 3, 8, 8], &[1, 3, 8, 8], 4, FixedBatch::Fail);
        assert_eq!((p.per_call, p.calls, p.mode), (4, 1, BatchMode::Native));
        assert_eq!(p.shape, vec![4, 3, 8, 8]);
    }

    #[test]
    fn fixed_axis_equal_to_the_batch_is_native() {
        let p = plan(&[4, 3], &[], 4, FixedBatch::Fail);
        assert_eq!((p.per_call, p.calls, p.mode), (4, 1, BatchMode::Native));
    }

    #[test]
    fn fixed_axis_fails_when_configured_or_not_a_divisor() {
        let e = plan_batch(&[1, 3, 8, 8], &[1, 3, 8, 8], 8, FixedBatch::Fail, "tiny")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("tiny") && e.contains("fixed to 1") && e.contains("fixed_batch"),
            "{e}"
        );
        let e = plan_batch(&[4, 3], &[], 6, FixedBatch::Sequential, "m")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a multiple"), "{e}");
        let p = plan(&[4, 3], &[], 8, FixedBatch::Sequential);
        assert_eq!((p.per_call, p.calls), (4, 2));
    }

    #[test]
    fn dynamic_inner_axes_come_from_the_manifest_or_fail() {
        let p = plan(&[-1, 3, -1], &[-1, 3, 16], 2, FixedBatch::Sequential);
        assert_eq!(p.shape, vec![2, 3, 16]);
        assert!(plan_batch(&[-1, 3, -1], &[-1, 3, -1], 2, FixedBatch::Sequential, "m").is_err());
        assert!(plan_batch(&[-1, 3, 8], &[-1, 3, 9], 2, FixedBatch::Sequential, "m").is_err());
        assert!(plan_batch(&[-1, 3], &[-1, 3, 9], 2, FixedBatch::Sequential, "m").is_err());
    }

    #[test]
    fn unknown_model_shape_uses_the_manifest() {
        let p = plan(&[], &[2, 5], 4, FixedBatch::Sequential);
        assert_eq!((p.per_call, p.calls), (2, 2));
        assert_eq!(p.shape, vec![2, 5]);
    }

    #[test]
    fn config_values_parse() {
        assert_eq!(FixedBatch::parse("fail"), Ok(FixedBatch::Fail));
        assert_eq!(FixedBatch::parse("sequential"), Ok(FixedBatch::Sequential));
        assert!(FixedBatch::parse("native")
            .unwrap_err()
            .contains("sequential"));
    }
}
