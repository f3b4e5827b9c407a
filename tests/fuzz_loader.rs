//! Fuzzing the model loader on stable Rust (proptest; cargo-fuzz needs nightly). Every input starts from the
//! tiny test model's three files and is mutated: bytes of the safetensors file flipped, inserted or cut;
//! its JSON header's shapes, dtypes and offsets rewritten; config.json's and scheduler_config.json's fields
//! replaced by hostile JSON values; the JSON texts' bytes mangled. Each case must give an `Error` or a model
//! whose schedule yields finite coefficients everywhere: a panic, or a model that loads and then divides by
//! zero, is a finding.
//!
//! Time-bounded: `FUZZ_SECONDS` (default 60, split between the targets) of fresh seeds; the figures are
//! printed (`cargo test --test fuzz_loader -- --nocapture`). A failing case is shrunk by proptest and saved
//! under `tests/fuzz-regressions/<target>-<hash>/` (the three files), and every folder there is replayed first.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ddpm_web::model::{check_model_address, CONFIG_FILE, SCHEDULER_FILE, WEIGHTS_FILE};
use ddpm_web::{Model, Variance};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use serde_json::Value;

const TINY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/models/tiny");
const REGRESSIONS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fuzz-regressions");

#[derive(Debug, Clone)]
struct Case {
    config: String,
    weights: Vec<u8>,
    scheduler: Option<String>,
}

fn tiny() -> Case {
    let read = |f: &str| std::fs::read(Path::new(TINY).join(f)).unwrap();
    Case {
        config: String::from_utf8(read(CONFIG_FILE)).unwrap(),
        weights: read(WEIGHTS_FILE),
        scheduler: Some(String::from_utf8(read(SCHEDULER_FILE)).unwrap()),
    }
}

/// What a loaded model must satisfy beyond "no panic": the numbers the samplers divide by are usable.
fn check_loaded(model: &Model) -> Result<(), String> {
    let s = model.schedule();
    let t = s.len();
    for i in [0, t / 2, t - 1] {
        for v in [Variance::Small, Variance::Large] {
            for clip in [false, true] {
                let c = s.step_coeffs(i, i as isize - 1, v, clip).map_err(|e| format!("step_coeffs({i}): {e}"))?;
                let all = [c.x0_x, c.x0_eps, c.to_x0, c.to_x, c.to_eps, c.to_z];
                if !all.iter().all(|x| x.is_finite()) {
                    return Err(format!("non-finite coefficients at t = {i}: {c:?}"));
                }
            }
        }
        if t > 1 && !s.log_snr(i).is_finite() {
            return Err(format!("log SNR at t = {i} is {}", s.log_snr(i)));
        }
    }
    let sizes = model.config.sizes();
    if sizes.parameters == 0 || sizes.largest_activation == 0 {
        return Err(format!("a loaded config implies an empty network: {sizes:?}"));
    }
    Ok(())
}

/// Loads a case as the page and the command do: Ok(whether it loaded), Err(text) for a panic or a bad model.
fn run_case(case: &Case) -> Result<bool, String> {
    let outcome = catch_unwind(AssertUnwindSafe(|| match Model::from_bytes(&case.config, &case.weights, case.scheduler.as_deref()) {
        Ok(model) => check_loaded(&model).map(|()| true),
        // Every error must be a sentence: Display must not panic and must say something.
        Err(e) if e.to_string().trim().is_empty() => Err(format!("an empty error message: {e:?}")),
        Err(_) => Ok(false),
    }));
    match outcome {
        Ok(r) => r,
        Err(p) => Err(format!("panic: {}", p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default())),
    }
}

fn save_regression(target: &str, case: &Case) -> PathBuf {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (&case.config, &case.weights, &case.scheduler).hash(&mut h);
    let dir = Path::new(REGRESSIONS).join(format!("{target}-{:016x}", h.finish()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(CONFIG_FILE), &case.config).unwrap();
    std::fs::write(dir.join(WEIGHTS_FILE), &case.weights).unwrap();
    if let Some(s) = &case.scheduler {
        std::fs::write(dir.join(SCHEDULER_FILE), s).unwrap();
    }
    dir
}

/// A JSON value meant to break whatever field it lands in: edges of every numeric type, wrong types, nesting.
fn hostile_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        prop_oneof![Just(0i64), Just(1), Just(-1), Just(2), Just(3), Just(4), Just(7), Just(8), Just(16), Just(1000), Just(65536), Just(i64::MAX), Just(i64::MIN), Just(u32::MAX as i64 + 1), any::<i64>()].prop_map(Value::from),
        Just(Value::from(u64::MAX)),
        prop_oneof![Just(0.0f64), Just(-0.0), Just(1e-300), Just(1e300), Just(0.5), Just(0.9999999), Just(1.0), Just(1.0000001), Just(-1e-4), Just(f64::MAX), Just(f64::MIN_POSITIVE), any::<f64>().prop_filter("JSON has no NaN or infinity", |x| x.is_finite())].prop_map(Value::from),
        prop_oneof![Just(String::new()), Just("linear".to_string()), Just("UpBlock2D".into()), Just("AttnDownBlock2D".into()), Just("squaredcos_cap_v2".into()), Just("scaled_linear".into()), "\\PC{0,12}"].prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 16, 4, |inner| prop::collection::vec(inner, 0..5).prop_map(Value::Array))
}

/// Replaces `k` of the object's fields (existing names mostly, sometimes a new one) with hostile values,
/// or removes them.
fn mutate_json(base: &'static str, keys: Vec<String>) -> impl Strategy<Value = String> {
    let key = prop_oneof![4 => prop::sample::select(keys), 1 => "[a-z_]{1,12}"];
    prop::collection::vec((key, prop::option::weighted(0.9, hostile_value())), 1..5).prop_map(move |edits| {
        let mut v: Value = serde_json::from_str(base).unwrap();
        let obj = v.as_object_mut().unwrap();
        for (k, val) in edits {
            match val {
                Some(x) => obj.insert(k, x),
                None => obj.remove(&k),
            };
        }
        v.to_string()
    })
}

/// Byte-level damage: overwrite, insert, cut.
fn mangle_bytes(base: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = base.len();
    let edit = prop_oneof![
        (0..len.max(1), any::<u8>()).prop_map(|(i, b)| (0u8, i, b)),
        (0..len + 1, any::<u8>()).prop_map(|(i, b)| (1u8, i, b)),
        (0..len + 1).prop_map(|i| (2u8, i, 0)),
    ];
    prop::collection::vec(edit, 1..6).prop_map(move |edits| {
        let mut b = base.clone();
        for (kind, i, byte) in edits {
            match kind {
                0 if i < b.len() => b[i] = byte,
                1 => b.insert(i.min(b.len()), byte),
                2 => b.truncate(i),
                _ => {}
            }
        }
        b
    })
}

/// The safetensors header with its tensors' shapes, dtypes and offsets rewritten, the data kept.
fn mutate_header(weights: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let n = u64::from_le_bytes(weights[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&weights[8..8 + n]).unwrap();
    let names: Vec<String> = header.as_object().unwrap().keys().filter(|k| *k != "__metadata__").cloned().collect();
    let data = weights[8 + n..].to_vec();
    let dim = prop_oneof![Just(0u64), Just(1), Just(2), Just(3), Just(8), Just(16), Just(1 << 31), Just(u32::MAX as u64), Just(u64::MAX), Just(u64::MAX / 2 + 1), any::<u64>()];
    let field = prop_oneof![
        prop::collection::vec(dim.clone(), 0..5).prop_map(|s| ("shape", Value::from(s))),
        prop_oneof![Just("F32"), Just("F16"), Just("BF16"), Just("I64"), Just("BOOL"), Just("F8_E4M3"), Just("U8"), Just("XYZ")].prop_map(|d| ("dtype", Value::from(d))),
        (dim.clone(), dim).prop_map(|(a, b)| ("data_offsets", Value::from(vec![a, b]))),
        hostile_value().prop_map(|v| ("shape", v)),
    ];
    let extra_len = prop_oneof![Just(0i64), Just(-1), Just(1), Just(-2), Just(7)];
    (prop::collection::vec((prop::sample::select(names), field), 1..4), extra_len).prop_map(move |(edits, extra)| {
        let mut h = header.clone();
        for (name, (f, v)) in edits {
            h[&name][f] = v;
        }
        let text = h.to_string();
        let declared = (text.len() as i64 + extra).max(0) as u64;
        let mut out = declared.to_le_bytes().to_vec();
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(&data);
        out
    })
}

struct Figures {
    cases: u64,
    loaded: u64,
}

/// Runs `strategy` with fresh seeds until `budget` is spent; a failure is shrunk, saved and reported.
fn fuzz<S: Strategy<Value = Case>>(target: &str, strategy: S, budget: Duration) -> Figures {
    let start = Instant::now();
    let mut figures = Figures { cases: 0, loaded: 0 };
    let mut round = 0u64;
    while start.elapsed() < budget {
        let seed: [u8; 32] = std::array::from_fn(|i| (round.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (8 * (i % 8))) as u8 ^ i as u8 ^ target.len() as u8);
        let config = Config { cases: 64, failure_persistence: None, max_shrink_iters: 2000, ..Config::default() };
        let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed));
        let loaded = std::cell::Cell::new(0u64);
        let result = runner.run(&strategy, |case| {
            let ok = run_case(&case).map_err(TestCaseError::fail)?;
            loaded.set(loaded.get() + ok as u64);
            Ok(())
        });
        figures.cases += 64;
        figures.loaded += loaded.get();
        if let Err(e) = result {
            let detail = match &e {
                proptest::test_runner::TestError::Fail(why, case) => format!("{why}; saved to {}", save_regression(target, case).display()),
                other => other.to_string(),
            };
            panic!("{target}: {detail}");
        }
        round += 1;
    }
    figures
}

fn budget() -> Duration {
    let secs = std::env::var("FUZZ_SECONDS").ok().and_then(|s| s.parse::<f64>().ok()).unwrap_or(60.0);
    Duration::from_secs_f64(secs / 5.0)
}

#[test]
fn replays_saved_regressions_and_the_tiny_model_loads() {
    // Adds: every crash the fuzzer ever found stays fixed, and the unmutated model is accepted (a loader that
    // refused everything would pass the fuzz targets).
    assert_eq!(run_case(&tiny()), Ok(true), "the tiny model loads");
    let Ok(dirs) = std::fs::read_dir(REGRESSIONS) else { return };
    for dir in dirs.flatten().map(|d| d.path()).filter(|p| p.is_dir()) {
        let base = tiny();
        let read = |f: &str| std::fs::read(dir.join(f)).ok();
        let case = Case {
            config: read(CONFIG_FILE).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or(base.config),
            weights: read(WEIGHTS_FILE).unwrap_or(base.weights),
            scheduler: read(SCHEDULER_FILE).map(|b| String::from_utf8_lossy(&b).into_owned()),
        };
        if let Err(e) = run_case(&case) {
            panic!("regression {}: {e}", dir.display());
        }
    }
}

#[test]
fn fuzz_the_loader() {
    // Adds: no panic and no unusable model from mutated weights, headers, configs and texts, within the budget.
    let budget = budget();
    let base = tiny();
    let config_keys: Vec<String> = serde_json::from_str::<Value>(&base.config).unwrap().as_object().unwrap().keys().cloned().collect();
    let sched_keys: Vec<String> = serde_json::from_str::<Value>(base.scheduler.as_deref().unwrap()).unwrap().as_object().unwrap().keys().cloned().collect();
    let (c, w, s) = (base.config.clone(), base.weights.clone(), base.scheduler.clone());
    let config_text: &'static str = Box::leak(c.clone().into_boxed_str());
    let sched_text: &'static str = Box::leak(s.clone().unwrap().into_boxed_str());

    let started = Instant::now();
    let mut report = Vec::new();
    let mut total = 0;
    let (c1, s1) = (c.clone(), s.clone());
    let f = fuzz("weights-bytes", mangle_bytes(w.clone()).prop_map(move |weights| Case { config: c1.clone(), weights, scheduler: s1.clone() }), budget);
    report.push(("weights bytes", f));
    let (c2, s2) = (c.clone(), s.clone());
    let f = fuzz("weights-header", mutate_header(w.clone()).prop_map(move |weights| Case { config: c2.clone(), weights, scheduler: s2.clone() }), budget);
    report.push(("safetensors header", f));
    let (w3, s3) = (w.clone(), s.clone());
    let f = fuzz("config-fields", mutate_json(config_text, config_keys).prop_map(move |config| Case { config, weights: w3.clone(), scheduler: s3.clone() }), budget);
    report.push(("config.json fields", f));
    let (c4, w4) = (c.clone(), w.clone());
    let f = fuzz(
        "scheduler-fields",
        (mutate_json(sched_text, sched_keys), any::<bool>()).prop_map(move |(s, keep)| Case { config: c4.clone(), weights: w4.clone(), scheduler: keep.then_some(s) }),
        budget,
    );
    report.push(("scheduler_config.json fields", f));
    let (w5, s5) = (w.clone(), s.clone());
    let f = fuzz(
        "json-bytes",
        (mangle_bytes(c.clone().into_bytes()), mangle_bytes(s.clone().unwrap().into_bytes()), any::<bool>()).prop_map(move |(cb, sb, which)| {
            let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
            if which { Case { config: text(cb), weights: w5.clone(), scheduler: s5.clone() } } else { Case { config: c.clone(), weights: w5.clone(), scheduler: Some(text(sb)) } }
        }),
        budget,
    );
    report.push(("JSON text bytes", f));
    println!("fuzzed the loader for {:.1} s:", started.elapsed().as_secs_f64());
    for (name, f) in &report {
        println!("  {name}: {} cases, {} loaded as valid models", f.cases, f.loaded);
        total += f.cases;
        assert!(f.cases > 0, "{name} ran");
    }
    println!("  total: {total} cases, no panic, no unusable model");
}

#[test]
fn fuzz_model_addresses() {
    // Adds: random strings never panic the address check, and nothing it accepts carries a scheme other than
    // http(s) once a browser has removed tabs and newlines.
    let mut runner = TestRunner::new(Config { cases: 2000, failure_persistence: None, ..Config::default() });
    let strategy = prop_oneof!["\\PC{0,24}", "[a-zA-Z\t\n ]{0,10}:[^ ]{0,10}", "(javascript|data|file|blob|http|https|JaVaScRiPt)\t?:.{0,8}"];
    runner
        .run(&strategy, |s| {
            let ok = catch_unwind(|| check_model_address(&s).is_ok()).map_err(|_| TestCaseError::fail("panic"))?;
            let seen: String = s.trim_matches(|c: char| c <= ' ').chars().filter(|c| !matches!(c, '\t' | '\n' | '\r')).collect::<String>().to_ascii_lowercase();
            for scheme in ["javascript:", "data:", "file:", "blob:"] {
                prop_assert!(!(ok && seen.starts_with(scheme)), "accepted {s:?}");
            }
            Ok(())
        })
        .unwrap();
}
