//! `pattern`: the restricted grammar the compiled table checks without the jsonschema
//! validator.

use sluice_bytescan::Text;

/// A `pattern` in a restricted grammar whose meaning is the same under ECMA-262 (JSON Schema)
/// and any other regex dialect: optional `^`, a sequence of items, optional `$`; an item is an
/// ASCII literal (alphanumeric, `_`, `-`, space, or an escaped ASCII punctuation character),
/// `\d` (ASCII digits), or a non-negated class `[...]` of such characters and ranges between
/// alphanumerics; each item optionally followed by a greedy `?`, `*`, `+`, `{n}`, `{n,}` or
/// `{n,m}`. No `.`, alternation, groups, other escapes or lazy quantifiers. Search semantics
/// (unanchored unless `^`/`$`), as JSON Schema's `pattern`.
#[derive(Debug, Clone)]
pub(crate) enum Pattern {
    /// `^...$` where every item repeats a fixed number of times: a byte-by-byte check.
    Fixed(Vec<AsciiSet>),
    /// Anything else in the grammar, compiled to an equivalent `regex::Regex`.
    Regex(regex::Regex),
}

/// A set of ASCII bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AsciiSet(u128);

impl AsciiSet {
    fn with(self, b: u8) -> Self {
        AsciiSet(self.0 | (1u128 << b))
    }
    fn contains(self, b: u8) -> bool {
        b < 128 && self.0 & (1u128 << b) != 0
    }
}

struct Item {
    set: AsciiSet,
    min: u32,
    max: Option<u32>,
}

/// Quantifier bounds above this are not compiled (the reference handles them).
const MAX_REPEAT: u32 = 1000;

impl Pattern {
    /// The compiled pattern, or `None` if it is outside the grammar.
    pub(crate) fn compile(pattern: &str) -> Option<Pattern> {
        let bytes = pattern.as_bytes();
        if !pattern.is_ascii() {
            return None;
        }
        let (start, mut rest) = match bytes.split_first() {
            Some((b'^', rest)) => (true, rest),
            _ => (false, bytes),
        };
        let end = match rest.split_last() {
            // A trailing `\$` is an escaped dollar, not an anchor.
            Some((b'$', init)) if !ends_with_odd_backslashes(init) => {
                rest = init;
                true
            }
            _ => false,
        };
        let mut items = Vec::new();
        let mut i = 0;
        while i < rest.len() {
            let (set, next) = parse_atom(rest, i)?;
            let (min, max, next) = parse_quantifier(rest, next)?;
            items.push(Item { set, min, max });
            i = next;
        }
        if start && end && items.iter().all(|it| it.max == Some(it.min)) {
            let mut sets = Vec::new();
            for it in &items {
                sets.extend(std::iter::repeat_n(it.set, usize::try_from(it.min).ok()?));
            }
            return Some(Pattern::Fixed(sets));
        }
        let mut re = String::from(if start { "^" } else { "" });
        for it in &items {
            re.push('[');
            for b in 0u8..128 {
                if it.set.contains(b) {
                    re.push_str(&format!("\\x{b:02X}"));
                }
            }
            re.push(']');
            match it.max {
                Some(max) => re.push_str(&format!("{{{},{max}}}", it.min)),
                None => re.push_str(&format!("{{{},}}", it.min)),
            }
        }
        if end {
            re.push('$');
        }
        regex::Regex::new(&re).ok().map(Pattern::Regex)
    }

    /// Whether `s` contains a match (JSON Schema `pattern` semantics).
    #[inline(always)]
    pub(crate) fn is_match<'t>(&self, s: impl Into<Text<'t>>) -> bool {
        let s = s.into();
        match self {
            Pattern::Fixed(sets) => {
                s.len() == sets.len() && s.as_bytes().iter().zip(sets).all(|(&b, set)| set.contains(b))
            }
            Pattern::Regex(re) => re.is_match(s.as_str()),
        }
    }
}

fn ends_with_odd_backslashes(s: &[u8]) -> bool {
    s.iter().rev().take_while(|&&b| b == b'\\').count() % 2 == 1
}

/// A literal outside or inside a class: alphanumeric, `_`, space (and `-` where the caller
/// allows it).
fn plain_literal(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b' '
}

/// Characters whose escape is a literal in every dialect (ECMA-262 syntax characters and `-`).
const ESCAPABLE: &[u8] = b"^$\\.*+?()[]{}|/-";

/// `\` + the byte at `i`: an escaped syntax character (a literal) or `\d`.
fn parse_escape(p: &[u8], i: usize) -> Option<(AsciiSet, usize)> {
    let b = *p.get(i)?;
    if b == b'd' {
        let set = (b'0'..=b'9').fold(AsciiSet(0), AsciiSet::with);
        return Some((set, i + 1));
    }
    ESCAPABLE.contains(&b).then(|| (AsciiSet(0).with(b), i + 1))
}

fn parse_atom(p: &[u8], i: usize) -> Option<(AsciiSet, usize)> {
    match *p.get(i)? {
        b'\\' => parse_escape(p, i + 1),
        b'[' => parse_class(p, i + 1),
        b if plain_literal(b) || b == b'-' => Some((AsciiSet(0).with(b), i + 1)),
        _ => None,
    }
}

/// The class body after `[` up to and including `]`.
fn parse_class(p: &[u8], mut i: usize) -> Option<(AsciiSet, usize)> {
    let first = i;
    let mut set = AsciiSet(0);
    loop {
        match *p.get(i)? {
            b']' if i > first => return Some((set, i + 1)),
            b'\\' => {
                let (s, next) = parse_escape(p, i + 1)?;
                set = AsciiSet(set.0 | s.0);
                i = next;
            }
            // `-` is literal only first or last in the class.
            b'-' if i == first || p.get(i + 1) == Some(&b']') => {
                set = set.with(b'-');
                i += 1;
            }
            b if b.is_ascii_alphanumeric() && p.get(i + 1) == Some(&b'-') && p.get(i + 2) != Some(&b']') => {
                let hi = *p.get(i + 2)?;
                if !hi.is_ascii_alphanumeric() || hi < b {
                    return None;
                }
                // Ranges only within one kind (0-9, A-Z, a-z): `A-z` would include punctuation.
                let same_kind = (b.is_ascii_digit() && hi.is_ascii_digit())
                    || (b.is_ascii_uppercase() && hi.is_ascii_uppercase())
                    || (b.is_ascii_lowercase() && hi.is_ascii_lowercase());
                if !same_kind {
                    return None;
                }
                set = (b..=hi).fold(set, AsciiSet::with);
                i += 3;
            }
            b if plain_literal(b) || b == b'.' => {
                set = set.with(b);
                i += 1;
            }
            _ => return None,
        }
    }
}

/// An optional greedy quantifier at `i`: (min, max, next index).
fn parse_quantifier(p: &[u8], i: usize) -> Option<(u32, Option<u32>, usize)> {
    let (min, max, next) = match p.get(i) {
        Some(b'?') => (0, Some(1), i + 1),
        Some(b'*') => (0, None, i + 1),
        Some(b'+') => (1, None, i + 1),
        Some(b'{') => {
            let close = i + p[i..].iter().position(|&b| b == b'}')?;
            let body = std::str::from_utf8(&p[i + 1..close]).ok()?;
            let number = |s: &str| -> Option<u32> {
                if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                s.parse().ok().filter(|n| *n <= MAX_REPEAT)
            };
            let (min, max) = match body.split_once(',') {
                None => {
                    let n = number(body)?;
                    (n, Some(n))
                }
                Some((lo, "")) => (number(lo)?, None),
                Some((lo, hi)) => (number(lo)?, Some(number(hi)?)),
            };
            if max.is_some_and(|m| m < min) {
                return None;
            }
            (min, max, close + 1)
        }
        _ => return Some((1, Some(1), i)),
    };
    // A lazy or possessive suffix, or a second quantifier: outside the grammar.
    if matches!(p.get(next), Some(b'?' | b'*' | b'+' | b'{')) {
        return None;
    }
    Some((min, max, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_in_the_grammar() {
        let fixed = Pattern::compile("^[A-Z]{2}$").unwrap();
        assert!(matches!(fixed, Pattern::Fixed(_)));
        assert!(fixed.is_match("US"));
        for no in ["us", "USA", "U", "", "U1", "ÜS", "US\n"] {
            assert!(!fixed.is_match(no), "{no}");
        }
        let re = Pattern::compile("^v[0-9]+\\.[0-9]+(").is_none();
        assert!(re);
        let ver = Pattern::compile("^v\\d+\\.[0-9]{1,3}$").unwrap();
        assert!(matches!(ver, Pattern::Regex(_)));
        assert!(ver.is_match("v1.22"));
        assert!(!ver.is_match("v1.2222"));
        assert!(!ver.is_match("v١.2"), "\\d is ASCII only");
        let search = Pattern::compile("[a-c]-x").unwrap();
        assert!(search.is_match("zzb-xzz"));
        assert!(!search.is_match("d-x"));
        let dollar = Pattern::compile("^a\\$").unwrap();
        assert!(dollar.is_match("a$b"));
        let dash = Pattern::compile("^[-a-c_.]*$").unwrap();
        assert!(dash.is_match("a-._c"));
        assert!(!dash.is_match("a/"));
        for outside in ["^.$", "a|b", "(a)", "[^a]", "\\w", "a*?", "a{2", "a{3,1}", "[A-z]", "é", "a{1001}", "[]a]"] {
            assert!(Pattern::compile(outside).is_none(), "{outside}");
        }
    }
}
