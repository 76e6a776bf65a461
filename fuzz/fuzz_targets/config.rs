//! The config file (`airlock::config::Config::parse`: TOML into `Config`, then its
//! validation), and what the server builds from a valid one without I/O: the policy
//! (`Policy::new`, rule globs and patterns) and each connection's masker
//! (`masking::for_connection`, config patterns).
//!
//! Never a panic. An error names a line that exists in the text, and prints. A config
//! that validates builds its policy and maskers, or says why not.
#![no_main]

use std::path::PathBuf;

use airlock::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match Config::parse(text, PathBuf::new()) {
        Err(e) => {
            if let Some(line) = e.line {
                assert!(
                    line >= 1 && line <= text.lines().count() + 1,
                    "error on line {line} of {}",
                    text.lines().count()
                );
            }
            let _ = e.to_string();
        }
        Ok(config) => {
            let _ = airlock::policy::Policy::new(&config.rules).map_err(|e| e.to_string());
            for name in config.connections.iter().map(|c| c.name.as_str()).chain(["no-such-connection"]) {
                let _ = airlock::masking::for_connection(&config, name, b"fuzz-key").map_err(|e| e.to_string());
            }
        }
    }
});
