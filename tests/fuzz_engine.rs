//! Property tests: durations and params, as a person types them on the command line or in a
//! runbook, never panic; they parse or give an error. `PROPTEST_CASES` raises the case count.

use proptest::prelude::*;
use rollbook::engine::RunbookMeta;
use rollbook::model::parse_duration;

fn meta() -> RunbookMeta {
    let json = serde_json::json!({
        "name": "fuzz",
        "version": "1.0.0",
        "params": {
            "s": { "type": "string", "default_value": "x" },
            "i": { "type": "int", "default_value": 1 },
            "f": { "type": "float", "default_value": 1.5 },
            "b": { "type": "bool", "default_value": false },
            "d": { "type": "duration", "default_value": "5m" },
            "l": { "type": "list", "default_value": ["a"] },
        }
    });
    RunbookMeta::from_value(&json, "fuzz").expect("the fuzz metadata is valid")
}

proptest! {
    #[test]
    fn durations_parse_or_error(text in "\\PC{0,30}|[0-9.]{1,30}(ms|s|m|h|d)([0-9.]{1,30}(ms|s|m|h|d))?") {
        if let Ok(d) = parse_duration(&text) {
            prop_assert!(d <= rollbook::model::duration::MAX_DURATION);
        }
    }

    #[test]
    fn params_resolve_or_error(
        given in proptest::collection::vec(
            ("(s|i|f|b|d|l|x|\\PC{0,4})", "\\PC{0,20}|-?[0-9]{1,25}|[0-9.e+-]{1,12}|[0-9]{1,22}(s|m|h|d)|(true|false|yes)"),
            0..6,
        )
    ) {
        let meta = meta();
        if let Ok(values) = meta.resolve_params(&given) {
            prop_assert_eq!(values.len(), 6);
        }
    }

    #[test]
    fn runbook_metadata_from_any_json_never_panics(
        name in "\\PC{0,12}",
        version in "\\PC{0,12}|[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}",
        ty in "(string|int|float|bool|duration|list|\\PC{0,6})",
        default in "\\PC{0,12}|-?[0-9]{1,22}",
    ) {
        let json = serde_json::json!({
            "name": name, "version": version,
            "params": { "p": { "type": ty, "default_value": default } },
        });
        let _ = RunbookMeta::from_value(&json, "fuzz");
    }
}
