//! Words: quoting, `$'...'`, parameter expansion, command, arithmetic and process
//! substitution. Each records what it expands so the classifier can refuse to trust it.

use std::rc::Rc;

use super::{End, List, PResult, Parser, Word, is_meta, is_name, parse};

impl Parser<'_> {
    pub(super) fn word(&mut self) -> PResult<Word> {
        let mut w = Word::default();
        let start = self.pos;
        let (mut brace_open, mut brace_list, mut bracket) = (false, false, false);
        while let Some(c) = self.peek() {
            if matches!(c, '<' | '>') && self.peek_at(1) == Some('(') {
                self.pos += 2;
                let list = self.nested(End::Paren)?;
                w.substs.push(Rc::new(list));
                w.text.push_str("/dev/fd/63");
                continue;
            }
            if is_meta(c) {
                break;
            }
            self.pos += 1;
            match c {
                '\\' => match self.peek() {
                    Some('\n') => self.pos += 1,
                    Some(n) => {
                        self.pos += 1;
                        w.text.push(n);
                        w.quoted = true;
                    }
                    None => w.text.push('\\'),
                },
                '\'' => {
                    w.quoted = true;
                    loop {
                        match self.peek() {
                            None => return Err("unterminated single quote".into()),
                            Some('\'') => break,
                            Some(q) => w.text.push(q),
                        }
                        self.pos += 1;
                    }
                    self.pos += 1;
                }
                '"' => {
                    w.quoted = true;
                    self.double_quoted(&mut w, Some('"'))?;
                }
                '$' => self.dollar(&mut w, false)?,
                '`' => self.backtick(&mut w, false)?,
                '*' | '?' => {
                    w.glob = true;
                    w.text.push(c);
                }
                '[' => {
                    bracket = true;
                    w.text.push(c);
                }
                ']' if bracket => {
                    w.glob = true;
                    w.text.push(c);
                }
                '~' if self.pos == start + 1 || w.text.ends_with(['=', ':']) => {
                    // `~` or `~/...` is the login home; `~user`, `~+`, `~-` are not.
                    if !self.peek().is_none_or(|n| n == '/' || is_meta(n)) {
                        w.tilde = true;
                    }
                    w.text.push(c);
                }
                _ => {
                    match c {
                        '{' => brace_open = true,
                        ',' if brace_open => brace_list = true,
                        '.' if brace_open && w.text.ends_with('.') => brace_list = true,
                        '}' if brace_list => w.brace = true,
                        _ => {}
                    }
                    w.text.push(c);
                }
            }
        }
        Ok(w)
    }

    /// Reads `"..."` content (after the opening quote) or, with `close` None, a
    /// here-document body up to the end of input.
    pub(super) fn double_quoted(&mut self, w: &mut Word, close: Option<char>) -> PResult<()> {
        loop {
            let Some(c) = self.peek() else {
                return match close {
                    Some(_) => Err("unterminated double quote".into()),
                    None => Ok(()),
                };
            };
            self.pos += 1;
            if Some(c) == close {
                return Ok(());
            }
            match c {
                '\\' => match self.peek() {
                    Some('\n') => self.pos += 1,
                    Some(n @ ('$' | '`' | '\\')) => {
                        self.pos += 1;
                        w.text.push(n);
                    }
                    Some('"') if close.is_some() => {
                        self.pos += 1;
                        w.text.push('"');
                    }
                    _ => w.text.push('\\'),
                },
                '$' => self.dollar(w, true)?,
                '`' => self.backtick(w, true)?,
                _ => w.text.push(c),
            }
        }
    }

    pub(super) fn nested(&mut self, end: End) -> PResult<List> {
        let depth = self.deeper()?;
        let saved = std::mem::replace(&mut self.depth, depth);
        let list = self.list(end)?;
        self.depth = saved;
        if self.peek() != Some(')') {
            return Err("missing `)`".into());
        }
        self.pos += 1;
        Ok(list)
    }

    /// After a `$`.
    fn dollar(&mut self, w: &mut Word, in_quotes: bool) -> PResult<()> {
        let start = self.pos - 1;
        match self.peek() {
            Some('\'') if !in_quotes => {
                self.pos += 1;
                w.quoted = true;
                self.ansi_c(w)?;
            }
            Some('"') if !in_quotes => {
                self.pos += 1;
                w.quoted = true;
                self.double_quoted(w, Some('"'))?;
            }
            Some('(') if self.peek_at(1) == Some('(') => {
                self.pos += 2;
                let mut depth = 0usize;
                let mut expr = String::new();
                loop {
                    match self.peek() {
                        None => return Err("unterminated `$((`".into()),
                        Some(')') if depth == 0 && self.peek_at(1) == Some(')') => break,
                        Some(c) => {
                            depth = match c {
                                '(' => depth + 1,
                                ')' => depth.saturating_sub(1),
                                _ => depth,
                            };
                            expr.push(c);
                        }
                    }
                    self.pos += 1;
                }
                self.pos += 2;
                if !expr.chars().all(|c| c.is_ascii_digit() || " \t+-*/%<>!&|^~?:()".contains(c)) {
                    w.complex.push("arithmetic on names or expansions".into());
                }
                // The value is a number the classifier does not compute (`$((4755))`).
                w.arith = true;
                w.text.push_str(&format!("$(({expr}))"));
            }
            Some('(') => {
                self.pos += 1;
                let list = self.nested(End::Paren)?;
                w.substs.push(Rc::new(list));
                self.push_source(w, start);
            }
            Some('{') => {
                self.pos += 1;
                let mut inner = String::new();
                let mut depth = 0usize;
                loop {
                    match self.peek() {
                        None => return Err("unterminated `${`".into()),
                        Some('}') if depth == 0 => break,
                        Some(c) => {
                            depth = match c {
                                '{' => depth + 1,
                                '}' => depth.saturating_sub(1),
                                _ => depth,
                            };
                            inner.push(c);
                        }
                    }
                    self.pos += 1;
                }
                self.pos += 1;
                self.variable(w, &inner);
                self.push_source(w, start);
            }
            Some('[') => return Err("`$[` arithmetic is not supported".into()),
            Some(c) if c == '_' || c.is_ascii_alphabetic() => {
                let mut name = String::new();
                while let Some(c) = self.peek().filter(|c| *c == '_' || c.is_ascii_alphanumeric()) {
                    name.push(c);
                    self.pos += 1;
                }
                self.variable(w, &name);
                self.push_source(w, start);
            }
            Some(c) if c.is_ascii_digit() || "@*#?$!-".contains(c) => {
                self.pos += 1;
                self.variable(w, &c.to_string());
                self.push_source(w, start);
            }
            _ => w.text.push('$'),
        }
        Ok(())
    }

    fn push_source(&self, w: &mut Word, start: usize) {
        w.text.extend(self.s.get(start..self.pos).unwrap_or_default());
    }

    fn variable(&self, w: &mut Word, name: &str) {
        if name == "_" {
            w.complex.push("`$_` (last argument of the previous command)".into());
        } else if is_name(name) {
            w.vars.push(name.to_string());
        } else if matches!(name, "?" | "#" | "$" | "!" | "-") {
            // Values the shell sets; still not literal text.
            w.vars.push(name.to_string());
        } else if name.chars().all(|c| c.is_ascii_digit()) || name == "@" || name == "*" {
            w.complex.push("positional parameters".into());
        } else {
            w.complex.push(format!("`${{{name}}}` expansion"));
        }
    }

    /// After `$'`.
    fn ansi_c(&mut self, w: &mut Word) -> PResult<()> {
        loop {
            let c = self.peek().ok_or("unterminated `$'`")?;
            self.pos += 1;
            let out = match c {
                '\'' => return Ok(()),
                '\\' => {
                    let e = self.peek().ok_or("unterminated `$'`")?;
                    self.pos += 1;
                    match e {
                        'a' => '\x07',
                        'b' => '\x08',
                        'e' | 'E' => '\x1b',
                        'f' => '\x0c',
                        'n' => '\n',
                        'r' => '\r',
                        't' => '\t',
                        'v' => '\x0b',
                        'c' => {
                            let x = self.peek().ok_or("unterminated `$'`")?;
                            self.pos += 1;
                            char::from_u32(u32::from(x) & 0x1f).unwrap_or('\0')
                        }
                        '0'..='7' => self.number(e.to_digit(8).unwrap_or(0), 8, 2),
                        'x' => self.number(0, 16, 2),
                        'u' => self.number(0, 16, 4),
                        'U' => self.number(0, 16, 8),
                        other => {
                            if !matches!(other, '\\' | '\'' | '"' | '?') {
                                w.text.push('\\');
                            }
                            other
                        }
                    }
                }
                other => other,
            };
            if out.is_control() && out != '\n' && out != '\t' {
                w.complex.push(format!("control character {out:?} in `$'...'`"));
            }
            w.text.push(out);
        }
    }

    fn number(&mut self, mut value: u32, radix: u32, max: usize) -> char {
        for _ in 0..max {
            match self.peek().and_then(|c| c.to_digit(radix)) {
                Some(d) => {
                    value = value.saturating_mul(radix).saturating_add(d);
                    self.pos += 1;
                }
                None => break,
            }
        }
        char::from_u32(value).unwrap_or('\u{fffd}')
    }

    /// After a backtick: the old-style command substitution.
    fn backtick(&mut self, w: &mut Word, in_quotes: bool) -> PResult<()> {
        let start = self.pos - 1;
        let mut inner = String::new();
        loop {
            let c = self.peek().ok_or("unterminated backquote")?;
            self.pos += 1;
            match c {
                '`' => break,
                '\\' => match self.peek() {
                    Some(n) if matches!(n, '$' | '`' | '\\') || (in_quotes && n == '"') => {
                        self.pos += 1;
                        inner.push(n);
                    }
                    _ => inner.push('\\'),
                },
                _ => inner.push(c),
            }
        }
        let script = parse(&inner, self.deeper()?)?;
        self.assigned.extend(script.assigned);
        w.substs.push(Rc::new(script.list));
        self.push_source(w, start);
        Ok(())
    }
}
