//! What a `.tflite` file's main graph contains, read from the FlatBuffer itself.
//!
//! The Edge TPU compiler replaces every operation it maps with one custom operation,
//! `edgetpu-custom-op`; operations it cannot map stay as ordinary TFLite operations and
//! run on the CPU. libedgetpu's C API reports nothing about this, so the model file is
//! the one place that says whether a run is all-Edge-TPU. This is the same count the
//! compiler prints ("Number of operations that will run on Edge TPU").
//!
//! Only the few fields needed are read (schema: `tensorflow/lite/schema/schema.fbs`):
//! `Model.operator_codes` (1), `Model.subgraphs` (2); `OperatorCode.deprecated_builtin_code`
//! (0), `custom_code` (1), `builtin_code` (3); `SubGraph.operators` (3);
//! `Operator.opcode_index` (0); for the batch axis, `SubGraph.tensors` (0), `SubGraph.inputs`
//! (1), `Tensor.shape_signature` (7). Every read is bounds-checked: a damaged file is an
//! error.

/// Name of the custom operation that holds Edge-TPU-compiled subgraphs.
pub const EDGETPU_CUSTOM_OP: &str = "edgetpu-custom-op";

/// `BuiltinOperator.CUSTOM`.
const BUILTIN_CUSTOM: i32 = 32;

/// Operations of the main subgraph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphSummary {
    /// Number of operations in subgraph 0.
    pub ops: usize,
    /// How many of them are `edgetpu-custom-op`.
    pub edgetpu_ops: usize,
    /// Custom operation names used (sorted, unique).
    pub custom_ops: Vec<String>,
    /// Axis 0 of the first input's `shape_signature`: `Some(-1)` a dynamic batch,
    /// `Some(B)` a batch fixed at export, None when the converter wrote no signature
    /// (older TensorFlow versions).
    pub input_batch_signature: Option<i32>,
}

impl GraphSummary {
    /// Contains at least one Edge TPU operation.
    pub fn edgetpu_compiled(&self) -> bool {
        self.edgetpu_ops > 0
    }

    /// Operations left for the CPU.
    pub fn cpu_ops(&self) -> usize {
        self.ops - self.edgetpu_ops
    }
}

/// Reads the operator summary of a TFLite model held in `buf`.
pub fn summarize(buf: &[u8]) -> Result<GraphSummary, String> {
    let fb = Fb(buf);
    if buf.len() < 8 {
        return Err(format!(
            "{} bytes is too short for a TFLite model",
            buf.len()
        ));
    }
    if &buf[4..8] != b"TFL3" {
        return Err(format!(
            "file identifier is {:?}, not \"TFL3\" (not a TFLite model)",
            String::from_utf8_lossy(&buf[4..8])
        ));
    }
    let model = fb.deref(0)?;
    let codes = match fb.field_pos(model, 1)? {
        Some(p) => fb.vector(p)?,
        None => (0, 0),
    };
    let mut names = Vec::with_capacity(codes.1);
    for i in 0..codes.1 {
        let code = fb.deref(codes.0 + 4 * i)?;
        let deprecated = match fb.field_pos(code, 0)? {
            Some(p) => i32::from(fb.u8(p)? as i8),
            None => 0,
        };
        let builtin = match fb.field_pos(code, 3)? {
            Some(p) => fb.i32(p)?,
            None => 0,
        };
        let custom = match fb.field_pos(code, 1)? {
            Some(p) => Some(fb.string(p)?),
            None => None,
        };
        let is_custom = deprecated.max(builtin) == BUILTIN_CUSTOM;
        names.push(if is_custom { custom } else { None });
    }
    let subgraphs = match fb.field_pos(model, 2)? {
        Some(p) => fb.vector(p)?,
        None => return Err("model has no subgraphs".into()),
    };
    if subgraphs.1 == 0 {
        return Err("model has no subgraphs".into());
    }
    let main = fb.deref(subgraphs.0)?;
    let ops = match fb.field_pos(main, 3)? {
        Some(p) => fb.vector(p)?,
        None => (0, 0),
    };
    let mut edgetpu_ops = 0;
    let mut custom_ops = Vec::new();
    for i in 0..ops.1 {
        let op = fb.deref(ops.0 + 4 * i)?;
        let idx = match fb.field_pos(op, 0)? {
            Some(p) => fb.u32(p)? as usize,
            None => 0,
        };
        let name = names.get(idx).ok_or_else(|| {
            format!(
                "operator {i} uses operator code {idx}, but the model has {}",
                names.len()
            )
        })?;
        if let Some(n) = name {
            if n == EDGETPU_CUSTOM_OP {
                edgetpu_ops += 1;
            }
            if !custom_ops.contains(n) {
                custom_ops.push(n.clone());
            }
        }
    }
    custom_ops.sort();
    Ok(GraphSummary {
        ops: ops.1,
        edgetpu_ops,
        custom_ops,
        input_batch_signature: input_batch_signature(&fb, main)?,
    })
}

/// Axis 0 of the `shape_signature` of subgraph `main`'s first input, if written.
fn input_batch_signature(fb: &Fb, main: usize) -> Result<Option<i32>, String> {
    let (Some(tensors), Some(inputs)) = (fb.field_pos(main, 0)?, fb.field_pos(main, 1)?) else {
        return Ok(None);
    };
    let (tensors, inputs) = (fb.vector(tensors)?, fb.vector(inputs)?);
    if inputs.1 == 0 {
        return Ok(None);
    }
    let idx = usize::try_from(fb.i32(inputs.0)?)
        .ok()
        .filter(|&i| i < tensors.1)
        .ok_or_else(|| "model damaged: input tensor index out of range".to_string())?;
    let tensor = fb.deref(tensors.0 + 4 * idx)?;
    let Some(sig) = fb.field_pos(tensor, 7)? else {
        return Ok(None);
    };
    let sig = fb.vector(sig)?;
    Ok(if sig.1 == 0 {
        None
    } else {
        Some(fb.i32(sig.0)?)
    })
}

/// A bounds-checked FlatBuffer reader over a byte slice.
struct Fb<'a>(&'a [u8]);

impl Fb<'_> {
    fn bytes<const N: usize>(&self, at: usize) -> Result<[u8; N], String> {
        at.checked_add(N)
            .and_then(|end| self.0.get(at..end))
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| format!("model truncated: read of {N} bytes at offset {at}"))
    }
    fn u8(&self, at: usize) -> Result<u8, String> {
        Ok(self.bytes::<1>(at)?[0])
    }
    fn u16(&self, at: usize) -> Result<u16, String> {
        Ok(u16::from_le_bytes(self.bytes(at)?))
    }
    fn u32(&self, at: usize) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.bytes(at)?))
    }
    fn i32(&self, at: usize) -> Result<i32, String> {
        Ok(i32::from_le_bytes(self.bytes(at)?))
    }
    /// Follows the unsigned offset stored at `at`.
    fn deref(&self, at: usize) -> Result<usize, String> {
        let off = self.u32(at)? as usize;
        at.checked_add(off)
            .filter(|&p| p < self.0.len())
            .ok_or_else(|| format!("model damaged: offset at {at} points outside the file"))
    }
    /// Position of field `slot` of the table at `table`, if present.
    fn field_pos(&self, table: usize, slot: usize) -> Result<Option<usize>, String> {
        let soff = i64::from(self.i32(table)?);
        let vt = table as i64 - soff;
        if vt < 0 {
            return Err(format!(
                "model damaged: vtable of table at {table} is outside"
            ));
        }
        let vt = vt as usize;
        let vt_len = usize::from(self.u16(vt)?);
        let entry = 4 + 2 * slot;
        if entry + 2 > vt_len {
            return Ok(None);
        }
        let off = usize::from(self.u16(vt + entry)?);
        Ok((off != 0).then_some(table + off))
    }
    /// (first element position, length) of the vector referenced at `at`.
    fn vector(&self, at: usize) -> Result<(usize, usize), String> {
        let v = self.deref(at)?;
        let len = self.u32(v)? as usize;
        if len > self.0.len() {
            return Err(format!(
                "model damaged: vector at {v} claims {len} elements"
            ));
        }
        Ok((v + 4, len))
    }
    fn string(&self, at: usize) -> Result<String, String> {
        let (start, len) = self.vector(at)?;
        let s = start
            .checked_add(len)
            .and_then(|end| self.0.get(start..end))
            .ok_or_else(|| format!("model damaged: string at {start} runs past the end"))?;
        Ok(String::from_utf8_lossy(s).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_what_is_not_a_model() {
        assert!(summarize(b"abc").unwrap_err().contains("too short"));
        assert!(summarize(b"\x08\0\0\0ONNXxxxxxxxx")
            .unwrap_err()
            .contains("not a TFLite model"));
    }

    #[test]
    fn truncated_model_is_an_error_not_a_panic() {
        // Root offset pointing far past the end.
        let buf = b"\xff\xff\0\0TFL3\0\0\0\0";
        assert!(summarize(buf).unwrap_err().contains("outside the file"));
        // Root table whose vtable offset points before the start.
        let buf = b"\x08\0\0\0TFL3\x40\0\0\0";
        assert!(summarize(buf).unwrap_err().contains("vtable"));
    }
}
