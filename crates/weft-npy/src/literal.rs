//! A small strict parser for the Python literals numpy writes in `.npy` headers (the
//! crate documentation lists what it accepts): no `eval`, bounded nesting, and errors
//! that quote the offending part of the header.
//!
//! Why our own rather than a crate: compared (2026-12-03) with `py_literal` 0.4.0 and
//! `npyz` 0.8.4 (which parses headers with `py_literal`) on the same headers, in a scratch
//! crate outside the repository, this parser is the only one as strict as numpy 1.24's
//! `np.load`, and its errors are one line naming the file and quoting the bad part.
//! `py_literal` parses any Python literal (a caller still has to check the dict), and npyz
//! accepts what numpy refuses; both report syntax errors as multi-line pest diagnostics
//! naming grammar rules; and each would bring about twenty crates (pest, num-bigint, …).
//! Two headers (F.npy is the file):
//!
//! - `{'descr': '<f4', 'fortran_order': False, 'shape': [2], }` (a list, not a tuple):
//!   numpy refuses ("shape is not valid: [2]"); npyz loads it as shape [2]; py_literal
//!   returns a `List`; here: `F.npy: unparsable header: 'shape' must be a tuple such as
//!   (5,) or (5, 3), got "[2]"`.
//! - `{'descr': '<f4', 'fortran_order': False, 'shape': (1+1,), }` (an expression):
//!   numpy refuses (`ast.literal_eval`: "malformed node or string"); py_literal evaluates
//!   it to 2 and npyz loads shape [2]; here: `F.npy: unparsable header: expected ',' or
//!   ')' at "+1,), }"`.
//!
//! Likewise an extra key (numpy: "Header does not contain the correct keys") is refused
//! here and accepted by npyz. Stricter than numpy: a duplicate key (numpy keeps the last)
//! is refused, since numpy never writes one. All three survive 100,000 nested brackets
//! (pest has a call limit; here `nested too deeply`).

/// A Python literal.
#[derive(Debug, PartialEq)]
pub(crate) enum Lit {
    Str(String),
    Int(i128),
    Bool(bool),
    None,
    Tuple(Vec<Node>),
    List(Vec<Node>),
    Dict(Vec<(Node, Node)>),
}

/// A literal and where it is in the header text (byte offsets).
#[derive(Debug, PartialEq)]
pub(crate) struct Node {
    pub(crate) lit: Lit,
    start: usize,
    end: usize,
}

impl Node {
    /// The header text this literal was parsed from.
    pub(crate) fn text<'a>(&self, header: &'a str) -> &'a str {
        &header[self.start..self.end]
    }
}

/// The three entries of a header dict.
pub(crate) struct Fields {
    pub(crate) descr: Node,
    pub(crate) fortran_order: Node,
    pub(crate) shape: Node,
}

/// A parse failure at a byte offset.
#[derive(Debug)]
pub(crate) struct ParseError {
    message: String,
    at: usize,
}

impl ParseError {
    /// The message with the header text at the failure quoted.
    pub(crate) fn describe(&self, header: &str) -> String {
        let at = self.at.min(header.len());
        // Up to 24 characters from the failure, without the header's padding.
        let tail = header[at..].trim_end();
        let rest: String = tail.chars().take(24).collect();
        let more = if tail.chars().nth(24).is_some() {
            "…"
        } else {
            ""
        };
        if rest.is_empty() {
            format!("{} at the end of the header", self.message)
        } else {
            format!("{} at {:?}{more}", self.message, rest)
        }
    }
}

/// Quote a piece of header text for a message.
pub(crate) fn quote(text: &str) -> String {
    if text.chars().count() > 60 {
        let head: String = text.chars().take(60).collect();
        format!("{head:?}…")
    } else {
        format!("{text:?}")
    }
}

const MAX_DEPTH: usize = 16;

struct Parser<'a> {
    text: &'a str,
    pos: usize,
    depth: usize,
}

impl<'a> Parser<'a> {
    fn fail<T>(&self, message: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError {
            message: message.into(),
            at: self.pos,
        })
    }

    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn skip_ws(&mut self) {
        while let Some(c) = self.peek() {
            if matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0c') {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    fn value(&mut self) -> Result<Node, ParseError> {
        self.skip_ws();
        let start = self.pos;
        let lit = match self.peek() {
            None => return self.fail("expected a value"),
            Some('\'') | Some('"') => Lit::Str(self.string()?),
            Some('(') => return self.nested(start, '(', ')'),
            Some('[') => return self.nested(start, '[', ']'),
            Some('{') => return self.nested(start, '{', '}'),
            Some(c) if c.is_ascii_digit() || c == '-' || c == '+' => Lit::Int(self.int()?),
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                let word_len = self.text[self.pos..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(self.text.len() - self.pos);
                let word = &self.text[self.pos..self.pos + word_len];
                let lit = match word {
                    "True" => Lit::Bool(true),
                    "False" => Lit::Bool(false),
                    "None" => Lit::None,
                    _ => return self.fail(format!("unexpected name '{word}'")),
                };
                self.pos += word_len;
                lit
            }
            Some(_) => return self.fail("expected a value"),
        };
        Ok(Node {
            lit,
            start,
            end: self.pos,
        })
    }

    fn string(&mut self) -> Result<String, ParseError> {
        let start = self.pos;
        let quote = self.peek().unwrap_or('\'');
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                self.pos = start;
                return self.fail("unterminated string");
            };
            self.pos += c.len_utf8();
            match c {
                c if c == quote => return Ok(out),
                '\n' | '\r' => {
                    self.pos = start;
                    return self.fail("unterminated string");
                }
                '\\' => {
                    let escaped = match self.peek() {
                        Some('\\') => '\\',
                        Some('\'') => '\'',
                        Some('"') => '"',
                        Some('n') => '\n',
                        Some('t') => '\t',
                        Some('r') => '\r',
                        _ => {
                            self.pos -= 1;
                            return self.fail("unsupported escape in a string");
                        }
                    };
                    self.pos += 1;
                    out.push(escaped);
                }
                c => out.push(c),
            }
        }
    }

    fn int(&mut self) -> Result<i128, ParseError> {
        let start = self.pos;
        let negative = match self.peek() {
            Some('-') => {
                self.pos += 1;
                true
            }
            Some('+') => {
                self.pos += 1;
                false
            }
            _ => false,
        };
        let digits_start = self.pos;
        let mut value: i128 = 0;
        while let Some(c) = self.peek().filter(char::is_ascii_digit) {
            let digit = i128::from(c as u8 - b'0');
            value = match value.checked_mul(10).and_then(|v| v.checked_add(digit)) {
                Some(v) => v,
                None => {
                    self.pos = start;
                    return self.fail("integer too large");
                }
            };
            self.pos += 1;
        }
        if self.pos == digits_start {
            return self.fail("expected digits");
        }
        // Python 2's long suffix, as numpy under Python 2 wrote shapes: (3L, 4L).
        if matches!(self.peek(), Some('L') | Some('l')) {
            self.pos += 1;
        }
        if matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == '.' || c == '_') {
            return self.fail("expected an integer");
        }
        Ok(if negative { -value } else { value })
    }

    /// A tuple, list or dict; `(x)` without a comma is `x` in parentheses, as in Python.
    fn nested(&mut self, start: usize, open: char, close: char) -> Result<Node, ParseError> {
        if self.depth >= MAX_DEPTH {
            return self.fail("nested too deeply");
        }
        self.depth += 1;
        self.pos += 1; // the opening bracket
        let mut items = Vec::new();
        let mut pairs = Vec::new();
        let mut saw_comma = false;
        loop {
            self.skip_ws();
            if self.peek() == Some(close) {
                self.pos += 1;
                break;
            }
            if open == '{' {
                let key = self.value()?;
                self.skip_ws();
                if self.peek() != Some(':') {
                    return self.fail(format!(
                        "expected ':' after the key {}",
                        quote(key.text(self.text))
                    ));
                }
                self.pos += 1;
                let value = self.value()?;
                pairs.push((key, value));
            } else {
                items.push(self.value()?);
            }
            self.skip_ws();
            match self.peek() {
                Some(',') => {
                    self.pos += 1;
                    saw_comma = true;
                }
                Some(c) if c == close => {}
                _ => return self.fail(format!("expected ',' or '{close}'")),
            }
        }
        self.depth -= 1;
        let lit = match open {
            '(' if items.len() == 1 && !saw_comma => {
                let inner = items.pop().expect("one item");
                return Ok(Node {
                    lit: inner.lit,
                    start,
                    end: self.pos,
                });
            }
            '(' => Lit::Tuple(items),
            '[' => Lit::List(items),
            _ => Lit::Dict(pairs),
        };
        Ok(Node {
            lit,
            start,
            end: self.pos,
        })
    }
}

/// Parse a header into its three fields, refusing anything but numpy's dict.
pub(crate) fn parse_header(text: &str) -> Result<Fields, ParseError> {
    let mut p = Parser {
        text,
        pos: 0,
        depth: 0,
    };
    p.skip_ws();
    if p.peek() != Some('{') {
        return p.fail("expected the header to be a dict starting with '{'");
    }
    let dict = p.value()?;
    p.skip_ws();
    if p.pos < text.len() {
        return p.fail("unexpected text after the header dict");
    }
    let Lit::Dict(pairs) = dict.lit else {
        unreachable!("a '{{' starts a dict")
    };
    let (mut descr, mut fortran_order, mut shape) = (None, None, None);
    for (key, value) in pairs {
        let at = key.start;
        let fail = |message: String| Err(ParseError { message, at });
        let Lit::Str(name) = &key.lit else {
            return fail(format!("key {} is not a string", quote(key.text(text))));
        };
        let slot = match name.as_str() {
            "descr" => &mut descr,
            "fortran_order" => &mut fortran_order,
            "shape" => &mut shape,
            _ => {
                return fail(format!(
                    "unexpected key '{name}' (numpy writes only 'descr', 'fortran_order' \
                     and 'shape')"
                ))
            }
        };
        if slot.is_some() {
            return fail(format!("duplicate key '{name}'"));
        }
        *slot = Some(value);
    }
    let missing = |name: &str| ParseError {
        message: format!("missing key '{name}'"),
        at: 0,
    };
    Ok(Fields {
        descr: descr.ok_or_else(|| missing("descr"))?,
        fortran_order: fortran_order.ok_or_else(|| missing("fortran_order"))?,
        shape: shape.ok_or_else(|| missing("shape"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(text: &str) -> Result<(String, bool, Vec<i128>), String> {
        let f = parse_header(text).map_err(|e| e.describe(text))?;
        let Lit::Str(d) = f.descr.lit else {
            return Err("descr".into());
        };
        let Lit::Bool(fo) = f.fortran_order.lit else {
            return Err("fortran".into());
        };
        let Lit::Tuple(items) = f.shape.lit else {
            return Err("shape".into());
        };
        let dims = items
            .into_iter()
            .map(|n| match n.lit {
                Lit::Int(i) => i,
                _ => -999,
            })
            .collect();
        Ok((d, fo, dims))
    }

    #[test]
    fn parses_what_numpy_writes_and_reasonable_variants() {
        let want = ("<f4".to_string(), false, vec![100, 384]);
        for text in [
            "{'descr': '<f4', 'fortran_order': False, 'shape': (100, 384), }          \n",
            "{'shape': (100, 384), 'fortran_order': False, 'descr': '<f4'}",
            "{\"descr\":\"<f4\",\"fortran_order\":False,\"shape\":(100,384,),}",
            " { 'descr' : '<f4' ,\n\t'fortran_order' : False , 'shape' : ( 100 , 384 ) , } ",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (100L, 384L), }",
        ] {
            assert_eq!(fields(text).unwrap(), want, "{text:?}");
        }
        assert_eq!(
            fields("{'descr': '|u1', 'fortran_order': True, 'shape': (5,), }").unwrap(),
            ("|u1".to_string(), true, vec![5])
        );
        assert_eq!(
            fields("{'descr': '<f8', 'fortran_order': False, 'shape': (), }").unwrap(),
            ("<f8".to_string(), false, vec![])
        );
        // `(5)` is the integer 5, not a tuple, so the shape check refuses it.
        assert_eq!(
            fields("{'descr': '<f8', 'fortran_order': False, 'shape': (5)}"),
            Err("shape".to_string())
        );
    }

    #[test]
    fn refuses_what_numpy_does_not_write() {
        for (text, needle) in [
            ("", "expected the header to be a dict"),
            (
                "{'descr': '<f4', 'fortran_order': False}",
                "missing key 'shape'",
            ),
            (
                "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': ()}",
                "duplicate key 'descr'",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (), 'extra': 1}",
                "unexpected key 'extra'",
            ),
            ("{'descr' '<f4'}", "expected ':' after the key \"'descr'\""),
            ("{'descr': '<f4}", "unterminated string"),
            (
                "{'descr': '<f4', 'fortran_order': false}",
                "unexpected name 'false'",
            ),
            ("{'descr': '<f4', 'shape': (3.5,)}", "expected an integer"),
            (
                "{'descr': '<f4', 'shape': (99999999999999999999999999999999999999999,)}",
                "integer too large",
            ),
            ("{'descr': '<f4', 'shape': (3 4)}", "expected ',' or ')'"),
            (
                "{'descr': '<f4'} trailing",
                "unexpected text after the header dict",
            ),
            ("{1: 2}", "key \"1\" is not a string"),
            (
                "{'descr': ((((((((((((((((((((1))))))))))))))))))))}",
                "nested too deeply",
            ),
            ("{'descr': '\\x41'}", "unsupported escape"),
        ] {
            let err = fields(text).unwrap_err();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }
}
