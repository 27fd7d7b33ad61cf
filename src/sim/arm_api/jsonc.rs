//! The lenient JSON ARM's front door reads for deployments (JSON.NET's defaults): `//` and
//! `/* */` comments, unquoted property names, single-quoted strings and trailing commas — what
//! `az deployment group create/validate/what-if --template-file` sends, since it splices the
//! template file's text into the body unchanged behind an unquoted `template:` key.

use serde_json::Value;

/// Parses lenient JSON; the error names the first problem (a `serde_json` message on the
/// normalised text, or an unterminated comment or string).
pub(crate) fn parse(text: &str) -> Result<Value, String> {
    serde_json::from_str(&normalise(text)?).map_err(|e| e.to_string())
}

/// Rewrites lenient JSON as strict JSON text.
fn normalise(text: &str) -> Result<String, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' => {
                i = string(&chars, i, &mut out)?;
            }
            '/' if chars.get(i + 1) == Some(&'/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                let mut j = i + 2;
                loop {
                    if j + 1 >= chars.len() {
                        return Err("unterminated /* comment".into());
                    }
                    if chars[j] == '*' && chars[j + 1] == '/' {
                        break;
                    }
                    j += 1;
                }
                i = j + 2;
                out.push(' ');
            }
            '}' | ']' => {
                let trimmed = out.trim_end().len();
                if out[..trimmed].ends_with(',') {
                    out.truncate(trimmed - 1);
                }
                out.push(c);
                i += 1;
            }
            c if c.is_alphanumeric() || c == '_' || c == '$' || c == '-' || c == '+' || c == '.' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '$' | '-' | '+' | '.'))
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                if next_significant(&chars, i) == Some(':') {
                    out.push_str(&Value::String(word).to_string());
                } else {
                    out.push_str(&word);
                }
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// Copies the string starting at `start` (either quote) as a double-quoted JSON string;
/// returns the index after it.
fn string(chars: &[char], start: usize, out: &mut String) -> Result<usize, String> {
    let quote = chars[start];
    let mut i = start + 1;
    out.push('"');
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' {
            match chars.get(i + 1) {
                Some('\'') => out.push('\''),
                Some(&e) => {
                    out.push('\\');
                    out.push(e);
                }
                None => return Err("unterminated string".into()),
            }
            i += 2;
            continue;
        }
        if c == quote {
            out.push('"');
            return Ok(i + 1);
        }
        if c == '"' {
            out.push_str("\\\"");
        } else {
            out.push(c);
        }
        i += 1;
    }
    Err("unterminated string".into())
}

/// The next character that is not whitespace or inside a comment.
fn next_significant(chars: &[char], mut i: usize) -> Option<char> {
    while i < chars.len() {
        match chars[i] {
            c if c.is_whitespace() => i += 1,
            '/' if chars.get(i + 1) == Some(&'/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                i += 2;
                while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                    i += 1;
                }
                i += 2;
            }
            c => return Some(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn what_az_sends_parses() {
        let body = r#"{"properties": {"mode": "Incremental", "parameters": {}}, template: {
            // a comment with "quotes" and a : colon
            "$schema": "https://schema.management.azure.com/x.json#", /* block */
            contentVersion: '1.0.0.0',
            "resources": [ { "type": "A/b", 'name': "it's", }, ],
        }}"#;
        let v = parse(body).unwrap();
        assert_eq!(v["template"]["contentVersion"], "1.0.0.0");
        assert_eq!(v["template"]["$schema"], "https://schema.management.azure.com/x.json#");
        assert_eq!(v["template"]["resources"], json!([{ "type": "A/b", "name": "it's" }]));
    }

    #[test]
    fn strict_json_is_unchanged_and_urls_in_strings_are_kept() {
        let v = parse(r#"{"a": "http://x//y /* z */", "n": -1.5e3, "t": true, "z": null}"#).unwrap();
        assert_eq!(v, json!({ "a": "http://x//y /* z */", "n": -1.5e3, "t": true, "z": null }));
    }

    #[test]
    fn broken_text_is_refused() {
        assert!(parse("{\"a\": 1 /* open").is_err());
        assert!(parse("{\"a\": \"open").is_err());
        assert!(parse("{a 1}").is_err());
    }
}
