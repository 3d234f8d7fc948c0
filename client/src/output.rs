//! What the client prints: JSON with its keys sorted and indented by two spaces, as the legacy
//! uploader's `json.dumps(..., indent=2, sort_keys=True)` did.

use serde_json::{Map, Value};

/// `value` with every object's keys in sorted order (whatever map serde_json was built with).
pub fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect::<Map<_, _>>())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// The text printed for `value`.
pub fn pretty(value: Value) -> String {
    serde_json::to_string_pretty(&sorted(value)).expect("a serde_json::Value always serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_out_sorted_at_every_depth() {
        let v: Value = serde_json::from_str(r#"{"b": 1, "a": {"z": [ {"y": 1, "x": 2} ], "c": null}}"#).unwrap();
        assert_eq!(pretty(v), "{\n  \"a\": {\n    \"c\": null,\n    \"z\": [\n      {\n        \"x\": 2,\n        \"y\": 1\n      }\n    ]\n  },\n  \"b\": 1\n}");
    }
}
