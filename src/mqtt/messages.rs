//! Command parsing and reply / state payloads (DESIGN.md section 6). Pure: no IO.
//!
//! A command arrives as `<p>/cmd/<verb>` with a JSON object carrying `request_id`.
//! [`parse`] turns it into a typed [`Request`] or an error [`Reply`] saying what was
//! wrong (and, when it could be read, which request it answers). Checks that need the
//! configuration or the model zoo (does the sweep exist? is the model known?) happen
//! in the daemon; the syntax and bounds are checked here.

use serde_json::{Map, Value};

use crate::config::{MAX_BATCH, MAX_THREADS};

/// Machine-readable outcome of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// Query answered.
    Ok,
    /// Sweep started now.
    Started,
    /// Sweep queued behind the running one.
    Queued,
    /// Cancellation requested.
    Cancelling,
    /// Not JSON, not an object, missing or bad `request_id`.
    BadRequest,
    /// Payload larger than `commands.max_payload_bytes`.
    TooLarge,
    UnknownVerb,
    UnknownSweep,
    UnknownModel,
    /// A field has the wrong type, an unknown name, or a value out of bounds.
    InvalidArgument,
    /// `expires_at` is in the past.
    Expired,
    /// The queue is full.
    Busy,
    /// `sweep-cancel` with nothing to cancel.
    NotRunning,
    /// A verb `[commands] fleet_verbs` does not allow on the fleet topic.
    NotAllowed,
    /// A command published with the retain flag: never acted on.
    Retained,
    /// The broker refused to take a record (ACL, quota, size); it went to the
    /// dead-letter file.
    PublishRefused,
    /// The daemon failed (store not writable...).
    Internal,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Ok => "ok",
            Code::Started => "started",
            Code::Queued => "queued",
            Code::Cancelling => "cancelling",
            Code::BadRequest => "bad_request",
            Code::TooLarge => "too_large",
            Code::UnknownVerb => "unknown_verb",
            Code::UnknownSweep => "unknown_sweep",
            Code::UnknownModel => "unknown_model",
            Code::InvalidArgument => "invalid_argument",
            Code::Expired => "expired",
            Code::Busy => "busy",
            Code::NotRunning => "not_running",
            Code::NotAllowed => "not_allowed",
            Code::Retained => "retained",
            Code::PublishRefused => "publish_refused",
            Code::Internal => "internal",
        }
    }

    /// Whether the reply carries `ok = true`.
    pub fn is_ok(self) -> bool {
        matches!(
            self,
            Code::Ok | Code::Started | Code::Queued | Code::Cancelling
        )
    }
}

/// A reply on `<p>/reply` (and the MQTT 5 response topic when one was given).
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The request answered; `None` when the payload was too broken to read it.
    pub request_id: Option<String>,
    pub code: Code,
    pub message: String,
    /// Extra flat fields (`sweep_id`, `total`, status values...).
    pub fields: Map<String, Value>,
}

impl Reply {
    pub fn new(request_id: Option<&str>, code: Code, message: impl Into<String>) -> Reply {
        Reply {
            request_id: request_id.map(str::to_string),
            code,
            message: message.into(),
            fields: Map::new(),
        }
    }

    /// Adds a flat field.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Reply {
        self.fields.insert(key.to_string(), value.into());
        self
    }

    pub fn ok(&self) -> bool {
        self.code.is_ok()
    }

    /// The flat JSON payload.
    pub fn to_json(&self, device_id: &str, ts_ms: i64) -> String {
        let mut m = Map::new();
        if let Some(id) = &self.request_id {
            m.insert("request_id".into(), id.clone().into());
        }
        m.insert("ok".into(), self.ok().into());
        m.insert("code".into(), self.code.as_str().into());
        m.insert("message".into(), self.message.clone().into());
        m.insert("device_id".into(), device_id.into());
        m.insert("ts".into(), ts_ms.into());
        for (k, v) in &self.fields {
            m.entry(k.clone()).or_insert_with(|| v.clone());
        }
        Value::Object(m).to_string()
    }
}

/// The command verbs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    SweepStart,
    SweepCancel,
    StatusGet,
    InfoGet,
}

impl Verb {
    pub const ALL: [Verb; 4] = [
        Verb::SweepStart,
        Verb::SweepCancel,
        Verb::StatusGet,
        Verb::InfoGet,
    ];

    pub fn parse(s: &str) -> Option<Verb> {
        Verb::ALL.into_iter().find(|v| v.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verb::SweepStart => "sweep-start",
            Verb::SweepCancel => "sweep-cancel",
            Verb::StatusGet => "status-get",
            Verb::InfoGet => "info-get",
        }
    }
}

/// Arguments of `sweep-start`: a named sweep, optionally narrowed. The same request
/// `edgebench run` builds from its flags (backend and delegate come from the sweep).
pub use crate::bench::plan::SweepRequest as SweepArgs;

/// A parsed command.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    SweepStart(SweepArgs),
    /// Cancels the running sweep (when `sweep_id` is given: only if it matches, or
    /// drops that sweep from the queue); `all` also empties the queue.
    SweepCancel {
        sweep_id: Option<String>,
        all: bool,
    },
    StatusGet,
    InfoGet,
}

/// A well-formed request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub request_id: String,
    /// Unix ms after which the command must not run.
    pub expires_at: Option<i64>,
    pub command: Command,
}

/// Bounds on commands (from `[commands]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub max_payload_bytes: usize,
    /// Most batch sizes in one command.
    pub max_batches: usize,
    /// Largest batch size in a command.
    pub max_batch: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_payload_bytes: 16 * 1024,
            max_batches: 16,
            max_batch: 256,
        }
    }
}

/// Longest list of models / eps / threads / precisions in one command.
const MAX_LIST: usize = 64;
/// Longest id or name accepted.
const MAX_NAME: usize = 128;
/// `expires_at` values below this are taken for seconds, not milliseconds (year 1973).
const MIN_EXPIRES_MS: i64 = 100_000_000_000;

/// Best effort: the `request_id` of a payload, whatever else is wrong with it.
pub fn peek_request_id(payload: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(payload).ok()?;
    let id = v.get("request_id")?.as_str()?;
    check_id(id).ok()?;
    Some(id.to_string())
}

/// Parses the command `verb` with its JSON `payload`, at time `now_ms`.
pub fn parse(verb: &str, payload: &[u8], limits: &Limits, now_ms: i64) -> Result<Request, Reply> {
    if payload.len() > limits.max_payload_bytes {
        return Err(Reply::new(
            peek_request_id(payload).as_deref(),
            Code::TooLarge,
            format!(
                "payload is {} bytes, above the limit of {} (commands.max_payload_bytes)",
                payload.len(),
                limits.max_payload_bytes
            ),
        ));
    }
    let bad = |m: String| Reply::new(None, Code::BadRequest, m);
    let text = std::str::from_utf8(payload).map_err(|_| bad("payload is not UTF-8".into()))?;
    let value: Value =
        serde_json::from_str(text).map_err(|e| bad(format!("payload is not valid JSON: {e}")))?;
    let Value::Object(mut obj) = value else {
        return Err(bad("payload must be a JSON object".into()));
    };
    let request_id = match obj.remove("request_id") {
        Some(Value::String(s)) => {
            check_id(&s).map_err(|m| bad(format!("`request_id`: {m}")))?;
            s
        }
        Some(_) => return Err(bad("`request_id` must be a string".into())),
        None => return Err(bad("`request_id` is missing".into())),
    };
    let rid = request_id.as_str();
    let err = |code: Code, m: String| Reply::new(Some(rid), code, m);

    let Some(verb) = Verb::parse(verb) else {
        let known: Vec<&str> = Verb::ALL.iter().map(|v| v.as_str()).collect();
        return Err(err(
            Code::UnknownVerb,
            format!("unknown command `{verb}` (known: {})", known.join(", ")),
        ));
    };

    let expires_at = match obj.remove("expires_at") {
        None => None,
        Some(v) => {
            let ms = v.as_i64().ok_or_else(|| {
                err(
                    Code::InvalidArgument,
                    "`expires_at` must be an integer (Unix milliseconds)".into(),
                )
            })?;
            if ms < MIN_EXPIRES_MS {
                return Err(err(
                    Code::InvalidArgument,
                    format!("`expires_at` {ms} is not Unix milliseconds (seconds?)"),
                ));
            }
            if ms <= now_ms {
                return Err(err(
                    Code::Expired,
                    format!(
                        "command expired {} ms ago (expires_at {ms}), not run",
                        now_ms - ms
                    ),
                ));
            }
            Some(ms)
        }
    };

    let mut f = Fields { obj, rid };
    let command = match verb {
        Verb::SweepStart => {
            let sweep = f.take("sweep", |v| string_of(v, check_sweep_name))?;
            let Some(sweep) = sweep else {
                return Err(err(
                    Code::InvalidArgument,
                    "`sweep` is missing (the name of a sweep from the configuration)".into(),
                ));
            };
            // `"batches": "auto"`: a knee search ([batch_search]) instead of a list.
            let batches = f.take("batches", |v| batches_of(v, limits))?;
            let batch_auto = matches!(batches, Some(Batches::Auto));
            let args = SweepArgs {
                sweep,
                models: f.take("models", |v| list_of(v, |x| string_of(x, check_model_name)))?,
                batches: match batches {
                    Some(Batches::List(b)) => Some(b),
                    _ => None,
                },
                eps: f.take("eps", |v| list_of(v, |x| string_of(x, check_ep_name)))?,
                threads: f.take("threads", threads_of)?,
                precisions: f.take("precisions", |v| {
                    list_of(v, |x| string_of(x, check_precision))
                })?,
                backend: None,
                delegate: None,
                batch_auto,
            };
            Command::SweepStart(args)
        }
        Verb::SweepCancel => Command::SweepCancel {
            sweep_id: f.take("sweep_id", |v| string_of(v, check_id))?,
            all: f
                .take("all", |v| v.as_bool().ok_or("must be true or false".into()))?
                .unwrap_or(false),
        },
        Verb::StatusGet => Command::StatusGet,
        Verb::InfoGet => Command::InfoGet,
    };
    f.finish(verb)?;
    Ok(Request {
        request_id,
        expires_at,
        command,
    })
}

/// The remaining fields of a command object, taken one by one.
struct Fields<'a> {
    obj: Map<String, Value>,
    rid: &'a str,
}

impl Fields<'_> {
    fn take<T>(
        &mut self,
        key: &str,
        conv: impl FnOnce(&Value) -> Result<T, String>,
    ) -> Result<Option<T>, Reply> {
        match self.obj.remove(key) {
            None => Ok(None),
            Some(v) => conv(&v).map(Some).map_err(|m| {
                Reply::new(
                    Some(self.rid),
                    Code::InvalidArgument,
                    format!("`{key}`: {m}"),
                )
            }),
        }
    }

    fn finish(self, verb: Verb) -> Result<(), Reply> {
        if let Some(k) = self.obj.keys().next() {
            return Err(Reply::new(
                Some(self.rid),
                Code::InvalidArgument,
                format!("unknown field `{k}` for `{}`", verb.as_str()),
            ));
        }
        Ok(())
    }
}

fn string_of(v: &Value, check: fn(&str) -> Result<(), String>) -> Result<String, String> {
    let s = v.as_str().ok_or("must be a string")?;
    check(s)?;
    Ok(s.to_string())
}

fn list_of<T: PartialEq>(
    v: &Value,
    item: impl Fn(&Value) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    let a = v.as_array().ok_or("must be a list")?;
    if a.is_empty() {
        return Err("must not be empty (leave it out to use the sweep's own)".into());
    }
    if a.len() > MAX_LIST {
        return Err(format!("{} entries, the limit is {MAX_LIST}", a.len()));
    }
    let mut out: Vec<T> = Vec::with_capacity(a.len());
    for x in a {
        let v = item(x)?;
        // Repeats are dropped: a list multiplies the plan, its duplicates must not.
        if !out.contains(&v) {
            out.push(v);
        }
    }
    Ok(out)
}

fn uint_of(v: &Value, what: &str) -> Result<u32, String> {
    v.as_u64()
        .and_then(|x| u32::try_from(x).ok())
        .ok_or_else(|| format!("{what} must be a non-negative integer, got {v}"))
}

/// `batches`: a list of sizes or `"auto"`.
enum Batches {
    List(Vec<u32>),
    Auto,
}

fn batches_of(v: &Value, limits: &Limits) -> Result<Batches, String> {
    if v.as_str() == Some("auto") {
        return Ok(Batches::Auto);
    }
    let a = v
        .as_array()
        .ok_or("must be a list of batch sizes or \"auto\"")?;
    if a.is_empty() {
        return Err("must not be empty (leave it out to use the sweep's own)".into());
    }
    if a.len() > limits.max_batches {
        return Err(format!(
            "{} batch sizes, the limit is {} (commands.max_batches)",
            a.len(),
            limits.max_batches
        ));
    }
    let max = limits.max_batch.min(MAX_BATCH);
    let mut out = Vec::with_capacity(a.len());
    for x in a {
        let b = uint_of(x, "a batch size")?;
        if b == 0 || b > max {
            return Err(format!(
                "batch size {b} is outside 1..={max} (commands.max_batch)"
            ));
        }
        if !out.contains(&b) {
            out.push(b);
        }
    }
    Ok(Batches::List(out))
}

fn threads_of(v: &Value) -> Result<Vec<u32>, String> {
    list_of(v, |x| {
        let t = uint_of(x, "a thread count")?;
        if t > MAX_THREADS {
            return Err(format!("thread count {t} is above {MAX_THREADS}"));
        }
        Ok(t)
    })
}

fn check_id(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > MAX_NAME {
        return Err(format!("must be 1 to {MAX_NAME} characters"));
    }
    if s.chars().any(|c| c.is_control()) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

fn check_sweep_name(s: &str) -> Result<(), String> {
    if s.is_empty()
        || s.len() > 64
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(format!(
            "sweep name `{}` must be 1 to 64 of a-z, A-Z, 0-9, - and _",
            s.escape_debug()
        ));
    }
    Ok(())
}

/// Model names are manifest names or a named set (`@quick`); never a path.
fn check_model_name(s: &str) -> Result<(), String> {
    let name = s.strip_prefix('@').unwrap_or(s);
    if s.contains('/') || s.contains('\\') || s.contains("..") || name.starts_with('.') {
        return Err(format!(
            "model name `{}` reaches outside the model directory (give a name from the manifest, not a path)",
            s.escape_debug()
        ));
    }
    if name.is_empty()
        || s.len() > MAX_NAME
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
    {
        return Err(format!(
            "model name `{}` must be 1 to {MAX_NAME} of a-z, A-Z, 0-9, - and _",
            s.escape_debug()
        ));
    }
    Ok(())
}

fn check_ep_name(s: &str) -> Result<(), String> {
    if s.is_empty()
        || s.len() > 32
        || !s
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(format!(
            "execution provider `{}` must be 1 to 32 of a-z, 0-9 and _",
            s.escape_debug()
        ));
    }
    Ok(())
}

fn check_precision(s: &str) -> Result<(), String> {
    match s {
        "fp32" | "fp16" | "int8" => Ok(()),
        other => Err(format!(
            "unknown precision `{}` (fp32, fp16, int8)",
            other.escape_debug()
        )),
    }
}

/// The retained `<p>/sweep/state` payload: flat progress.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SweepState {
    /// `idle`, `running`, `cancelling`, `done`, `cancelled`, `interrupted`, `failed`.
    pub state: String,
    pub sweep: Option<String>,
    pub sweep_id: Option<String>,
    pub request_id: Option<String>,
    pub done: usize,
    pub total: usize,
    /// The configuration running now, e.g. `mobilenet_v2 ort/cpu fp32 b4 t0`.
    pub current: Option<String>,
    pub eta_s: Option<f64>,
    /// Sweeps waiting behind this one.
    pub queued: usize,
    pub error: Option<String>,
}

impl SweepState {
    pub fn idle() -> SweepState {
        SweepState {
            state: "idle".into(),
            ..Default::default()
        }
    }

    /// The flat JSON payload (absent values are absent keys).
    pub fn to_json(&self, device_id: &str, ts_ms: i64) -> String {
        let mut m = Map::new();
        m.insert("ts".into(), ts_ms.into());
        m.insert("device_id".into(), device_id.into());
        m.insert("state".into(), self.state.clone().into());
        let mut opt = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                m.insert(k.into(), v.clone().into());
            }
        };
        opt("sweep", &self.sweep);
        opt("sweep_id", &self.sweep_id);
        opt("request_id", &self.request_id);
        opt("current", &self.current);
        opt("error", &self.error);
        m.insert("done".into(), self.done.into());
        m.insert("total".into(), self.total.into());
        m.insert("queued".into(), self.queued.into());
        if let Some(e) = self.eta_s.filter(|e| e.is_finite()) {
            m.insert("eta_s".into(), ((e * 10.0).round() / 10.0).into());
        }
        Value::Object(m).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_767_000_000_000;

    fn p(verb: &str, payload: &str) -> Result<Request, Reply> {
        parse(verb, payload.as_bytes(), &Limits::default(), NOW)
    }

    fn code(verb: &str, payload: &str) -> Code {
        match p(verb, payload) {
            Ok(r) => panic!("expected an error for {payload}, got {r:?}"),
            Err(r) => r.code,
        }
    }

    #[test]
    fn batches_auto_asks_for_a_knee_search() {
        match p(
            "sweep-start",
            r#"{"request_id": "r1", "sweep": "quick", "batches": "auto"}"#,
        )
        .unwrap()
        .command
        {
            Command::SweepStart(a) => {
                assert!(a.batch_auto);
                assert_eq!(a.batches, None);
            }
            c => panic!("{c:?}"),
        }
        for bad in [r#""Auto""#, r#""auto,1""#, r#"["auto"]"#, r#""""#] {
            let payload = format!(r#"{{"request_id": "r1", "sweep": "quick", "batches": {bad}}}"#);
            assert_eq!(
                code("sweep-start", &payload),
                Code::InvalidArgument,
                "{bad}"
            );
        }
    }

    #[test]
    fn parses_the_issue_example() {
        let r = p(
            "sweep-start",
            r#"{"request_id": "r1", "sweep": "quick", "models": ["mobilenet_v2"], "batches": [1, 4], "expires_at": 1767225600000}"#,
        )
        .unwrap();
        assert_eq!(r.request_id, "r1");
        assert_eq!(r.expires_at, Some(1_767_225_600_000));
        assert_eq!(
            r.command,
            Command::SweepStart(SweepArgs {
                sweep: "quick".into(),
                models: Some(vec!["mobilenet_v2".into()]),
                batches: Some(vec![1, 4]),
                ..Default::default()
            })
        );
    }

    #[test]
    fn other_verbs() {
        assert_eq!(
            p("status-get", r#"{"request_id":"a"}"#).unwrap().command,
            Command::StatusGet
        );
        assert_eq!(
            p("info-get", r#"{"request_id":"a"}"#).unwrap().command,
            Command::InfoGet
        );
        assert_eq!(
            p("sweep-cancel", r#"{"request_id":"a","all":true}"#)
                .unwrap()
                .command,
            Command::SweepCancel {
                sweep_id: None,
                all: true
            }
        );
    }

    #[test]
    fn broken_payloads_are_bad_requests() {
        assert_eq!(code("status-get", "{"), Code::BadRequest);
        assert_eq!(code("status-get", "[1]"), Code::BadRequest);
        assert_eq!(code("status-get", "{}"), Code::BadRequest);
        assert_eq!(code("status-get", r#"{"request_id": 5}"#), Code::BadRequest);
        assert_eq!(
            code("status-get", r#"{"request_id": ""}"#),
            Code::BadRequest
        );
        let e = parse("status-get", &[0xff, 0xfe], &Limits::default(), NOW).unwrap_err();
        assert_eq!(e.code, Code::BadRequest);
        assert!(e.request_id.is_none());
    }

    #[test]
    fn unknown_verb_names_the_known_ones_and_keeps_the_request_id() {
        let e = p("reboot", r#"{"request_id":"x"}"#).unwrap_err();
        assert_eq!(e.code, Code::UnknownVerb);
        assert_eq!(e.request_id.as_deref(), Some("x"));
        assert!(e.message.contains("sweep-start"), "{}", e.message);
    }

    #[test]
    fn oversized_payload_is_refused_before_parsing() {
        let big = format!(r#"{{"request_id":"x","pad":"{}"}}"#, "a".repeat(20_000));
        let e = p("status-get", &big).unwrap_err();
        assert_eq!(e.code, Code::TooLarge);
        assert_eq!(
            e.request_id.as_deref(),
            Some("x"),
            "still says which request"
        );
    }

    #[test]
    fn expiry() {
        assert_eq!(
            code(
                "sweep-start",
                &format!(
                    r#"{{"request_id":"x","sweep":"q","expires_at":{}}}"#,
                    NOW - 1
                )
            ),
            Code::Expired
        );
        assert_eq!(
            code(
                "sweep-start",
                r#"{"request_id":"x","sweep":"q","expires_at":1767225600}"#
            ),
            Code::InvalidArgument
        );
        assert_eq!(
            code(
                "sweep-start",
                r#"{"request_id":"x","sweep":"q","expires_at":"soon"}"#
            ),
            Code::InvalidArgument
        );
    }

    #[test]
    fn hostile_sweep_arguments_are_refused_with_the_field_named() {
        let cases = [
            r#"{"request_id":"x"}"#,
            r#"{"request_id":"x","sweep":"../etc"}"#,
            r#"{"request_id":"x","sweep":"q","models":["../../etc/passwd"]}"#,
            r#"{"request_id":"x","sweep":"q","models":["/etc/passwd"]}"#,
            r#"{"request_id":"x","sweep":"q","models":[".hidden"]}"#,
            r#"{"request_id":"x","sweep":"q","models":["a\u0000b"]}"#,
            r#"{"request_id":"x","sweep":"q","models":"resnet50"}"#,
            r#"{"request_id":"x","sweep":"q","models":[]}"#,
            r#"{"request_id":"x","sweep":"q","batches":[0]}"#,
            r#"{"request_id":"x","sweep":"q","batches":[-1]}"#,
            r#"{"request_id":"x","sweep":"q","batches":[1.5]}"#,
            r#"{"request_id":"x","sweep":"q","batches":["4"]}"#,
            r#"{"request_id":"x","sweep":"q","batches":[100000]}"#,
            r#"{"request_id":"x","sweep":"q","batches":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]}"#,
            r#"{"request_id":"x","sweep":"q","threads":[99999]}"#,
            r#"{"request_id":"x","sweep":"q","precisions":["fp64"]}"#,
            r#"{"request_id":"x","sweep":"q","eps":["CUDA;rm -rf"]}"#,
            r#"{"request_id":"x","sweep":"q","shell":"true"}"#,
        ];
        for c in cases {
            let e = p("sweep-start", c).unwrap_err();
            assert_eq!(e.code, Code::InvalidArgument, "{c}: {}", e.message);
            assert_eq!(e.request_id.as_deref(), Some("x"));
            assert!(e.message.contains('`'), "names the field: {}", e.message);
        }
        let e = p(
            "sweep-start",
            r#"{"request_id":"x","sweep":"q","models":["../x"]}"#,
        )
        .unwrap_err();
        assert!(
            e.message.contains("outside the model directory"),
            "{}",
            e.message
        );
    }

    #[test]
    fn repeated_list_entries_are_dropped() {
        let r = p(
            "sweep-start",
            r#"{"request_id":"x","sweep":"q","models":["a","b","a"],"batches":[1,1,2,1],"threads":[0,0],"precisions":["fp32","fp32"],"eps":["cpu","cpu"]}"#,
        )
        .unwrap();
        let Command::SweepStart(a) = r.command else {
            panic!()
        };
        assert_eq!(a.models.unwrap(), vec!["a", "b"]);
        assert_eq!(a.batches.unwrap(), vec![1, 2]);
        assert_eq!(a.threads.unwrap(), vec![0]);
        assert_eq!(a.precisions.unwrap(), vec!["fp32"]);
        assert_eq!(a.eps.unwrap(), vec!["cpu"]);
    }

    #[test]
    fn model_sets_are_names() {
        let r = p(
            "sweep-start",
            r#"{"request_id":"x","sweep":"q","models":["@quick","resnet50_int8"]}"#,
        )
        .unwrap();
        let Command::SweepStart(a) = r.command else {
            panic!()
        };
        assert_eq!(a.models.unwrap(), vec!["@quick", "resnet50_int8"]);
    }

    #[test]
    fn peeks_request_ids() {
        assert_eq!(
            peek_request_id(br#"{"request_id":"r9","x":1}"#).as_deref(),
            Some("r9")
        );
        assert_eq!(peek_request_id(b"{"), None);
    }

    #[test]
    fn reply_and_state_are_flat_json() {
        let r = Reply::new(Some("r1"), Code::Started, "go").with("sweep_id", "s1");
        let v: Value = serde_json::from_str(&r.to_json("dev", 5)).unwrap();
        assert_eq!(v["ok"], true);
        assert_eq!(v["code"], "started");
        assert_eq!(v["request_id"], "r1");
        assert_eq!(v["sweep_id"], "s1");
        let e = Reply::new(None, Code::BadRequest, "no");
        let v: Value = serde_json::from_str(&e.to_json("dev", 5)).unwrap();
        assert_eq!(v["ok"], false);
        assert!(v.get("request_id").is_none());

        let s = SweepState {
            state: "running".into(),
            done: 1,
            total: 4,
            eta_s: Some(12.345),
            current: Some("m b1".into()),
            ..Default::default()
        };
        let v: Value = serde_json::from_str(&s.to_json("dev", 7)).unwrap();
        assert_eq!(v["eta_s"], 12.3);
        assert_eq!(v["done"], 1);
        assert!(v.get("sweep_id").is_none());
        assert!(v
            .as_object()
            .unwrap()
            .values()
            .all(|x| !x.is_object() && !x.is_array()));
    }
}
