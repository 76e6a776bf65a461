//! SQL as a gateway needs it: tokens, statements, and what each statement may do.
//!
//! - [`lexer`]: tokens, with every construct that can hide a keyword kept whole, cut
//!   exactly where the server's scanner cuts them ([`lexer::Dialect`]).
//! - [`split`](mod@split): a Simple Query string into statements, as the server splits it.
//! - [`classify`](mod@classify): a statement into [`Classes`] (read, write, ddl, destructive,
//!   privilege, admin, transaction, session, unknown), looking inside what hides
//!   statements (data-modifying CTEs, `EXPLAIN ANALYZE`, `PREPARE ... AS`, SQL text
//!   passed to `query_to_xml`). Anything not understood is `unknown`, never `read`.
//! - [`select`]: the simplest `SELECT columns FROM table`, read without the server.
//! - [`builtins`]: the server's own functions and keywords, as generated data.
//! - [`settings`]: run-time settings by what changing them can undo, and the client
//!   encodings no byte-wise lexer can follow.

pub mod builtins;
pub mod classify;
pub mod lexer;
pub mod select;
pub mod settings;
pub mod split;

pub use classify::{
    Catalog, Class, Classes, NoCatalog, calls_only_reads, classify, classify_trusting, written_relation,
};
pub use split::{Statement, split, split_with};
