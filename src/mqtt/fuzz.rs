//! Randomised test of command parsing (a bounded fuzz run in `make test`; longer with
//! `EDGEBENCH_FUZZ_ITERS=...`, e.g. `make fuzz-commands`). Payloads come from a small
//! grammar of command-like JSON (known keys with values of every type, nesting,
//! control characters, huge numbers), then some are damaged byte-wise (truncated,
//! bytes flipped, invalid UTF-8 spliced in). Properties: nothing panics; every error
//! reply is flat JSON with a message; every accepted command honours the limits
//! (lists non-empty, bounded and free of repeats, batches in range, ids sane);
//! topic helpers never panic and never accept another board's tree.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value};

use super::messages::{parse, Command, Limits, Verb};
use super::topics::Topics;

const KEYS: &[&str] = &[
    "request_id",
    "sweep",
    "models",
    "batches",
    "eps",
    "threads",
    "precisions",
    "expires_at",
    "sweep_id",
    "all",
    "backend",
    "delegate",
    "exec",
];
const WORDS: &[&str] = &[
    "tiny_cnn",
    "@quick",
    "cpu",
    "cuda",
    "fp32",
    "fp16",
    "int8",
    "../etc/passwd",
    "/abs",
    ".hidden",
    "a\u{0}b",
    "é",
    "\u{202e}rtl",
    "",
    "quick",
    "x",
];

fn string(rng: &mut SmallRng) -> String {
    match rng.gen_range(0..6) {
        0 => WORDS[rng.gen_range(0..WORDS.len())].to_string(),
        1 => "a".repeat(rng.gen_range(0..300)),
        2 => (0..rng.gen_range(0..12))
            .map(|_| char::from_u32(rng.gen_range(0..0x3000)).unwrap_or('?'))
            .collect(),
        3 => format!("r{}", rng.gen::<u32>()),
        _ => WORDS[rng.gen_range(0..WORDS.len())].repeat(rng.gen_range(1..4)),
    }
}

fn number(rng: &mut SmallRng) -> Value {
    match rng.gen_range(0..7) {
        0 => Value::from(rng.gen_range(0..10u32)),
        1 => Value::from(rng.gen_range(0..5000u32)),
        2 => Value::from(-rng.gen_range(0..1000i64)),
        3 => Value::from(u64::MAX - rng.gen_range(0..3u64)),
        4 => Value::from(i64::MIN + rng.gen_range(0..3i64)),
        5 => serde_json::Number::from_f64(rng.gen::<f64>() * 1e12)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        _ => Value::from(1_767_000_000_000i64 + rng.gen_range(-10_000_000..10_000_000i64)),
    }
}

fn value(rng: &mut SmallRng, depth: u32) -> Value {
    match rng.gen_range(0..if depth > 2 { 4 } else { 7 }) {
        0 => Value::String(string(rng)),
        1 => number(rng),
        2 => Value::Bool(rng.gen()),
        3 => Value::Null,
        4 | 5 => {
            let max = if rng.gen_bool(0.1) { 300 } else { 8 };
            Value::Array(
                (0..rng.gen_range(0..max))
                    .map(|_| {
                        if rng.gen_bool(0.7) {
                            if rng.gen_bool(0.5) {
                                Value::String(string(rng))
                            } else {
                                number(rng)
                            }
                        } else {
                            value(rng, depth + 1)
                        }
                    })
                    .collect(),
            )
        }
        _ => Value::Object(object(rng, depth + 1)),
    }
}

fn object(rng: &mut SmallRng, depth: u32) -> Map<String, Value> {
    let mut m = Map::new();
    for _ in 0..rng.gen_range(0..8) {
        let k = if rng.gen_bool(0.85) {
            KEYS[rng.gen_range(0..KEYS.len())].to_string()
        } else {
            string(rng)
        };
        m.insert(k, value(rng, depth));
    }
    if rng.gen_bool(0.8) {
        m.insert("request_id".into(), Value::String(string(rng)));
    }
    m
}

/// A well-formed command with some fields, one of them perhaps replaced by junk.
fn near_valid(rng: &mut SmallRng) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("request_id".into(), format!("r{}", rng.gen::<u16>()).into());
    m.insert("sweep".into(), "quick".into());
    let pick = |rng: &mut SmallRng, from: &[&str]| -> Value {
        (0..rng.gen_range(1..5))
            .map(|_| Value::from(from[rng.gen_range(0..from.len())]))
            .collect()
    };
    if rng.gen_bool(0.5) {
        m.insert("models".into(), pick(rng, &["tiny_cnn", "@quick", "m2"]));
    }
    if rng.gen_bool(0.5) {
        m.insert("eps".into(), pick(rng, &["cpu", "cuda", "xnnpack"]));
    }
    if rng.gen_bool(0.5) {
        m.insert("precisions".into(), pick(rng, &["fp32", "fp16", "int8"]));
    }
    if rng.gen_bool(0.5) {
        let b: Vec<Value> = (0..rng.gen_range(1..6))
            .map(|_| Value::from(rng.gen_range(1..9u32)))
            .collect();
        m.insert("batches".into(), b.into());
    }
    if rng.gen_bool(0.5) {
        let t: Vec<Value> = (0..rng.gen_range(1..4))
            .map(|_| Value::from(rng.gen_range(0..9u32)))
            .collect();
        m.insert("threads".into(), t.into());
    }
    if rng.gen_bool(0.3) {
        let k = KEYS[rng.gen_range(0..KEYS.len())];
        m.insert(k.into(), value(rng, 1));
    }
    m
}

fn payload(rng: &mut SmallRng) -> Vec<u8> {
    let mut b = match rng.gen_range(0..10) {
        0..=4 => Value::Object(near_valid(rng)).to_string().into_bytes(),
        5..=8 => Value::Object(object(rng, 0)).to_string().into_bytes(),
        _ => value(rng, 0).to_string().into_bytes(),
    };
    if rng.gen_bool(0.6) {
        return b;
    }
    // Damage some of them.
    for _ in 0..rng.gen_range(0..4) {
        if b.is_empty() {
            break;
        }
        let i = rng.gen_range(0..b.len());
        match rng.gen_range(0..5) {
            0 => b.truncate(i),
            1 => b[i] = rng.gen(),
            2 => b.splice(i..i, [0xc3, 0x28, 0xff, 0xfe]).for_each(drop),
            3 => b.insert(i, b'"'),
            _ => {}
        }
    }
    b
}

fn check_list<T: PartialEq + std::fmt::Debug>(what: &str, l: &Option<Vec<T>>, max: usize) {
    if let Some(l) = l {
        assert!(!l.is_empty() && l.len() <= max, "{what}: {l:?}");
        for (i, x) in l.iter().enumerate() {
            assert!(!l[..i].contains(x), "{what} repeats {x:?}");
        }
    }
}

#[test]
fn command_parsing_survives_random_and_damaged_payloads() {
    let iters: u64 = std::env::var("EDGEBENCH_FUZZ_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4_000);
    let seed: u64 = std::env::var("EDGEBENCH_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed);
    let mut rng = SmallRng::seed_from_u64(seed);
    let topics = Topics::new("edgebench/v1", "board-1").unwrap();
    let (mut ok, mut err) = (0u64, 0u64);
    for i in 0..iters {
        let verb = if rng.gen_bool(0.9) {
            Verb::ALL[rng.gen_range(0..Verb::ALL.len())]
                .as_str()
                .to_string()
        } else {
            string(&mut rng)
        };
        let limits = Limits {
            max_payload_bytes: rng.gen_range(16..20_000),
            max_batches: rng.gen_range(1..64),
            max_batch: rng.gen_range(1..5000),
        };
        let p = payload(&mut rng);
        let now = 1_767_000_000_000;
        match parse(&verb, &p, &limits, now) {
            Ok(r) => {
                ok += 1;
                assert!(!r.request_id.is_empty() && r.request_id.len() <= 128);
                assert!(r.expires_at.is_none_or(|e| e > now), "case {i}");
                if let Command::SweepStart(a) = &r.command {
                    assert!(!a.sweep.is_empty());
                    check_list("models", &a.models, 64);
                    check_list("eps", &a.eps, 64);
                    check_list("threads", &a.threads, 64);
                    check_list("precisions", &a.precisions, 64);
                    check_list("batches", &a.batches, limits.max_batches);
                    if let Some(b) = &a.batches {
                        assert!(b.iter().all(|&x| x >= 1 && x <= limits.max_batch));
                    }
                    if let Some(m) = &a.models {
                        assert!(m.iter().all(|x| !x.contains('/') && !x.contains("..")));
                    }
                }
            }
            Err(reply) => {
                err += 1;
                assert!(!reply.ok(), "case {i}");
                assert!(!reply.message.is_empty(), "case {i}");
                let v: Value = serde_json::from_str(&reply.to_json("board-1", now))
                    .unwrap_or_else(|e| panic!("case {i}: reply is not JSON: {e}"));
                assert!(v.as_object().unwrap().values().all(|x| !x.is_object()));
            }
        }
        // Topic helpers on random topics.
        let t = String::from_utf8_lossy(&p[..p.len().min(80)]).into_owned();
        for topic in [t.clone(), format!("edgebench/v1/{t}"), format!("{t}/cmd/x")] {
            let _ = topics.command_verb(&topic);
            if topics.response_topic_allowed(&topic, &[]) {
                assert!(
                    !topic.starts_with("edgebench/v1/")
                        || topic.starts_with("edgebench/v1/board-1/reply"),
                    "{topic}"
                );
            }
        }
    }
    assert!(
        ok > iters / 50,
        "the grammar reaches valid commands: {ok} of {iters}"
    );
    assert!(err > iters / 10, "and invalid ones: {err} of {iters}");
}
