//! A fast path for the flat JSON objects result records are (DESIGN.md section 5: no
//! nesting): walks one line once, handing each key and raw value to a callback,
//! without building a document. Anything unusual (nesting, escapes in keys, bad syntax)
//! returns None, and the caller parses the line with serde_json instead, which also
//! produces the error messages.

/// A scalar value as it appears in the line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Val<'a> {
    /// String contents between the quotes; `escaped` when it holds a backslash.
    Str {
        raw: &'a [u8],
        escaped: bool,
    },
    /// The number's text (only `-+.eE0-9`, checked by the scanner).
    Num(&'a str),
    Bool(bool),
    Null,
}

fn ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\r' | b'\n') {
        i += 1;
    }
    i
}

/// Bit 7 of each byte of `w` that equals `c` (exact for the lowest one, which is all
/// [`string`] uses).
#[inline(always)]
fn bytes_equal(w: u64, c: u8) -> u64 {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let x = w ^ (LO * c as u64);
    x.wrapping_sub(LO) & !x & HI
}

/// The string starting after the opening quote at `i`: (contents, escaped, index after
/// the closing quote). Eight bytes at a time: a word without `"` or `\` is skipped
/// whole (keys and values are mostly short, where a vector search's set-up costs more).
#[inline]
fn string(b: &[u8], mut i: usize) -> Option<(&[u8], bool, usize)> {
    let start = i;
    let mut escaped = false;
    loop {
        while let Some(w) = b.get(i..i + 8) {
            let w = u64::from_le_bytes(w.try_into().expect("8 bytes"));
            let m = bytes_equal(w, b'"') | bytes_equal(w, b'\\');
            if m != 0 {
                i += (m.trailing_zeros() / 8) as usize;
                break;
            }
            i += 8;
        }
        match *b.get(i)? {
            b'"' => return Some((&b[start..i], escaped, i + 1)),
            b'\\' => {
                escaped = true;
                i += 2;
            }
            _ => i += 1,
        }
    }
}

/// Calls `f(key, value)` for each member of the flat object on `line`. None when the
/// line is not one (the caller falls back to a full parser).
pub fn flat_object<'a>(
    line: &'a [u8],
    mut f: impl FnMut(&'a [u8], Val<'a>) -> Option<()>,
) -> Option<()> {
    let b = line;
    let mut i = ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = ws(b, i + 1);
    if b.get(i) == Some(&b'}') {
        return (ws(b, i + 1) == b.len()).then_some(());
    }
    loop {
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let (key, kesc, j) = string(b, i + 1)?;
        if kesc {
            return None;
        }
        i = ws(b, j);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = ws(b, i + 1);
        let v = match *b.get(i)? {
            b'"' => {
                let (raw, escaped, j) = string(b, i + 1)?;
                i = j;
                Val::Str { raw, escaped }
            }
            b'-' | b'0'..=b'9' => {
                let s = i;
                while i < b.len() && matches!(b[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    i += 1;
                }
                // SAFETY: the loop above admitted only ASCII bytes, which are UTF-8.
                Val::Num(unsafe { std::str::from_utf8_unchecked(&b[s..i]) })
            }
            b't' if b[i..].starts_with(b"true") => {
                i += 4;
                Val::Bool(true)
            }
            b'f' if b[i..].starts_with(b"false") => {
                i += 5;
                Val::Bool(false)
            }
            b'n' if b[i..].starts_with(b"null") => {
                i += 4;
                Val::Null
            }
            _ => return None,
        };
        f(key, v)?;
        i = ws(b, i);
        match b.get(i)? {
            b',' => i = ws(b, i + 1),
            b'}' => return (ws(b, i + 1) == b.len()).then_some(()),
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(line: &str) -> Option<Vec<(String, Val<'_>)>> {
        let mut v = Vec::new();
        flat_object(line.as_bytes(), |k, x| {
            v.push((String::from_utf8(k.to_vec()).unwrap(), x));
            Some(())
        })?;
        Some(v)
    }

    #[test]
    fn scans_flat_objects() {
        let m =
            members(r#" {"a":"x","b":-1.5e3, "c" : true,"d":false,"e":null,"f":"q\"z"} "#).unwrap();
        assert_eq!(m.len(), 6);
        assert_eq!(
            m[0].1,
            Val::Str {
                raw: b"x",
                escaped: false
            }
        );
        assert_eq!(m[1].1, Val::Num("-1.5e3"));
        assert_eq!(m[2].1, Val::Bool(true));
        assert_eq!(m[4].1, Val::Null);
        assert_eq!(
            m[5].1,
            Val::Str {
                raw: br#"q\"z"#,
                escaped: true
            }
        );
        assert_eq!(members("{}").unwrap().len(), 0);
    }

    #[test]
    fn anything_else_falls_back() {
        for bad in [
            r#"{"a":[1]}"#,
            r#"{"a":{"b":1}}"#,
            r#"{"a":1"#,
            r#"{"a":1} x"#,
            r#"{"a\n":1}"#,
            r#"{"a":"unterminated}"#,
            "INFO starting",
            r#"{"a":tru}"#,
            "",
        ] {
            assert!(members(bad).is_none(), "{bad}");
        }
    }

    /// The word-at-a-time string scan against a plain byte loop, for quotes and
    /// backslashes at every position of strings up to 40 bytes.
    #[test]
    fn string_scan_matches_a_byte_loop() {
        fn naive(b: &[u8], mut i: usize) -> Option<(&[u8], bool, usize)> {
            let start = i;
            let mut escaped = false;
            loop {
                match *b.get(i)? {
                    b'"' => return Some((&b[start..i], escaped, i + 1)),
                    b'\\' => {
                        escaped = true;
                        i += 2;
                    }
                    _ => i += 1,
                }
            }
        }
        for len in 0..40 {
            for special in [None, Some(b'"'), Some(b'\\')] {
                for at in 0..len.max(1) {
                    let mut v: Vec<u8> = (0..len).map(|k| b'a' + (k % 26) as u8).collect();
                    if let (Some(c), true) = (special, at < len) {
                        v[at] = c;
                    }
                    for tail in [&b"\"rest"[..], &b""[..], &b"\\\"x\"}"[..]] {
                        let mut line = v.clone();
                        line.extend_from_slice(tail);
                        assert_eq!(string(&line, 0), naive(&line, 0), "{line:?}");
                    }
                }
            }
        }
    }
}
