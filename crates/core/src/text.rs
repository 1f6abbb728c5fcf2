//! Looking for a word in a text: the one substring search in the wasm.
//!
//! core's `str::contains`, `find` and `split_once` with a `&str` needle
//! build a Two-Way searcher (~1.7 KB of wasm for a handful of short
//! needles); [`find`] jumps with `memchr` (already in the build through
//! serde_json; `memmem` would add ~11 KB) and finds the same first match.

/// Where `needle` first occurs in `haystack`. Jumps with `memchr` between
/// occurrences of one anchor byte of the needle: its first byte that is not
/// among the commonest bytes of JSON text (`etaoinsrhdlcu_`, quote, braces,
/// colon, comma), else its first byte. For `request_limit_exceeded` that is
/// `q`, so a 100 KiB catalog page is checked with a handful of compares.
/// Every match has the anchor byte at its start plus `anchor`, and those
/// bytes are visited from left to right, so the first match found is the
/// first in the text.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let anchor = needle.iter().position(|b| !b"etaoinsrhdlcu_\"{}:,".contains(b)).unwrap_or(0);
    let Some(&byte) = needle.get(anchor) else { return Some(0) };
    let mut from = anchor;
    while from < haystack.len() {
        let at = from + memchr::memchr(byte, &haystack[from..])?;
        if haystack[at - anchor..].starts_with(needle) {
            return Some(at - anchor);
        }
        from = at + 1;
    }
    None
}

/// Whether `needle` occurs in `haystack` (`str::contains`).
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    find(haystack, needle).is_some()
}

/// `s` split around the first `sep` (`str::split_once`).
pub fn split_once<'a>(s: &'a str, sep: &str) -> Option<(&'a str, &'a str)> {
    let i = find(s.as_bytes(), sep.as_bytes())?;
    Some((&s[..i], &s[i + sep.len()..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contains_finds_needles_anywhere() {
        assert!(contains(b"xxrequest_limit_exceeded", b"request_limit_exceeded"));
        assert!(contains(b"request_limit_exceeded", b"request_limit_exceeded"));
        assert!(!contains(b"request_limit_exceede", b"request_limit_exceeded"));
        assert!(!contains(b"", b"request_limit_exceeded"));
        assert!(contains(b"rrrequest_limit_exceeded!", b"request_limit_exceeded"));
        assert!(!contains(b"request_limit_exceededrequest_limit_exceede", b"z"));
        assert!(!contains(b"req", b"request_limit_exceeded"));
        assert!(contains(b"requestrequest_limit_exceeded", b"request_limit_exceeded"));
        assert!(contains(b"q", b"q"));
        assert!(!contains(b"qq", b"aq"));
        assert!(contains(b"abc", b""));
    }

    /// Agrees with `str::find` and `str::split_once`, on every needle of the
    /// wasm and on texts built to trip a search that skips too far.
    #[test]
    fn find_agrees_with_str() {
        let needles = ["://", "duplicate", "already exist", "json", "application/x-www-form-urlencoded", "", "a", "aa", "aab", "é"];
        let texts = [
            "", ":", ":/", "://", "https://x.example/a://b", "a:/://", "duplicat duplicate", "already existalready exist", "text/json",
            "application/x-www-form-urlencoded; charset=utf-8", "aaab", "aabaab", "baa", "é://é", "x", "jsojson", ":::///",
        ];
        for t in texts {
            for n in needles {
                assert_eq!(find(t.as_bytes(), n.as_bytes()), t.find(n), "{n:?} in {t:?}");
                assert_eq!(split_once(t, n), t.split_once(n), "{n:?} in {t:?}");
            }
        }
    }
}
