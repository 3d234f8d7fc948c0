//! `evaluate --engine v3` through the binary under test (`BINARY`: `referee-engine` here,
//! `ai-referee` from the root's `tests/engine_v2.rs`): the in-sample figures are those recomputed
//! from `decide --engine v3`, and the by-evening tables add up.

use serde_json::Value;

use crate::common::{fixture_arg, json_lines, lines, run_binary};

#[test]
fn evaluate_prints_the_by_evening_and_reliability_tables() {
    let all = lines("phrases.jsonl");
    let fixture = fixture_arg("phrases.jsonl");
    let decided = json_lines(&run_binary(&["decide", "--engine", "v3", "--phrases", &fixture]));
    let report: Value = serde_json::from_str(&run_binary(&["evaluate", "--engine", "v3", "--phrases", &fixture])).unwrap();
    assert_eq!(report["engine"], "v3");

    // In sample: the same agreements and sure calls as decide's output.
    let (mut n, mut agree, mut sure, mut sure_agree) = (0, 0, 0, 0);
    for (p, line) in all.iter().zip(&decided) {
        let Some(call) = p["referee_call"].as_str() else { continue };
        let d = &line["decision"];
        let ok = d["winner"].as_str() == Some(call);
        let is_sure = d["uncertain"] == false;
        n += 1;
        agree += u64::from(ok);
        sure += u64::from(is_sure);
        sure_agree += u64::from(ok && is_sure);
    }
    let overall = &report["in_sample"]["overall"];
    assert_eq!([&overall["n"], &overall["agree"], &overall["sure"], &overall["sure_agree"]], [n, agree, sure, sure_agree].map(Value::from).each_ref());
    let bands = report["in_sample"]["reliability"].as_array().unwrap();
    assert_eq!(bands.iter().map(|b| b["phrases"].as_u64().unwrap()).sum::<u64>(), n);

    // By evening: eleven session dates, each engine's column adds up to its overall figure, and
    // the legacy's is the 51 of 96.
    let b = &report["by_evening"];
    let evenings = b["evenings"].as_array().unwrap();
    assert_eq!(evenings.len(), 11, "{b}");
    assert_eq!(evenings.iter().map(|e| e["n"].as_u64().unwrap()).sum::<u64>(), 96);
    for engine in ["legacy", "advance_only", "v2", "v3"] {
        let total: u64 = evenings.iter().map(|e| e[engine].as_u64().unwrap()).sum();
        let o = &b["overall"][engine];
        assert_eq!(o["agree"].as_u64(), Some(total), "{engine}");
        assert_eq!(o["n"].as_u64(), Some(96));
        let (a, lo, hi) = (o["agreement"].as_f64().unwrap(), o["ci95"][0].as_f64().unwrap(), o["ci95"][1].as_f64().unwrap());
        assert!(lo < a && a < hi && hi - lo > 0.1, "{engine}: {o}");
    }
    assert_eq!(b["overall"]["legacy"]["agree"].as_u64(), Some(51));
    // The folds: one per evening, each fitted without it; the fit on all is the shipped one.
    assert_eq!(b["folds"].as_array().unwrap().len(), 11);
    assert_eq!(b["v3_fitted_on_all"]["ground_tie"], report["v3_params"]["ground_tie"]);
    let cv_bands = b["reliability"].as_array().unwrap();
    assert_eq!(cv_bands.iter().map(|b| b["phrases"].as_u64().unwrap()).sum::<u64>(), 96);
    let s = &b["v3_sure"];
    assert_eq!(s["n"].as_u64(), Some(96));
    assert!(s["sure_agree"].as_u64() <= s["sure"].as_u64());
    // Rules fired: v3's by its kept rules only, every phrase counted once.
    let rules = b["v3_rules"].as_array().unwrap();
    assert_eq!(rules.iter().map(|r| r["phrases"].as_u64().unwrap()).sum::<u64>(), 96);
    assert!(rules.iter().all(|r| r["rule"] != "beat" && r["rule"] != "parry"), "{rules:?}");
    // Each rule taken away or put back, by evening: the first variant is v3 itself.
    let ablations = b["ablations"].as_array().unwrap();
    assert_eq!(ablations.len(), 5);
    assert_eq!(ablations[0]["agreement"]["agree"], b["overall"]["v3"]["agree"], "{ablations:?}");
    assert_eq!(ablations[0]["sure"]["sure_agree"], s["sure_agree"]);
    assert!(ablations.iter().all(|a| a["agreement"]["n"] == 96), "{ablations:?}");
    let differs = ablations[1..].iter().filter(|a| a["agreement"]["agree"] != ablations[0]["agreement"]["agree"]).count();
    assert!(differs > 0, "taking a rule away or putting one back changed nothing: {ablations:?}");
}
