//! SQL as a gateway needs it: tokens, statements, and what each statement may do.
//!
//! - [`lexer`]: tokens, with every construct that can hide a keyword kept whole.
//! - [`split`](mod@split): a Simple Query string into statements, as the server splits it.
//! - [`classify`](mod@classify): a statement into [`Classes`] (read, write, ddl, destructive,
//!   privilege, admin, transaction, session, unknown), looking inside what hides
//!   statements (data-modifying CTEs, `EXPLAIN ANALYZE`, `PREPARE ... AS`). Anything
//!   not understood is `unknown`, never `read`.

pub mod classify;
pub mod lexer;
pub mod split;

pub use classify::{Class, Classes, classify};
pub use split::{Statement, split};
