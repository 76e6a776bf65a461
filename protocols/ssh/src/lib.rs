//! What Airlock knows about SSH sessions, with no I/O: the shell lexer and classifier
//! that judge exec requests, the SFTP packet decoder, the terminal line editor that
//! rebuilds typed lines for the record, and the transcript `airlock replay` reads SSH
//! sessions with.

pub mod record;
pub mod sftp;
pub mod shell;
pub mod terminal;
pub mod transcript;
