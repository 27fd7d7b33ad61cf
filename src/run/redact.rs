//! The one place secrets are taken out of everything a run writes or shows: secret param values
//! (as given and URL-encoded), values under secret-looking keys, and the query strings and
//! user info of URLs. The journal, reports, errors and terminal lines all pass through it.

use std::borrow::Cow;
use std::sync::{OnceLock, RwLock};

use serde_json::Value;

use super::journal::Event;

/// What replaces a secret.
pub const MASK: &str = "***";

/// Removes known secret values, secret-keyed values and URL credentials from text and JSON.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Secret texts to mask, longest first (so a secret containing another is masked whole).
    secrets: Vec<String>,
}

/// The words that make a key secret, in any letter case (lowercase here).
const SECRET_WORDS: &[&str] =
    &["authorization", "token", "password", "secret", "apikey", "api_key", "api-key", "credential", "cookie"];

/// Whether a key names something that must never be written down.
pub fn is_secret_key(key: &str) -> bool {
    // Asked of every key of every call's arguments and output: no lowercase copy of the key.
    has_secret_word(key)
}

/// Whether `text` holds any of the secret words in any letter case, in one pass: only the
/// words that start with a byte's letter are compared there (keys are checked by the thousand,
/// and a fleet stage's value is hundreds of kilobytes of JSON).
fn has_secret_word(text: &str) -> bool {
    let by_letter = words_by_first_letter();
    let bytes = text.as_bytes();
    bytes.iter().enumerate().any(|(i, b)| {
        let rest = &bytes[i..];
        by_letter[b.to_ascii_lowercase() as usize]
            .iter()
            .any(|w| rest.len() >= w.len() && rest[..w.len()].eq_ignore_ascii_case(w.as_bytes()))
    })
}

/// [`SECRET_WORDS`] by their first byte: entry `b` holds the words that start with `b`.
fn words_by_first_letter() -> &'static [Vec<&'static str>] {
    static BY_LETTER: OnceLock<Vec<Vec<&'static str>>> = OnceLock::new();
    BY_LETTER.get_or_init(|| {
        let mut by_letter = vec![Vec::new(); 256];
        for w in SECRET_WORDS {
            by_letter[w.as_bytes()[0] as usize].push(*w);
        }
        by_letter
    })
}

impl Redactor {
    /// A redactor for these secret values (empty ones are ignored); each is also masked in its
    /// URL-encoded forms (`%20` and `+` for spaces).
    pub fn new<I, S>(values: I) -> Redactor
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut r = Redactor::default();
        r.add(values);
        r
    }

    /// Adds secret values.
    pub fn add<I, S>(&mut self, values: I)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for v in values {
            let v = v.as_ref();
            if v.is_empty() {
                continue;
            }
            let path =
                percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC).to_string();
            let form = path.replace("%20", "+");
            let lower_form = form.to_ascii_lowercase_hex();
            for s in [v.to_string(), path.to_ascii_lowercase_hex(), path, lower_form, form] {
                if !self.secrets.contains(&s) {
                    self.secrets.push(s);
                }
            }
        }
        self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }

    /// Whether there is nothing to mask but keys and URLs.
    pub fn has_secrets(&self) -> bool {
        !self.secrets.is_empty()
    }

    /// `text` with every secret value masked and URL credentials and queries removed.
    pub fn text(&self, text: &str) -> String {
        self.clean(text).into_owned()
    }

    /// [`Redactor::text`], borrowing `text` when nothing in it is masked or removed (the
    /// common case, for every string a call's arguments and output carry).
    pub fn clean<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = strip_urls_cow(text);
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = Cow::Owned(out.replace(s.as_str(), MASK));
            }
        }
        out
    }

    /// Redacts a JSON value in place: secret-keyed values, secret values in every string.
    pub fn value(&self, value: &mut Value) {
        match value {
            Value::Object(map) => {
                for (key, v) in map.iter_mut() {
                    if is_secret_key(key) && !v.is_null() {
                        *v = Value::String(MASK.into());
                    } else {
                        self.value(v);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.value(v)),
            Value::String(s) => {
                if let Cow::Owned(clean) = self.clean(s)
                    && clean != *s
                {
                    *s = clean;
                }
            }
            _ => {}
        }
    }

    fn opt_text(&self, text: &mut Option<String>) {
        if let Some(t) = text {
            *t = self.text(t);
        }
    }

    /// Redacts JSON kept as text. Text with nothing in it that could need masking (no
    /// secret-looking word anywhere, no URL, no secret value) is left as it is, without being
    /// parsed: a fleet stage's value is large, and almost always clean.
    pub fn raw(&self, raw: &mut Box<serde_json::value::RawValue>) {
        let text = raw.get();
        let maybe_secret_word = has_secret_word(text);
        // A secret appears in JSON text in its escaped form (a quote or a newline in it is escaped).
        let maybe_secret_value = self.secrets.iter().any(|s| {
            let quoted = serde_json::to_string(s).unwrap_or_default();
            text.contains(quoted.trim_matches('"'))
        });
        if !maybe_secret_word && !maybe_secret_value && !text.contains("://") {
            return;
        }
        let Ok(mut value) = serde_json::from_str::<Value>(text) else {
            // Not JSON (never written so): nothing of it is kept rather than something unmasked.
            if let Ok(masked) = serde_json::value::to_raw_value(MASK) {
                *raw = masked;
            }
            return;
        };
        self.value(&mut value);
        if let Ok(clean) = serde_json::value::to_raw_value(&value) {
            *raw = clean;
        }
    }

    /// Redacts every text and value an event carries.
    pub fn event(&self, event: &mut Event) {
        match event {
            Event::RunStarted { params, .. } => self.value(params),
            Event::StageStarted { stage } | Event::UndoStarted { stage } => *stage = self.text(stage),
            Event::StageFinished { stage, value, error, .. } => {
                *stage = self.text(stage);
                if let Some(v) = value {
                    self.raw(v);
                }
                self.opt_text(error);
            }
            Event::CallStarted { target, args, stage, .. } => {
                self.opt_text(target);
                self.value(args);
                self.opt_text(stage);
            }
            Event::CallFinished { output, error, .. } => {
                if let Some(v) = output {
                    self.value(v);
                }
                if let Some(e) = error {
                    e.message = self.text(&e.message);
                    self.opt_text(&mut e.target);
                }
            }
            Event::CallPlanned { target, args, effect, stage, .. } => {
                self.opt_text(target);
                self.value(args);
                *effect = self.text(effect);
                self.opt_text(stage);
            }
            Event::CallVerified { output, detail, .. } => {
                if let Some(v) = output {
                    self.value(v);
                }
                *detail = self.text(detail);
            }
            Event::Refused { target, reason, .. } => {
                self.opt_text(target);
                *reason = self.text(reason);
            }
            Event::ParallelItem { error, .. } => self.opt_text(error),
            Event::Replayed { what } => *what = self.text(what),
            Event::Log { message, .. } => *message = self.text(message),
            Event::Approval { message, .. } => *message = self.text(message),
            Event::UndoFinished { stage, error, .. } => {
                *stage = self.text(stage);
                self.opt_text(error);
            }
            Event::RunFinished { error, undo_pending, .. } => {
                self.opt_text(error);
                for u in undo_pending.iter_mut() {
                    *u = self.text(u);
                }
            }
            Event::RunResumed { .. } => {}
            #[allow(unreachable_patterns)]
            _ => {}
        }
    }
}

trait LowerHex {
    fn to_ascii_lowercase_hex(&self) -> String;
}

impl LowerHex for String {
    /// The same percent-encoding with lowercase hex digits (`%2f`), as some clients write it.
    fn to_ascii_lowercase_hex(&self) -> String {
        let mut out = String::with_capacity(self.len());
        let mut chars = self.chars();
        while let Some(c) = chars.next() {
            out.push(c);
            if c == '%' {
                for _ in 0..2 {
                    if let Some(h) = chars.next() {
                        out.push(h.to_ascii_lowercase());
                    }
                }
            }
        }
        out
    }
}

/// `text` with the user info (`user:pass@`) and the query string of every `http(s)://` URL in it
/// removed; the fragment goes with the query.
pub fn strip_urls(text: &str) -> String {
    strip_urls_cow(text).into_owned()
}

/// [`strip_urls`], borrowing `text` when it holds no URL.
fn strip_urls_cow(text: &str) -> Cow<'_, str> {
    if !text.contains("://") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = find_scheme(rest) {
        out.push_str(&rest[..at]);
        let url_and_more = &rest[at..];
        let end = url_and_more
            .find(|c: char| {
                c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '<' | '>' | ')' | ']' | '}' | ',')
            })
            .unwrap_or(url_and_more.len());
        out.push_str(&clean_url(&url_and_more[..end]));
        rest = &url_and_more[end..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Where the first `http://` or `https://` (in any letter case) starts.
fn find_scheme(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(i) = text[from..].find("://") {
        let at = from + i;
        for scheme in [&b"https"[..], &b"http"[..]] {
            if at >= scheme.len() && bytes[at - scheme.len()..at].eq_ignore_ascii_case(scheme) {
                return Some(at - scheme.len());
            }
        }
        from = at + 3;
    }
    None
}

fn clean_url(url: &str) -> String {
    let Some(sep) = url.find("://") else { return url.to_string() };
    let (scheme, rest) = url.split_at(sep + 3);
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let host = match authority.rfind('@') {
        Some(at) => &authority[at + 1..],
        None => authority,
    };
    let path = match path.find(['?', '#']) {
        Some(q) => &path[..q],
        None => path,
    };
    format!("{scheme}{host}{path}")
}

/// Read by every terminal line (fifty `parallel` threads at once in a fleet run), written once
/// per run: a read-write lock, so lines never queue behind each other.
fn global() -> &'static RwLock<Redactor> {
    static GLOBAL: OnceLock<RwLock<Redactor>> = OnceLock::new();
    GLOBAL.get_or_init(|| RwLock::new(Redactor::default()))
}

/// Adds a run's secrets to the process-wide redactor that terminal output goes through (a
/// process keeps every secret it has seen: masking too much is safe, too little is not).
pub fn register(redactor: &Redactor) {
    let mut g = global().write().unwrap_or_else(|poisoned| poisoned.into_inner());
    g.add(redactor.secrets.clone());
}

/// `text` through the process-wide redactor (for errors and terminal lines). A lock poisoned by
/// a panic elsewhere still holds every secret: they are masked all the same.
pub fn scrub(text: &str) -> String {
    global().read().unwrap_or_else(|poisoned| poisoned.into_inner()).text(text)
}

/// [`scrub`] of a line already owned: not copied when nothing in it is masked.
pub fn scrub_owned(text: String) -> String {
    match global().read().unwrap_or_else(|poisoned| poisoned.into_inner()).clean(&text) {
        Cow::Borrowed(_) => text,
        Cow::Owned(clean) => clean,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_text_is_masked_even_after_a_panic_poisoned_the_process_wide_redactor() {
        register(&Redactor::new(["s3cr3t-after-poison"]));
        // A thread that panics while it holds the lock poisons it.
        let _ = std::thread::spawn(|| {
            let _held = global().write();
            panic!("poisons the process-wide redactor (expected in this test)");
        })
        .join();
        assert!(global().is_poisoned());
        assert_eq!(scrub("token s3cr3t-after-poison here"), "token *** here");
        register(&Redactor::new(["another-s3cr3t"]));
        assert_eq!(scrub("another-s3cr3t"), "***");
    }

    /// The scheme is found without a lowercase copy of the text, where the copy found it.
    #[test]
    fn a_url_is_found_where_a_lowercase_copy_finds_it() {
        fn with_copy(text: &str) -> Option<usize> {
            let lower = text.to_ascii_lowercase();
            [lower.find("https://"), lower.find("http://")].into_iter().flatten().min()
        }
        for text in [
            "",
            "no url",
            "://",
            "ttp://x",
            "http://a",
            "see HTTPS://u:p@h/p?q=1 and http://b",
            "xhttps://a",
            "s://then Http://b",
            "é http://ü/ä",
            "ftp://a http://b",
            "hTTp:// https://",
        ] {
            assert_eq!(find_scheme(text), with_copy(text), "{text:?}");
        }
    }

    /// Text with nothing to mask is not copied, and keys are told apart in any letter case.
    #[test]
    fn clean_text_is_borrowed_and_secret_keys_are_found_in_any_case() {
        let r = Redactor::new(["s3cr3t"]);
        assert!(matches!(r.clean("k8s/aks-weu-1/shop/web"), Cow::Borrowed(_)));
        assert_eq!(r.clean("token s3cr3t at https://u:p@h/x?sig=1"), "token *** at https://h/x");
        for key in ["Authorization", "X-API-KEY", "db_Password", "clientSecret", "sessionCOOKIE"] {
            assert!(is_secret_key(key), "{key}");
        }
        for key in ["deployment", "context", "namespace", "to_revision", ""] {
            assert!(!is_secret_key(key), "{key}");
        }
        // Each word is found under its first letter, and only there.
        let by_letter = words_by_first_letter();
        for (letter, words) in by_letter.iter().enumerate() {
            for w in words {
                assert!(SECRET_WORDS.contains(w) && w.as_bytes()[0] as usize == letter, "{w}");
            }
        }
        for w in SECRET_WORDS {
            assert!(by_letter[w.as_bytes()[0] as usize].contains(w), "{w}");
        }
        // The one-pass scan finds a word wherever a lowercase copy of the text holds it.
        let texts = [
            "",
            "t",
            "toke",
            "TOKEN",
            "xxtoken",
            "tokentoken",
            "api",
            "API-KEY",
            "apikeys",
            "ApI_kEy",
            "credentia",
            "my credential!",
            "é password é",
            "cookie",
            "cooki",
            "pass word",
            "secre",
            r#"{"a":[{"b":"Authorization"}]}"#,
            "ssssecret",
            "ppassword",
            "aapikey",
            "ccookie",
        ];
        for text in texts {
            let lower = text.to_ascii_lowercase();
            let with_copy = SECRET_WORDS.iter().any(|w| lower.contains(w));
            assert_eq!(has_secret_word(text), with_copy, "{text:?}");
        }
    }

    #[test]
    fn values_and_their_encoded_forms_are_masked() {
        let r = Redactor::new(["a b/c"]);
        assert_eq!(r.text("x a b/c y"), "x *** y");
        assert_eq!(r.text("q=a%20b%2Fc"), "q=***");
        assert_eq!(r.text("q=a+b%2fc"), "q=***");
    }

    #[test]
    fn urls_lose_userinfo_and_query() {
        assert_eq!(strip_urls("GET https://u:p@host:8/path?x=1#f failed"), "GET https://host:8/path failed");
        assert_eq!(strip_urls("\"http://h/a?b\""), "\"http://h/a\"");
        assert_eq!(strip_urls("no url"), "no url");
    }

    #[test]
    fn secrets_are_redacted_at_any_depth() {
        let mut v = serde_json::json!({"url": "u", "headers": {"Authorization": "Bearer abc"}, "list": [{"client_secret": "s"}]});
        Redactor::default().value(&mut v);
        assert_eq!(v["headers"]["Authorization"], "***");
        assert_eq!(v["list"][0]["client_secret"], "***");
        assert_eq!(v["url"], "u");
    }

    #[test]
    fn json_kept_as_text_is_redacted_like_a_value_and_clean_text_is_left_alone() {
        let raw = |v: serde_json::Value| serde_json::value::to_raw_value(&v).unwrap();
        let r = Redactor::new(["hunter \"2\""]);
        // A secret value, a secret-keyed value in any case, a URL's query: each masked.
        let mut v = raw(serde_json::json!([
            {"item": "pw is hunter \"2\"", "ok": true},
            {"item": {"ApiKey": "k1"}, "ok": true},
            {"item": "see https://h/p?sig=abc", "ok": false},
        ]));
        r.raw(&mut v);
        let got: serde_json::Value = serde_json::from_str(v.get()).unwrap();
        assert_eq!(got[0]["item"], "pw is ***");
        assert_eq!(got[1]["item"]["ApiKey"], "***");
        assert_eq!(got[2]["item"], "see https://h/p");
        // Nothing to mask: the very same text, not parsed and written again.
        let clean = r#"[ {"item":{"context":"aks-fleet-00","deployment":"web0"},"ok":true,"value":true} ]"#;
        let mut v = serde_json::value::RawValue::from_string(clean.to_string()).unwrap();
        r.raw(&mut v);
        assert_eq!(v.get(), clean);
        // A word that only looks like a secret key somewhere is enough to look closer.
        let mut v = raw(serde_json::json!({"note": "TOKEN rotation", "token": "t"}));
        r.raw(&mut v);
        assert_eq!(serde_json::from_str::<serde_json::Value>(v.get()).unwrap()["token"], "***");
    }

    proptest::proptest! {
        #[test]
        fn redaction_never_panics_and_removes_the_secret(secret in "[a-z0-9]{4,12}", text in "[ -~]{0,80}") {
            let r = Redactor::new([secret.as_str()]);
            let out = r.text(&format!("{text} {secret} {text}"));
            proptest::prop_assert!(!out.contains(&secret) || text.contains("://"), "{out}");
            let _ = strip_urls(&text);
        }

        #[test]
        fn json_text_is_redacted_exactly_as_the_same_value(
            secret in "[ -~]{3,10}",
            key in "[a-zA-Z_]{1,12}",
            text in "[ -~\n\t]{0,60}",
        ) {
            let r = Redactor::new([secret.as_str()]);
            let mut value = serde_json::json!({ key.clone(): [format!("{text}{secret}"), text.clone()], "n": 1 });
            let mut raw = serde_json::value::to_raw_value(&value).unwrap();
            r.value(&mut value);
            r.raw(&mut raw);
            let from_text: Value = serde_json::from_str(raw.get()).unwrap();
            proptest::prop_assert_eq!(from_text, value);
        }

        #[test]
        fn url_stripping_never_panics(text in "\\PC{0,120}") {
            let out = strip_urls(&text);
            proptest::prop_assert!(out.len() <= text.len());
        }
    }
}
