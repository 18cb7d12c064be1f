//! Which precision a run really computes in: what the model file holds and what the
//! runtime's flags allow, never just what was asked for.
//!
//! * fp16 is real only with TensorRT allowed to use fp16 kernels (on an fp32 or fp16
//!   file), or with an fp16 model file (a manifest variant). CPU, CUDA, XNNPACK, ACL,
//!   TFLite... given an fp32 file run fp32: such a request is refused.
//! * TensorRT's flags are the union of the run's request, the model file's precision
//!   and the global `[tensorrt] fp16` / `int8`; the recorded precision is the lowest
//!   they allow (a global `fp16 = true` makes a requested fp32 run an fp16 run, and the
//!   record says so, with `precision_requested = "fp32"`).

/// The precision decision for one configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrecisionPlan {
    /// What the sweep asked for (`precision_requested` in the record).
    pub requested: String,
    /// What runs (`precision` in the record).
    pub effective: String,
    /// TensorRT flags (false for every other provider).
    pub trt_fp16: bool,
    pub trt_int8: bool,
}

/// Decides the effective precision of `requested` on a model file of precision
/// `model` (from the manifest) with `backend` / `ep`; `trt_fp16` / `trt_int8` are the
/// global `[tensorrt]` flags. The error says why and what would make it real.
pub fn resolve(
    requested: &str,
    model: &str,
    backend: &str,
    ep: &str,
    trt_fp16: bool,
    trt_int8: bool,
) -> Result<PrecisionPlan, String> {
    let model = if model.is_empty() { "fp32" } else { model };
    if backend == "ort" && ep == "tensorrt" {
        let int8 = requested == "int8" || model == "int8" || trt_int8;
        let fp16 = requested == "fp16" || model == "fp16" || trt_fp16;
        let effective = if int8 {
            "int8"
        } else if fp16 {
            "fp16"
        } else {
            "fp32"
        };
        return Ok(PrecisionPlan {
            requested: requested.into(),
            effective: effective.into(),
            trt_fp16: fp16,
            trt_int8: int8,
        });
    }
    if requested != model {
        let why = if requested == "fp16" {
            format!(
                "{backend}/{ep} runs the {model} model file as it is; fp16 is real only with ep = tensorrt \
                 (fp16 kernels allowed) or an fp16 model variant in the manifest"
            )
        } else {
            format!("{backend}/{ep} runs the {model} model file as it is")
        };
        return Err(format!("precision {requested} refused: {why}"));
    }
    Ok(PrecisionPlan {
        requested: requested.into(),
        effective: model.into(),
        trt_fp16: false,
        trt_int8: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fp16_on_cpu_cuda_or_tflite_with_an_fp32_file_is_refused() {
        for (b, ep) in [
            ("ort", "cpu"),
            ("ort", "cuda"),
            ("ort", "xnnpack"),
            ("tflite", "cpu"),
        ] {
            let e = resolve("fp16", "fp32", b, ep, false, false).unwrap_err();
            assert!(
                e.contains("fp16") && e.contains("tensorrt") && e.contains(ep),
                "{e}"
            );
        }
    }

    #[test]
    fn fp16_variant_file_runs_fp16_anywhere() {
        let p = resolve("fp16", "fp16", "ort", "cuda", false, false).unwrap();
        assert_eq!(p.effective, "fp16");
        assert!(!p.trt_fp16);
    }

    #[test]
    fn tensorrt_fp16_sets_the_flag() {
        let p = resolve("fp16", "fp32", "ort", "tensorrt", false, false).unwrap();
        assert_eq!(
            (p.effective.as_str(), p.trt_fp16, p.trt_int8),
            ("fp16", true, false)
        );
    }

    #[test]
    fn global_tensorrt_flags_relabel_an_fp32_request() {
        let p = resolve("fp32", "fp32", "ort", "tensorrt", true, false).unwrap();
        assert_eq!(
            (p.requested.as_str(), p.effective.as_str()),
            ("fp32", "fp16")
        );
        assert!(p.trt_fp16);
        let p = resolve("fp32", "fp32", "ort", "tensorrt", false, true).unwrap();
        assert_eq!(p.effective, "int8");
        let p = resolve("fp32", "fp32", "ort", "tensorrt", false, false).unwrap();
        assert_eq!(
            (p.effective.as_str(), p.trt_fp16, p.trt_int8),
            ("fp32", false, false)
        );
        // Global flags mean nothing to other providers.
        let p = resolve("fp32", "fp32", "ort", "cuda", true, true).unwrap();
        assert_eq!(
            (p.effective.as_str(), p.trt_fp16, p.trt_int8),
            ("fp32", false, false)
        );
    }

    #[test]
    fn int8_files_run_int8() {
        let p = resolve("int8", "int8", "ort", "cpu", false, false).unwrap();
        assert_eq!(p.effective, "int8");
        let p = resolve("int8", "int8", "ort", "tensorrt", false, false).unwrap();
        assert!(p.trt_int8);
        assert!(resolve("int8", "fp32", "ort", "cpu", false, false).is_err());
    }
}
