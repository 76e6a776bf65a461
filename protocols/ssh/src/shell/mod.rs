//! The shell classifier for exec requests: what would `ssh host 'COMMAND'` do?
//!
//! [`lexer`] reads the line as bash would into lists, pipelines and simple commands with
//! quote-removed words; this module walks that tree, judging redirections, assignments
//! and substitutions. [`rules`] knows the commands themselves, [`wrappers`] unwraps the
//! ones that run others (`sudo`, `env`, `xargs`, `sh -c`); [`tools`] the commands judged
//! by their options, [`writers`] the file-writing ones, [`services`] the multi-verb tools
//! (git, docker, kubectl, systemctl, psql), [`files`] find, sed, awk, tar, chmod and dd,
//! and [`transfer`] curl, wget, rsync and scp. [`opts`] parses options as getopt does;
//! [`paths`] says what writing to a given path means.
//!
//! The policy is fail-closed: a command or option that is not known to be harmless, a
//! command name that is not a plain word, or syntax the lexer does not support comes out
//! [`Class::Unknown`]. So does any command given a word whose value Airlock cannot see
//! (`$VAR`, `$(...)`, a glob, `~user`) unless no argument can make it do harm, and any
//! redirection to or from such a word.

mod files;
mod lexer;
mod opts;
mod paths;
mod rules;
mod services;
mod tools;
mod transfer;
mod wrappers;
mod writers;

use std::collections::HashSet;

use airlock_classes::{Class, Classes};

use lexer::{Command, List, RedirOp, Simple, Word};

/// Longer lines are not read at all.
const MAX_LEN: usize = 64 * 1024;

/// What one exec command line would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Analysis {
    /// The union of every part's classes, never empty: an empty line is `read`, a line
    /// that could not be read is `unknown`.
    pub classes: Classes,
    /// Each simple command found, in the order it runs, with its own classes and a short
    /// reason. Commands inside substitutions and `sh -c` strings are listed too.
    pub commands: Vec<Found>,
    /// Why the line could not be fully understood, if it could not.
    pub error: Option<String>,
}

/// One simple command found in a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The words after quote removal (expansions as written).
    pub argv: Vec<String>,
    /// What this command alone would do, including its redirections.
    pub classes: Classes,
    /// Why, in a few words.
    pub reason: String,
}

/// Classifies `command`. `sql` classifies SQL handed to psql (`psql -c SQL`,
/// `psql <<< SQL`...); the gateway passes the Postgres classifier.
pub fn analyze(command: &str, sql: &dyn Fn(&str) -> Classes) -> Analysis {
    let mut ctx = Ctx {
        sql,
        found: Vec::new(),
        error: None,
        assigned: HashSet::new(),
        cwd: Some(String::new()),
        downloads: false,
        runs_code: false,
    };
    let mut classes = ctx.line(command, 0);
    if ctx.downloads && ctx.runs_code {
        classes |= Class::Admin.into();
    }
    if classes.is_empty() {
        classes = Class::Read.into();
    }
    Analysis { classes, commands: ctx.found, error: ctx.error }
}

/// Shorthand for `analyze(..).classes`.
pub fn classify(command: &str, sql: &dyn Fn(&str) -> Classes) -> Classes {
    analyze(command, sql).classes
}

/// Where a command's standard input comes from, as far as the line shows.
#[derive(Clone, Debug)]
pub(crate) enum Stdin {
    /// The SSH channel: data the agent sends, unseen by the classifier.
    Channel,
    /// The previous command of a pipeline.
    Pipe,
    /// A here-document or here-string; the text if it is literal.
    Text(Option<String>),
    /// A file.
    File,
}

/// The state of one analysis.
pub(crate) struct Ctx<'a> {
    pub sql: &'a dyn Fn(&str) -> Classes,
    pub found: Vec<Found>,
    pub error: Option<String>,
    /// Variables assigned anywhere in the line: their expansions are not trusted.
    pub assigned: HashSet<String>,
    /// The directory relative paths resolve against (`""` is the login directory),
    /// `None` once a `cd` went somewhere the classifier cannot see.
    pub cwd: Option<String>,
    /// Something downloads data...
    pub downloads: bool,
    /// ...and something runs code the line does not show: together, admin.
    pub runs_code: bool,
}

/// The classes of one command and why.
pub(crate) struct Verdict {
    pub classes: Classes,
    pub reason: String,
}

impl Verdict {
    pub(crate) fn new(classes: &[Class], reason: impl Into<String>) -> Verdict {
        Verdict { classes: Classes::of(classes), reason: reason.into() }
    }

    /// Adds classes, keeping the reason.
    pub(crate) fn with(mut self, classes: Classes) -> Verdict {
        self.classes |= classes;
        self
    }
}

impl Ctx<'_> {
    /// Records why the line is not understood; returns `unknown`.
    pub(crate) fn fail(&mut self, why: impl Into<String>) -> Classes {
        let why = why.into();
        if self.error.is_none() {
            self.error = Some(why);
        }
        Class::Unknown.into()
    }

    /// Classifies a whole command line (the exec request, or a `sh -c` string).
    pub(crate) fn line(&mut self, src: &str, depth: usize) -> Classes {
        if depth > lexer::MAX_DEPTH {
            return self.fail(format!("nested more than {} levels", lexer::MAX_DEPTH));
        }
        if src.len() > MAX_LEN {
            return self.fail(format!("command longer than {MAX_LEN} bytes"));
        }
        if let Some(c) = src.chars().find(|c| (c.is_control() && *c != '\n' && *c != '\t') || *c == '\u{fffd}') {
            return self.fail(format!("control character or invalid byte {c:?}"));
        }
        match lexer::parse(src, depth) {
            Ok(script) => {
                self.assigned.extend(script.assigned);
                self.list(&script.list, depth)
            }
            Err(e) => self.fail(e),
        }
    }

    fn list(&mut self, list: &List, depth: usize) -> Classes {
        let mut classes = Classes::NONE;
        for item in &list.items {
            for pipeline in &item.pipelines {
                for (i, cmd) in pipeline.commands.iter().enumerate() {
                    let stdin = if i == 0 { Stdin::Channel } else { Stdin::Pipe };
                    classes |= self.command(cmd, stdin, depth);
                }
            }
        }
        classes
    }

    fn command(&mut self, cmd: &Command, stdin: Stdin, depth: usize) -> Classes {
        match cmd {
            Command::Simple(s) => self.simple(s, stdin, depth),
            Command::Compound(list, redirs) => {
                let mut classes = Classes::NONE;
                // What the group reads is judged by the commands inside, each as if it
                // read the line's own input.
                self.redirs(redirs, &mut classes, stdin, depth);
                classes | self.list(list, depth + 1)
            }
        }
    }

    /// The classes of a word's substitutions and untrusted expansions.
    pub(crate) fn word(&mut self, w: &Word, depth: usize) -> Classes {
        let mut classes = Classes::NONE;
        for list in &w.substs {
            classes |= self.list(list, depth + 1);
        }
        if let Some(why) = w.complex.first() {
            classes |= self.fail(format!("{why} in `{}`", w.text));
        }
        if let Some(v) = w.vars.iter().find(|v| self.assigned.contains(*v)) {
            classes |= self.fail(format!("`${v}` is assigned in the same line"));
        }
        classes
    }

    /// Judges redirections into `classes`; returns where stdin now comes from.
    fn redirs(&mut self, redirs: &[lexer::Redir], classes: &mut Classes, mut stdin: Stdin, depth: usize) -> Stdin {
        for r in redirs {
            *classes |= self.word(&r.target, depth);
            let target = r.target.text.as_str();
            match r.op {
                RedirOp::HereDoc => {
                    let body = r.heredoc.as_ref().and_then(|cell| cell.borrow().clone());
                    match body {
                        Some(body) => {
                            *classes |= self.word(&body, depth);
                            stdin = Stdin::Text(body.is_literal().then_some(body.text));
                        }
                        None => *classes |= self.fail("here-document without a body"),
                    }
                }
                RedirOp::HereString => {
                    stdin = Stdin::Text(r.target.is_literal().then(|| target.to_string()));
                }
                RedirOp::DupIn | RedirOp::DupOut if target == "-" || target.chars().all(|c| c.is_ascii_digit()) => {}
                RedirOp::In => {
                    stdin = Stdin::File;
                    *classes |= paths::read_target(self, &r.target);
                }
                _ => {
                    if r.op == RedirOp::ReadWrite {
                        stdin = Stdin::File;
                    }
                    *classes |= paths::write_target(self, &r.target);
                }
            }
        }
        stdin
    }

    fn simple(&mut self, s: &Simple, stdin: Stdin, depth: usize) -> Classes {
        let mut classes = Classes::NONE;
        for a in &s.assigns {
            classes |= self.word(&a.value, depth);
        }
        let stdin = self.redirs(&s.redirs, &mut classes, stdin, depth);
        for w in &s.words {
            classes |= self.word(w, depth);
        }
        let mut verdict = if s.words.is_empty() {
            Verdict::new(&[Class::Read], "assignment or redirection only")
        } else {
            rules::run(self, &s.words, &stdin, depth)
        };
        for a in &s.assigns {
            let ok = if s.words.is_empty() {
                rules::shell_var_ok(&a.name)
            } else {
                // The command sees the value, which Airlock cannot.
                rules::env_var_ok(&a.name) && a.value.is_literal()
            };
            if !ok {
                verdict.classes |= Class::Unknown.into();
                verdict.reason = format!("assigns `{}`; {}", a.name, verdict.reason);
            }
        }
        classes |= verdict.classes;
        self.found.push(Found {
            argv: s.words.iter().map(|w| w.text.clone()).collect(),
            classes,
            reason: verdict.reason,
        });
        classes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn unknown_sql(_: &str) -> Classes {
        Class::Unknown.into()
    }

    #[test]
    fn empty_line_is_read_and_lex_failure_is_unknown() {
        let a = analyze("", &unknown_sql);
        assert_eq!(a.classes, Classes::from(Class::Read));
        assert!(a.commands.is_empty() && a.error.is_none());
        let a = analyze("echo 'open", &unknown_sql);
        assert_eq!(a.classes, Classes::from(Class::Unknown));
        assert_eq!(a.error.as_deref(), Some("unterminated single quote"));
    }

    #[test]
    fn found_lists_commands_in_the_order_they_run() {
        let a = analyze("ls $(rm -rf /x) | wc -l", &unknown_sql);
        let argv: Vec<Vec<String>> = a.commands.iter().map(|f| f.argv.clone()).collect();
        assert_eq!(argv, [vec!["rm", "-rf", "/x"], vec!["ls", "$(rm -rf /x)"], vec!["wc", "-l"]]);
        assert_eq!(a.commands.first().map(|f| f.classes), Some(Class::Destructive.into()));
    }

    #[test]
    fn deep_nesting_and_long_lines_are_unknown() {
        let deep = format!("{}ls{}", "$(".repeat(40), ")".repeat(40));
        assert_eq!(classify(&deep, &unknown_sql), Classes::from(Class::Unknown));
        let deep = format!("{}ls'", "bash -c '".repeat(3));
        assert!(classify(&deep, &unknown_sql).contains(Class::Unknown));
        let long = format!("echo {}", "a".repeat(MAX_LEN));
        assert_eq!(classify(&long, &unknown_sql), Classes::from(Class::Unknown));
        let wrapped = format!("{}rm -rf /x", "sudo timeout 1 ".repeat(20));
        assert!(classify(&wrapped, &unknown_sql).contains(Class::Unknown));
        // Quoting doubles at each `sh -c` level, so the length cap bounds that recursion.
        let mut nested = "rm -rf /x".to_string();
        for _ in 0..12 {
            nested = format!("sh -c '{}'", nested.replace('\'', r"'\''"));
        }
        assert!(classify(&nested, &unknown_sql).contains(Class::Unknown));
    }

    #[test]
    fn quoting_resolves_to_the_same_command() {
        for line in ["rm -rf /x", "r'm' -rf /x", "\"r\"m -rf /x", "r\\m -rf /x", "$'\\x72\\x6d' -rf /x", "\\rm -rf /x"]
        {
            assert_eq!(classify(line, &unknown_sql), Classes::from(Class::Destructive), "{line}");
        }
    }

    #[test]
    fn heredoc_fed_one_byte_at_a_time_never_reads_as_less_than_whole() {
        // Every prefix of a line either fails (unknown) or is judged; none panics.
        let line = "cat <<EOF; rm -rf /x\n$(id)\nEOF\necho \"a$(ls)\" | tee /tmp/o";
        for end in 0..=line.len() {
            if let Some(prefix) = line.get(..end) {
                let _ = analyze(prefix, &unknown_sql);
            }
        }
        assert!(classify(line, &unknown_sql).contains(Class::Destructive));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let line = String::from_utf8_lossy(&bytes);
            let a = analyze(&line, &unknown_sql);
            prop_assert!(!a.classes.is_empty());
        }

        #[test]
        fn metacharacter_soup_never_panics_and_never_loses_unknown(
            parts in proptest::collection::vec(prop::sample::select(vec![
                "$(", ")", "`", "'", "\"", "\\", "$'\\x72'", "${", "}", "{", " ", ";", "&", "&&",
                "|", "||", "|&", "<", ">", ">>", "<<", "<<<", "<<-", "2>&1", "&>", "(", "\n",
                "#", "$", "$((", "))", "*", "?", "[", "]", "~", "=", "rm", "ls", "sh -c ", "EOF",
                "sudo ", "xargs ", "find . -exec ", "-rf", "/", "a", "x=1 ", "$IFS", "{a,b}",
            ]), 0..40)
        ) {
            let line: String = parts.concat();
            let a = analyze(&line, &unknown_sql);
            prop_assert!(!a.classes.is_empty());
            if a.error.is_some() {
                prop_assert!(a.classes.contains(Class::Unknown));
            }
        }
    }
}
