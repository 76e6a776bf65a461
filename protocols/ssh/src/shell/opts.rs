//! Option parsing the way `getopt_long` does it, so the classifier sees the same options
//! the program will: short options clustered (`-cvItouch`, where a value-taking letter
//! swallows the rest of the word or the next one), long options by any unambiguous
//! prefix (`--to-c=sh` is `--to-command`), `--name=value` and `--name value`, options
//! after operands, and `--` ending them. An option the table does not know, an
//! ambiguous prefix, or a missing value is an error: the caller says `unknown`.

use super::lexer::Word;

/// A program's options. `short` is in getopt syntax (`"ab:c::"`: `a` alone, `b` with a
/// value, `c` with an optional attached value). `long` entries are `name` (no value),
/// `name=` (value required), `name?` (value only as `--name=value`), optionally led by
/// the short letter they equal: `o|output=`, separated by blanks.
pub(crate) struct Spec {
    pub short: &'static str,
    pub long: &'static str,
}

/// Whether an option takes a value.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Arg {
    No,
    Required,
    Optional,
}

/// One option found: its canonical name (the long name without dashes when there is
/// one, else `-x`) and its value.
#[derive(Debug, Clone)]
pub(crate) struct Opt {
    pub name: String,
    pub value: Option<String>,
}

/// The options and operands of one command line.
pub(crate) struct Parsed<'w> {
    pub opts: Vec<Opt>,
    pub operands: Vec<&'w Word>,
    /// Index in the arguments where the wrapped command starts ([`parse_until`]).
    pub rest: usize,
}

impl Parsed<'_> {
    /// Whether any of these options is present.
    pub(crate) fn has(&self, names: &[&str]) -> bool {
        self.opts.iter().any(|o| names.contains(&o.name.as_str()))
    }

    /// The values of these options.
    pub(crate) fn values<'s>(&'s self, names: &'s [&str]) -> impl Iterator<Item = &'s str> {
        self.opts.iter().filter(move |o| names.contains(&o.name.as_str())).filter_map(|o| o.value.as_deref())
    }

    /// The first option not among `allowed`.
    pub(crate) fn other(&self, allowed: &[&str]) -> Option<&Opt> {
        self.opts.iter().find(|o| !allowed.contains(&o.name.as_str()))
    }
}

impl Spec {
    fn short_arg(&self, c: char) -> Option<Arg> {
        let mut cs = self.short.chars().peekable();
        while let Some(x) = cs.next() {
            let mut arg = Arg::No;
            if cs.next_if_eq(&':').is_some() {
                arg = if cs.next_if_eq(&':').is_some() { Arg::Optional } else { Arg::Required };
            }
            if x == c {
                return Some(arg);
            }
        }
        None
    }

    /// `(alias, name, arg)` of each long entry.
    fn longs(&self) -> impl Iterator<Item = (Option<char>, &'static str, Arg)> {
        self.long.split_whitespace().map(|e| {
            let (alias, rest) = match e.split_once('|') {
                Some((a, r)) => (a.chars().next(), r),
                None => (None, e),
            };
            if let Some(n) = rest.strip_suffix('=') {
                (alias, n, Arg::Required)
            } else if let Some(n) = rest.strip_suffix('?') {
                (alias, n, Arg::Optional)
            } else {
                (alias, rest, Arg::No)
            }
        })
    }

    fn canonical_short(&self, c: char) -> String {
        self.longs().find(|(a, _, _)| *a == Some(c)).map_or_else(|| format!("-{c}"), |(_, n, _)| n.to_string())
    }

    /// Resolves a long option name the way getopt_long does: exact, else the one
    /// option it is a prefix of.
    fn resolve_long(&self, given: &str) -> Result<(&'static str, Arg), String> {
        if let Some((_, n, a)) = self.longs().find(|(_, n, _)| *n == given) {
            return Ok((n, a));
        }
        let mut found = self.longs().filter(|(_, n, _)| n.starts_with(given));
        match (found.next(), found.next()) {
            (Some((_, n, a)), None) if !given.is_empty() => Ok((n, a)),
            (Some(_), Some(_)) => Err(format!("option `--{given}` is ambiguous")),
            _ => Err(format!("option `--{given}` is not known")),
        }
    }
}

/// Whether `name` is one of the blank-separated words of `list`.
pub(crate) fn listed(list: &str, name: &str) -> bool {
    list.split_whitespace().any(|w| w == name)
}

/// Parses GNU-style arguments, options anywhere (as GNU programs permute them).
pub(crate) fn parse<'w>(args: &'w [Word], spec: &Spec) -> Result<Parsed<'w>, String> {
    parse_words(args, spec, None)
}

/// Parses the options of a command that runs another (`timeout 5 CMD...`): options
/// stop at the operand after `operands` leading operands; `rest` is where CMD starts.
pub(crate) fn parse_until<'w>(args: &'w [Word], spec: &Spec, operands: usize) -> Result<Parsed<'w>, String> {
    parse_words(args, spec, Some(operands))
}

fn parse_words<'w>(args: &'w [Word], spec: &Spec, stop: Option<usize>) -> Result<Parsed<'w>, String> {
    let mut p = Parsed { opts: Vec::new(), operands: Vec::new(), rest: args.len() };
    let mut i = 0;
    let mut done = false;
    while let Some(w) = args.get(i) {
        i += 1;
        let t = w.text.as_str();
        if done || t == "-" || !t.starts_with('-') {
            if let Some(n) = stop
                && p.operands.len() >= n
            {
                p.rest = i - 1;
                return Ok(p);
            }
            p.operands.push(w);
            continue;
        }
        if t == "--" {
            done = true;
            continue;
        }
        if let Some(long) = t.strip_prefix("--") {
            let (given, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let (name, arg) = spec.resolve_long(given)?;
            let value = match (arg, inline) {
                (Arg::No, Some(_)) => return Err(format!("option `--{name}` takes no value")),
                (Arg::No, None) => None,
                (_, Some(v)) => Some(v),
                (Arg::Optional, None) => None,
                (Arg::Required, None) => {
                    let v = args.get(i).ok_or_else(|| format!("option `--{name}` needs a value"))?;
                    i += 1;
                    Some(v.text.clone())
                }
            };
            p.opts.push(Opt { name: name.to_string(), value });
            continue;
        }
        let mut cs = t.chars().skip(1);
        while let Some(c) = cs.next() {
            let arg = spec.short_arg(c).ok_or_else(|| format!("option `-{c}` is not known"))?;
            let name = spec.canonical_short(c);
            if arg == Arg::No {
                p.opts.push(Opt { name, value: None });
                continue;
            }
            let attached: String = cs.by_ref().collect();
            let value = if !attached.is_empty() {
                Some(attached)
            } else if arg == Arg::Required {
                let v = args.get(i).ok_or_else(|| format!("option `-{c}` needs a value"))?;
                i += 1;
                Some(v.text.clone())
            } else {
                None
            };
            p.opts.push(Opt { name, value });
        }
    }
    Ok(p)
}

/// Rewrites tar's old-style first argument (`tar xvfI a.tar prog`) into dashed options,
/// each value-taking letter taking the next word, so it parses like any other.
pub(crate) fn old_style(args: &[Word], spec: &Spec) -> Vec<Word> {
    let Some((first, rest)) = args.split_first() else {
        return Vec::new();
    };
    if first.text.starts_with('-') {
        return args.to_vec();
    }
    let mut out = Vec::new();
    let mut pool = rest.iter();
    for c in first.text.chars() {
        let mut opt = first.clone();
        opt.text = format!("-{c}");
        out.push(opt);
        if matches!(spec.short_arg(c), Some(Arg::Required | Arg::Optional))
            && let Some(v) = pool.next()
        {
            out.push(v.clone());
        }
    }
    out.extend(pool.cloned());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SORT: Spec =
        Spec { short: "no:S:T:k:", long: "n|numeric-sort o|output= compress-program= check? S|buffer-size=" };

    fn words(s: &str) -> Vec<Word> {
        s.split(' ').map(Word::plain).collect()
    }

    fn names(p: &Parsed<'_>) -> Vec<(String, Option<String>)> {
        p.opts.iter().map(|o| (o.name.clone(), o.value.clone())).collect()
    }

    #[test]
    fn clusters_and_values_parse_like_getopt() {
        let w = words("-no /x/f in");
        let p = parse(&w, &SORT).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(names(&p), [("numeric-sort".into(), None), ("output".into(), Some("/x/f".into()))]);
        assert_eq!(p.operands.iter().map(|w| w.text.as_str()).collect::<Vec<_>>(), ["in"]);
        let w = words("-nS8K --comp=sh big");
        let p = parse(&w, &SORT).unwrap_or_else(|e| panic!("{e}"));
        assert!(p.has(&["compress-program"]) && p.values(&["buffer-size"]).eq(["8K"]));
    }

    #[test]
    fn long_prefixes_resolve_or_fail() {
        let w = words("--ch /home/u/.bashrc");
        let p = parse(&w, &SORT).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(names(&p), [("check".into(), None)]);
        assert_eq!(p.operands.len(), 1);
        for bad in ["--c", "--nope", "-q", "--numeric-sort=1", "-o"] {
            assert!(parse(&words(bad), &SORT).is_err(), "{bad}");
        }
    }

    #[test]
    fn old_style_tar_letters_take_the_next_words() {
        let spec = Spec { short: "xvf:I:", long: "" };
        let w = old_style(&words("xfI a.tar prog in"), &spec);
        let p = parse(&w, &spec).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            names(&p),
            [("-x".into(), None), ("-f".into(), Some("a.tar".into())), ("-I".into(), Some("prog".into()))]
        );
    }
}
