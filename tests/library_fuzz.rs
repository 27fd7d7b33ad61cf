//! Property tests: no `rollbook.toml`, `rollbook.lock` or bundle, however malformed, makes the
//! parsers panic (errors are the expected answer). `PROPTEST_CASES` raises the case count.

use std::path::Path;

use base64::Engine as _;
use proptest::prelude::*;
use rollbook::library::{Lock, Manifest, bundle, hash_entries};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Pieces of TOML that manifests and locks are made of, glued in random order with random
/// values, so cases reach past the TOML parser into validation.
fn toml_piece() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        Just("\"\"".to_string()),
        Just("\"1.0.0\"".to_string()),
        Just("\"^2.1\"".to_string()),
        Just("\"--upload-pack=x\"".to_string()),
        Just("\"https://h/x.git\"".to_string()),
        Just("\"git@h:x\"".to_string()),
        Just("\"file:///x\"".to_string()),
        Just("\"std\"".to_string()),
        Just("1".to_string()),
        Just("-1".to_string()),
        Just("4294967296".to_string()),
        Just("[]".to_string()),
        Just("{}".to_string()),
        Just("[\"ab\", 1]".to_string()),
        "\"[^\"\\\\]{0,12}\"".prop_map(|s| s),
        any::<i64>().prop_map(|n| n.to_string()),
    ];
    let key = prop_oneof![
        Just("name"),
        Just("version"),
        Just("description"),
        Just("git"),
        Just("path"),
        Just("rev"),
        Just("keys"),
        Just("source"),
        Just("commit"),
        Just("hash"),
        Just("x"),
    ];
    prop_oneof![
        Just("[library]".to_string()),
        Just("[dependencies]".to_string()),
        Just("[trust]".to_string()),
        Just("[[dependency]]".to_string()),
        Just("version = 1".to_string()),
        (key.clone(), value.clone()).prop_map(|(k, v)| format!("{k} = {v}")),
        ("[a-z_-]{1,6}", key.clone(), value.clone(), key, value)
            .prop_map(|(d, k1, v1, k2, v2)| format!("{d} = {{ {k1} = {v1}, {k2} = {v2} }}")),
        "[^\n]{0,20}",
    ]
}

fn toml_doc() -> impl Strategy<Value = String> {
    prop::collection::vec(toml_piece(), 0..14).prop_map(|lines| lines.join("\n"))
}

/// A valid bundle (optionally with a whole-bundle envelope whose signature is junk) to mutate.
fn valid_bundle() -> Vec<u8> {
    let files =
        [("rollbook.toml", &b"[library]\nname = \"app\"\nversion = \"1.0.0\"\n"[..]), ("go.rhai", &b"1"[..])];
    let hash = hash_entries(files.iter().map(|(p, b)| (*p, *b)));
    let encoded: serde_json::Map<String, serde_json::Value> =
        files.iter().map(|(p, b)| (p.to_string(), serde_json::json!(B64.encode(b)))).collect();
    serde_json::to_vec(&serde_json::json!({
        "format": "rollbook-bundle/1",
        "root": "app",
        "libraries": [{
            "key": "app", "name": "app", "version": "1.0.0", "description": "",
            "source": null, "commit": null, "hash": hash, "files": encoded
        }]
    }))
    .unwrap_or_default()
}

fn mutated(base: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = base.len().max(1);
    prop::collection::vec((0..len, any::<u8>(), 0u8..3), 1..8).prop_map(move |edits| {
        let mut bytes = base.clone();
        for (at, byte, how) in edits {
            let at = at.min(bytes.len());
            match how {
                0 if at < bytes.len() => bytes[at] = byte,
                1 => bytes.insert(at, byte),
                _ => bytes.truncate(at),
            }
        }
        bytes
    })
}

fn signed(inner: &[u8]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "format": "rollbook-signed-bundle/1",
        "key": "00".repeat(32),
        "signature": "11".repeat(64),
        "bundle": B64.encode(inner),
    }))
    .unwrap_or_default()
}

proptest! {
    #[test]
    fn manifests_never_panic(text in prop_oneof![toml_doc(), any::<String>()]) {
        let _ = Manifest::parse(Path::new("rollbook.toml"), &text);
    }

    #[test]
    fn locks_never_panic(text in prop_oneof![toml_doc(), any::<String>()]) {
        let _ = Lock::parse(Path::new("rollbook.lock"), &text);
    }

    #[test]
    fn bundles_never_panic(
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..256),
            mutated(valid_bundle()),
            mutated(signed(&valid_bundle())),
            mutated(valid_bundle()).prop_map(|b| signed(&b)),
        ],
        policy in prop_oneof![Just(Vec::new()), Just(vec!["00".repeat(32)])],
    ) {
        let _ = bundle::read(&bytes, &policy);
    }
}

#[test]
fn the_unmutated_bundle_reads_and_policies_apply() {
    let good = valid_bundle();
    let checked = bundle::read(&good, &[]).expect("a valid bundle reads");
    assert_eq!(checked.root, "app");
    let refused = bundle::read(&good, &["00".repeat(32)]).err().unwrap_or_default();
    assert!(refused.contains("not signed"), "{refused}");
    let junk = bundle::read(&signed(&good), &[]).err().unwrap_or_default();
    assert!(junk.contains("whole-bundle signature does not verify"), "{junk}");
}
