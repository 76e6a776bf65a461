//! Reads one exec command line the way bash would, into lists, pipelines and simple
//! commands whose words are already quote-removed. Expansions are not performed: a word
//! records which ones it holds, so the classifier can refuse to trust what it cannot
//! see. Anything outside the supported subset (`if`, `case`, loops, functions,
//! arithmetic commands, unterminated quotes) is an error, never a guess.

mod words;

use std::cell::RefCell;
use std::rc::Rc;

/// Nesting deeper than this (substitutions, subshells, groups) is refused.
pub(crate) const MAX_DEPTH: usize = 16;

/// Commands joined by `;`, `&` or newlines.
#[derive(Debug, Default)]
pub(crate) struct List {
    pub items: Vec<AndOr>,
}

/// Pipelines joined by `&&` and `||`.
#[derive(Debug)]
pub(crate) struct AndOr {
    pub pipelines: Vec<Pipeline>,
}

/// Commands joined by `|` or `|&`.
#[derive(Debug)]
pub(crate) struct Pipeline {
    pub commands: Vec<Command>,
}

/// One element of a pipeline.
#[derive(Debug)]
pub(crate) enum Command {
    Simple(Simple),
    /// `( list )` or `{ list; }` with the redirections that follow it.
    Compound(List, Vec<Redir>),
}

/// Assignments, words and redirections of one simple command.
#[derive(Debug, Default)]
pub(crate) struct Simple {
    pub assigns: Vec<Assign>,
    pub words: Vec<Word>,
    pub redirs: Vec<Redir>,
}

/// `NAME=value` before a command (or alone).
#[derive(Debug)]
pub(crate) struct Assign {
    pub name: String,
    pub value: Word,
}

/// The redirection operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RedirOp {
    In,
    Out,
    Append,
    Clobber,
    ReadWrite,
    OutErr,
    AppendErr,
    DupIn,
    DupOut,
    HereDoc,
    HereString,
}

/// A here-document body, filled in when the parser reaches the line after its operator.
pub(crate) type HereDocCell = Rc<RefCell<Option<Word>>>;

/// One redirection.
#[derive(Debug)]
pub(crate) struct Redir {
    pub op: RedirOp,
    pub target: Word,
    pub heredoc: Option<HereDocCell>,
}

/// A word after quote removal. Expansions stay as their source text in `text`.
#[derive(Debug, Default, Clone)]
pub(crate) struct Word {
    /// The text after quote removal; expansions appear as written.
    pub text: String,
    /// Whether any part was quoted or escaped.
    pub quoted: bool,
    /// An unquoted `*`, `?` or `[`.
    pub glob: bool,
    /// An unquoted brace expansion such as `{a,b}` or `{1..3}`.
    pub brace: bool,
    /// An unquoted `~` that names another directory than the login home (`~user`,
    /// `~+`, `~-`, at the start or after `=` or `:`). A bare `~` or `~/...` is the home
    /// and stays literal: paths treat `~/` as the login directory.
    pub tilde: bool,
    /// Plain variables expanded: `$NAME`, `${NAME}`.
    pub vars: Vec<String>,
    /// Expansions whose value cannot be judged, with why.
    pub complex: Vec<String>,
    /// Command and process substitutions, parsed.
    pub substs: Vec<Rc<List>>,
    /// A value supplied at run time by another program (xargs input, find's `{}`).
    pub opaque: bool,
    /// The run-time value is a path that cannot start with `-` (find's `{}`).
    pub path: bool,
    /// An arithmetic expansion `$((...))`.
    pub arith: bool,
}

impl Word {
    /// A word with exactly this text and nothing to expand.
    pub(crate) fn plain(text: &str) -> Word {
        Word { text: text.to_string(), ..Word::default() }
    }

    /// A word whose value is only known at run time.
    pub(crate) fn opaque(text: &str) -> Word {
        Word { text: text.to_string(), opaque: true, ..Word::default() }
    }

    /// Nothing in the word expands: its text is what the command receives. Every
    /// expansion's value is unknown to Airlock (variables may come from the client's
    /// environment or from bash itself, like `$BASH_EXECUTION_STRING`).
    pub(crate) fn is_literal(&self) -> bool {
        self.complex.is_empty()
            && self.substs.is_empty()
            && self.vars.is_empty()
            && !self.glob
            && !self.brace
            && !self.opaque
            && !self.path
            && !self.tilde
            && !self.arith
    }

    /// Not literal, but whatever it becomes are existing file names that cannot be
    /// options: a glob that starts with a literal character other than `-` (`/var/log/*`,
    /// `a*`), or find's `{}`.
    pub(crate) fn is_operand_only(&self) -> bool {
        let plain = self.complex.is_empty()
            && self.substs.is_empty()
            && self.vars.is_empty()
            && !self.brace
            && !self.tilde
            && !self.arith;
        let glob_ok =
            self.glob && !self.opaque && !self.path && self.text.chars().next().is_some_and(|c| !"-*?[".contains(c));
        let path_ok = self.path && !self.glob;
        plain && (glob_ok || path_ok)
    }
}

struct Pending {
    delim: String,
    strip_tabs: bool,
    quoted: bool,
    cell: HereDocCell,
}

type PResult<T> = Result<T, String>;

const RESERVED: &[&str] = &[
    "if", "then", "else", "elif", "fi", "case", "esac", "for", "while", "until", "do", "done", "select", "function",
    "coproc", "[[", "]]", "}", "in",
];

/// The parse of one command line: the list and every variable name assigned in it.
#[derive(Debug, Default)]
pub(crate) struct Script {
    pub list: List,
    pub assigned: Vec<String>,
}

/// Parses `src` at nesting `depth`.
pub(crate) fn parse(src: &str, depth: usize) -> PResult<Script> {
    let chars: Vec<char> = src.chars().collect();
    let mut p = Parser { s: &chars, pos: 0, depth, pending: Vec::new(), assigned: Vec::new() };
    let list = p.list(End::Eof)?;
    if p.pos < chars.len() {
        return Err(format!("unexpected {:?}", p.peek().unwrap_or(' ')));
    }
    if !p.pending.is_empty() {
        return Err("here-document without a body".into());
    }
    Ok(Script { list, assigned: p.assigned })
}

#[derive(Clone, Copy, PartialEq)]
enum End {
    Eof,
    Paren,
    Brace,
}

struct Parser<'a> {
    s: &'a [char],
    pos: usize,
    depth: usize,
    pending: Vec<Pending>,
    assigned: Vec<String>,
}

fn is_meta(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | ';' | '&' | '|' | '<' | '>' | '(' | ')')
}

fn is_name(s: &str) -> bool {
    let mut cs = s.chars();
    matches!(cs.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && cs.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.s.get(self.pos).copied()
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.s.get(self.pos + n).copied()
    }

    fn starts(&self, lit: &str) -> bool {
        lit.chars().enumerate().all(|(i, c)| self.peek_at(i) == Some(c))
    }

    fn deeper(&self) -> PResult<usize> {
        if self.depth + 1 > MAX_DEPTH {
            return Err(format!("nested more than {MAX_DEPTH} levels"));
        }
        Ok(self.depth + 1)
    }

    /// Skips blanks and a comment, not newlines.
    fn blanks(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.pos += 1;
        }
        if self.peek() == Some('#') {
            while !matches!(self.peek(), None | Some('\n')) {
                self.pos += 1;
            }
        }
    }

    /// Skips blanks, comments and newlines, reading here-document bodies at each newline.
    fn linebreaks(&mut self) -> PResult<()> {
        loop {
            self.blanks();
            if self.peek() == Some('\n') {
                self.pos += 1;
                self.heredocs()?;
            } else {
                return Ok(());
            }
        }
    }

    fn at_word(&self, w: &str) -> bool {
        self.starts(w) && self.peek_at(w.chars().count()).is_none_or(is_meta)
    }

    fn at_end(&self, end: End) -> bool {
        match end {
            End::Eof => self.peek().is_none(),
            End::Paren => self.peek() == Some(')') || self.peek().is_none(),
            End::Brace => self.at_word("}") || self.peek().is_none(),
        }
    }

    fn list(&mut self, end: End) -> PResult<List> {
        let mut list = List::default();
        loop {
            self.linebreaks()?;
            if self.at_end(end) {
                return Ok(list);
            }
            list.items.push(self.and_or()?);
            self.blanks();
            match self.peek() {
                Some(';') if self.peek_at(1) == Some(';') => return Err("`;;` outside case".into()),
                Some(';') | Some('&') => self.pos += 1,
                Some('\n') => {
                    self.pos += 1;
                    self.heredocs()?;
                }
                _ if self.at_end(end) => return Ok(list),
                Some(c) => return Err(format!("unexpected {c:?}")),
                None => return Ok(list),
            }
        }
    }

    fn and_or(&mut self) -> PResult<AndOr> {
        let mut pipelines = vec![self.pipeline()?];
        loop {
            self.blanks();
            if self.starts("&&") || self.starts("||") {
                self.pos += 2;
                self.linebreaks()?;
                pipelines.push(self.pipeline()?);
            } else {
                return Ok(AndOr { pipelines });
            }
        }
    }

    fn pipeline(&mut self) -> PResult<Pipeline> {
        self.blanks();
        if self.at_word("!") {
            self.pos += 1;
        }
        let mut commands = vec![self.command()?];
        loop {
            self.blanks();
            if self.starts("|&") {
                self.pos += 2;
            } else if self.peek() == Some('|') && self.peek_at(1) != Some('|') {
                self.pos += 1;
            } else {
                return Ok(Pipeline { commands });
            }
            self.linebreaks()?;
            commands.push(self.command()?);
        }
    }

    fn command(&mut self) -> PResult<Command> {
        self.blanks();
        let inner = if self.peek() == Some('(') {
            if self.peek_at(1) == Some('(') {
                return Err("arithmetic command `((` is not supported".into());
            }
            self.pos += 1;
            Some((End::Paren, ')'))
        } else if self.at_word("{") {
            self.pos += 1;
            Some((End::Brace, '}'))
        } else {
            None
        };
        let Some((end, close)) = inner else {
            return self.simple().map(Command::Simple);
        };
        let depth = self.deeper()?;
        let saved = std::mem::replace(&mut self.depth, depth);
        let list = self.list(end)?;
        self.depth = saved;
        if self.peek() != Some(close) {
            return Err(format!("missing `{close}`"));
        }
        self.pos += 1;
        let mut redirs = Vec::new();
        loop {
            self.blanks();
            if self.at_redir() {
                redirs.push(self.redir()?);
            } else if self.peek().is_none_or(is_meta) {
                return Ok(Command::Compound(list, redirs));
            } else {
                return Err(format!("unexpected word after `{close}`"));
            }
        }
    }

    fn at_redir(&self) -> bool {
        let mut i = 0;
        while self.peek_at(i).is_some_and(|c| c.is_ascii_digit()) {
            i += 1;
        }
        match (self.peek_at(i), self.peek_at(i + 1)) {
            (Some('<' | '>'), Some('(')) => false,
            (Some('<' | '>'), _) => true,
            (Some('&'), Some('>')) => i == 0,
            _ => false,
        }
    }

    fn simple(&mut self) -> PResult<Simple> {
        let mut cmd = Simple::default();
        loop {
            self.blanks();
            let Some(c) = self.peek() else { break };
            if self.at_redir() {
                cmd.redirs.push(self.redir()?);
                continue;
            }
            if c == '(' {
                return Err("function definitions and `(` inside a command are not supported".into());
            }
            if is_meta(c) && !(matches!(c, '<' | '>') && self.peek_at(1) == Some('(')) {
                break;
            }
            let start = self.pos;
            let word = self.word()?;
            let raw: String = self.s.get(start..self.pos).unwrap_or_default().iter().collect();
            if cmd.words.is_empty() {
                if let Some(name) = assignment_name(&raw) {
                    self.assigned.push(name.clone());
                    let value = match word.text.split_once('=') {
                        Some((_, v)) => Word { text: v.to_string(), ..word },
                        None => word,
                    };
                    if name.contains('[') || self.peek() == Some('(') {
                        return Err("array assignments are not supported".into());
                    }
                    cmd.assigns.push(Assign { name, value });
                    continue;
                }
                if RESERVED.contains(&raw.as_str()) {
                    return Err(format!("`{raw}` (compound commands) is not supported"));
                }
            }
            cmd.words.push(word);
        }
        if cmd.assigns.is_empty() && cmd.words.is_empty() && cmd.redirs.is_empty() {
            return Err(match self.peek() {
                Some(c) => format!("unexpected {c:?}"),
                None => "missing command".into(),
            });
        }
        Ok(cmd)
    }

    fn redir(&mut self) -> PResult<Redir> {
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        let ops: &[(&str, RedirOp)] = &[
            ("&>>", RedirOp::AppendErr),
            ("&>", RedirOp::OutErr),
            ("<<<", RedirOp::HereString),
            ("<<-", RedirOp::HereDoc),
            ("<<", RedirOp::HereDoc),
            ("<&", RedirOp::DupIn),
            ("<>", RedirOp::ReadWrite),
            ("<", RedirOp::In),
            (">>", RedirOp::Append),
            (">&", RedirOp::DupOut),
            (">|", RedirOp::Clobber),
            (">", RedirOp::Out),
        ];
        let Some(&(lit, op)) = ops.iter().find(|(lit, _)| self.starts(lit)) else {
            return Err("bad redirection".into());
        };
        self.pos += lit.len();
        self.blanks();
        let start = self.pos;
        if self.peek().is_none_or(is_meta) {
            return Err(format!("`{lit}` without a target"));
        }
        let target = self.word()?;
        let mut heredoc = None;
        if op == RedirOp::HereDoc {
            let raw: String = self.s.get(start..self.pos).unwrap_or_default().iter().collect();
            let cell: HereDocCell = Rc::new(RefCell::new(None));
            self.pending.push(Pending {
                delim: target.text.clone(),
                strip_tabs: lit == "<<-",
                quoted: raw.contains(['\'', '"', '\\']),
                cell: cell.clone(),
            });
            heredoc = Some(cell);
        }
        Ok(Redir { op, target, heredoc })
    }

    /// Reads the bodies of the here-documents opened on the line just ended.
    fn heredocs(&mut self) -> PResult<()> {
        for p in std::mem::take(&mut self.pending) {
            let mut body = String::new();
            loop {
                if self.peek().is_none() {
                    return Err(format!("here-document `{}` is not terminated", p.delim));
                }
                let mut line = String::new();
                while let Some(c) = self.peek() {
                    self.pos += 1;
                    if c == '\n' {
                        break;
                    }
                    line.push(c);
                }
                let line = if p.strip_tabs { line.trim_start_matches('\t') } else { &line };
                if line == p.delim {
                    break;
                }
                body.push_str(line);
                body.push('\n');
            }
            let word = if p.quoted {
                Word::plain(&body)
            } else {
                let chars: Vec<char> = body.chars().collect();
                let mut sub =
                    Parser { s: &chars, pos: 0, depth: self.deeper()?, pending: Vec::new(), assigned: Vec::new() };
                let mut w = Word::default();
                sub.double_quoted(&mut w, None)?;
                self.assigned.append(&mut sub.assigned);
                w
            };
            *p.cell.borrow_mut() = Some(word);
        }
        Ok(())
    }
}

/// The name assigned by a word such as `NAME=value` or `NAME+=value`, judged on the
/// raw source so that a quoted `"A=1"` is not an assignment.
fn assignment_name(raw: &str) -> Option<String> {
    let (head, _) = raw.split_once('=')?;
    let head = head.strip_suffix('+').unwrap_or(head);
    let base = head.split_once('[').map_or(head, |(b, _)| b);
    is_name(base).then(|| head.to_string())
}
