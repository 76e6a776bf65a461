//! The GraphQL executable-document grammar (October 2021 edition, §2.2 to §2.12),
//! parsed in full and thrown away but for what [`super::select`] needs: each
//! definition's kind and name.
//!
//! Parsing all of it, not skipping bracketed parts, means that a document Airlock
//! reads is one the grammar accepts, so it is the document the server reads too.
//! Type-system definitions (`type`, `schema`, `extend`... and descriptions, which
//! only precede those) are refused as a kind of their own, as servers do.

use super::lex::{Kind, Lexer, Token};
use super::{GraphqlError, MAX_DEPTH, OperationKind};

/// One top-level definition of an executable document, with what its top-level
/// selection set names: fields (by name, not alias) and fragment spreads. Inline
/// fragments at the top level count as the top level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Definition<'a> {
    Operation { kind: OperationKind, name: Option<&'a str>, top: Top<'a> },
    Fragment { name: &'a str, top: Top<'a> },
}

/// What a definition's top-level selection set names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Top<'a> {
    pub fields: Vec<&'a str>,
    pub spreads: Vec<&'a str>,
}

/// A parsed document: its definitions, and whether any field anywhere is aliased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Document<'a> {
    pub definitions: Vec<Definition<'a>>,
    pub aliased: bool,
}

/// The definitions of `src`, in order.
pub(super) fn document(src: &str) -> Result<Document<'_>> {
    let mut p = Parser::new(src)?;
    let mut definitions = Vec::new();
    while p.tok.kind != Kind::End {
        definitions.push(p.definition()?);
    }
    if definitions.is_empty() {
        return Err(p.lex.error(p.tok.at, "empty document"));
    }
    Ok(Document { definitions, aliased: p.aliased })
}

/// Names that start a type-system definition or extension.
const TYPE_SYSTEM: [&str; 9] =
    ["schema", "scalar", "type", "interface", "union", "enum", "input", "directive", "extend"];

struct Parser<'a> {
    lex: Lexer<'a>,
    /// The current token, not yet consumed.
    tok: Token<'a>,
    /// The depth whose selections are the current definition's top level.
    top_depth: usize,
    top: Top<'a>,
    aliased: bool,
}

type Result<T> = std::result::Result<T, GraphqlError>;

impl<'a> Parser<'a> {
    fn new(src: &'a str) -> Result<Parser<'a>> {
        let mut lex = Lexer::new(src);
        let tok = lex.next()?;
        Ok(Parser { lex, tok, top_depth: 1, top: Top::default(), aliased: false })
    }

    /// Consumes the current token.
    fn bump(&mut self) -> Result<Token<'a>> {
        let tok = self.tok;
        self.tok = self.lex.next()?;
        Ok(tok)
    }

    fn is(&self, punct: u8) -> bool {
        self.tok.kind == Kind::Punct(punct)
    }

    /// Consumes `punct` if it is next.
    fn eat(&mut self, punct: u8) -> Result<bool> {
        if self.is(punct) {
            self.bump()?;
            return Ok(true);
        }
        Ok(false)
    }

    fn expect(&mut self, punct: u8, what: &'static str) -> Result<()> {
        if self.eat(punct)? { Ok(()) } else { Err(self.unexpected(what)) }
    }

    fn name(&mut self, what: &'static str) -> Result<&'a str> {
        match self.tok.kind {
            Kind::Name(name) => {
                self.bump()?;
                Ok(name)
            }
            _ => Err(self.unexpected(what)),
        }
    }

    fn unexpected(&self, what: &'static str) -> GraphqlError {
        self.lex.error(self.tok.at, what)
    }

    /// One nesting level below `depth`, or an error past [`MAX_DEPTH`].
    fn deeper(&self, depth: usize) -> Result<usize> {
        if depth >= MAX_DEPTH {
            return Err(GraphqlError::TooDeep(self.lex.position(self.tok.at)));
        }
        Ok(depth + 1)
    }

    /// ExecutableDefinition.
    fn definition(&mut self) -> Result<Definition<'a>> {
        self.top_depth = 1;
        self.top = Top::default();
        let kind = match self.tok.kind {
            Kind::Punct(b'{') => {
                self.selection_set(0)?;
                let top = std::mem::take(&mut self.top);
                return Ok(Definition::Operation { kind: OperationKind::Query, name: None, top });
            }
            Kind::Name("query") => OperationKind::Query,
            Kind::Name("mutation") => OperationKind::Mutation,
            Kind::Name("subscription") => OperationKind::Subscription,
            Kind::Name("fragment") => return self.fragment_definition(),
            // A description (a string) only ever precedes a type-system definition.
            Kind::Name(name) if TYPE_SYSTEM.contains(&name) => {
                return Err(GraphqlError::TypeSystem(self.lex.position(self.tok.at)));
            }
            Kind::String => return Err(GraphqlError::TypeSystem(self.lex.position(self.tok.at))),
            _ => return Err(self.unexpected("expected `query`, `mutation`, `subscription`, `fragment` or `{`")),
        };
        self.bump()?;
        let name = match self.tok.kind {
            Kind::Name(name) => {
                self.bump()?;
                Some(name)
            }
            _ => None,
        };
        if self.is(b'(') {
            self.variable_definitions()?;
        }
        self.directives(false, 0)?;
        self.selection_set(0)?;
        Ok(Definition::Operation { kind, name, top: std::mem::take(&mut self.top) })
    }

    /// FragmentDefinition, at `fragment`.
    fn fragment_definition(&mut self) -> Result<Definition<'a>> {
        self.bump()?;
        if self.tok.kind == Kind::Name("on") {
            return Err(self.unexpected("a fragment cannot be named `on`"));
        }
        let name = self.name("expected a fragment name")?;
        self.type_condition()?;
        self.directives(false, 0)?;
        self.selection_set(0)?;
        Ok(Definition::Fragment { name, top: std::mem::take(&mut self.top) })
    }

    /// TypeCondition: `on` NamedType.
    fn type_condition(&mut self) -> Result<()> {
        if self.tok.kind != Kind::Name("on") {
            return Err(self.unexpected("expected `on` and a type"));
        }
        self.bump()?;
        self.name("expected a type name after `on`")?;
        Ok(())
    }

    /// SelectionSet: `{` Selection+ `}`, nested one level below `depth`.
    fn selection_set(&mut self, depth: usize) -> Result<()> {
        let depth = self.deeper(depth)?;
        self.expect(b'{', "expected `{`")?;
        loop {
            self.selection(depth)?;
            if self.eat(b'}')? {
                return Ok(());
            }
        }
    }

    /// Field, FragmentSpread or InlineFragment.
    fn selection(&mut self, depth: usize) -> Result<()> {
        let at_top = depth == self.top_depth;
        if self.tok.kind == Kind::Spread {
            self.bump()?;
            match self.tok.kind {
                Kind::Name(name) if name != "on" => {
                    if at_top {
                        self.top.spreads.push(name);
                    }
                    self.bump()?;
                    return self.directives(false, depth);
                }
                Kind::Name(_) => self.type_condition()?,
                _ => {}
            }
            self.directives(false, depth)?;
            if !at_top {
                return self.selection_set(depth);
            }
            // An inline fragment's selections are its parent's level.
            self.top_depth = depth + 1;
            let inner = self.selection_set(depth);
            self.top_depth = depth;
            return inner;
        }
        let mut field = self.name("expected a field, `...` or `}`")?;
        if self.eat(b':')? {
            self.aliased = true;
            field = self.name("expected a field name after the alias")?;
        }
        if at_top {
            self.top.fields.push(field);
        }
        if self.is(b'(') {
            self.arguments(false, depth)?;
        }
        self.directives(false, depth)?;
        if self.is(b'{') {
            self.selection_set(depth)?;
        }
        Ok(())
    }

    /// Arguments: `(` (Name `:` Value)+ `)`.
    fn arguments(&mut self, constant: bool, depth: usize) -> Result<()> {
        let depth = self.deeper(depth)?;
        self.expect(b'(', "expected `(`")?;
        loop {
            self.name("expected an argument name")?;
            self.expect(b':', "expected `:` after the argument name")?;
            self.value(constant, depth)?;
            if self.eat(b')')? {
                return Ok(());
            }
        }
    }

    /// Directives: (`@` Name Arguments?)*.
    fn directives(&mut self, constant: bool, depth: usize) -> Result<()> {
        while self.eat(b'@')? {
            self.name("expected a directive name after `@`")?;
            if self.is(b'(') {
                self.arguments(constant, depth)?;
            }
        }
        Ok(())
    }

    /// Value, or Value[Const] (no variables) when `constant`.
    fn value(&mut self, constant: bool, depth: usize) -> Result<()> {
        match self.tok.kind {
            Kind::Punct(b'$') if !constant => {
                self.bump()?;
                self.name("expected a variable name after `$`")?;
            }
            Kind::Punct(b'$') => return Err(self.unexpected("a variable is not allowed in a constant value")),
            // `true`, `false`, `null` and enum values are all names.
            Kind::Int | Kind::Float | Kind::String | Kind::Name(_) => {
                self.bump()?;
            }
            Kind::Punct(b'[') => {
                let depth = self.deeper(depth)?;
                self.bump()?;
                while !self.eat(b']')? {
                    self.value(constant, depth)?;
                }
            }
            Kind::Punct(b'{') => {
                let depth = self.deeper(depth)?;
                self.bump()?;
                while !self.eat(b'}')? {
                    self.name("expected a field name or `}` in an input object")?;
                    self.expect(b':', "expected `:` after the input field name")?;
                    self.value(constant, depth)?;
                }
            }
            _ => return Err(self.unexpected("expected a value")),
        }
        Ok(())
    }

    /// VariablesDefinition: `(` (Variable `:` Type DefaultValue? Directives[Const]?)+ `)`.
    fn variable_definitions(&mut self) -> Result<()> {
        let depth = self.deeper(0)?;
        self.expect(b'(', "expected `(`")?;
        loop {
            self.expect(b'$', "expected a variable like `$id`")?;
            self.name("expected a variable name after `$`")?;
            self.expect(b':', "expected `:` and the variable's type")?;
            self.type_reference(depth)?;
            if self.eat(b'=')? {
                self.value(true, depth)?;
            }
            self.directives(true, depth)?;
            if self.eat(b')')? {
                return Ok(());
            }
        }
    }

    /// Type: NamedType, `[` Type `]`, either followed by `!`.
    fn type_reference(&mut self, depth: usize) -> Result<()> {
        if self.is(b'[') {
            let depth = self.deeper(depth)?;
            self.bump()?;
            self.type_reference(depth)?;
            self.expect(b']', "expected `]` to close the list type")?;
        } else {
            self.name("expected a type")?;
        }
        self.eat(b'!')?;
        Ok(())
    }
}
