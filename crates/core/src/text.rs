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
    let anchor = needle.iter().position(|&b| !has(b"etaoinsrhdlcu_\"{}:,", b)).unwrap_or(0);
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

/// `s` split around the last `sep`, an ASCII byte (`str::rsplit_once`
/// with that character). The helpers below stand for core's char patterns,
/// whose searcher, with core's own `memchr`, was ~2 KB of wasm for a
/// handful of one-byte separators.
pub fn rsplit_once(s: &str, sep: u8) -> Option<(&str, &str)> {
    let i = s.bytes().rposition(|b| b == sep)?;
    Some((&s[..i], &s[i + 1..]))
}

/// Whether byte `b` is in `s` (`str::contains` with an ASCII character,
/// or `[u8]::contains`).
pub fn has(s: &[u8], b: u8) -> bool {
    memchr::memchr(b, s).is_some()
}

/// `s` without the `c`s it starts with, `c` an ASCII byte
/// (`str::trim_start_matches` with that character).
pub fn trim_start(s: &str, c: u8) -> &str {
    let n = s.bytes().take_while(|&b| b == c).count();
    &s[n..]
}

/// `s` without the `c`s it ends with, `c` an ASCII byte
/// (`str::trim_end_matches` with that character).
pub fn trim_end(s: &str, c: u8) -> &str {
    let n = s.bytes().rev().take_while(|&b| b == c).count();
    &s[..s.len() - n]
}

/// The parts of `s` between the `sep`s (`str::split`; `sep` not empty).
pub fn split<'a>(s: &'a str, sep: &'a str) -> Split<'a> {
    Split { rest: Some(s), sep }
}

/// The iterator of [`split`].
pub struct Split<'a> {
    rest: Option<&'a str>,
    sep: &'a str,
}

impl<'a> Iterator for Split<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let rest = self.rest?;
        Some(match split_once(rest, self.sep) {
            Some((part, tail)) => {
                self.rest = Some(tail);
                part
            }
            None => {
                self.rest = None;
                rest
            }
        })
    }
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

    /// The one-byte helpers agree with `str`'s char patterns.
    #[test]
    fn byte_helpers_agree_with_str() {
        let texts = [
            "", ",", ",,", "a", "a,b", ",a,b,", "a,,b", "é,é", "::1", "[::1]:8080", "host:", "//a//", "00100", "0", "é0", "&&a=b&&c", "a\nb\n",
            "1.5.", "x@y", "a b  c", "\n\n",
        ];
        for t in texts {
            for c in [',', ':', '/', '0', '&', '=', '.', '@', ' ', '\n', ']'] {
                let b = c as u8;
                assert_eq!(rsplit_once(t, b), t.rsplit_once(c), "{c:?} in {t:?}");
                assert_eq!(has(t.as_bytes(), b), t.contains(c), "{c:?} in {t:?}");
                assert_eq!(trim_start(t, b), t.trim_start_matches(c), "{c:?} in {t:?}");
                assert_eq!(trim_end(t, b), t.trim_end_matches(c), "{c:?} in {t:?}");
                let sep = c.to_string();
                assert_eq!(split(t, &sep).collect::<Vec<_>>(), t.split(c).collect::<Vec<_>>(), "{c:?} in {t:?}");
                assert_eq!(split_once(t, &sep), t.split_once(c), "{c:?} in {t:?}");
            }
        }
    }

    /// Agrees with `str::find` and `str::split_once`, on every needle of the
    /// wasm and on texts built to trip a search that skips too far.
    #[test]
    fn find_agrees_with_str() {
        let needles = ["://", "duplicate", "already exist", "json", "application/x-www-form-urlencoded", "", "a", "aa", "aab", "é"];
        let texts = [
            "", ":", ":/", "://", "https://x.example/a://b", "a:/://", "duplicat duplicate", "already existalready exist", "text/json",
            "application/x-www-form-urlencoded; charset=utf-8", "aaab", "aabaab", "baa", "é://é", "x", "jsojson", ":::///",
            // The anchor byte twice in a row: the second may start the match.
            "jjson", "text/jjson", "ddduplicate", "éé",
        ];
        for t in texts {
            for n in needles {
                assert_eq!(find(t.as_bytes(), n.as_bytes()), t.find(n), "{n:?} in {t:?}");
                assert_eq!(split_once(t, n), t.split_once(n), "{n:?} in {t:?}");
            }
        }
    }
}
