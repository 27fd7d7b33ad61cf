//! One glob matcher for every pattern rollbook matches (target scopes, `--allow`, the
//! simulator's fault paths), linear in the pattern times the text: no backtracking, so no
//! pattern can make it take exponential time.

/// How `*` behaves in a pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stars {
    /// `*` matches any run of bytes within one `/`-separated segment, `**` any run across
    /// segments (resource keys: `k8s/prod/*/web`, `k8s/prod/**`).
    Segments,
    /// `*` matches any run of bytes, slashes included, and `?` exactly one character
    /// (URL paths: `*/slotsswap`).
    Anything,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Char(char),
    /// Any one character (`?` under [`Stars::Anything`]).
    One,
    /// Any run without a `/`.
    InSegment,
    /// Any run at all.
    Any,
}

fn tokens(pattern: &str, stars: Stars) -> Vec<Token> {
    let mut out: Vec<Token> = Vec::with_capacity(pattern.len());
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        let token = match (c, stars) {
            ('*', Stars::Segments) if chars.peek() == Some(&'*') => {
                chars.next();
                Token::Any
            }
            ('*', Stars::Segments) => Token::InSegment,
            ('*', Stars::Anything) => Token::Any,
            ('?', Stars::Anything) => Token::One,
            (c, _) => Token::Char(c),
        };
        // A star right after the same star adds nothing.
        if !(matches!(token, Token::Any | Token::InSegment) && out.last() == Some(&token)) {
            out.push(token);
        }
    }
    out
}

/// Whether all of `text` matches all of `pattern`; every character that is not a star (or,
/// under [`Stars::Anything`], a `?`) matches itself. Runs in O(pattern × text) time.
pub fn glob_match(pattern: &str, text: &str, stars: Stars) -> bool {
    // Without `**`, a resource-key pattern matches segment by segment (a star never crosses a
    // `/`): a scope's `k8s/*/*/*` is checked on every mutating call without building the matcher.
    if stars == Stars::Segments && !pattern.contains("**") {
        let (mut patterns, mut texts) = (pattern.split('/'), text.split('/'));
        loop {
            match (patterns.next(), texts.next()) {
                (None, None) => return true,
                (Some(p), Some(t)) => {
                    let matched = match p {
                        "*" => true,
                        p if !p.contains('*') => p == t,
                        p => scan(p, t, stars),
                    };
                    if !matched {
                        return false;
                    }
                }
                _ => return false,
            }
        }
    }
    scan(pattern, text, stars)
}

/// [`glob_match`] by running the pattern's tokens over the text.
fn scan(pattern: &str, text: &str, stars: Stars) -> bool {
    let tokens = tokens(pattern, stars);
    // `live[j]`: the first `j` tokens match the text read so far.
    let mut live = vec![false; tokens.len() + 1];
    live[0] = true;
    close(&tokens, &mut live);
    // Two rows, swapped after each character (a scope is checked on every mutating call).
    let mut next = vec![false; tokens.len() + 1];
    for c in text.chars() {
        next.fill(false);
        for (j, token) in tokens.iter().enumerate() {
            if !live[j] {
                continue;
            }
            match *token {
                Token::Any => next[j] = true,
                Token::InSegment => next[j] = c != '/',
                Token::One => next[j + 1] = true,
                Token::Char(p) => next[j + 1] |= p == c,
            }
        }
        close(&tokens, &mut next);
        if !next.iter().any(|l| *l) {
            return false;
        }
        std::mem::swap(&mut live, &mut next);
    }
    live[tokens.len()]
}

/// Stars match the empty run: a live star makes the token after it live too.
fn close(tokens: &[Token], live: &mut [bool]) {
    for j in 0..tokens.len() {
        if live[j] && matches!(tokens[j], Token::Any | Token::InSegment) {
            live[j + 1] = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_stars_stay_within_a_segment_unless_doubled() {
        assert!(glob_match("k8s/prod/shop/*", "k8s/prod/shop/web", Stars::Segments));
        assert!(!glob_match("k8s/prod/*", "k8s/prod/shop/web", Stars::Segments));
        assert!(glob_match("k8s/prod/**", "k8s/prod/shop/web", Stars::Segments));
        assert!(glob_match("k8s/**/web", "k8s/prod/shop/web", Stars::Segments));
        assert!(glob_match("k8s/*/shop/web", "k8s/prod/shop/web", Stars::Segments));
        assert!(glob_match("k8s/prod/shop/web*", "k8s/prod/shop/web", Stars::Segments));
        assert!(!glob_match("k8s/prod/shop/web", "k8s/prod/shop/web2", Stars::Segments));
        assert!(glob_match("", "", Stars::Segments));
        assert!(!glob_match("", "x", Stars::Segments));
        assert!(glob_match("?", "?", Stars::Segments), "`?` is literal in resource keys");
    }

    #[test]
    fn anything_stars_cross_slashes_and_question_marks_take_one_character() {
        assert!(glob_match("*/slotsswap", "/subscriptions/x/sites/s/slotsswap", Stars::Anything));
        assert!(!glob_match("*/slotsswap", "/subscriptions/x/slotsswap/more", Stars::Anything));
        assert!(glob_match("*", "", Stars::Anything));
        assert!(glob_match("a?c", "abc", Stars::Anything));
        assert!(glob_match("a?c", "aéc", Stars::Anything), "one character, not one byte");
        assert!(!glob_match("a?c", "ac", Stars::Anything));
        assert!(glob_match("*é*", "café au lait", Stars::Anything));
        assert!(!glob_match("*é", "cafe", Stars::Anything));
    }

    /// Segment by segment, a pattern without `**` matches exactly what the scan matches.
    #[test]
    fn matching_segment_by_segment_agrees_with_the_scan() {
        let patterns = [
            "",
            "*",
            "k8s/*/*/*",
            "k8s/prod/*",
            "k8s/prod/shop/web",
            "k8s/*/shop/w*b",
            "k8s/p*d/*/*",
            "*/*",
            "k8s/*/*/*/",
            "/k8s/*",
            "k8s//*",
            "a*b*c/*",
            "k8s/?/x/*",
            "*x*/y",
        ];
        let texts = [
            "",
            "x",
            "k8s/prod/shop/web",
            "k8s/prod/shop/web/extra",
            "k8s/prod//web",
            "k8s/prod/shop",
            "k8s/pod/shop/wb",
            "k8s/?/x/y",
            "/k8s/a",
            "k8s//z",
            "aXbYc/d",
            "abc/",
            "xx/y",
            "k8s/prod/shop/web/",
        ];
        for p in patterns {
            for t in texts {
                assert_eq!(glob_match(p, t, Stars::Segments), scan(p, t, Stars::Segments), "{p:?} {t:?}");
            }
        }
    }

    #[test]
    fn a_pattern_of_many_stars_against_a_long_text_finishes_with_the_right_answer() {
        // A backtracking matcher tries every way to split the text among the stars:
        // C(400, 7) ways here, which never finishes.
        let text = "a".repeat(400);
        for stars in [Stars::Segments, Stars::Anything] {
            assert!(!glob_match("a*a*a*a*a*a*a*b", &text, stars));
            assert!(glob_match("a*a*a*a*a*a*a*a", &text, stars));
        }
        assert!(!glob_match("a**a**a**a**a**a**a**b", &text, Stars::Segments));
        let mut with_b = text.clone();
        with_b.push('b');
        assert!(glob_match("a*a*a*a*a*a*a*b", &with_b, Stars::Segments));
    }
}
