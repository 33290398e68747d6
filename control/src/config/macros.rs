//! `${name}` substitution (`xipsecd -D name=value`), before the TOML is parsed.
//!
//! Macros are expanded everywhere except in comments. The expanded text keeps a map back to the
//! original, so that an error found after expansion still points at the right line and column
//! (inside a substituted value: at its `${`).

use super::Macros;

/// The expanded text and how to map its offsets back.
#[derive(Debug)]
pub(crate) struct Expanded {
    pub(crate) text: String,
    /// `(expanded offset, original offset, copied verbatim)`, sorted by expanded offset.
    segments: Vec<(usize, usize, bool)>,
}

impl Expanded {
    /// The offset in the original text of byte `offset` of the expanded text.
    pub(crate) fn original_offset(&self, offset: usize) -> usize {
        let i = self.segments.partition_point(|s| s.0 <= offset);
        if i == 0 {
            return offset;
        }
        let (out, orig, verbatim) = self.segments[i - 1];
        if verbatim {
            orig + (offset - out)
        } else {
            orig
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Lex {
    Normal,
    Comment,
    Basic,
    Literal,
    MlBasic,
    MlLiteral,
}

/// Expands `${name}` in `src`. Errors are `(original offset, message)`: an undefined macro,
/// or a `${` without a name and `}`.
pub(crate) fn expand(src: &str, macros: &Macros) -> (Expanded, Vec<(usize, String)>) {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut segments = vec![(0, 0, true)];
    let mut errors = Vec::new();
    let mut state = Lex::Normal;
    let mut i = 0;
    let mut copied = 0; // src[copied..i] not yet copied to out
    while i < b.len() {
        let rest = &b[i..];
        match state {
            Lex::Comment => {
                if b[i] == b'\n' {
                    state = Lex::Normal;
                }
                i += 1;
                continue;
            }
            Lex::Normal => {
                if b[i] == b'#' {
                    state = Lex::Comment;
                } else if rest.starts_with(b"\"\"\"") {
                    state = Lex::MlBasic;
                    i += 3;
                    continue;
                } else if rest.starts_with(b"'''") {
                    state = Lex::MlLiteral;
                    i += 3;
                    continue;
                } else if b[i] == b'"' {
                    state = Lex::Basic;
                } else if b[i] == b'\'' {
                    state = Lex::Literal;
                }
            }
            Lex::Basic => {
                if b[i] == b'\\' {
                    i += 2;
                    continue;
                }
                if b[i] == b'"' || b[i] == b'\n' {
                    state = Lex::Normal;
                }
            }
            Lex::Literal => {
                if b[i] == b'\'' || b[i] == b'\n' {
                    state = Lex::Normal;
                }
            }
            Lex::MlBasic => {
                if b[i] == b'\\' {
                    i += 2;
                    continue;
                }
                if rest.starts_with(b"\"\"\"") {
                    state = Lex::Normal;
                    i += 3;
                    continue;
                }
            }
            Lex::MlLiteral => {
                if rest.starts_with(b"'''") {
                    state = Lex::Normal;
                    i += 3;
                    continue;
                }
            }
        }
        if rest.starts_with(b"${") {
            let name_len = rest[2..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                .count();
            if name_len == 0 || rest.get(2 + name_len) != Some(&b'}') {
                errors.push((
                    i,
                    "'${' must be followed by a macro name and '}'".to_string(),
                ));
                i += 2;
                continue;
            }
            let name = &src[i + 2..i + 2 + name_len];
            match macros.get(name) {
                Some(value) => {
                    out.push_str(&src[copied..i]);
                    segments.push((out.len(), i, false));
                    out.push_str(value);
                    i += 3 + name_len;
                    copied = i;
                    segments.push((out.len(), i, true));
                }
                None => {
                    errors.push((
                        i,
                        format!("undefined macro '${{{name}}}' (define it with -D {name}=value)"),
                    ));
                    i += 3 + name_len;
                }
            }
            continue;
        }
        i += 1;
    }
    out.push_str(&src[copied..]);
    (
        Expanded {
            text: out,
            segments,
        },
        errors,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pairs: &[(&str, &str)]) -> Macros {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn substitutes_and_maps_back() {
        let src = "a = \"${x}\" # ${nope}\nb = '${yy}z'\n";
        let (e, errs) = expand(src, &m(&[("x", "12345"), ("yy", "")]));
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(e.text, "a = \"12345\" # ${nope}\nb = 'z'\n");
        assert_eq!(e.original_offset(0), 0);
        assert_eq!(e.original_offset(5), 5); // inside the value: at '$'
        assert_eq!(e.original_offset(7), 5);
        assert_eq!(e.original_offset(10), 9); // the closing quote
        let z = e.text.find('z').unwrap();
        assert_eq!(&src[e.original_offset(z)..e.original_offset(z) + 1], "z");
    }

    #[test]
    fn undefined() {
        let (e, errs) = expand("a = \"${x}${y\"", &m(&[]));
        assert_eq!(e.text, "a = \"${x}${y\"");
        assert_eq!(errs[0].0, 5);
        assert!(errs[0].1.contains("undefined macro '${x}'"));
        assert_eq!(errs[1].0, 9);
    }
}
